"""``blindmatch bank ...``: manage the node's banks of hashes from the command line.

The database is the node's (``--config HOME`` or ``BLINDMATCH_CONFIG``), or ``--db URL`` /
``BLINDMATCH_DB``; without any of them the command refuses rather than guess. Its schema is
brought up to date on open. Listings show item
references, never hash values; only ``export`` writes hashes, to the file it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from blindmatch.node import config as config_mod
from blindmatch.node import signals
from blindmatch.protocol import signal_types

FORMATS = ("auto", "jsonl", "te-lines", "te-csv", "hma-json")
EXPORT_FORMATS = ("jsonl", "te-lines", "hma-json")
PROVENANCES = (
    "survivor-submitted",
    "moderator-confirmed",
    "peer-sourced",
    "protected-source",
    "generator",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    config_mod.add_database_arguments(common)

    p = sub.add_parser("bank", help="manage banks of hashes")
    bsub = p.add_subparsers(dest="bank_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: _usage(p))

    c = bsub.add_parser("create", parents=[common], help="create a bank")
    c.add_argument("name")
    c.add_argument("--provenance", required=True, choices=PROVENANCES)
    c.add_argument("--description", default="")
    c.add_argument("--category", action="append", default=[], metavar="LABEL")
    c.add_argument("--threshold", type=int, default=31, help="PDQ distance threshold (0..63)")
    c.add_argument("--shared", action="store_true", help="share with the federation")
    c.add_argument("--disabled", action="store_true", help="create it disabled")
    c.set_defaults(func=_sync(_create))

    u = bsub.add_parser("update", parents=[common], help="change a bank's settings")
    u.add_argument("name")
    u.add_argument("--description")
    u.add_argument("--category", action="append", metavar="LABEL", help="replaces the labels")
    u.add_argument("--threshold", type=int)
    share = u.add_mutually_exclusive_group()
    share.add_argument("--shared", dest="shared", action="store_true", default=None)
    share.add_argument("--not-shared", dest="shared", action="store_false")
    u.set_defaults(func=_sync(_update))

    ls = bsub.add_parser("list", parents=[common], help="list banks, or the items of one bank")
    ls.add_argument("name", nargs="?")
    ls.add_argument("--all", action="store_true", help="include expired and withdrawn items")
    ls.set_defaults(func=_sync(_list))

    a = bsub.add_parser("add", parents=[common], help="add hashes (or media) to a bank")
    a.add_argument("name")
    a.add_argument("hashes", nargs="*", metavar="HASH", help="hashes as hex")
    a.add_argument(
        "--signal-type",
        default="pdq",
        choices=signal_types.bank_signal_names(),
        help=_signal_type_help(),
    )
    a.add_argument("--file", help="a file of hashes: '<hash>' or '<signal_type> <hash>' lines")
    a.add_argument("--media", action="append", default=[], metavar="IMAGE", help="hash an image")
    a.add_argument(
        "--no-crops",
        action="store_true",
        help="bank a picture's hash without its off-centre crops (spec signals-and-lsh 3.5): "
        "24 index entries per picture instead of about 1,000, and corner crops of it go unfound",
    )
    for adapter in signals.ADAPTERS:  # a signal type that hashes its own media (a video)
        if adapter.media_option is not None:
            a.add_argument(
                adapter.media_option,
                action="append",
                default=[],
                dest=_media_dest(adapter),
                metavar=adapter.media_option.strip("-").upper(),
                help=adapter.media_option_help,
            )
    a.add_argument("--quality", type=int)
    a.add_argument("--min-quality", type=int, help="refuse PDQ hashes below this quality")
    a.add_argument("--category", action="append", default=[], metavar="LABEL")
    a.add_argument("--expires-at", type=int, metavar="UNIX_SECONDS")
    a.set_defaults(func=_sync(_add))

    r = bsub.add_parser("remove", parents=[common], help="delete hashes from a bank")
    r.add_argument("name", nargs="?")
    r.add_argument("hashes", nargs="*", metavar="HASH")
    r.add_argument("--signal-type", default="pdq", choices=signal_types.bank_signal_names())
    r.add_argument("--ref", action="append", default=[], metavar="ITEM_REF")
    r.set_defaults(func=_sync(_remove))

    w = bsub.add_parser("withdraw", parents=[common], help="withdraw an item by its reference")
    w.add_argument("ref", metavar="ITEM_REF")
    w.add_argument("--reason", default="")
    w.add_argument(
        "--secret-file",
        help="file holding the survivor's withdrawal secret (required for survivor items "
        "unless --operator)",
    )
    w.add_argument("--operator", action="store_true", help="withdraw on the operator's authority")
    w.set_defaults(func=_sync(_withdraw))

    i = bsub.add_parser("import", parents=[common], help="import a hash list (all or nothing)")
    i.add_argument("name")
    i.add_argument("file", help="the list, or - for standard input")
    i.add_argument(
        "--format",
        default="auto",
        choices=FORMATS,
        help="jsonl (blindmatch bank lines), te-lines ('threatexchange hash' / 'dataset -P -S',"
        " with or without a rotation column), te-csv ('threatexchange dataset -P --csv'),"
        ' hma-json ({"pdq": "<hex>"} per line); auto (default) picks one from the first line',
    )
    i.add_argument("--signal-type", help="signal type of bare-hash lines (te-lines)")
    i.add_argument("--min-quality", type=int)
    i.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="skip lines of signal types blindmatch does not hold (video_md5, url, ...)"
        " and count them, instead of refusing the file",
    )
    i.set_defaults(func=_sync(_import))

    e = bsub.add_parser("export", parents=[common], help="export a bank's live items")
    e.add_argument("name")
    e.add_argument("file", nargs="?", help="output file (default: standard output)")
    e.add_argument(
        "--format",
        default="jsonl",
        choices=EXPORT_FORMATS,
        help="jsonl (restorable), te-lines (read by threatexchange's local_file exchange) or"
        " hma-json (bodies for HMA's POST /c/bank/NAME/signal)",
    )
    e.add_argument(
        "--include-private",
        action="store_true",
        help="also item references, provenance and withdrawal-secret hashes (for backups)",
    )
    e.set_defaults(func=_sync(_export))

    for verb, enabled in (("enable", True), ("disable", False)):
        t = bsub.add_parser(verb, parents=[common], help=f"{verb} matching against a bank")
        t.add_argument("name")
        t.set_defaults(func=_sync(_toggle), enabled=enabled)

    d = bsub.add_parser("delete", parents=[common], help="delete a bank and all its items")
    d.add_argument("name")
    d.add_argument("--yes", action="store_true", help="confirm")
    d.set_defaults(func=_sync(_delete))


def _signal_type_help() -> str:
    """'pdq, sha256 (hex), or <type>: <its value_doc>': the bank types and how each is given."""
    hex_types = [n for n in signal_types.bank_signal_names() if not signals.adapter(n).holds_parts]
    lists = [
        f"{a.entry.name}: {a.value_doc}"
        for a in signals.ADAPTERS
        if a.holds_parts and a.entry.bank_item
    ]
    return f"{', '.join(hex_types)} (hex)" + "".join(f", or {d}" for d in lists)


def _media_dest(adapter: signals.SignalAdapter) -> str:
    return f"media_{adapter.entry.name.replace('-', '_')}"


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _sync(command: Callable[[argparse.Namespace, Any], Awaitable[int]]) -> Callable[..., int]:
    """Run an async command with an open, migrated database and a bank service."""

    def run(args: argparse.Namespace) -> int:
        from blindmatch.node.banks.service import BankError
        from blindmatch.node.banks.validation import BankValidationError
        from blindmatch.node.storage import StorageError

        try:
            return asyncio.run(_with_service(command, args))
        except (
            BankError,
            BankValidationError,
            StorageError,
            OSError,
            config_mod.ConfigError,
        ) as exc:
            print(f"blindmatch bank: error: {exc}", file=sys.stderr)
            return 1

    return run


async def _with_service(
    command: Callable[[argparse.Namespace, Any], Awaitable[int]], args: argparse.Namespace
) -> int:
    from blindmatch.node.banks.service import BankService
    from blindmatch.node.clock import SystemClock
    from blindmatch.node.storage import open_database

    clock = SystemClock()
    url = config_mod.database_url_from_args(args)
    db = await open_database(url, migrate_now=clock.now())
    try:
        return await command(args, BankService(db, clock))
    finally:
        await db.close()


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    import datetime

    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _create(args: argparse.Namespace, banks: Any) -> int:
    bank = await banks.create_bank(
        args.name,
        provenance=args.provenance,
        description=args.description,
        categories=args.category,
        distance_threshold=args.threshold,
        enabled=not args.disabled,
        shared=args.shared,
    )
    print(f"created bank {bank.name} ({bank.provenance}, threshold {bank.distance_threshold})")
    return 0


async def _update(args: argparse.Namespace, banks: Any) -> int:
    bank = await banks.update_bank(
        args.name,
        description=args.description,
        categories=args.category,
        distance_threshold=args.threshold,
        shared=args.shared,
    )
    print(f"updated bank {bank.name}")
    return 0


async def _list(args: argparse.Namespace, banks: Any) -> int:
    if args.name is None:
        rows = [("NAME", "PROVENANCE", "THRESHOLD", "ENABLED", "SHARED", "ACTIVE", "CATEGORIES")]
        for bank in await banks.list_banks():
            counts = await banks.count_items(bank.name)
            rows.append(
                (
                    bank.name,
                    bank.provenance,
                    str(bank.distance_threshold),
                    "yes" if bank.enabled else "no",
                    "yes" if bank.shared else "no",
                    str(counts["active"]),
                    ",".join(bank.categories) or "-",
                )
            )
        _print_table(rows)
        return 0
    now = banks.clock.now()
    rows = [("ITEM_REF", "SIGNAL", "QUALITY", "ADDED", "EXPIRES", "STATUS", "SOURCE")]
    after = 0
    while page := await banks.list_items(args.name, include_inactive=args.all, after_id=after):
        for item in page:
            status = (
                "withdrawn"
                if item.withdrawn_at is not None
                else ("active" if item.is_active(now) else "expired")
            )
            rows.append(
                (
                    item.item_ref.hex(),
                    item.signal_type,
                    "-" if item.quality is None else str(item.quality),
                    _when(item.added_at),
                    _when(item.expires_at),
                    status,
                    item.source,
                )
            )
        after = page[-1].id
    _print_table(rows)
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _banked_crops(media: bytes, crops: bool = True) -> list[Any]:
    # Each crop costs every querier of this holder 24 more replica entries and its own chance
    # bucket hits; an operator trades that against corner-crop recall per import (--no-crops).
    if not crops:
        return []
    from blindmatch.node.banks.validation import BankedCrop
    from blindmatch.node.media.crops import picture_crops

    return [BankedCrop(c.name, c.pdq.hash32, c.pdq.quality) for c in picture_crops(media)]


def _image_hashes(media: bytes, crops: bool = True) -> list[tuple[Any, ...]]:
    """The hashes a picture is banked under: the PDQ of its pixels (what a holder indexes) with
    its off-centre crops (indexed as variants of the same item), and its SHA-256."""
    from blindmatch.node.media.hashing import hash_image_bytes

    hashes = hash_image_bytes(media)
    return [
        ("pdq", hashes.pdq.hash32, hashes.pdq.quality, _banked_crops(media, crops)),
        ("sha256", hashes.sha256, None),
    ]


def _node_config(args: argparse.Namespace) -> Any:
    """The node's configuration when the command names a node (None with ``--db``)."""
    if getattr(args, "db", None):
        return None
    try:
        return config_mod.load_from_args(args)
    except config_mod.ConfigError:
        return None


