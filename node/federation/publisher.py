"""The holder's side of the index: publishing its shared banks' items as a blinded index.

Each delta of the ``index`` feed adds or removes the packed index entries of a batch of items,
in one transaction with its log record and its rows in ``index_publications``, so a crash
leaves either both or neither. The OPRF evaluations are :mod:`.index_build`'s.

The index is published under every key the ring publishes (:mod:`.key_ring`: the current key
and, during a rotation, its successor), each item once per key; the entries of a key the ring
no longer answers for (a retired key after its overlap) are withdrawn, then its secret erased.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence

from blindmatch.crypto import oprf
from blindmatch.node import signals
from blindmatch.node.clock import Clock
from blindmatch.node.federation import index_build
from blindmatch.node.federation.key_ring import VoprfKeyRing
from blindmatch.node.federation.occupancy import IndexOccupancy
from blindmatch.node.metrics import Metrics
from blindmatch.node.signals.base import Publishable
from blindmatch.node.storage import Database, FeedLog, NodeState
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import canonical, index
from blindmatch.protocol.lsh import BitSamplingScheme
from blindmatch.protocol.roster import voprf_key_id
from blindmatch.protocol.signals import PDQ_MATCH_THRESHOLD

log = logging.getLogger("blindmatch.node")

INDEX_FEED = "index"
PUBLISH_LOCK = "blindmatch:publish-index"
# Batch classes (spec 8.7): every signal's additions go out in the index's batches, except a
# signal of many key prefixes (tiles: one per cell), padded per prefix and so batched apart on
# a longer interval.
INDEX_CLASS = "index"
TILE_CLASS = "tiles"


def _batch_marker(batch_class: str) -> str:
    """The node_state key of when the last batch of a class went out (under the key then
    current: a promoted successor keeps the rhythm)."""
    return f"index-batch/{batch_class}"


DECOY_LABEL = "decoy/"  # the scheme column of a decoy's publication rows


def _decoy_label(prefix: bytes, tables: list[int], bits: int, threshold: int) -> str:
    """How a decoy's buckets are re-derived (under a successor key) and how it is answered:
    its signal's key prefix, tables and bits, and the bank threshold of the items it pads, in
    the publication row's scheme column (never on the wire)."""
    lo, hi = min(tables), max(tables)
    if tables != list(range(lo, hi + 1)):
        raise ValueError("a signal's tables are consecutive")
    return f"{DECOY_LABEL}{prefix.hex()}/{lo}/{hi}/{bits}/{threshold}"


def _decoy_keys_of(ref: bytes, label: str) -> list[bytes]:
    prefix_hex, lo, hi, bits, _ = label[len(DECOY_LABEL) :].split("/")
    tables = list(range(int(lo), int(hi) + 1))
    return index.decoy_keys(ref, bytes.fromhex(prefix_hex), tables, int(bits))


def item_label(scheme: str, threshold: int) -> str:
    """An item's publication row label: its scheme, and its bank threshold when not the
    default (its answers show it; after a withdrawal its entries are answered with it)."""
    return scheme if threshold == PDQ_MATCH_THRESHOLD else f"{scheme}/t{threshold}"


def label_threshold(label: str) -> int:
    """The bank threshold a publication row was published under (8.7)."""
    if label.startswith(DECOY_LABEL):
        return int(label.rsplit("/", 1)[1])
    _, sep, t = label.rpartition("/t")
    return int(t) if sep and t.isdigit() else PDQ_MATCH_THRESHOLD


def _chunk_id(chunk: bytes) -> bytes:
    """The "refs" a delta's id is made from (10.3, :func:`index.delta_id`): a digest of its
    sorted entries (a chunk is sorted), so the same delta is idempotent and the id names no
    item."""
    return hashlib.sha256(chunk).digest()[:16]


def _entry_id(kind: str, refs: Sequence[bytes], key_id: bytes) -> bytes:
    """Idempotent per change: the same items added (or removed) under the same key (10.3)."""
    return index.feed_entry_id(kind, key_id, refs)


