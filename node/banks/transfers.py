"""Importing and exporting a bank's hash lists (the formats are :mod:`.formats`'s): all or
nothing, every bad line reported by number."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from blindmatch.node import signals
from blindmatch.node.banks.feed import BankFeed
from blindmatch.node.banks.formats import (
    EXPORT_FORMATS,
    MAX_REPORTED_PROBLEMS,
    ImportFormatError,
    LineProblem,
    LineSource,
    ParsedItem,
    export_record,
    parse_hash_list,
    te_export_line,
)
from blindmatch.node.banks.model import (
    BankConflictError,
    ImportReport,
    _new_item,
    passes_quality_gate,
)
from blindmatch.node.banks.validation import (
    BankValidationError,
    check_quality,
    check_source,
    echo,
)
from blindmatch.node.clock import Clock
from blindmatch.node.storage import Database, IntegrityError
from blindmatch.node.storage.banks import Bank, BankItem, BankStore


class BankTransfers:
    """The import and export half of :class:`~.service.BankService` (a mixin: it works on the
    service's store, clock, feed and hooks)."""

    _db: Database
    _store: BankStore
    _clock: Clock
    _feed: BankFeed
    _new_ref: Callable[[], bytes]

    if TYPE_CHECKING:

        async def get_bank(self, name: str) -> Bank: ...

        def list_items(self, bank: str, *, after_id: int = 0) -> Awaitable[list[BankItem]]: ...

    async def import_items(
        self,
        bank: str,
        source: LineSource,
        *,
        fmt: str = "jsonl",
        signal_type: str | None = None,
        origin: str = "import",
        min_quality: int | None = None,
        skip_unsupported: bool = False,
    ) -> ImportReport:
        """Import a hash list, all or nothing (see :mod:`blindmatch.node.banks.formats`).

        A bad line refuses the whole import with line-numbered errors. Hashes already in the
        bank are counted, not duplicated; hashes withdrawn from the bank, and perceptual hashes
        below ``min_quality``, are skipped and reported; with ``skip_unsupported``, lines of
        signal types we do not hold are counted in ``report.unsupported``.
        """
        origin = check_source(origin)
        if min_quality is not None:
            check_quality(min_quality)
        parsed = parse_hash_list(fmt, source, signal_type, skip_unsupported=skip_unsupported)
        report = ImportReport(
            skipped=list(parsed.skipped), format=parsed.format, unsupported=parsed.unsupported
        )
        now = self._clock.now()
        candidates: list[ParsedItem] = []
        for item in parsed.items:
            if item.expires_at is not None and item.expires_at <= now:
                report.skipped.append(LineProblem(item.line, "skipped: already expired"))
            elif not passes_quality_gate(item, min_quality):
                report.skipped.append(
                    LineProblem(item.line, f"skipped: quality {item.quality} < {min_quality}")
                )
            else:
                candidates.append(item)
        async with self._db.transaction():
            target = await self.get_bank(bank)
            withdrawn_by_key = await self._existing_items(target, candidates)
            fresh: dict[tuple[str, bytes], ParsedItem] = {}
            for item in candidates:
                key = (item.signal_type, item.hash)
                if withdrawn_by_key.get(key):
                    report.skipped.append(LineProblem(item.line, "skipped: withdrawn earlier"))
                elif key in withdrawn_by_key or key in fresh:
                    report.already_present += 1
                else:
                    fresh[key] = item
            problems = await self._item_ref_problems(list(fresh.values()))
            if problems:
                raise ImportFormatError.of(problems[:MAX_REPORTED_PROBLEMS], len(problems))
            report.added = await self._insert_many(target, list(fresh.values()), origin, now)
        report.skipped.sort(key=lambda p: p.line)
        return report

    async def export_items(
        self,
        bank: str,
        *,
        include_private: bool = False,
        fmt: str = "jsonl",
        untranslatable: Counter[str] | None = None,
    ) -> AsyncIterator[str]:
        """The bank's live items as lines (without newlines) of ``fmt``: ``jsonl``, or
        ``te-lines`` / ``hma-json`` under TE's signal names; items of a type TE has no name for
        are counted in ``untranslatable`` (by our type) instead."""
        if fmt not in EXPORT_FORMATS:
            raise BankValidationError(
                f"unknown export format {echo(fmt)} (one of {', '.join(EXPORT_FORMATS)})"
            )
        after = 0
        while page := await self.list_items(bank, after_id=after):
            # An item held as parts is exported as its signal string (a video's frame list).
            strings: dict[int, str] = {}
            for adapter in signals.ADAPTERS:
                if adapter.holds_parts:
                    ids = [i.id for i in page if i.signal_type == adapter.entry.name]
                    if ids:
                        strings.update(await adapter.signal_strings(self._db, ids))
            for item in page:
                if fmt != "jsonl":
                    line = te_export_line(fmt, item.signal_type, item.hash, strings.get(item.id))
                    if line is not None:
                        yield line
                    elif untranslatable is not None:
                        untranslatable[item.signal_type] += 1
                    continue
                secret_hash = None
                if include_private and item.has_withdrawal_secret:
                    secret_hash = await self._store.secret_hash_of(item.id)
                yield export_record(
                    signal_type=item.signal_type,
                    hash_bytes=item.hash,
                    quality=item.quality,
                    categories=item.categories,
                    expires_at=item.expires_at,
                    added_at=item.added_at,
                    provenance=item.provenance,
                    item_ref=item.item_ref,
                    withdrawal_secret_hash=None if secret_hash is None else bytes(secret_hash),
                    include_private=include_private,
                    signal_str=strings.get(item.id),
                )
            after = page[-1].id

    async def _existing_items(
        self, bank: Bank, items: Sequence[ParsedItem]
    ) -> dict[tuple[str, bytes], bool]:
        """Which of these hashes the bank already holds: (signal_type, hash) -> withdrawn?"""
        return await self._store.existing(bank, [item.hash for item in items])

    async def _item_ref_problems(self, items: Sequence[ParsedItem]) -> list[LineProblem]:
        """Explicit item_refs (restored backups) that repeat, or that another item holds."""
        problems: list[LineProblem] = []
        first_line: dict[bytes, int] = {}
        for item in items:
            if item.item_ref is None:
                continue
            if item.item_ref in first_line:
                problems.append(
                    LineProblem(item.line, f"item_ref repeats line {first_line[item.item_ref]}")
                )
            else:
                first_line[item.item_ref] = item.line
        for ref in await self._store.taken_refs(list(first_line)):
            problems.append(
                LineProblem(first_line[ref], "item_ref is already used by another item")
            )
        problems.sort(key=lambda p: p.line)
        return problems

    async def _insert_many(
        self, bank: Bank, items: Sequence[ParsedItem], source: str, now: int
    ) -> int:
        """Insert new items in one batch; publish them if the bank is shared."""
        if not items:
            return 0
        refs = [item.item_ref if item.item_ref is not None else self._new_ref() for item in items]
        try:
            await self._store.insert_items(
                bank,
                [_new_item(item, ref, source, now) for item, ref in zip(items, refs, strict=True)],
            )
        except IntegrityError:
            raise BankConflictError("the bank changed during the import; retry") from None
        with_parts = [(item, ref) for item, ref in zip(items, refs, strict=True) if item.frames]
        for item, ref in with_parts:
            found = await self._store.item_by_ref(ref)
            assert found is not None and item.frames is not None
            adapter = signals.adapter(item.signal_type)
            await adapter.store_parts(self._db, found[0].id, item.frames)
        if bank.shared:
            await self._feed.added_many(await self._store.items_by_refs(bank, refs), bank, now)
        return len(items)