async def _add(args: argparse.Namespace, banks: Any) -> int:
    from blindmatch.node.banks.formats import parse_te_lines
    from blindmatch.node.banks.validation import BankValidationError, holds_frame_list

    entries: list[tuple[str, str | bytes]] = [(args.signal_type, h) for h in args.hashes]
    if args.file:
        with _open_input(args.file) as handle:
            parsed = parse_te_lines(handle, args.signal_type)
        entries.extend((item.signal_type, item.hash) for item in parsed.items)
    media_files = [
        (adapter, path)
        for adapter in signals.ADAPTERS
        if adapter.media_option is not None
        for path in getattr(args, _media_dest(adapter))
    ]
    if not entries and not args.media and not media_files:
        options_named = ["hashes", "--file", "--media"] + [
            a.media_option for a in signals.ADAPTERS if a.media_option is not None
        ]
        raise BankValidationError(
            f"nothing to add: give {', '.join(options_named[:-1])} or {options_named[-1]}"
        )
    options = {
        "quality": args.quality,
        "categories": args.category,
        "expires_at": args.expires_at,
        "source": "cli",
        "min_quality": args.min_quality,
    }
    added = present = 0
    async with banks.db.transaction():  # every hash or none
        # An item held as parts (a video) has no quality of its own to set or gate.
        list_options = {k: options[k] for k in ("categories", "expires_at", "source")}
        for signal_type, value in entries:
            if holds_frame_list(signal_type):
                if not isinstance(value, str):
                    raise BankValidationError(f"a {signal_type} entry is a signal string")
                result = await banks.add_item(args.name, signal_type, value, **list_options)
            else:
                result = await banks.add_item(args.name, signal_type, value, **options)
            added += result.created
            present += not result.created
        for adapter, path in media_files:
            value = adapter.bank_value_of_file(path)
            result = await banks.add_item(args.name, adapter.entry.name, value, **list_options)
            added += result.created
            present += not result.created
        protected = args.media and (await banks.get_bank(args.name)).provenance == (
            "protected-source"
        )
        node_cfg = _node_config(args) if args.media else None
        for path in args.media:
            media = Path(path).read_bytes()
            # Types that derive a bank value of their own from a picture (a learned code, when
            # the node's configuration turns it on) bank it beside the picture's PDQ hash.
            for extra in signals.ADAPTERS:
                derived = extra.picture_bank_value(media, node_cfg)
                if derived is not None:
                    result = await banks.add_item(
                        args.name, extra.entry.name, derived, **list_options
                    )
                    added += result.created
                    present += not result.created
            if protected:
                # A protected source photo: its whole-picture hash and its tiles, so that
                # edited derivatives of it are found too (specs/derivatives.md).
                from blindmatch.node.media.tiles import protected_source

                pdq, tiles = protected_source(media)
                result = await banks.add_protected_source(
                    args.name,
                    pdq.hash32,
                    quality=pdq.quality,
                    tiles=tiles,
                    crops=_banked_crops(media, not args.no_crops),
                    categories=args.category,
                    expires_at=args.expires_at,
                    source="cli",
                )
                added += result.created
                present += not result.created
                continue
            results = await banks.add_media(
                args.name,
                media,
                functools.partial(_image_hashes, crops=not args.no_crops),
                categories=args.category,
                expires_at=args.expires_at,
                source="cli",
                min_quality=args.min_quality,
            )
            added += sum(r.created for r in results)
            present += sum(not r.created for r in results)
    print(f"added {added}, already present {present}")
    if any(signal_type == signal_types.PDQ.name for signal_type, _ in entries):
        print(HASH_ONLY_NOTE, file=sys.stderr)
    return 0