class IndexPublisher:
    def __init__(
        self,
        db: Database,
        store: PublishedIndexStore,
        feeds: FeedLog,
        translog: TransparencyLog,
        ring: VoprfKeyRing,
        scheme: BitSamplingScheme,
        metrics: Metrics,
        clock: Clock,
        *,
        roles: frozenset[str] | tuple[str, ...],
        batch_s: int = 0,
        padding: int = 0,
        tile_batch_s: int | None = None,
        occupancy: IndexOccupancy | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.feeds = feeds
        self.translog = translog
        self.ring = ring
        self.scheme = scheme
        self.metrics = metrics
        self.clock = clock
        self.roles = roles  # a signal type banked by one role is published by that role only
        self._lock = asyncio.Lock()
        # batched, padded publication (spec 8.6): 0 publishes every round, unpadded
        self.batch_s = batch_s
        self.padding = padding
        # tiles (41 key prefixes, each padded) on their own, longer interval (8.7)
        self.tile_batch_s = batch_s if tile_batch_s is None else tile_batch_s
        # the index_entries the roster declares for us (10.1): decoys count (8.7)
        self.declared_entries: Callable[[], int] | None = None
        # what each batch leaves the index at, for the threshold budget that follows it (8.3)
        self.occupancy = occupancy

    def publishing_adapters(self) -> list[signals.SignalAdapter]:
        return [
            a
            for a in signals.ADAPTERS
            if a.published_by_role is None or a.published_by_role in self.roles
        ]

    async def reconcile(self) -> dict[str, int]:
        """Bring the published index in line with the published items (one at a time, among
        all of the node's processes: the sync loop and a bank change may ask at once, and both
        would publish the same items).

        Adds items not yet published (whole-picture hashes and the tiles of protected sources)
        and removes items no longer published (withdrawn, expired, bank disabled or unshared;
        a source's tiles with it), each delta in one transaction with its feed entry.
        """
        # In-process first (one waiting connection per process), then across the node's
        # processes: two processes publishing at once would both evaluate the same backlog
        # and one would lose on the unique publication rows.
        async with self._lock, self.db.exclusive(PUBLISH_LOCK):
            await self.ring.refresh()  # another process of this node may have rotated
            await self.ring.settle()  # a promotion not yet durable (a roster reload)
            return await self._reconcile(self.clock.now())

    async def _reconcile(self, now: int) -> dict[str, int]:
        removed = await self._withdraw_stale_keys(now)
        result = {"added": 0, "removed": removed, "decoys": 0}
        due = await self._due_classes(self.ring.keys.voprf_key_id, now)
        for key in self.ring.publishing():  # the current key first, then a successor
            done = await self._publish_batch(
                key, now, due if key is self.ring.current else frozenset()
            )
            result = {k: result[k] + done.get(k, 0) for k in result}
        if result["decoys"]:
            self.metrics.inc("index_decoys_published_total", result["decoys"])
        result.pop("decoys")
        if result["added"] or result["removed"]:
            self.metrics.inc("index_items_published_total", result["added"])
            self.metrics.inc("index_items_removed_total", result["removed"])
            log.info("index reconciled: %d items added, %d removed", *result.values())
        return result

    async def _withdraw_stale_keys(self, now: int) -> int:
        """Withdraw the entries published under a key no longer answered (a retired key whose
        overlap ended, or one erased early by a second rotation), then erase its secret."""
        expired = self.ring.expired_retired(now)
        live = {k for k in self.ring.keys.voprf_keys() if k != expired}
        removed = 0
        for key_id in await self.store.key_ids():
            if key_id in live:
                continue
            published = await self.store.published(key_id)
            removed += await self._remove(list(published), published, key_id, now)
        if expired is not None:
            self.ring.erase_retired()
        return removed

    async def _remove(
        self, to_remove: list[bytes], published: dict[bytes, bytes], key_id: bytes, now: int
    ) -> int:
        """One removal: all its entries sorted together and cut into deltas of at most
        MAX_ENTRIES_PER_DELTA, in one transaction. A delta holding whole items would isolate
        them (a joinable set, spec 8.6); cut from the sorted whole it holds pseudorandom tags."""
        if not to_remove:
            return 0
        packed = b"".join(published[r] for r in to_remove)
        async with self.db.transaction():
            for chunk in index.batch_chunks_packed(packed):
                await self._append_delta("index.remove", [_chunk_id(chunk)], [chunk], key_id, now)
            await self.store.forget(to_remove, key_id)
        return len(to_remove)

    # --- batched, padded publication (spec 8.6) ----------------------------------------------

    def _interval(self, batch_class: str) -> int:
        return self.tile_batch_s if batch_class == TILE_CLASS else self.batch_s

    async def _due_classes(self, current_id: bytes, now: int) -> frozenset[str]:
        """The batch classes (8.7: the index's own, and tiles on a longer interval) whose batch
        is due under the current key: all of them without batching (each addition at once) or
        when nothing is published under it yet (a first publication: the bulk); else those
        whose last batch under it is their interval old. Cheap reads: this runs every round."""
        classes = {a.batch_class for a in self.publishing_adapters()}
        if not self.batch_s or not await self.store.any_published(current_id):
            return frozenset(classes)
        due = set()
        for c in classes:
            last = await self._last_batch(c)
            if last is None or now - last >= self._interval(c):
                due.add(c)
        return frozenset(due)

    async def _last_batch(self, batch_class: str) -> int | None:
        marked = await NodeState(self.db).get(_batch_marker(batch_class))
        if marked is not None:
            return int(marked)
        if batch_class == INDEX_CLASS:  # a node whose batches predate the marker
            return await self.feeds.last_created(INDEX_FEED, "index.add")
        return None

    async def _publish_batch(
        self, key: oprf.ServerKey, now: int, fresh: frozenset[str]
    ) -> dict[str, int]:
        """One round under ``key``.

        ``fresh`` (the current key): the batch classes due (8.7; all of them, every round,
        without batching). Every live item of those classes not yet published goes out, padded
        in every table of every key prefix and policy with ``padding`` new decoys.
        Under a successor (``fresh`` empty) only what the current key already shows and this
        key does not yet goes out: its items and its decoys, the very same buckets, so two
        keys' indexes never differ by anything but what is already public (their intersection
        would otherwise show which entries of a batch are real). Nothing is removed, in any
        mode: a withdrawn or expired item stops being answered at once, and its entries stay in
        the index as decoys (removing them would hand out its 24 buckets: its hash), until the
        key is retired.
        """
        key_id = voprf_key_id(key.pk)
        current_id = self.ring.keys.voprf_key_id
        if not fresh and key_id == current_id:
            return {"added": 0, "decoys": 0}  # between batches: additions wait
        active: dict[bytes, list[bytes]] = {}
        # each published reference's row label: its scheme and policy (an item's bank
        # threshold, 8.7), or a decoy's label
        labels: dict[bytes, str] = {}
        found: list[Publishable] = []
        classes: set[str] = set()  # the classes this batch publishes
        for adapter in self.publishing_adapters():
            if fresh and adapter.batch_class not in fresh:
                continue  # its batch is not due yet
            more = await adapter.unpublished(self.db, now, key_id)
            if more:
                classes.add(adapter.batch_class)
            found += more
        decoys: dict[bytes, tuple[str, list[bytes]]] = {}
        if fresh:
            for p in found:
                active[p.item_ref] = p.keys
                labels[p.item_ref] = item_label(self.scheme.name, p.threshold)
            decoys = self._new_decoys(found)
        else:
            # a successor: what the current key shows and this one does not yet
            missing = await self.store.missing(current_id, key_id)
            labels = dict(missing)
            active = {p.item_ref: p.keys for p in found if p.item_ref in missing}
            for ref, label in missing.items():
                if label.startswith(DECOY_LABEL):
                    decoys[ref] = (label, _decoy_keys_of(ref, label))
            # items it shows that are no longer live (withdrawn, expired) go out too, as
            # decoys, or the difference between the two epochs would be their buckets (8.7)
            gone = [r for r in missing if r not in active and r not in decoys]
            for adapter in self.publishing_adapters():
                for p in await adapter.ballast(self.db, gone):
                    active.setdefault(p.item_ref, p.keys)
        if not active and not decoys:
            return {"added": 0, "decoys": 0}
        for ref, (label, _) in decoys.items():
            labels[ref] = label
        items = [(r, active[r]) for r in active] + [(r, k) for r, (_, k) in decoys.items()]
        packed = await index_build.build_entries(key, items)
        per_item = dict(zip([r for r, _ in items], packed, strict=True))
        chunks = index.batch_chunks_packed(b"".join(packed))
        async with self.db.transaction():
            for chunk in chunks:
                # one id per chunk, from its content: the same batch republished is idempotent
                await self._append_delta("index.add", [_chunk_id(chunk)], [chunk], key_id, now)
            by_label: dict[str, dict[bytes, bytes]] = {}
            for r in [*active, *decoys]:
                by_label.setdefault(labels.get(r, self.scheme.name), {})[r] = per_item[r]
            for label, rows in by_label.items():
                await self.store.record(rows, label, key_id, now)
            if fresh:
                for c in classes:  # when each class's batch went out (8.7)
                    await NodeState(self.db).set(_batch_marker(c), str(now).encode(), now)
        log.info(
            "index batch under key %s: %d items, %d decoys, %d deltas",
            key_id.hex(), len(active), len(decoys), len(chunks),
        )  # fmt: skip
        if key_id == current_id and self.occupancy is not None:
            # one count of what the key now shows serves the budgets and the warning
            published = (await self.occupancy.record(key_id))[0]
            if self.declared_entries is not None:
                self._check_declared(published)
        elif key_id == current_id and self.declared_entries is not None:
            self._check_declared(await self.store.entry_count(key_id))
        return {"added": len(active), "decoys": len(decoys)}

    def _check_declared(self, published: int) -> None:
        """Decoys are never removed (8.7), so the index outgrows what the roster declares;
        queriers stop pulling it at 1.25 times that (10.4). Warn the operator before."""
        assert self.declared_entries is not None
        declared = self.declared_entries()
        if published > declared:
            self.metrics.inc("index_over_declared_total")
            log.warning(
                "the index holds %d entries, decoys included, above the %d the roster declares"
                " (index_entries): queriers stop pulling it at %d; ask governance to declare"
                " more (spec 8.7, 10.4)",
                published, declared, max(10_000, declared * 5 // 4),
            )  # fmt: skip

    def _new_decoys(self, found: list[Publishable]) -> dict[bytes, tuple[str, list[bytes]]]:
        """Decoys that pad a batch of these items with ``padding`` more entries in every table
        of every key prefix and every policy (bank threshold) the batch publishes (8.7): ``r +
        padding`` entries per table, ``r`` the batch's real ones, so a batch's first hash costs
        more, not less, as ``r`` grows.

        Counted in entries per table, not items: a tiled source is many items under 41
        prefixes (one per cell), a video many frames under one, and the frames of one video
        often share a bucket. What an enumerator joins is each table's set of buckets, so a
        table counts its distinct buckets (an entry sharing a bucket with another of the batch
        adds none), and a prefix gets ``padding`` decoys whatever its sparsest table's count
        (:func:`index.decoys_needed`). A decoy is one entry in every table of its prefix,
        answered with its policy's bands."""
        if not self.padding or not found:
            return {}
        # (prefix, threshold) -> table -> the batch's distinct bucket keys in it
        groups: dict[tuple[bytes, int], dict[int, set[bytes]]] = {}
        suffixes: dict[bytes, int] = {}
        for p in found:
            for k in p.keys:
                prefix = index.key_prefix(k)
                table = int.from_bytes(k[len(prefix) : len(prefix) + 2], "big")
                groups.setdefault((prefix, p.threshold), {}).setdefault(table, set()).add(k)
                suffixes[prefix] = len(k) - len(prefix) - 2
        out: dict[bytes, tuple[str, list[bytes]]] = {}
        k_bits = self.scheme.bits_per_table
        for (prefix, threshold), tables in groups.items():
            suffix = suffixes[prefix]
            bits = k_bits if suffix == (k_bits + 7) // 8 else 8 * suffix
            label = _decoy_label(prefix, sorted(tables), bits, threshold)
            sparsest = min(len(keys) for keys in tables.values())
            for _ in range(index.decoys_needed(sparsest, self.padding)):
                ref = os.urandom(index.ITEM_REF_BYTES)
                out[ref] = (label, _decoy_keys_of(ref, label))
        return out

    async def _append_delta(
        self, kind: str, refs: list[bytes], entries: Iterable[bytes], key_id: bytes, now: int
    ) -> None:
        """One delta's feed entry and its log record (in the caller's transaction)."""
        payload = canonical.encode(
            {"scheme": self.scheme.name, "key_id": key_id, "entries": index.pack_entries(entries)}
        )
        entry_id = _entry_id(kind, refs, key_id)
        entry = await self.feeds.append(INDEX_FEED, entry_id, kind, payload, now)
        await translog_hooks.log_index_publication(self.translog, entry)
