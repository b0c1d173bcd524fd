"""Batched, padded publication of the index (spec 8.6), over real nodes on loopback: additions
wait for their batch; a batch is padded per table with decoys that look like entries and resolve
to no item; a held item matches once its batch is out; a withdrawal publishes nothing (its
entries stay, answered as decoys); a rotation carries the decoys (dropping them would show which
entries of every past batch were real); bad settings are refused."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from blindmatch.crypto import oprf
from blindmatch.node import config as config_mod
from blindmatch.node import signals
from blindmatch.node.banks.validation import SourceTile
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.publisher import _decoy_keys_of, label_threshold
from blindmatch.node.signals.vpdq.items import VideoItems
from blindmatch.protocol import canonical, index
from blindmatch.protocol import roster as roster_mod
from blindmatch.protocol.derivative import PDQ_TILES_1
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.matching import DecoyItem, HolderItem, QueryHash
from blindmatch.protocol.roster import voprf_key_id
from blindmatch.protocol.signal_types.vpdq import video
from blindmatch.protocol.signal_types.vpdq.frames import VpdqFrame

RNG = random.Random(29)
PADDING = 40
DAY = 86_400


def flip(h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in RNG.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


async def _matches(node, h: bytes) -> bool:  # type: ignore[no-untyped-def]
    job = await node.querier.submit([QueryHash(flip(h, 6))])
    while await node.delivery.process_due():
        pass
    status = await node.querier.job_status(job)
    return [r.band for r in status.results] == [8]


async def _adds(hub, since: int = 0) -> list[dict]:  # type: ignore[no-untyped-def]
    feed = await hub.feeds.read("index", since, 1000)
    return [canonical.decode(e.payload) | {"kind": e.kind, "seq": e.seq} for e in feed]


async def _decoys(hub, key_id: bytes) -> dict[bytes, str]:  # type: ignore[no-untyped-def]
    rows = await hub.db.fetch_all(
        "SELECT item_ref, scheme FROM index_publications WHERE key_id = ?"
        " AND scheme LIKE 'decoy/%'",
        key_id,
    )
    return {bytes(r["item_ref"]): str(r["scheme"]) for r in rows}


async def test_batches_are_padded_held_and_match(tmp_path: Path) -> None:
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [
            NodeSpec("hub", ("hub",), index_batch_s=DAY, index_batch_padding=PADDING),
            NodeSpec("platform", holds_index=False),
        ]
    )
    try:
        hub = fed["hub"].node
        platform = fed["platform"].node
        banks = fed["hub"].banks
        await banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        first = [os.urandom(32) for _ in range(3)]
        items = [(await banks.add_item("ncii", "pdq", h)).item for h in first]
        await hub.publisher.reconcile()  # nothing published yet: the first batch goes at once
        key_id = hub.keys.voprf_key_id
        tables = SCHEMES["pdq-lsh-1"].tables
        deltas = await _adds(hub)
        # the delta carries the padding in every table on top of the items: 3 items and 40
        # decoys, 24 entries each (r + padding, not max(r, padding): 8.7)
        entries = [e for d in deltas for e in index.split_entries(d["entries"])]
        assert len(entries) == (3 + PADDING) * tables and len(set(entries)) == len(entries)
        decoys = await _decoys(hub, key_id)
        assert len(decoys) == PADDING
        assert hub.metrics.value("index_decoys_published_total") == PADDING
        assert hub.metrics.value("index_over_declared_total") == 0
        # decoys look like items: same key layout as a real item's keys, one per table, and
        # their entries are 24-byte entries like any other
        real_keys = SCHEMES["pdq-lsh-1"].index_keys(first[0])
        for ref, label in decoys.items():
            keys = _decoy_keys_of(ref, label)
            assert [len(k) for k in keys] == [len(k) for k in real_keys]
            assert [k[:-4] for k in keys] == [k[:-4] for k in real_keys]  # prefix and table
            assert all(k[-1] & 0x1F == 0 for k in keys)  # 27 bits, as a real bucket's
        # a candidate on a decoy resolves to no item (answered as an unknown one, 8.5); one on
        # a real item resolves to it
        ref, label = next(iter(decoys.items()))
        f = oprf.evaluate(hub.keys.voprf, _decoy_keys_of(ref, label)[5], oprf.Mode.VOPRF)
        entry = next(e for e in entries if e[:8] == f[:8])
        decoy_candidate = f[:8] + bytes(a ^ b for a, b in zip(entry[8:], f[8:24], strict=True))
        f = oprf.evaluate(hub.keys.voprf, real_keys[5], oprf.Mode.VOPRF)
        entry = next(e for e in entries if e[:8] == f[:8])
        real_candidate = f[:8] + bytes(a ^ b for a, b in zip(entry[8:], f[8:24], strict=True))
        resolved = await hub.responder.resolve_candidates([decoy_candidate, real_candidate])
        assert resolved[decoy_candidate] == DecoyItem((8, 16, 31))  # the default policy's bands
        assert isinstance(resolved[real_candidate], HolderItem)

        await platform.sync.sync_all()
        assert await _matches(platform, first[0])

        # an addition an hour later waits for the batch a day after the first
        held = os.urandom(32)
        await banks.add_item("ncii", "pdq", held)
        fed.clock.advance(3600)
        seq = deltas[-1]["seq"]
        await hub.publisher.reconcile()
        assert await _adds(hub, seq) == []
        await platform.sync.sync_all()
        assert not await _matches(platform, held)
        fed.clock.advance(DAY)
        # decoys are never removed: the operator is warned once the index passes what the
        # roster declares (queriers stop pulling at 1.25 times that, 10.4)
        hub.publisher.declared_entries = lambda: (3 + PADDING) * tables
        # a shared bank on another threshold answers with its own bands (8.5): its items are
        # padded apart, with decoys answered with its bands (8.7)
        await banks.create_bank("strict", provenance="moderator-confirmed", shared=True,
                                distance_threshold=20)  # fmt: skip
        strict = os.urandom(32)
        await banks.add_item("strict", "pdq", strict)
        await hub.publisher.reconcile()
        assert hub.metrics.value("index_over_declared_total") == 1
        later = await _adds(hub, seq)
        # one item under each threshold, each with its own padding
        assert sum(len(d["entries"]) for d in later) == (
            2 * (1 + PADDING) * tables * index.ENTRY_BYTES
        )
        decoys = await _decoys(hub, key_id)
        assert len(decoys) == 3 * PADDING
        by_policy = [label.rsplit("/", 1)[1] for label in decoys.values()]
        assert by_policy.count("20") == PADDING
        ref = next(r for r, label in decoys.items() if label.endswith("/20"))
        f = oprf.evaluate(hub.keys.voprf, _decoy_keys_of(ref, decoys[ref])[3], oprf.Mode.VOPRF)
        entry = next(e for d in later for e in index.split_entries(d["entries"]) if e[:8] == f[:8])
        candidate = f[:8] + bytes(a ^ b for a, b in zip(entry[8:], f[8:24], strict=True))
        resolved = await hub.responder.resolve_candidates([candidate])
        assert resolved[candidate] == DecoyItem((8, 16, 20))
        await platform.sync.sync_all()
        assert await _matches(platform, held)

        # a withdrawal stops the match at once and publishes nothing: the item's entries stay,
        # answered as decoys (a removal would hand out its 24 buckets, i.e. its hash)
        seq = later[-1]["seq"]
        await banks.withdraw(items[1].item_ref, reason="survivor asked")
        fed.clock.advance(2 * DAY)
        await hub.publisher.reconcile()
        assert await _adds(hub, seq) == []
        await platform.sync.sync_all()
        assert not await _matches(platform, first[1])
        assert await _matches(platform, first[2])

        # a rotation carries every decoy, the same buckets, under the successor, and the
        # withdrawn item too (as a decoy): the successor's index shows exactly the buckets the
        # current one does, or the difference would strip the decoys or show the withdrawn hash
        assert await hub.key_ring.start_rotation()
        successor = hub.keys.successor
        assert successor is not None
        new_id = voprf_key_id(successor.pk)
        await hub.publisher.reconcile()
        assert await _decoys(hub, new_id) == await _decoys(hub, key_id)

        async def buckets(key) -> list[bytes]:  # type: ignore[no-untyped-def]
            refs = await hub.publisher.store.refs(voprf_key_id(key.pk))
            keys = [SCHEMES["pdq-lsh-1"].index_keys(h) for h in [*first, held, strict]]
            decoy_keys = [_decoy_keys_of(r, lab) for r, lab in (await _decoys(
                hub, voprf_key_id(key.pk))).items()]  # fmt: skip
            assert len(refs) == len(keys) + len(decoy_keys)
            return sorted(k for ks in keys + decoy_keys for k in ks)

        assert await buckets(hub.keys.voprf) == await buckets(successor)
        after = [d for d in await _adds(hub) if d["key_id"] == new_id]
        assert all(d["kind"] == "index.add" for d in after)
        assert sum(len(d["entries"]) for d in after) == (
            (5 + 3 * PADDING) * tables * index.ENTRY_BYTES
        )
        # it stays resolvable to nothing: the withdrawn item does not match under either key
        await platform.adopt_roster(_roster_naming(fed, successor.pk))
        await platform.sync.sync_all()
        assert not await _matches(platform, first[1])
        assert await _matches(platform, held)
    finally:
        await fed.stop()


def _roster_naming(fed: LocalFederation, hub_pk: bytes):  # type: ignore[no-untyped-def]
    assert fed.roster is not None
    body = dict(fed.roster.document["roster"])
    body["serial"] += 1
    body["members"] = [
        {**m, "voprf_key": hub_pk.hex()} if m["id"] == "hub" else m for m in body["members"]
    ]
    doc = roster_mod.sign_roster(body, fed.governance[:2])
    now_ms = fed.clock.now() * 1000
    return roster_mod.verify_roster(doc, [k.public_key for k in fed.governance], 2, now_ms)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("index_batch_padding = 65536\n", "needs index_batch_days"),
        ("index_batch_days = -1\n", "index_batch_days"),
        ("index_batch_days = 91\n", "index_batch_days"),
        ("index_batch_days = nan\n", "index_batch_days"),
        ("index_batch_days = 7\nindex_batch_padding = -5\n", "index_batch_padding"),
        ("index_batch_days = 7\nindex_batch_padding = 2000000\n", "index_batch_padding"),
        ("index_batch_days = 0.01\nindex_batch_padding = 10\n", "needs index_batch_days"),
        ("index_tile_batch_days = 90\n", "index_tile_batch_days needs index_batch_days"),
        ("index_batch_days = 7\nindex_tile_batch_days = 3\n", "index_tile_batch_days"),
        ("index_batch_days = 7\nindex_tile_batch_days = 367\n", "index_tile_batch_days"),
        ("index_batch_days = 7\nindex_tile_batch_days = nan\n", "index_tile_batch_days"),
    ],
)
def test_bad_batch_settings_are_refused(tmp_path: Path, settings: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text('node_id = "hub"\n' + settings)
    with pytest.raises(config_mod.ConfigError, match=message):
        config_mod.load(path)


def test_good_batch_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('node_id = "hub"\nindex_batch_days = 7\nindex_batch_padding = 65536\n')
    cfg = config_mod.load(path)
    assert (cfg.index_batch_s, cfg.index_batch_padding) == (7 * DAY, 65_536)
    assert cfg.index_tile_batch_s == 90 * DAY  # a file from before the setting: 90 days
    path.write_text(path.read_text() + "index_tile_batch_days = 365\n")
    assert config_mod.load(path).index_tile_batch_s == 365 * DAY
    path.write_text('node_id = "hub"\n')
    assert config_mod.load(path).index_tile_batch_s == 0  # unbatched: tiles at once too


def test_init_makes_a_batched_padded_node_unless_told(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``blindmatch init`` writes the protected setting (7 days, 163,840); a demo opts out."""
    from blindmatch.node.cli.main import main

    assert main(["init", "--home", str(tmp_path / "a"), "--node-id", "a"]) == 0
    cfg = config_mod.load(tmp_path / "a" / "config.toml")
    assert (cfg.index_batch_s, cfg.index_batch_padding) == (7 * DAY, 163_840)
    assert cfg.index_tile_batch_s == 90 * DAY
    assert "index_tile_batch_days = 90" in (tmp_path / "a" / "config.toml").read_text()
    home = str(tmp_path / "b")
    assert main(["init", "--home", home, "--node-id", "b", "--index-batch-days", "0"]) == 0
    cfg = config_mod.load(tmp_path / "b" / "config.toml")
    assert (cfg.index_batch_s, cfg.index_batch_padding, cfg.index_tile_batch_s) == (0, 0, 0)
    capsys.readouterr()
    bad = ["init", "--home", str(tmp_path / "c"), "--node-id", "c", "--index-batch-days", "0.01"]
    assert main(bad) == 2 and "index_batch_days" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


