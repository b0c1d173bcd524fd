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
    assert math.isclose(b.threshold_items_per_day, 9.17e7)


def test_the_scaled_threshold_budget_keeps_up_with_decoys_and_a_fixed_one_does_not() -> None:
    """8.3: decoys are never removed, so honest spurious candidates grow with the index; the
    holder's budget scaled by its occupancy still fits the reference platform after ten years,
    the roster's figure alone falls short within the first."""
    scheme = extraction.SCHEMES["pdq-lsh-1"]
    spurious = {
        "query_images": 150,
        "query_hashes": 2552,
        "1000000": {"mean_per_query_hash": 0.5411},
    }
    costs = {k: 1e-3 for k in ("evaluate", "verify", "sums", "answer", "blind", "finalize",
                               "encrypt", "decide")}  # fmt: skip
    hub, pub = extraction.Hub(), extraction.Publication(7.0, 163_840)
    rows = [extraction.honest_cost(scheme, hub, pub, y, costs, spurious, 64) for y in (0, 1, 10)]
    assert math.isclose(rows[0]["candidates_per_upload"], 2552 / 150 * 0.5411)
    assert rows[0]["occupancy"] == 1.0
    for row in rows:
        assert row["threshold_needed_per_day"] <= row["threshold_allowed_per_day"]
    for row in rows[1:]:
        assert row["threshold_needed_per_day"] > row["threshold_fixed_per_day"]
    # a year of weekly decoys: 52 batches of 163,840 uniform buckets among 2^27 per table
    decoys = 163_840 * 365 / 7
    assert math.isclose(rows[1]["decoys_per_table"], decoys)
    assert math.isclose(
        rows[1]["spurious_per_query_hash"], 0.5411 * 1.365 + 64 * decoys / 2**27, rel_tol=1e-9
    )
    cpu = [r["holder_cpu_s_per_upload"] for r in rows]
    assert cpu[0] < cpu[1] < cpu[2]


def test_the_bound_holds_with_the_attacker_budget_scaled_to_ten_years_of_decoys() -> None:
    scheme = extraction.SCHEMES["pdq-lsh-1"]
    row = extraction.padded_row(
        scheme, extraction.Hub(), extraction.PlatformBudget(), 100,
        extraction.Publication(7.0, 163_840), 2.0**50, 78.0,
    )  # fmt: skip
    assert row["threshold_scale_at_horizon"] > 19
    assert row["days_to_first_hash"] > 3650 and row["hashes_per_year"] == 0


def test_padding_added_to_every_batch_keeps_fast_hubs_covered() -> None:
    """8.7: a batch holds ``r + padding`` entries per table. Topped up to ``max(r, padding)``
    instead, a hub whose weekly batch nears the padding has its first hash cut by the
    ``1/(r+1)`` of a depth-first join; with the padding added, the join of ``r + padding``
    grows faster than ``r + 1`` and the first hash moves away as the hub grows."""
    pub, old = (
        extraction.Publication(7.0, 163_840),
        extraction.Publication(7.0, 163_840, top_up=True),
    )
    assert (pub.entries(7_000.0), old.entries(7_000.0)) == (170_840.0, 163_840.0)
    assert (pub.entries(200_000.0), old.entries(200_000.0)) == (363_840.0, 200_000.0)
    budget = extraction.PlatformBudget()

    def first(p: extraction.Publication, per_day: float) -> float:
        hub = extraction.Hub(additions_per_day=per_day)
        return extraction.padded_row(SCHEME, hub, budget, 100, p, 2.0**50, 78.0)[
            "days_to_first_hash"
        ]

    years = 365.0
    assert first(old, 23_000.0) < 12 * years  # the rule before: about 11 years
    assert first(pub, 23_000.0) > 1_000 * years
    assert first(pub, 23_000.0) > first(pub, 2_300.0) > 100 * years