# What a hash-only entry loses against a picture banked from its media (bank add --media), said
# wherever hashes are banked without the picture.
HASH_ONLY_NOTE = (
    "note: pdq hashes banked without their picture have no off-centre crops: a copy cut from"
    " one corner by 3% or more will not match them (bank the picture with --media to cover it)"
)


async def _remove(args: argparse.Namespace, banks: Any) -> int:
    from blindmatch.node.banks.validation import BankValidationError

    if not args.ref and not (args.name and args.hashes):
        raise BankValidationError("give BANK HASH... or --ref ITEM_REF")
    removed = 0
    async with banks.db.transaction():
        for ref in args.ref:
            removed += await banks.remove_by_ref(ref)
        for value in args.hashes:
            removed += await banks.remove_item(args.name, args.signal_type, value)
    print(f"removed {removed}")
    return 0


async def _withdraw(args: argparse.Namespace, banks: Any) -> int:
    from blindmatch.node.banks.validation import BankValidationError

    if args.secret_file:
        secret = Path(args.secret_file).read_bytes().strip()
        with contextlib.suppress(ValueError):
            secret = bytes.fromhex(secret.decode("ascii"))  # hex-encoded secrets too
        item = await banks.withdraw_with_secret(args.ref, secret, reason=args.reason)
    elif args.operator:
        item = await banks.withdraw(args.ref, reason=args.reason)
    else:
        raise BankValidationError("give --secret-file (survivor) or --operator")
    print(f"withdrawn {item.item_ref.hex()} at {_when(item.withdrawn_at)}")
    return 0


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
    else:
        with open(path, "rb") as handle:
            yield handle


