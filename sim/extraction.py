"""The strongest hash-extraction attacker we can build against a hub, at platform volume.

Run it (one command; under a minute on one core); it prints the table and writes
``bench/results/extraction.md`` and ``.json``:

    python -m blindmatch.sim.extraction

**The attacker** is an admitted member (or ``identities`` colluding members) whose budgets are
those an honest platform with ``uploads_per_day`` uploads needs: each upload costs a 1M-hash hub
about 1,300 OPRF evaluations (4,900 with derivative search) and brings about 8.3 spurious bucket
hits (``bench/results/signals.md``), which is what the threshold budget must allow. It wants any
of the hub's PDQ hashes (a PDQ hash of an intimate image inverts to a recognisable thumbnail).
Its tools, strongest first:

1. **Table enumeration.** With ``L * 2^k`` evaluations (3.2e9 for pdq-lsh-1) it learns, for every
   bucket of every table, whether it is occupied and how many entries it holds. At 10M uploads
   a day that takes 6 hours per identity: bucket occupancy is public to a large member, and no
   budget an honest large platform can live with hides it.
2. **Linking by reference** (the protocol before issue 13). Entries carried the same item
   reference in every table, so an enumerator links an item's 24 buckets: its whole hash. Every
   hash falls within a day.
3. **Joining through shared bits** (after issue 13: references differ per table and epoch).
   The 24 tables sample 648 positions of 256, so an item's buckets must agree where tables
   overlap (392 bits of redundancy). For a set of ``m`` items whose buckets the attacker can
   isolate (a feed delta, or the difference of two enumerations), it searches hashes whose
   projection on every table is one of that table's ``m`` buckets. We measure the search
   exactly at small ``m`` (:func:`exact_join`) and model it beyond (:func:`join_profile`: the
   expected number of live partial assignments, bit by bit, in the best order our greedy
   finds). The search either ends with few candidates (then the attacker has the hashes) or
   with ``m^24 * 2^-392`` phantom hashes consistent with the buckets (then each must be tested
   with the threshold oracle, one budgeted candidate each).
4. **Threshold oracle with bands.** A guess within T of an item (found by stopping the join
   when few enough bits are free that a random fill lands within T) is refined by a boundary
   walk, about two oracle calls per free bit (:func:`adversary.boundary_walk`, measured).
5. **Membership test of a chosen picture.** Inherent: it is what matching is. It costs one
   upload's budget and reveals that a picture the attacker already has is in the hub; it
   recovers no hash the attacker did not have.

The bulk of a 1M-hash index is safe from (3): isolating a million items gives ``2^88`` phantoms
and a search of about ``2^120`` steps. The exposed part is **fresh additions**: a feed delta (or
an occupancy difference) that isolates ``m`` new items. The mitigation is a minimum anonymity
set per publication: the holder publishes additions (and removals) only in batches of at least
``m`` items; a survivor's hash waits for its batch (the matching latency this costs is
``m / additions_per_day``). :func:`frontier` computes days to the first hash and hashes per year
for each batch size, for 1, 10 and 100 identities.

Assumptions (stated in the output): tables' bucket sets are modelled as independent uniform
draws (checked against the exact join at small ``m``; real PDQ buckets measured as good as
uniform by :mod:`sim.distinguisher`); a batch's first hash costs ``1/(r+1)`` of its join when
``r`` of its entries are real (a depth-first search stops at the first; measured there too);
the attacker's computing power is ``compute_per_day`` partial-assignment steps a day in all,
however many identities (default 2^50, about a rack of servers; ``--compute-log2-per-day``
changes it); the hub adds ``additions_per_day`` items a day.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blindmatch.protocol.lsh import SCHEMES, BitSamplingScheme

from . import adversary
from .scenario import Budget

ROOT = Path(__file__).resolve().parent.parent
THRESHOLD = 31


# --- budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformBudget:
    """The per-peer budgets an honest platform needs against one 1M-hash hub."""

    uploads_per_day: float = 10_000_000
    evaluations_per_upload: float = 1_300  # 4,900 with derivative search (bench/results/node.md)
    # spurious bucket hits per query picture, all variants, at a 1M-hash holder (signals.md);
    # with per-table references every hit is a candidate, so this is the honest candidate rate
    # at the holder's real occupancy (the holder scales it with its decoys, spec 8.3)
    candidates_per_upload: float = 9.17
    headroom: float = 1.5  # the budget allows bursts above the mean

    @property
    def evaluations_per_day(self) -> float:
        return self.uploads_per_day * self.evaluations_per_upload * self.headroom

    @property
    def threshold_items_per_day(self) -> float:
        return self.uploads_per_day * self.candidates_per_upload * self.headroom


# --- the join through shared bits --------------------------------------------------------------


def membership(scheme: BitSamplingScheme) -> np.ndarray:
    """(256, L) bool: which tables sample each position."""
    return adversary.table_masks(scheme).T.copy()


def join_order(
    scheme: BitSamplingScheme, log2_m: float, known: np.ndarray | None = None
) -> list[int]:
    """A good order of positions for the bit-by-bit join of ``2^log2_m`` items: greedily the
    position that least increases the expected live count, ties broken towards tables that are
    nearest to pruning (their assigned count past ``log2_m``)."""
    member = membership(scheme)
    count = np.zeros(scheme.tables)
    if known is not None:
        count += member[known].sum(axis=0)
    free = [p for p in range(256) if known is None or not known[p]]
    order: list[int] = []
    while free:
        cand = np.array(free)
        before = np.minimum(0.0, log2_m - count)
        after = np.minimum(0.0, log2_m - count - 1)
        gain = member[cand] @ (after - before)  # log2 change from pruning (<= 0)
        urgency = member[cand] @ (count**2)
        key = np.lexsort((-urgency, 1.0 + gain))
        p = int(cand[key[0]])
        order.append(p)
        free.remove(p)
        count += member[p]
    return order


def join_profile(
    scheme: BitSamplingScheme,
    log2_m: float,
    known: np.ndarray | None = None,
    log2_real: float | None = None,
    threshold: int = THRESHOLD,
) -> dict[str, float]:
    """Expected live partial assignments along the greedy order, for bucket sets of ``2^log2_m``
    uniform draws per table: after assigning positions ``P``, ``2^|P| * prod_t min(1,
    m * 2^-|P and T_t|)`` consistent assignments survive (plus the real items, at most ``m``).

    Returns log2 of: the peak live count, the total work (sum over levels), the phantoms left at
    the end, and ``oracle_queries``: the fewest candidate tests when the attacker stops the join
    early and tests each live assignment with the threshold oracle, the free bits filled at
    random (a test succeeds when the fill lands within T: probability ``p(u)``).

    ``log2_real`` (default ``log2_m``): how many of the ``m`` entries per table are real items;
    the rest are decoys (uniform buckets, independent across tables), which join like real
    items' buckets but are never consistent across tables, so only the real ones survive."""
    member = membership(scheme)
    order = join_order(scheme, log2_m, known)
    count = np.zeros(scheme.tables)
    if known is not None:
        count += member[known].sum(axis=0)
    live = 0.0
    levels = [0.0]
    for p in order:
        before = np.minimum(0.0, log2_m - count)
        count += member[p]
        after = np.minimum(0.0, log2_m - count)
        live += 1.0 + float((after - before).sum())
        levels.append(live)
    arr = np.array(levels)
    real = log2_m if log2_real is None else log2_real  # the real items always survive
    with_real = np.logaddexp2(arr, real)
    work = float(np.log2(np.sum(np.exp2(with_real - with_real.max())))) + float(with_real.max())
    free_bits = len(order) - np.arange(len(order) + 1)
    hit = np.array([_log2_within(int(u), threshold) for u in free_bits])
    # queries per real hash found, stopping at level j: live_j / (m * p(u_j))
    per_hash = with_real - real - hit
    # work to reach level j (cumulative)
    cum = np.array(
        [
            float(np.log2(np.sum(np.exp2(with_real[: j + 1] - with_real[: j + 1].max()))))
            + float(with_real[: j + 1].max())
            for j in range(len(with_real))
        ]
    )
    return {
        "log2_m": log2_m,
        "peak_live_log2": float(with_real.max()),
        "work_log2": work,
        "phantoms_log2": float(arr[-1]),
        "per_hash_queries_log2": per_hash.tolist(),
        "work_to_level_log2": cum.tolist(),
    }