# --- every table of every key prefix a batch touches, counted in distinct buckets (8.7) -------


async def _batch_buckets(hub, key_id: bytes, at: int) -> dict[tuple[bytes, int, str], set[bytes]]:  # type: ignore[no-untyped-def]
    """The bucket keys of what went out under ``key_id`` at ``at``, by (key prefix, table,
    threshold): real items re-derived from the holder's rows (``ballast``: any state), decoys
    from their labels."""
    rows = await hub.db.fetch_all(
        "SELECT item_ref, scheme FROM index_publications WHERE key_id = ? AND published_at = ?",
        key_id, at,
    )  # fmt: skip
    real = [bytes(r["item_ref"]) for r in rows if not str(r["scheme"]).startswith("decoy/")]
    keyed: list[tuple[list[bytes], str]] = []
    for adapter in signals.ADAPTERS:
        for p in await adapter.ballast(hub.db, real):
            keyed.append((p.keys, str(label_threshold(await _label(hub, p.item_ref, key_id)))))
    for r in rows:
        if str(r["scheme"]).startswith("decoy/"):
            label = str(r["scheme"])
            keyed.append((_decoy_keys_of(bytes(r["item_ref"]), label), label.rsplit("/", 1)[1]))
    assert len(keyed) == len(rows)  # every published reference accounted for
    out: dict[tuple[bytes, int, str], set[bytes]] = {}
    for keys, threshold in keyed:
        for k in keys:
            prefix = index.key_prefix(k)
            table = int.from_bytes(k[len(prefix) : len(prefix) + 2], "big")
            out.setdefault((prefix, table, threshold), set()).add(k)
    return out


