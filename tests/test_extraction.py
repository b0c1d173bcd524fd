"""sim/extraction.py: the join through shared bits recovers isolated items exactly, and the model
that extrapolates it agrees with the exact run where both can be computed."""

from __future__ import annotations

import math

import numpy as np

from blindmatch.protocol.lsh import SCHEMES
from blindmatch.sim import extraction

SCHEME = SCHEMES["pdq-lsh-1"]


def test_a_delta_of_few_items_gives_their_hashes_without_any_oracle_query() -> None:
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 256, (16, 32), dtype=np.uint8)
    r = extraction.exact_join(SCHEME, hashes)
    assert r["completed"] and r["recovered"] == 16 and r["phantoms"] == 0


def test_the_model_bounds_the_exact_join_and_counts_phantoms_like_the_formula() -> None:
    rng = np.random.default_rng(2)
    hashes = rng.integers(0, 256, (64, 32), dtype=np.uint8)
    exact = extraction.exact_join(SCHEME, hashes)
    model = extraction.join_profile(SCHEME, 6)
    assert exact["work"] <= 2 ** model["work_log2"] <= 4 * exact["work"]
    # 2^256 * prod_t (m / 2^k): m^24 * 2^(256 - 648)
    for log2_m in (10, 20):
        p = extraction.join_profile(SCHEME, log2_m)
        assert math.isclose(p["phantoms_log2"], 24 * log2_m - 392)


def test_budgets_follow_the_platform_volume() -> None:
    b = extraction.PlatformBudget(uploads_per_day=10_000_000, headroom=1.0)
    assert b.evaluations_per_day == 1.3e10
    assert math.isclose(b.threshold_items_per_day, 8.31e7)
