"""The LSH bucket scheme: key layout, table derivation, probing, and the spec's vectors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.protocol import lsh_ops  # noqa: F401  (registers the conformance ops)
from blindmatch.protocol.conformance_ops import OpError, run
from blindmatch.protocol.lsh import PDQ_LSH_1, SCHEMES, bit_costs, perturbation_costs
from blindmatch.protocol.signal_types import VPDQ
from blindmatch.protocol.signals import (
    SignalType,
    pdq_bits_from_float,
    pdq_from_bits,
    pdq_to_bits,
)

VECTORS = Path(__file__).resolve().parent.parent / "specs" / "vectors"
S = PDQ_LSH_1


def random_query(seed: int) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    floats = rng.standard_normal(256) * np.repeat(np.linspace(80, 8, 16), 16)
    return pdq_from_bits(pdq_bits_from_float(floats)), floats


def flip(hash32: bytes, positions: list[int]) -> bytes:
    bits = pdq_to_bits(hash32).copy()
    bits[positions] ^= 1
    return pdq_from_bits(bits)


def test_table_positions_follow_the_published_derivation() -> None:
    tag = b"blindmatch/lsh/" + S.name.encode()
    k = S.bits_per_table
    per_group = 256 // k
    for t, positions in enumerate(S.table_positions):
        group, member = divmod(t, per_group)
        order = sorted(
            range(256),
            key=lambda p, g=group: hashlib.sha256(
                tag + b"perm" + g.to_bytes(2, "big") + bytes([p])
            ).digest(),
        )
        assert positions == tuple(sorted(order[member * k : (member + 1) * k]))
    assert len(S.table_positions) == S.tables
    # Within a group the tables are disjoint.
    for g in range(0, S.tables, per_group):
        group = [set(p) for p in S.table_positions[g : g + per_group]]
        assert sum(len(x) for x in group) == len(set().union(*group))


def test_index_key_layout() -> None:
    h, _ = random_query(1)
    keys = S.index_keys(h)
    assert len(keys) == S.tables == len(set(keys))
    bits = pdq_to_bits(h)
    prefix = bytes([len(S.tag)]) + S.tag + bytes([3]) + b"pdq"
    for t, key in enumerate(keys):
        assert len(key) == S.key_length
        sampled = bits[list(S.table_positions[t])]
        assert key == prefix + t.to_bytes(2, "big") + np.packbits(sampled).tobytes()


def test_a_key_changes_only_when_one_of_its_sampled_bits_does() -> None:
    h, _ = random_query(2)
    keys = S.index_keys(h)
    p = S.table_positions[0][0]
    changed = S.index_keys(flip(h, [p]))
    for t in range(S.tables):
        assert (changed[t] != keys[t]) == (p in S.table_positions[t])


def test_probes_are_bucket_keys_within_the_budget() -> None:
    h, floats = random_query(3)
    probes = S.probes(h, floats)
    assert len(probes) == S.probe_budget
    base = S.index_keys(h)
    for p in probes:
        assert p.key == base[p.table] if not p.flipped else p.key != base[p.table]
        assert (
            p.key[: -(S.bits_per_table + 7) // 8 - 2] == base[0][: -(S.bits_per_table + 7) // 8 - 2]
        )
    assert sum(not p.flipped for p in probes) >= S.tables // 2
    assert len({p.key for p in probes}) == len(probes)
    costs = [p.cost for p in probes]
    assert costs == sorted(costs)
    assert all(len(p.flipped) <= S.max_flips for p in probes)
    assert S.probe_keys(h, None) == S.index_keys(h)
    assert len(S.probe_keys(h, floats, S.tables + 3)) == S.tables + 3
    assert S.probe_keys(h, floats, 0) == []
    assert len(S.probe_keys(h, floats, 1)) == 1
    with pytest.raises(ValueError):
        S.probes(h, floats, S.probe_budget + 1)


def test_flipping_the_least_certain_bit_is_probed() -> None:
    """A copy that differs from the query in its least-certain bit, plus a bit in every other
    table, misses every base key but is found by the first multi-probe of that bit's table."""
    h, floats = random_query(4)
    covered = sorted({p for pos in S.table_positions for p in pos})
    least_certain = min(covered, key=lambda p: perturbation_costs(floats)[p])
    _flip, keep = bit_costs(floats, S.cost_model)
    home = min(
        (t for t, pos in enumerate(S.table_positions) if least_certain in pos),
        key=lambda t: sum(keep[p] for p in S.table_positions[t]),
    )
    flipped = [least_certain]
    for t, pos in enumerate(S.table_positions):
        if t != home and least_certain not in pos:
            flipped.append(next(p for p in pos if p not in S.table_positions[home]))
    target = flip(h, sorted(set(flipped)))
    target_keys = set(S.index_keys(target))
    assert not target_keys & set(S.probe_keys(h, None))
    probes = S.probes(h, floats)
    assert target_keys & {p.key for p in probes}
    home_probe = next(p for p in probes if p.table == home and p.flipped == (least_certain,))
    assert home_probe.key in target_keys