async def _import(args: argparse.Namespace, banks: Any) -> int:
    origin = "import:stdin" if args.file == "-" else f"import:{Path(args.file).name}"
    with _open_input(args.file) as handle:
        report = await banks.import_items(
            args.name,
            handle,
            fmt=args.format,
            signal_type=args.signal_type,
            origin=origin[:200],
            min_quality=args.min_quality,
            skip_unsupported=args.skip_unsupported,
        )
    print(
        f"imported {report.added}, already present {report.already_present}"
        f" (format {report.format})"
    )
    if report.unsupported:
        counts = ", ".join(f"{name} {n}" for name, n in report.unsupported.most_common())
        total = sum(report.unsupported.values())
        print(f"skipped {total} unsupported signal(s): {counts}", file=sys.stderr)
    for problem in report.skipped:
        print(f"  {problem}", file=sys.stderr)
    if report.added:
        print(HASH_ONLY_NOTE, file=sys.stderr)
    return 0


async def _export(args: argparse.Namespace, banks: Any) -> int:
    from collections import Counter

    from blindmatch.node.banks.validation import BankValidationError

    await banks.get_bank(args.name)  # fail before creating a file
    if args.include_private and args.format != "jsonl":
        raise BankValidationError("--include-private needs --format jsonl (a restorable backup)")
    untranslatable: Counter[str] = Counter()
    lines = banks.export_items(
        args.name,
        include_private=args.include_private,
        fmt=args.format,
        untranslatable=untranslatable,
    )
    if not args.file or args.file == "-":
        async for line in lines:
            sys.stdout.write(line + "\n")
        _report_untranslatable(untranslatable)
        return 0
    # Write beside the target and rename, so a crash never leaves a truncated export.
    target = Path(args.file)
    partial = target.with_name(target.name + ".partial")
    count = 0
    with open(partial, "w", encoding="utf-8") as out:
        async for line in lines:
            out.write(line + "\n")
            count += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    print(f"exported {count} items to {target}", file=sys.stderr)
    _report_untranslatable(untranslatable)
    return 0


def _report_untranslatable(counts: Any) -> None:
    if counts:
        listed = ", ".join(f"{name} {n}" for name, n in counts.most_common())
        print(
            f"not exported: {sum(counts.values())} item(s) of types ThreatExchange has no name"
            f" for ({listed})",
            file=sys.stderr,
        )


async def _toggle(args: argparse.Namespace, banks: Any) -> int:
    bank = await banks.set_enabled(args.name, args.enabled)
    print(f"bank {bank.name} {'enabled' if bank.enabled else 'disabled'}")
    return 0


async def _delete(args: argparse.Namespace, banks: Any) -> int:
    from blindmatch.node.banks.validation import BankValidationError

    if not args.yes:
        raise BankValidationError(f"deleting bank {args.name!r} removes all its items: add --yes")
    removed = await banks.delete_bank(args.name)
    print(f"deleted bank {args.name} and {removed} items")
    return 0