async def _label(hub, ref: bytes, key_id: bytes) -> str:  # type: ignore[no-untyped-def]
    return str(await hub.db.fetch_value(
        "SELECT scheme FROM index_publications WHERE item_ref = ? AND key_id = ?", ref, key_id
    ))  # fmt: skip


def _synthetic_tiles() -> list[SourceTile]:
    """Every index tile of a source (41 cells x 3 frames), random hashes: the most prefixes
    one source can touch."""
    return [
        SourceTile(cell.label, frame, os.urandom(32), 100)
        for cell in PDQ_TILES_1.cells
        for frame in range(len(PDQ_TILES_1.index_frames))
    ]


async def test_tiles_are_padded_per_cell_and_batched_apart(tmp_path: Path) -> None:
    """A tiled source touches 41 key prefixes (3 entries per table each): every one is padded
    to the padding, with decoys answered with the tile threshold (39, not the bank's 31), and
    tiles wait for their own, longer interval while the index's batches go on."""
    padding = 8
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [NodeSpec("hub", ("hub",), index_batch_s=DAY, index_batch_padding=padding,
                  index_tile_batch_s=3 * DAY)]
    )  # fmt: skip
    try:
        hub, banks = fed["hub"].node, fed["hub"].banks
        await banks.create_bank("sources", provenance="protected-source", shared=True)
        await banks.add_protected_source("sources", os.urandom(32), quality=100,
                                         tiles=_synthetic_tiles())  # fmt: skip
        await hub.publisher.reconcile()  # the first publication: everything, at once
        key_id = hub.keys.voprf_key_id
        tables = SCHEMES["pdq-lsh-1"].tables
        got = await _batch_buckets(hub, key_id, fed.clock.now())
        prefixes = {(p, t) for p, _, t in got}
        assert len(prefixes) == 1 + len(PDQ_TILES_1.cells)  # the picture's, and one per cell
        assert {t for p, t in prefixes if b"pdq-tile/" in p} == {"39"}  # the tiles' threshold
        # every table of every prefix holds its real buckets plus the padding: the picture's
        # 1, each cell's 3 (random tile hashes: distinct buckets)
        picture = index.key_prefix(SCHEMES["pdq-lsh-1"].index_keys(bytes(32))[0])
        assert all(len(keys) == (1 if p == picture else 3) + padding
                   for (p, _, _), keys in got.items())  # fmt: skip
        assert len(got) == (1 + len(PDQ_TILES_1.cells)) * tables  # every table of every prefix
        # the padding is per cell: 3 real tiles and 8 decoys in each of the 41, for 1 source
        entries = sum(len(d["entries"]) for d in await _adds(hub)) // index.ENTRY_BYTES
        assert entries == ((1 + padding) + len(PDQ_TILES_1.cells) * (3 + padding)) * tables

        # a day later a new source's picture hash goes out with the index's batch; its tiles
        # wait for the tiles' own interval (3 days here; 90 in every node init makes)
        fed.clock.advance(DAY)
        await banks.add_protected_source("sources", os.urandom(32), quality=100,
                                         tiles=_synthetic_tiles())  # fmt: skip
        await hub.publisher.reconcile()
        got = await _batch_buckets(hub, key_id, fed.clock.now())
        assert {p for p, _, _ in got} == {index.key_prefix(SCHEMES["pdq-lsh-1"].index_keys(
            bytes(32))[0])}  # fmt: skip
        fed.clock.advance(DAY)
        await hub.publisher.reconcile()
        assert await _batch_buckets(hub, key_id, fed.clock.now()) == {}
        fed.clock.advance(DAY)
        await hub.publisher.reconcile()
        got = await _batch_buckets(hub, key_id, fed.clock.now())
        assert len(got) == len(PDQ_TILES_1.cells) * tables
        assert all(len(keys) == 3 + padding for keys in got.values())
    finally:
        await fed.stop()