def test_probe_ranking_prefers_uncertain_bits() -> None:
    h, floats = random_query(5)
    costs = perturbation_costs(floats)
    flip_cost, keep_cost = bit_costs(floats, S.cost_model)
    assert np.array_equal(costs, flip_cost)
    singles = [p for p in S.probes(h, floats) if len(p.flipped) == 1]
    assert singles
    for p in singles:
        base = sum(keep_cost[q] for q in S.table_positions[p.table])
        assert p.cost == pytest.approx(base + flip_cost[p.flipped[0]])
    # Less certain bits (nearer the median) cost less to flip.
    distance = np.abs(floats - np.median(floats))
    order = np.argsort(distance)
    assert np.all(np.diff(flip_cost[order]) >= -1e-12)
    # Every flipped bit is among its table's candidate (least-certain) bits.
    for p in S.probes(h, floats):
        ranked = sorted(S.table_positions[p.table], key=lambda q: (costs[q], q))
        assert set(p.flipped) <= set(ranked[: S.candidate_bits])


def test_bad_float_vectors_are_refused() -> None:
    h, floats = random_query(6)
    with pytest.raises(ValueError):
        S.probes(h, floats[:255])
    bad = floats.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError):
        S.probes(h, bad)


def test_spec_vectors_are_reproduced() -> None:
    doc = json.loads((VECTORS / "lsh.json").read_text())
    ops = {c["op"] for c in doc["cases"]}
    assert {"lsh.index_keys", "lsh.probe_keys", "lsh.table_positions", "pdq.bits"} <= ops
    assert {c["id"].split("/")[0] for c in doc["cases"] if "/" in c["id"]} == set(SCHEMES)
    for case in doc["cases"]:
        try:
            got = {"output": run(case["op"], case["input"])}
        except OpError as exc:
            got = {"error": exc.code}
        assert got == case["expected"], case["id"]
    errors = {c["id"] for c in doc["cases"] if "error" in c["expected"]}
    assert any(e.endswith("unknown-scheme") for e in errors)
    assert any(e.endswith("budget-too-large") for e in errors)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=64))
def test_every_probe_is_the_bucket_of_the_hash_with_its_bits_flipped(
    seed: int, budget: int
) -> None:
    h, floats = random_query(seed)
    probes = S.probes(h, floats, budget)
    assert len(probes) == budget
    for p in probes:
        assert S.index_keys(flip(h, list(p.flipped)))[p.table] == p.key


def test_video_frames_have_their_own_buckets() -> None:
    h, floats = random_query(7)
    frame_keys = S.index_keys(h, signal=VPDQ.bucket_signal)
    assert not set(frame_keys) & set(S.index_keys(h))
    assert frame_keys[0].startswith(bytes([len(S.tag)]) + S.tag + bytes([4]) + b"vpdq")
    probes = S.probe_keys(h, floats, 10, signal=VPDQ.bucket_signal)
    assert set(frame_keys) & set(probes)
    with pytest.raises(ValueError):
        S.index_keys(h, signal=SignalType.SHA256)
