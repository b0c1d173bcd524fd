"""sim/distinguisher.py: the models score what they were fitted on above uniform, the PDQ
weight constraint is exact, and the depth-first join finds every real item (and one sooner)."""

from __future__ import annotations

import math

import numpy as np

from blindmatch.protocol.lsh import SCHEMES
from blindmatch.sim import distinguisher, extraction

SCHEME = SCHEMES["pdq-lsh-1"]


def test_chow_liu_learns_a_dependency_and_uniform_scores_below_zero() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, (4000, 6), dtype=np.uint8)
    x[:, 1] = x[:, 0] ^ (rng.random(4000) < 0.05)  # bit 1 follows bit 0
    tree = distinguisher.ChowLiu(x)
    assert tree.parent[1] == 0 or tree.parent[0] == 1
    fresh = rng.integers(0, 2, (4000, 6), dtype=np.uint8)
    fresh[:, 1] = fresh[:, 0] ^ (rng.random(4000) < 0.05)
    assert tree.llr(fresh).mean() > 0.6  # about 1 - H(0.05) = 0.71 bits
    assert tree.llr(rng.integers(0, 2, (4000, 6))).mean() < 0
    assert (distinguisher.ChowLiu(x, depth0=True).parent == -1).all()


def test_weight_score_is_exact_on_whole_hashes() -> None:
    half = np.array([[1] * 128 + [0] * 128], dtype=np.uint8)
    expected = 256 - math.log2(math.comb(256, 128))
    assert abs(float(distinguisher.hypergeometric_llr(half)[0]) - expected) < 1e-9
    off = half.copy()
    off[0, 200] = 1
    assert distinguisher.hypergeometric_llr(off)[0] == -np.inf


def test_depth_first_join_finds_all_and_the_first_sooner() -> None:
    rng = np.random.default_rng(3)
    reals = rng.integers(0, 2, (8, 256), dtype=np.uint8)
    nodes_all, found = distinguisher.depth_first_join(
        SCHEME, reals, 24, np.random.default_rng(4), stop_first=False
    )
    nodes_one, one = distinguisher.depth_first_join(
        SCHEME, reals, 24, np.random.default_rng(4), stop_first=True
    )
    assert found == 8 and one == 1
    assert 256 <= nodes_one < nodes_all


def test_batch_attack_charges_the_first_hash_a_share_of_the_join() -> None:
    prof = extraction.join_profile(SCHEME, 16.0, log2_real=math.log2(7000))
    one = extraction.batch_attack(prof, 7000, 0.0, 1e8, 2.0**50, 78.0, reals=0.0)
    many = extraction.batch_attack(prof, 7000, 0.0, 1e8, 2.0**50, 78.0, reals=7000)
    assert abs(one["compute_days"] / many["compute_days"] - 7001) < 1


def test_uniform_tail_by_importance_sampling_matches_direct_counts() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2, (3000, 10), dtype=np.uint8)
    x[:, 1:] ^= (x[:, :-1] & (rng.random((3000, 9)) < 0.4)).astype(np.uint8)  # a chain
    tree = distinguisher.ChowLiu(x)
    direct = tree.llr(rng.integers(0, 2, (400_000, 10), dtype=np.uint8))
    taus = np.quantile(direct, [0.5, 0.9, 0.99])
    by_is = tree.uniform_tail(taus, 200_000, rng)
    for tau, got in zip(taus, by_is, strict=True):
        want = float((direct >= tau).mean())
        assert abs(got - want) < 0.15 * want + 1e-3