def _log2_within(u: int, threshold: int = THRESHOLD) -> float:
    """log2 P(a uniform fill of u free bits is within T of the truth)."""
    if u <= threshold:
        return 0.0
    return math.log2(sum(math.comb(u, j) for j in range(threshold + 1))) - u


def exact_join(
    scheme: BitSamplingScheme, hashes: np.ndarray, max_live: int = 1 << 22
) -> dict[str, object]:
    """Run the join for real: given only each table's *set* of buckets of ``hashes`` (m, 32),
    enumerate every 256-bit string whose projection on every table is in that table's set.

    Breadth-first along :func:`join_order`; each live assignment carries, per table, the mask of
    the buckets it is still consistent with. Returns the live count per level and whether the
    hashes found are exactly the input (no phantoms)."""
    m = len(hashes)
    bits = np.unpackbits(hashes, axis=1).astype(bool)  # (m, 256)
    L = scheme.tables
    positions = [list(p) for p in scheme.table_positions]
    # per table: its m buckets as rows of its sampled bits, deduplicated (a set, unordered)
    sets = []
    for t in range(L):
        rows = np.unique(bits[:, positions[t]], axis=0)
        sets.append(rows)
    where = {
        p: [(t, positions[t].index(p)) for t in range(L) if p in positions[t]] for p in range(256)
    }
    order = join_order(scheme, math.log2(max(m, 2)))
    # live state: assigned bits so far (n, 256) and per-table candidate masks (n, L, m_t)
    width = max(len(s) for s in sets)
    masks = np.zeros((1, L, width), dtype=bool)
    for t in range(L):
        masks[0, t, : len(sets[t])] = True
    assigned = np.zeros((1, 256), dtype=bool)
    live_counts = [1]
    for p in order:
        n = len(assigned)
        if 2 * n > max_live:
            return {"m": m, "completed": False, "live": live_counts}
        new_assigned = np.repeat(assigned, 2, axis=0)
        new_assigned[1::2, p] = True
        new_masks = np.repeat(masks, 2, axis=0)
        ok = np.ones(2 * n, dtype=bool)
        for t, col in where[p]:
            column = np.zeros(width, dtype=bool)
            column[: len(sets[t])] = sets[t][:, col]
            want = new_assigned[:, p][:, None]
            new_masks[:, t, :] &= (column[None, :] == want) & (
                np.arange(width)[None, :] < len(sets[t])
            )
            ok &= new_masks[:, t, :].any(axis=1)
        assigned, masks = new_assigned[ok], new_masks[ok]
        live_counts.append(len(assigned))
    found = {bytes(np.packbits(a)) for a in assigned}
    truth = {bytes(h) for h in hashes}
    return {
        "m": m,
        "completed": True,
        "live": live_counts,
        "solutions": len(found),
        "recovered": len(found & truth),
        "phantoms": len(found - truth),
        "peak_live": max(live_counts),
        "work": int(sum(live_counts)),
    }


# --- the attack table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hub:
    hashes: int = 1_000_000
    additions_per_day: float = 1_000.0  # a 1M hub grown over ~3 years


