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
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.publisher import _decoy_keys_of
from blindmatch.protocol import canonical, index
from blindmatch.protocol import roster as roster_mod
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.matching import DecoyItem, HolderItem, QueryHash
from blindmatch.protocol.roster import voprf_key_id

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
        # the delta carries the padding in every table: 3 items and 37 decoys, 24 entries each
        entries = [e for d in deltas for e in index.split_entries(d["entries"])]
        assert len(entries) == PADDING * tables and len(set(entries)) == len(entries)
        decoys = await _decoys(hub, key_id)
        assert len(decoys) == PADDING - 3
        assert hub.metrics.value("index_decoys_published_total") == PADDING - 3
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
        hub.publisher.declared_entries = lambda: PADDING * tables
        # a shared bank on another threshold answers with its own bands (8.5): its items are
        # padded apart, with decoys answered with its bands (8.7)
        await banks.create_bank("strict", provenance="moderator-confirmed", shared=True,
                                distance_threshold=20)  # fmt: skip
        strict = os.urandom(32)
        await banks.add_item("strict", "pdq", strict)
        await hub.publisher.reconcile()
        assert hub.metrics.value("index_over_declared_total") == 1
        later = await _adds(hub, seq)
        assert sum(len(d["entries"]) for d in later) == 2 * PADDING * tables * index.ENTRY_BYTES
        decoys = await _decoys(hub, key_id)
        assert len(decoys) == 3 * PADDING - 5
        by_policy = [label.rsplit("/", 1)[1] for label in decoys.values()]
        assert by_policy.count("20") == PADDING - 1
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
        assert sum(len(d["entries"]) for d in after) == 3 * PADDING * tables * index.ENTRY_BYTES
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


def test_init_makes_a_batched_padded_node_unless_told(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``blindmatch init`` writes the protected setting (7 days, 196,608); a demo opts out."""
    from blindmatch.node.cli.main import main

    assert main(["init", "--home", str(tmp_path / "a"), "--node-id", "a"]) == 0
    cfg = config_mod.load(tmp_path / "a" / "config.toml")
    assert (cfg.index_batch_s, cfg.index_batch_padding) == (7 * DAY, 196_608)
    home = str(tmp_path / "b")
    assert main(["init", "--home", home, "--node-id", "b", "--index-batch-days", "0"]) == 0
    cfg = config_mod.load(tmp_path / "b" / "config.toml")
    assert (cfg.index_batch_s, cfg.index_batch_padding) == (0, 0)
    capsys.readouterr()
    bad = ["init", "--home", str(tmp_path / "c"), "--node-id", "c", "--index-batch-days", "0.01"]
    assert main(bad) == 2 and "index_batch_days" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