async def test_a_video_is_padded_by_its_distinct_buckets(tmp_path: Path) -> None:
    """A video's frames are many entries under one prefix, and near-identical frames share
    buckets: padding counted in frames (20 >= 8) would add no decoy and leave tables with a
    handful of buckets, several new entries each, i.e. the video's hash for anyone who joins
    them. A video publishes one entry per bucket, and the padding counts distinct buckets per
    table: every table holds at least the padding, no bucket two entries of the batch."""
    padding = 8
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [NodeSpec("hub", ("hub",), index_batch_s=DAY, index_batch_padding=padding)]
    )
    try:
        hub, banks = fed["hub"].node, fed["hub"].banks
        await banks.create_bank("clips", provenance="survivor-submitted", shared=True)
        base = os.urandom(32)
        frames = [VpdqFrame(i, flip(base, 1 + i % 3), 90, float(i)) for i in range(20)]
        added = await VideoItems(banks).add_video("clips", frames)
        assert added.created
        await hub.publisher.reconcile()
        got = await _batch_buckets(hub, hub.keys.voprf_key_id, fed.clock.now())
        tables = SCHEMES["pdq-lsh-1"].tables
        assert len(got) == tables  # one prefix, vpdq's
        hashes = [f.pdq for f in video.indexed_frames(frames)]
        full = [video.index_keys(h) for h in hashes]
        sparsest = min(len({ks[t] for ks in full}) for t in range(tables))
        assert sparsest < padding  # the frames share buckets: fewer than 20 in some table
        # each table: the video's distinct buckets in it, plus the padding
        assert sorted(len(keys) for keys in got.values()) == sorted(
            len({ks[t] for ks in full}) + padding for t in range(tables)
        )
        decoys = await _decoys(hub, hub.keys.voprf_key_id)
        assert len(decoys) == padding
        # one entry per bucket: the batch's entries are exactly its distinct buckets
        entries = sum(len(d["entries"]) for d in await _adds(hub)) // index.ENTRY_BYTES
        assert entries == sum(len(keys) for keys in got.values())
        published = video.video_index_keys(hashes)
        assert sum(map(len, published)) == len({k for ks in full for k in ks}) < 20 * tables
    finally:
        await fed.stop()