def before(
    scheme: BitSamplingScheme, hub: Hub, budget: PlatformBudget, identities: int, seed: int = 13
) -> dict[str, float]:
    """Linked references (the protocol before issue 13): the simulator's probing attack with the
    platform budgets (random enumeration, linking by reference, oracle, boundary walk)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, (hub.hashes, 32), dtype=np.uint8)
    b = Budget(
        evaluations_per_hour=int(budget.evaluations_per_day / 24),
        evaluations_per_day=int(budget.evaluations_per_day),
        threshold_items_per_hour=int(budget.threshold_items_per_day / 24),
        threshold_items_per_day=int(budget.threshold_items_per_day),
    )
    r = adversary.probing_attack(scheme, hashes, b, identities, 365.0, THRESHOLD, rng)
    return {
        "days_to_first_hash": r["days_to_first_hash"],
        "hashes_per_year": float(r["hashes_recovered_within_days"]),
        "oracle_calls_measured": float(r.get("oracle_calls_measured", 0)),
        "recovered_exactly": bool(r.get("recovered_exactly", False)),
    }


def batch_attack(
    profile: Mapping[str, Any],
    m: float,
    enumerate_days: float,
    thr_per_day: float,
    compute_per_day: float,
    walk_queries: float,
    reals: float | None = None,
) -> dict[str, float]:
    """Days for the attacker to pull one hash out of a batch of ``m`` isolated entries of which
    ``reals`` (default ``m``) are real items, choosing where to stop the join: compute (partial
    assignments) and threshold queries are both spent at their daily rates; plus the boundary
    walk per hash.

    The first hash does not need the whole join: a depth-first search that stops at the first
    real item visits about ``1 / (reals + 1)`` of the tree (the real items are spread over it;
    measured by ``sim/distinguisher.py``'s exact depth-first join on PDQ hashes and uniform
    decoys). So compute per hash is ``work / (reals + 1)``, for the first hash and every other.
    Returns the days for the first hash and the steady rates at the best stopping level."""
    per_hash = np.array(profile["per_hash_queries_log2"])
    work = np.array(profile["work_to_level_log2"])
    found = float(m if reals is None else reals)
    queries = np.exp2(per_hash) + walk_queries
    compute_days = np.exp2(work) / compute_per_day / (found + 1.0)
    query_days = queries / thr_per_day
    first = compute_days + query_days
    j = int(np.argmin(first))
    return {
        "days_first": float(enumerate_days + first[j]),
        "stop_level_free_bits": int(len(per_hash) - 1 - j),
        "compute_log2": float(work[j]),
        "queries_per_hash": float(queries[j]),
        # computing days per hash found (the whole join of a batch yields all its real items)
        "compute_days": float(compute_days[j]),
        "full_join_days": float(np.exp2(work[j]) / compute_per_day),
        "hashes_per_batch_day_limit": float(min(found, thr_per_day / queries[j])),
    }


def recovered_in(
    first: float, a: Mapping[str, float], thr: float, additions_per_day: float, horizon: float
) -> float:
    """Hashes recovered within ``horizon`` days: none before ``first``; then one per
    ``compute_days`` of computing (shared by all batches) or per ``queries_per_hash`` of the
    threshold budget, whichever is slower, never more than the hub added."""
    if first > horizon:
        return 0.0
    rate = min(1.0 / max(a["compute_days"], 1e-12), thr / a["queries_per_hash"])
    return min(1.0 + (horizon - first) * rate, horizon * additions_per_day)


def frontier(
    scheme: BitSamplingScheme,
    hub: Hub,
    budget: PlatformBudget,
    identities: list[int],
    batch_sizes: list[int],
    compute_per_day: float,
    walk_queries: float,
) -> list[dict[str, float]]:
    rows = []
    enum_evals = scheme.tables * 2.0**scheme.bits_per_table
    profiles = {m: join_profile(scheme, math.log2(m)) for m in batch_sizes}
    bulk = join_profile(scheme, math.log2(hub.hashes))
    for n in identities:
        evals, thr = n * budget.evaluations_per_day, n * budget.threshold_items_per_day
        enumerate_days = enum_evals / evals
        bulk_attack = batch_attack(
            bulk, hub.hashes, enumerate_days, thr, compute_per_day, walk_queries
        )
        for m in batch_sizes:
            a = batch_attack(profiles[m], m, enumerate_days, thr, compute_per_day, walk_queries)
            # Ten simulated years: after the enumeration, a batch is published every m / A
            # days; the attacker searches them depth-first (compute per hash: the join's work
            # over the real items it holds) and tests candidates at its query budget.
            horizon = 3650.0
            first = m / hub.additions_per_day + a["days_first"]
            recovered = recovered_in(first, a, thr, hub.additions_per_day, horizon)
            per_year = recovered / 10.0
            rows.append(
                {
                    "identities": n,
                    "batch": m,
                    "latency_days": m / hub.additions_per_day,
                    "enumerate_days": enumerate_days,
                    # the first batch published after the enumeration, then its join and tests
                    "days_to_first_hash": first,
                    "hashes_per_year": per_year,
                    "join_peak_log2": float(profiles[m]["peak_live_log2"]),
                    "phantoms_log2": float(profiles[m]["phantoms_log2"]),
                    "stop_free_bits": a["stop_level_free_bits"],
                    "compute_log2": a["compute_log2"],
                    "queries_per_hash": a["queries_per_hash"],
                    "bulk_days_to_first_hash": bulk_attack["days_first"],
                }
            )
    return rows


@dataclass(frozen=True)
class Publication:
    """How a holder publishes additions (spec 8.7): one batch every ``interval_days``, each
    with ``padding`` decoy entries per table added to its ``r`` real ones (``r + padding``);
    ``top_up``: the rule before, decoys only up to ``padding`` entries (``max(r, padding)``),
    kept to show what it cost fast-growing hubs; ``rotation_days`` is how often the key
    rotates; ``rotation_drops_decoys``: whether the republished index leaves the decoys out
    (the naive garbage collection)."""

    interval_days: float
    padding: int
    rotation_days: float = 128.0
    rotation_drops_decoys: bool = False
    top_up: bool = False

    def entries(self, r: float) -> float:
        """Entries per table of a batch holding ``r`` real ones."""
        return max(r, float(self.padding)) if self.top_up else r + float(self.padding)

    def real_per_batch(self, additions_per_day: float) -> float:
        """Real entries per table in one batch (at least one: a batch goes out for one)."""
        return max(1.0, additions_per_day * self.interval_days)

    def decoys_per_table_per_year(self, additions_per_day: float) -> float:
        """Decoys a year adds to each table; never removed (8.7)."""
        r = self.real_per_batch(additions_per_day)
        return max(0.0, self.entries(r) - r) * 365.0 / self.interval_days


def padded_row(
    scheme: BitSamplingScheme,
    hub: Hub,
    budget: PlatformBudget,
    identities: int,
    pub: Publication,
    compute_per_day: float,
    walk_queries: float,
    threshold: int = THRESHOLD,
) -> dict[str, float]:
    """Days to the first hash and hashes per year (over ten years) for additions published as
    ``pub`` says, against ``identities`` members at the platform budget (``threshold``: the
    signal's, for the oracle's last step).

    A batch holds ``r = additions_per_day * interval`` real items and ``m = r + padding``
    entries per table (``max(r, padding)`` under ``pub.top_up``, the rule before; decoys are
    uniform buckets, as the model assumes real ones are). The
    attacker isolates each batch (its feed delta, or two enumerations around it) and joins it.
    If a rotation republishes the index *without* the decoys, the attacker intersects every
    batch it recorded with the new epoch's occupancy: what remains of a batch is its real items
    plus the decoys that happen to land on a bucket the new index occupies (a fraction
    ``occupancy = N / 2^k`` of them), so from the first rotation on each batch joins like
    ``r + occupancy * (m - r)`` entries."""
    A = hub.additions_per_day
    r = pub.real_per_batch(A)
    m = pub.entries(r)
    horizon = 3650.0
    decoys_per_table_year = pub.decoys_per_table_per_year(A)
    per_table_year = A * 365.0 + decoys_per_table_year
    # the holder scales a threshold budget by its entries over its real entries (8.3), so the
    # attacker is given the scale the index reaches at the end of the horizon, all along
    scale = (hub.hashes + per_table_year * horizon / 365.0) / (hub.hashes + A * horizon)
    evals, thr = (
        identities * budget.evaluations_per_day,
        identities * budget.threshold_items_per_day * scale,
    )
    enumerate_days = scheme.tables * 2.0**scheme.bits_per_table / evals

    def attack(m_eff: float) -> dict[str, float]:
        prof = join_profile(
            scheme, math.log2(max(m_eff, 2.0)), log2_real=math.log2(r), threshold=threshold
        )
        a = batch_attack(prof, r, enumerate_days, thr, compute_per_day, walk_queries, reals=r)
        a["peak"] = float(prof["peak_live_log2"])
        a["phantoms"] = float(prof["phantoms_log2"])
        return a

    a = attack(m)
    first = pub.interval_days + a["days_first"]
    unmasked = None
    if pub.rotation_drops_decoys:
        occupancy = min(1.0, (hub.hashes + A * pub.rotation_days) / 2.0**scheme.bits_per_table)
        unmasked = attack(r + occupancy * (m - r))
        after_rotation = max(pub.rotation_days, pub.interval_days) + unmasked["days_first"]
        if after_rotation < first:
            first, a = after_rotation, unmasked
    recovered = recovered_in(first, a, thr, A, horizon)
    return {
        "identities": identities,
        "interval_days": pub.interval_days,
        "padding": pub.padding,
        "top_up": pub.top_up,
        "rotation_days": pub.rotation_days,
        "rotation_drops_decoys": pub.rotation_drops_decoys,
        "real_per_batch": r,
        "entries_per_table": m,
        "days_to_first_hash": first,
        "hashes_per_year": recovered / 10.0,
        "join_peak_log2": a["peak"],
        "phantoms_log2": a["phantoms"],
        "queries_per_hash": a["queries_per_hash"],
        "decoys_per_table_per_year": decoys_per_table_year,
        # every member's replica of this hub grows by this much a year (24-byte entries)
        "replica_growth_entries_per_year": scheme.tables * per_table_year,
        "replica_growth_bytes_per_year": scheme.tables * per_table_year * 24.0,
        # honest spurious candidates scale with occupancy: this factor after one year
        "occupancy_after_year": (hub.hashes + per_table_year) / hub.hashes,
        "threshold_scale_at_horizon": scale,
    }


# --- what the decoys cost honest members -------------------------------------------------------

SIGNALS_RESULTS = ROOT / "bench" / "results" / "signals.json"


def honest_cost(
    scheme: BitSamplingScheme,
    hub: Hub,
    pub: Publication,
    years: float,
    costs: Mapping[str, float],
    spurious: Mapping[str, Any],
    probes: int,
    roster_threshold_per_day: float = 22_000,
    reference_uploads_per_day: float = 2_000_000 / 1_300,
    headroom: float = 1.5,
) -> dict[str, float]:
    """An honest platform's unmatched upload against a hub ``years`` into ``pub``'s batches:
    its spurious candidates, the holder's and querier's CPU for them, and the threshold budget
    it needs against what the holder allows (the roster's figure scaled by occupancy, 8.3).

    Real spurious hits are the signals bench's, measured at 1M real hashes and taken as linear
    in the real count; decoys are uniform buckets, so each of a query hash's ``probes``
    probes hits one with the chance ``decoys / 2^k``. A query hash's candidates are taken as
    Poisson: it costs the holder its proof check and per-query sums when it has any."""
    A = hub.additions_per_day
    decoys = pub.decoys_per_table_per_year(A) * years
    real = hub.hashes + A * 365.0 * years
    at_1m = spurious["1000000"]
    per_upload = spurious["query_hashes"] / spurious["query_images"]
    lam = at_1m["mean_per_query_hash"] * real / 1e6 + probes * decoys / 2.0**scheme.bits_per_table
    with_candidates = per_upload * -math.expm1(-lam)
    candidates = per_upload * lam
    evaluations = per_upload * probes
    holder = (
        evaluations * costs["evaluate"]
        + with_candidates * (costs["verify"] + costs["sums"])
        + candidates * costs["answer"]
    )
    querier = (
        evaluations * (costs["blind"] + costs["finalize"])
        + with_candidates * costs["encrypt"]
        + candidates * costs["decide"]
    )
    occupancy = (real + decoys) / real
    # the roster sizes a budget at the hub's real size (8.3: linear in it) and the holder
    # scales that by its occupancy: together, linear in everything it publishes
    at_real_size = roster_threshold_per_day * real / hub.hashes
    return {
        "years": years,
        "interval_days": pub.interval_days,
        "padding": pub.padding,
        "real_per_table": real,
        "decoys_per_table": decoys,
        "occupancy": occupancy,
        "spurious_per_query_hash": lam,
        "candidates_per_upload": candidates,
        "query_hashes_with_candidates": with_candidates,
        "query_hashes_per_upload": per_upload,
        "holder_cpu_s_per_upload": holder,
        "querier_cpu_s_per_upload": querier,
        "threshold_needed_per_day": reference_uploads_per_day * candidates * headroom,
        "threshold_allowed_per_day": at_real_size * occupancy,
        "threshold_fixed_per_day": at_real_size,
    }


PUBLICATIONS = [
    Publication(1 / 1440, 0),  # every addition at once (before)
    Publication(1.0, 0),  # daily, unpadded
    Publication(1.0, 16_384),
    Publication(1.0, 32_768),
    Publication(1.0, 65_536),
    Publication(7.0, 32_768),
    Publication(7.0, 65_536),
    Publication(30.0, 65_536),
    Publication(7.0, 131_072),
    Publication(7.0, 163_840),  # blindmatch init's default
    Publication(7.0, 196_608),  # the margin against the PDQ prior's extrapolated tail
    Publication(14.0, 163_840),
    Publication(30.0, 163_840),
    Publication(7.0, 65_536, rotation_days=30.0, rotation_drops_decoys=True),
    Publication(1.0, 65_536, rotation_days=30.0, rotation_drops_decoys=True),
]


# --- tiles: 41 key prefixes, padded one by one (spec 8.7) ---------------------------------------

TILE_CELLS = 41  # pdq-tiles-1: the 4x4 and 5x5 cells, each its own key prefix
TILES_PER_SOURCE = 73.0  # index tiles per source past the quality gate (derivatives.md)
TILE_THRESHOLD = 39


@dataclass(frozen=True)
class TileHub:
    """A hub's protected sources: how many, and how many are added a day."""

    sources: int = 100_000
    sources_per_day: float = 100.0


def tile_row(
    scheme: BitSamplingScheme,
    tiles: TileHub,
    budget: PlatformBudget,
    identities: int,
    pub: Publication,
    compute_per_day: float,
    walk_queries: float,
) -> dict[str, float]:
    """Tiles published in batches of their own, every cell padded with ``pub.padding`` decoys.

    The attacker chooses the cell when it enumerates keys (a cell's keys name it), so it joins
    one cell's batch: ``r`` real tiles per table (``sources_per_day * 73 / 41`` a day) among
    ``r + padding`` (``max(r, padding)`` under ``pub.top_up``), against the tile threshold (39)
    for the oracle's last step. Every cell is padded, so each batch costs 41 times one cell's
    decoys."""
    per_cell = tiles.sources_per_day * TILES_PER_SOURCE / TILE_CELLS
    hub = Hub(
        hashes=round(tiles.sources * TILES_PER_SOURCE / TILE_CELLS), additions_per_day=per_cell
    )
    row = padded_row(
        scheme, hub, budget, identities, pub, compute_per_day, walk_queries, TILE_THRESHOLD
    )
    for k in ("decoys_per_table_per_year", "replica_growth_entries_per_year",
              "replica_growth_bytes_per_year"):  # fmt: skip
        row[k] *= TILE_CELLS
    row["sources_per_day"] = tiles.sources_per_day
    row["bytes_per_batch"] = TILE_CELLS * scheme.tables * row["entries_per_table"] * 24.0
    row["real_tiles_per_cell_per_batch"] = row["real_per_batch"]
    return row


TILE_PUBLICATIONS = [
    Publication(7.0, 163_840),  # with the index's weekly batches (before)
    Publication(30.0, 163_840),
    Publication(90.0, 163_840),  # blindmatch init's index_tile_batch_days
    Publication(182.0, 163_840),
    Publication(365.0, 163_840),
    Publication(90.0, 65_536),  # the padding before the PDQ prior
]

# fast-growing hubs under the defaults (weekly 163,840; tiles every 90 days), the rule before
# (decoys up to the padding) against the rule now (the padding added to every batch)
# (with the worst rates: before, a batch's real count just under the padding; now, about 16,000
# real entries per table, found by the sweep below)
FAST_PDQ = (1_000.0, 2_300.0, 10_000.0, 23_000.0, 100_000.0)  # additions a day
FAST_TILES = (100.0, 900.0, 1_000.0, 10_000.0)  # protected sources a day


def worst_rate(
    scheme: BitSamplingScheme,
    budget: PlatformBudget,
    tile_budget: PlatformBudget,
    compute_per_day: float,
    walk_queries: float,
    identities: int = 100,
) -> list[dict[str, float]]:
    """The hub growth rate that gives the earliest first hash under the defaults, per signal
    and rule: real entries per table per batch swept over ``2^(i/4)``, 1 to 2^22."""
    out = []
    for signal, interval in (("pdq", 7.0), ("tiles", 90.0)):
        for top_up in (True, False):
            pub = Publication(interval, 163_840, top_up=top_up)
            rows = []
            for i in range(0, 89):
                r = 2.0 ** (i / 4)
                if signal == "pdq":
                    row = padded_row(
                        scheme, Hub(additions_per_day=r / interval), budget, identities, pub,
                        compute_per_day, walk_queries,
                    )  # fmt: skip
                    rate = r / interval
                else:
                    rate = r * TILE_CELLS / TILES_PER_SOURCE / interval
                    row = tile_row(
                        scheme, TileHub(sources_per_day=rate), tile_budget, identities, pub,
                        compute_per_day, walk_queries,
                    )  # fmt: skip
                rows.append({"signal": signal, "rate_per_day": rate, **row})
            out.append(min(rows, key=lambda x: x["days_to_first_hash"]))
    return out


def _fmt_days(d: float) -> str:
    if not math.isfinite(d) or d > 1e6:
        return "> 10^6 years" if d > 3.65e8 else f"{d / 365:,.0f} years"
    if d >= 365 * 10:
        return f"{d / 365:,.0f} years"
    if d >= 2:
        return f"{d:,.1f} days"
    if d >= 2 / 24:
        return f"{d * 24:,.1f} hours"
    return f"{d * 1440:,.1f} minutes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="strongest hash-extraction attacker (issue 13)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results folder")
    parser.add_argument("--uploads-per-day", type=float, default=10_000_000)
    parser.add_argument("--evaluations-per-upload", type=float, default=1_300)
    parser.add_argument("--additions-per-day", type=float, default=1_000)
    parser.add_argument("--compute-log2-per-day", type=float, default=50)
    parser.add_argument("--skip-before", action="store_true", help="skip the 1M-hash before run")
    args = parser.parse_args(argv)
    started = time.time()
    scheme = SCHEMES["pdq-lsh-1"]
    budget = PlatformBudget(
        uploads_per_day=args.uploads_per_day, evaluations_per_upload=args.evaluations_per_upload
    )
    hub = Hub(additions_per_day=args.additions_per_day)
    identities = [1, 10, 100]
    rng = np.random.default_rng(7)
    # exact join at reduced scale: validates the model
    exact = []
    for log2_m in (2, 4, 6, 8):
        hashes = rng.integers(0, 256, (2**log2_m, 32), dtype=np.uint8)
        r = exact_join(scheme, hashes)
        prof = join_profile(scheme, log2_m)
        exact.append(
            {
                "m": 2**log2_m,
                "recovered": r.get("recovered"),
                "phantoms": r.get("phantoms"),
                "peak_live_measured": r.get("peak_live"),
                "peak_live_model": 2 ** prof["peak_live_log2"],
                "work_measured": r.get("work"),
                "work_model": 2 ** prof["work_log2"],
            }
        )
    # the last step for real: boundary walk from a guess with the free bits the join leaves
    target = rng.integers(0, 2, 256).astype(bool)
    known = np.zeros(256, dtype=bool)
    known[rng.permutation(256)[:200]] = True
    learned, walk_calls = adversary.boundary_walk(rng, target, known, THRESHOLD)
    walk = {
        "free_bits": 56,
        "oracle_calls": walk_calls,
        "exact": bool(learned is not None and (learned == target).all()),
    }
    compute, walk_q = 2.0**args.compute_log2_per_day, float(walk_calls)
    batches = [1, 2**4, 2**8, 2**12, 2**14, 2**16, 2**17, 2**18, 2**19, 2**20]
    rows = frontier(scheme, hub, budget, identities, batches, compute, walk_q)
    padded = [
        padded_row(scheme, hub, budget, n, pub, compute, walk_q)
        for pub in PUBLICATIONS
        for n in identities
    ]
    tile_budget = PlatformBudget(
        uploads_per_day=args.uploads_per_day, evaluations_per_upload=4_900
    )  # derivative search: a tile query costs more evaluations, so enumeration is faster
    tile_rows = [
        tile_row(
            scheme,
            TileHub(sources_per_day=s),
            tile_budget,
            n,
            pub,
            compute,
            walk_q,
        )
        for s in (100.0, 1_000.0)
        for pub in TILE_PUBLICATIONS
        for n in (1, 100)
    ]
    fast_rows = [
        {
            "signal": "pdq",
            "rate_per_day": a_day,
            **padded_row(
                scheme,
                Hub(additions_per_day=a_day),
                budget,
                n,
                Publication(7.0, 163_840, top_up=top_up),
                compute,
                walk_q,
            ),
        }
        for a_day in FAST_PDQ
        for top_up in (True, False)
        for n in (1, 100)
    ] + [
        {
            "signal": "tiles",
            "rate_per_day": s_day,
            **tile_row(
                scheme,
                TileHub(sources_per_day=s_day),
                tile_budget,
                n,
                Publication(90.0, 163_840, top_up=top_up),
                compute,
                walk_q,
            ),
        }
        for s_day in FAST_TILES
        for top_up in (True, False)
        for n in (1, 100)
    ]
    worst = worst_rate(scheme, budget, tile_budget, compute, walk_q)
    from blindmatch.protocol.signal_types.learned import LEARNED_LSH_1

    learned_rows = [
        {
            "scheme": LEARNED_LSH_1.name,
            **padded_row(
                LEARNED_LSH_1,
                hub,
                budget,
                n,
                pub,
                compute,
                walk_q,
            ),
        }
        for pub in (Publication(7.0, 16_384), Publication(7.0, 65_536), Publication(7.0, 163_840))
        for n in (1, 100)
    ]
    # before this change a publication of many items went out in deltas of whole items,
    # MAX_ENTRIES_PER_DELTA / L = 1,666 each: every delta of a first publication (the bulk) or
    # of a retired key's withdrawal isolated that many items
    grouped = join_profile(scheme, math.log2(1666))
    grouped_rows = []
    for n in identities:
        enum_days = scheme.tables * 2.0**scheme.bits_per_table / (n * budget.evaluations_per_day)
        a = batch_attack(
            grouped,
            1666,
            enum_days,
            n * budget.threshold_items_per_day,
            compute,
            walk_q,
        )
        grouped_rows.append({"identities": n, "days_to_first_hash": a["days_first"]})
    from .exchange import calibrated_costs

    costs = calibrated_costs()
    lsh = json.loads(SIGNALS_RESULTS.read_text())["lsh"]
    honest_rows = [
        honest_cost(
            scheme, hub, pub, y, costs, lsh["spurious_hits"], lsh["probes_per_query_hash_used"]
        )
        for pub in (Publication(7.0, 163_840), Publication(30.0, 163_840))
        for y in (0.0, 1.0, 2.0, 5.0, 10.0)
    ]
    before_rows = (
        []
        if args.skip_before
        else [{"identities": n, **before(scheme, hub, budget, n)} for n in identities]
    )
    result = {
        "assumptions": {
            "scheme": scheme.name,
            "hub_hashes": hub.hashes,
            "hub_additions_per_day": hub.additions_per_day,
            "platform_uploads_per_day": budget.uploads_per_day,
            "evaluations_per_upload": budget.evaluations_per_upload,
            "candidates_per_upload": budget.candidates_per_upload,
            "budget_headroom": budget.headroom,
            "evaluations_per_day_per_identity": budget.evaluations_per_day,
            "threshold_items_per_day_per_identity": budget.threshold_items_per_day,
            "compute_log2_per_day": args.compute_log2_per_day,
            "enumeration_evaluations": scheme.tables * 2.0**scheme.bits_per_table,
        },
        "exact_join": exact,
        "boundary_walk": walk,
        "before": before_rows,
        "after": rows,
        "padded": padded,
        "tiles": tile_rows,
        "learned": learned_rows,
        "fast": fast_rows,
        "fast_worst": worst,
        "grouped_deltas": grouped_rows,
        "honest_cost": honest_rows,
        "bulk_join": {
            k: v
            for k, v in join_profile(scheme, math.log2(hub.hashes)).items()
            if not isinstance(v, list)
        },
        "wall_s": round(time.time() - started, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "extraction.json").write_text(json.dumps(result, indent=2) + "\n")
    md = out / "extraction.md"
    text = render(result)
    if md.exists():  # keep sim/distinguisher.py's section, measured apart
        old = md.read_text()
        begin, end = "<!-- distinguisher: begin -->", "<!-- distinguisher: end -->"
        if begin in old and end in old:
            text += "\n" + begin + old.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    md.write_text(text)
    print(render(result))
    return 0


def render(r: dict[str, Any]) -> str:
    a = r["assumptions"]
    lines = [
        "# Hash extraction at platform volume (issue 13)",
        "",
        "`python -m blindmatch.sim.extraction` (sim/extraction.py). Attacker: admitted member(s) "
        f"with the budgets of a platform with {a['platform_uploads_per_day']:,.0f} uploads/day: "
        f"{a['evaluations_per_day_per_identity']:.3g} evaluations/day "
        f"({a['evaluations_per_upload']:,.0f} per upload x {a['budget_headroom']} headroom) and "
        f"{a['threshold_items_per_day_per_identity']:.3g} threshold candidates/day "
        f"({a['candidates_per_upload']} per upload x {a['budget_headroom']}) per identity; "
        f"2^{a['compute_log2_per_day']:.0f} join steps/day of computing in all "
        "(identities share one attacker's computers). "
        f"Hub: {a['hub_hashes']:,} hashes, {a['hub_additions_per_day']:,.0f} additions/day. "
        f"Enumerating every table takes {a['enumeration_evaluations']:.3g} evaluations.",
        "",
        "## Before: linked references (one item reference in every table)",
        "",
        "| identities | days to first hash | hashes recovered per year |",
        "|---|---|---|",
    ]
    for b in r["before"]:
        lines.append(
            f"| {b['identities']} | {_fmt_days(b['days_to_first_hash'])} | "
            f"{b['hashes_per_year']:,.0f} of {a['hub_hashes']:,} |"
        )
    lines += [
        "",
        "## After: per-table references, release after confirmation, batched publication",
        "",
        "Bulk (the whole index isolated at once, m = 1M): the join peaks at "
        f"2^{r['bulk_join']['peak_live_log2']:.0f} live assignments and ends with "
        f"2^{r['bulk_join']['phantoms_log2']:.0f} phantoms; first hash from the bulk: "
        f"{_fmt_days(r['after'][-1]['bulk_days_to_first_hash'])} with 100 identities.",
        "",
        "Fresh additions, published in batches of at least m items (m = 1: every delta as today):",
        "",
        "| batch m | survivor latency | identities | days to first hash | hashes per year "
        "| join peak | phantoms | queries per hash |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(r["after"], key=lambda x: (x["batch"], x["identities"])):
        lines.append(
            f"| {row['batch']:,} | {_fmt_days(row['latency_days'])} | {row['identities']} | "
            f"{_fmt_days(row['days_to_first_hash'])} | {row['hashes_per_year']:,.0f} | "
            f"2^{row['join_peak_log2']:.0f} | 2^{row['phantoms_log2']:.0f} | "
            f"{row['queries_per_hash']:.3g} |"
        )
    lines += [
        "",
        "## Batched publication padded with decoys (the node's `index_batch_days`, "
        "`index_batch_padding`)",
        "",
        "A batch of `r = additions/day x interval` real items is padded per table with "
        "`padding` decoys (uniform buckets, one per table per decoy, independent across "
        "tables): `m = r + padding` entries (padding 0: unpadded); the attacker isolates each "
        "batch and joins it (decoys join "
        "like items but never survive). Decoys are never removed (removing them would mark "
        "them) and a rotation republishes them; the naive alternative, a rotation that "
        "republishes the index *without* its decoys, lets the attacker intersect every batch it "
        "recorded with the new epoch's occupancy, which strips the decoys: the rows marked "
        "'rotation drops decoys' measure that. Replica growth and occupancy count real "
        "additions and decoys together (24-byte entries); honest spurious candidates (9.17 per "
        "upload at 1M) grow with occupancy, and so does the threshold budget (spec 8.3).",
        "",
        "| interval | padding | rotation | identities | days to first hash | hashes per year "
        "| decoys per table per year | replica growth per year | occupancy after 1 year |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["padded"]:
        rot = (
            f"every {row['rotation_days']:.0f} d, drops decoys"
            if row["rotation_drops_decoys"]
            else "carries decoys"
        )
        lines.append(
            f"| {_fmt_days(row['interval_days'])} | {row['padding']:,} | {rot} | "
            f"{row['identities']} | {_fmt_days(row['days_to_first_hash'])} | "
            f"{row['hashes_per_year']:,.0f} | {row['decoys_per_table_per_year']:,.0f} | "
            f"{row['replica_growth_bytes_per_year'] / 1e9:,.2f} GB | "
            f"{row['occupancy_after_year']:.2f}x |"
        )
    lines += [
        "",
        "## Tiles: 41 key prefixes, each padded, batched apart (`index_tile_batch_days`)",
        "",
        "A protected source's tiles (`pdq-tiles-1`) go under 41 key prefixes, one per cell "
        "(`pdq-tile/<cell>`), about 73 tiles per source past the quality gate (1.78 per cell). "
        "An enumerator chooses the cell (a key names it), so it joins one cell's batch, and "
        "every cell must be padded: a tile batch is 41 cells x (r + padding) entries in each "
        "of 24 tables. Same attacker (its evaluations at 4,900 per upload, as derivative search "
        "needs), the tile threshold 39 for the last step; a hub holding 100,000 sources. "
        "Replica growth counts real tiles and decoys of all 41 cells.",
        "",
        "| sources a day | interval | padding | identities | real tiles per cell per batch "
        "| days to first hash | hashes per year (one cell) | one batch "
        "| replica growth per year |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["tiles"]:
        lines.append(
            f"| {row['sources_per_day']:,.0f} | {_fmt_days(row['interval_days'])} | "
            f"{row['padding']:,} | {row['identities']} | "
            f"{row['real_tiles_per_cell_per_batch']:,.0f} | "
            f"{_fmt_days(row['days_to_first_hash'])} | {row['hashes_per_year']:,.0f} | "
            f"{row['bytes_per_batch'] / 1e9:,.2f} GB | "
            f"{row['replica_growth_bytes_per_year'] / 1e9:,.2f} GB |"
        )
    h = r["honest_cost"]
    base = {row["interval_days"]: row["holder_cpu_s_per_upload"] for row in h if not row["years"]}
    lines += [
        "",
        "## What the decoys cost honest members, year after year",
        "",
        "Decoys are never removed (8.7), so every honest query meets more of them each year. "
        "A 1M-hash hub adding 1,000 hashes a day; an unmatched upload of the signals bench "
        f"({h[0]['query_hashes_per_upload']:.2f} query hashes, 64 probes each; real spurious "
        "hits measured at 1M real hashes and taken as linear in the real count, decoys uniform "
        "buckets); CPU from `bench/results/crypto.json`'s medians (the holder: evaluations, a "
        "proof check and per-query sums for each query hash with a candidate, an answer per "
        "candidate; the querier: blinding and finalizing, an encryption per query hash with a "
        "candidate, a decision per candidate). The threshold budget: what the reference "
        "platform (1,538 uploads a day, 8.3) needs with 1.5x headroom, against what it is "
        "allowed: the roster's default of 22,000 candidates a day at 1M hashes, resized by "
        "governance as the hub's real count grows (8.3), then scaled by the holder to its "
        "occupancy (8.3, now) or not (fixed, before).",
        "",
        "| interval | years | occupancy | spurious candidates per upload "
        "| query hashes with a candidate | holder CPU per unmatched upload | querier CPU "
        "| threshold needed a day | allowed (scaled) | allowed (fixed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in h:
        ratio = row["holder_cpu_s_per_upload"] / base[row["interval_days"]]
        fits = (
            "fits"
            if row["threshold_needed_per_day"] <= row["threshold_allowed_per_day"]
            else "short"
        )
        fixed = (
            "fits" if row["threshold_needed_per_day"] <= row["threshold_fixed_per_day"] else "short"
        )
        lines.append(
            f"| {_fmt_days(row['interval_days'])} | {row['years']:g} | "
            f"{row['occupancy']:.2f}x | {row['candidates_per_upload']:,.1f} | "
            f"{row['query_hashes_with_candidates']:.1f} of "
            f"{row['query_hashes_per_upload']:.1f} | "
            f"{row['holder_cpu_s_per_upload']:.2f} s ({ratio:.2f}x) | "
            f"{row['querier_cpu_s_per_upload']:.2f} s | "
            f"{row['threshold_needed_per_day']:,.0f} | "
            f"{row['threshold_allowed_per_day']:,.0f} ({fits}) | "
            f"{row['threshold_fixed_per_day']:,.0f} ({fixed}) |"
        )
    lines += [
        "",
        "## Fast-growing hubs: decoys up to the padding (before) or the padding added (now)",
        "",
        "The defaults (`index_batch_days` 7, `index_batch_padding` 163,840, "
        "`index_tile_batch_days` 90) at a hub growing faster than the tables above assume. "
        "Before, a batch was topped up to `max(r, padding)` entries per table, so past the "
        "padding it had no decoy and its first hash, about `join(m) / (r + 1)`, fell as `r` "
        "grew; now every batch adds the padding, `m = r + padding`, and the join of `r + "
        "padding` entries grows faster than `r + 1` does. PDQ: a 1M-hash hub, weekly batches; "
        "tiles: one cell of a 100,000-source hub, 90-day batches, 41 cells' growth.",
        "",
        "| signal | a day | rule | identities | real per table per batch | entries per table "
        "| days to first hash | hashes per year | replica growth per year |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["fast"]:
        unit = "additions" if row["signal"] == "pdq" else "sources"
        rule = "max(r, padding)" if row["top_up"] else "r + padding"
        lines.append(
            f"| {row['signal']} | {row['rate_per_day']:,.0f} {unit} | {rule} | "
            f"{row['identities']} | {row['real_per_batch']:,.0f} | "
            f"{row['entries_per_table']:,.0f} | {_fmt_days(row['days_to_first_hash'])} | "
            f"{row['hashes_per_year']:,.0f} | "
            f"{row['replica_growth_bytes_per_year'] / 1e9:,.2f} GB |"
        )
    lines += [
        "",
        "The worst growth rate for each (100 identities; real entries per table per batch "
        "swept from 1 to 2^22 in quarter powers of two):",
        "",
        "| signal | rule | worst rate a day | real per table per batch | days to first hash "
        "| replica growth per year |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["fast_worst"]:
        unit = "additions" if row["signal"] == "pdq" else "sources"
        rule = "max(r, padding)" if row["top_up"] else "r + padding"
        lines.append(
            f"| {row['signal']} | {rule} | {row['rate_per_day']:,.0f} {unit} | "
            f"{row['real_per_batch']:,.0f} | {_fmt_days(row['days_to_first_hash'])} | "
            f"{row['replica_growth_bytes_per_year'] / 1e9:,.2f} GB |"
        )
    lines += [
        "",
        "## Learned codes (`learned-lsh-1`: 24 tables of 24 bits), in the index's batches",
        "",
        "| interval | padding | identities | days to first hash | hashes per year |",
        "|---|---|---|---|---|",
    ]
    for row in r["learned"]:
        lines.append(
            f"| {_fmt_days(row['interval_days'])} | {row['padding']:,} | {row['identities']} | "
            f"{_fmt_days(row['days_to_first_hash'])} | {row['hashes_per_year']:,.0f} |"
        )
    lines += [
        "",
        "## What the bound covers (spec 8.7)",
        "",
        "Every table of every key prefix and threshold a batch touches gets `padding` decoys "
        "besides its real entries (counted as the distinct buckets they fill in the prefix's "
        "sparsest table). "
        "PDQ hashes (pictures, banked crops, protected sources' whole pictures) and vPDQ frames "
        "go in the index's batches; a video publishes one entry per bucket (a frame's key is "
        "left out where an earlier frame of the video has it), since several new entries in "
        "one bucket would single a video out among uniform decoys (recall: "
        "bench/results/video.md). Tiles go in batches of their own, every cell padded (table "
        "above). Learned codes join harder than PDQ (table above). A withdrawn, expired or "
        "deleted item publishes nothing, batched or not: its entries stay, answered as decoys, "
        "and a successor key carries it from its tombstone. Not covered: a node without "
        "batching (its fresh additions, first table), an item deleted outright (no tombstone) "
        "across a rotation, and a distinguisher between real and uniform buckets (not "
        "measured).",
    ]
    g = r["grouped_deltas"]
    lines += [
        "",
        "Before this change, a publication of many items (a first publication, a successor's "
        "republication, a retired key's withdrawal) went out in deltas of whole items, 1,666 "
        "per delta: each delta isolated a joinable set. Days to the first hash from such a "
        "delta: "
        + ", ".join(
            f"{_fmt_days(x['days_to_first_hash'])} ({x['identities']} identities)" for x in g
        )
        + ". Deltas are now cut from the sorted whole publication.",
    ]
    lines += [
        "",
        "Model check, exact join at reduced scale (uniform random hashes; the model counts "
        "expected live assignments for uniform bucket sets):",
        "",
        "| m | recovered | phantoms | peak live (measured) | peak live (model) "
        "| work (measured) | work (model) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in r["exact_join"]:
        lines.append(
            f"| {e['m']} | {e['recovered']} | {e['phantoms']} | {e['peak_live_measured']:,} | "
            f"{e['peak_live_model']:,.0f} | {e['work_measured']:,} | {e['work_model']:,.0f} |"
        )
    w = r["boundary_walk"]
    lines += [
        "",
        f"Boundary walk (threshold oracle, the last step), measured: {w['oracle_calls']:,} "
        f"oracle calls from {w['free_bits']} free bits, exact: {w['exact']}.",
        "",
        f"Wall time {r['wall_s']} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
