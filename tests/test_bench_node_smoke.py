"""The node benchmark's own parts: the padded replica answers lookups like the node's, the
synthetic hashes behave as described, and (opt-in, slow) one tiny end-to-end run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bench import node as bn
from blindmatch.protocol import index


def test_padded_replica_finds_real_and_synthetic_entries() -> None:
    real = index.ReplicaIndex(bn.SCHEME.name, b"k" * 8)
    out, ref = os.urandom(64), os.urandom(16)
    real.add(index.make_entry(out, ref))
    synthetic = bn.SyntheticEntries()
    synthetic.grow(np.random.default_rng(1), 5000)
    padded = bn.PaddedReplica(real, synthetic)
    assert padded.entries == 5001
    assert padded.lookup(out) == [out[:8] + ref]
    # A synthetic entry answers the output whose tag and mask it was made with.
    tag = synthetic.tags[1234].tobytes()
    mask = os.urandom(16)
    fake_out = tag + mask + os.urandom(40)
    want = tag + bytes(synthetic.masked[1234] ^ np.frombuffer(mask, dtype=np.uint8))
    assert want in padded.lookup(fake_out)
    assert padded.lookup(os.urandom(64)) == []
    queries = [out, fake_out, os.urandom(64), out]
    assert padded.lookup_many(queries) == [padded.lookup(q) for q in queries]


def test_near_copies_are_close_and_share_a_base_bucket() -> None:
    rng = np.random.default_rng(2)
    v, hashes = bn.gaussian_hashes(rng, 20)
    assert all(int.from_bytes(h, "big").bit_count() == 128 for h in hashes)
    got = [bn.near_copy(rng, v[i], hashes[i]) for i in range(20)]
    kept = [g for g in got if g is not None]
    assert kept
    held = [hashes[i] for i, g in enumerate(got) if g is not None]
    for (_, q, d), h in zip(kept, held, strict=True):
        assert 8 <= d <= 24
        assert set(bn.SCHEME.index_keys(q)) & set(bn.SCHEME.index_keys(h))


def test_pool_worker_makes_the_entries_reconcile_index_makes() -> None:
    from blindmatch.crypto import oprf
    from blindmatch.protocol.roster import voprf_key_id

    key = oprf.generate_key_pair()
    h, ref = os.urandom(32), os.urandom(16)
    [packed], _ = bn._evaluate_chunk((key.sk, key.pk, [h], [ref]))
    # the same buckets, each entry with a fresh table reference (spec 8.5)
    want = index.pack_entries(
        index.item_entries(key, voprf_key_id(key.pk), ref, bn.SCHEME.index_keys(h))
    )
    assert index.entry_tags(packed) == index.entry_tags(want)
    assert len(packed) == len(want)


@pytest.mark.slow
def test_tiny_end_to_end_run(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("about a minute; opt in with -m slow")
    argv = ["--quick", "--sizes", "100", "200", "--real", "100", "--samples", "1"]
    argv += ["--peers", "1", "2", "--feed-check-items", "2000", "--out", str(tmp_path)]
    assert bn.main(argv) == 0
    result = json.loads((tmp_path / "node.json").read_text())
    assert {c["size"] for c in result["latency"]} == {100, 200}
    assert "## Targets" in (tmp_path / "node.md").read_text()