def test_decoys_needed_is_the_padding_whatever_the_batch() -> None:
    """8.7: a batch adds ``padding`` decoys per key prefix and threshold it touches, however
    many real entries it has (topping up to the padding left a batch of ``r >= padding`` real
    entries with no decoy, and its first hash cheaper as ``r`` grew); none for a prefix it does
    not touch."""
    assert [index.decoys_needed(r, 8) for r in (1, 7, 8, 9, 1_000_000)] == [8] * 5
    assert index.decoys_needed(0, 8) == 0
    assert index.decoys_needed(5, 0) == 0
    with pytest.raises(ValueError):
        index.decoys_needed(-1, 8)


async def test_a_batch_above_the_padding_still_gets_the_padding(tmp_path: Path) -> None:
    """Real entries beyond the padding: every prefix and threshold still gets exactly
    ``padding`` decoys, so each table holds ``r + padding`` entries."""
    padding = 2
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [NodeSpec("hub", ("hub",), index_batch_s=DAY, index_batch_padding=padding)]
    )
    try:
        hub, banks = fed["hub"].node, fed["hub"].banks
        await banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        await banks.create_bank("strict", provenance="moderator-confirmed", shared=True,
                                distance_threshold=20)  # fmt: skip
        for _ in range(5):
            await banks.add_item("ncii", "pdq", os.urandom(32))
        for _ in range(3):
            await banks.add_item("strict", "pdq", os.urandom(32))
        await hub.publisher.reconcile()
        key_id = hub.keys.voprf_key_id
        tables = SCHEMES["pdq-lsh-1"].tables
        decoys = await _decoys(hub, key_id)
        by_policy = [label.rsplit("/", 1)[1] for label in decoys.values()]
        assert sorted(by_policy) == ["20"] * padding + ["31"] * padding
        got = await _batch_buckets(hub, key_id, fed.clock.now())
        assert len(got) == 2 * tables  # one prefix, two thresholds
        assert {t: {len(k) for (_, _, th), k in got.items() if th == t} for t in ("31", "20")} == {
            "31": {5 + padding},
            "20": {3 + padding},
        }
        entries = sum(len(d["entries"]) for d in await _adds(hub)) // index.ENTRY_BYTES
        assert entries == (5 + 3 + 2 * padding) * tables
    finally:
        await fed.stop()


async def test_unbatched_withdrawal_publishes_nothing_and_rotation_carries_it(
    tmp_path: Path,
) -> None:
    """Without batching (a demo's setting) a withdrawal still publishes no index.remove (its
    entries alone in a delta would be its 24 buckets); the item stops matching; a rotation
    re-publishes it from its tombstone, so the two epochs show the same buckets."""
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    try:
        hub, platform, banks = fed["hub"].node, fed["platform"].node, fed["hub"].banks
        await banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        hashes = [os.urandom(32) for _ in range(3)]
        items = [(await banks.add_item("ncii", "pdq", h)).item for h in hashes]
        await hub.publisher.reconcile()
        await platform.sync.sync_all()
        assert await _matches(platform, hashes[1])
        seq = (await _adds(hub))[-1]["seq"]
        await banks.withdraw(items[1].item_ref, reason="survivor asked")
        fed.clock.advance(60)
        assert await hub.publisher.reconcile() == {"added": 0, "removed": 0}
        assert await _adds(hub, seq) == []
        await platform.sync.sync_all()
        assert not await _matches(platform, hashes[1])
        assert await _matches(platform, hashes[2])

        assert await hub.key_ring.start_rotation()
        successor = hub.keys.successor
        assert successor is not None
        await hub.publisher.reconcile()
        old, new = hub.keys.voprf_key_id, voprf_key_id(successor.pk)
        assert await hub.publisher.store.refs(new) == await hub.publisher.store.refs(old)
        assert await _batch_buckets(hub, new, fed.clock.now()) == await _batch_buckets(
            hub, old, fed.clock.now() - 60
        )
        assert all(d["kind"] == "index.add" for d in await _adds(hub))
        await platform.adopt_roster(_roster_naming(fed, successor.pk))
        await platform.sync.sync_all()
        assert not await _matches(platform, hashes[1])
        assert await _matches(platform, hashes[2])
    finally:
        await fed.stop()
