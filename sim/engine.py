"""The discrete-event run: batches of uploads matched against every peer, in simulated time.

Time advances by *batch windows* (``workload.query_batch_s``): a querier collects its uploads
for a window and, at the window's end, runs one exchange with every holder (protocol.md 10.5:
one ``oprf.evaluate`` per holder, then ``threshold.query`` for query hashes with candidates).
Within a window every message's send and arrival time is computed by the network model, as
arrays over all (querier, holder) pairs at once: that is how 100 nodes x 100k queries fit in
minutes. The simulated events are those messages (transmissions, retries included); the
decisions that follow matches (review, disputes, feedback, quarantine) are a second,
event-by-event pass (``sim/policy.py``) because they depend on each other's order.

Checkpoints (``checkpoint.pkl`` in the output directory) hold the window cursor and everything
accumulated so far; the workload and the indexes are rebuilt from the seed on resume, and each
window draws its randomness from its own ``SeedSequence`` child, so a resumed run computes
exactly what an uninterrupted one would.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blindmatch.protocol import matching
from blindmatch.protocol.index import ReplicaIndex
from blindmatch.protocol.lsh import SCHEMES

from . import exchange, workload
from .network import Network
from .scenario import Scenario

CHECKPOINT = "checkpoint.pkl"
CHECKPOINT_VERSION = 2
PARALLEL_INDEX_ITEMS = 20_000  # exact mode: build indexes in worker processes from this size


class Interrupted(Exception):
    """Raised by ``run_matching(stop_after=...)``: the run stopped after a checkpoint."""


def _no_nodes() -> np.ndarray:
    return np.zeros(0)  # new_state sizes these per node


@dataclass
class MatchState:
    """Everything the matching pass accumulates (checkpointed as a whole)."""

    next_window: int = 0
    # candidate pairs: upload, item, tables hit, time the querier looked up, time answered
    cand: list[np.ndarray] = field(default_factory=list)
    # confirmed matches: upload, item, band, time the querier decided
    match: list[np.ndarray] = field(default_factory=list)
    events: int = 0
    exchanges: int = 0
    answers: int = 0  # full threshold answers (7.4)
    same_answers: int = 0  # candidates answered ``same``: a confirmed item's other hits (8.5)
    threshold_round_trips: int = 0  # threshold.query rounds, over all exchanges
    answers_on_matches: int = 0  # full answers about the pairs that matched
    bytes_sent: np.ndarray = field(default_factory=_no_nodes)  # per node
    bytes_received: np.ndarray = field(default_factory=_no_nodes)
    cpu_s: np.ndarray = field(default_factory=_no_nodes)  # per node, modelled charges
    cpu_by_step: dict[str, float] = field(default_factory=dict)  # modelled, whole federation
    cpu_measured: dict[str, float] = field(default_factory=dict)  # exact mode, process time
    exact_candidates: int = 0
    exact_matches: int = 0
    exact_answers: int = 0  # exact mode: full answers the real code gave
    exact_same_answers: int = 0
    exact_answers_modelled: int = 0  # the modelled count over the same windows
    exact_disagreements: list[dict[str, int]] = field(default_factory=list)
    probes_received: np.ndarray = field(
        default_factory=_no_nodes
    )  # per holder: OPRF elements evaluated
    query_hashes_received: np.ndarray = field(default_factory=_no_nodes)  # per holder
    budget_delays: int = 0
    eval_hour: dict[tuple[int, int, int], int] = field(default_factory=dict)
    encrypted: set[int] = field(default_factory=set)


@dataclass
class Context:
    scenario: Scenario
    work: workload.Workload
    index: exchange.GlobalIndex
    costs: dict[str, float]
    holder_nodes: np.ndarray  # node indices with a bank
    trusted: np.ndarray  # per node
    exact: dict[int, exchange.ExactHolder] | None = None
    exact_build_s: float = 0.0
    encryptions: matching.EncryptionCache | None = None
    replicas: dict[int, ReplicaIndex] = field(default_factory=dict)


def seeds(s: Scenario) -> dict[str, np.random.SeedSequence]:
    names = ("workload", "network", "policy", "attack", "exact")
    return dict(zip(names, np.random.SeedSequence(s.seed).spawn(len(names)), strict=True))


def prepare(s: Scenario) -> Context:
    sd = seeds(s)
    work = workload.build(s, np.random.default_rng(sd["workload"]))
    scheme = SCHEMES[s.scheme]
    index = exchange.GlobalIndex.build(scheme, work.item_hash)
    groups = [g for g in s.nodes for _ in range(g.count)]
    holders = np.array(
        [i for i, g in enumerate(groups) if g.bank_size > 0]
        + ([work.node_names.index(s.adversaries.poisoner)] if s.adversaries.poisoner else [])
    )
    ctx = Context(
        scenario=s,
        work=work,
        index=index,
        costs=exchange.calibrated_costs(),
        holder_nodes=np.unique(holders).astype(np.int64),
        trusted=np.array([g.trusted for g in groups]),
    )
    if s.mode == "exact":
        started = time.time()
        jobs = [(int(h), np.flatnonzero(work.item_holder == h)) for h in ctx.holder_nodes]
        workers = len(os.sched_getaffinity(0))
        if workers > 1 and len(work.item_hash) >= PARALLEL_INDEX_ITEMS:
            # Holders build their blinded indexes independently (as real nodes do), so the
            # simulator builds them on every core; each records its own CPU time.
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork")
            ) as pool:
                built = pool.map(
                    exchange.ExactHolder.build,
                    [scheme] * len(jobs),
                    [mine for _, mine in jobs],
                    [work.item_hash[mine] for _, mine in jobs],
                )
                ctx.exact = {h: holder for (h, _), holder in zip(jobs, built, strict=True)}
        else:
            ctx.exact = {
                h: exchange.ExactHolder.build(scheme, mine, work.item_hash[mine])
                for h, mine in jobs
            }
        ctx.exact_build_s = time.time() - started
    return ctx


def windows_of(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(window ids in order, start offset of each window's uploads)."""
    w = np.floor(ctx.work.up_time / ctx.scenario.workload.query_batch_s).astype(np.int64)
    ids, starts = np.unique(w, return_index=True)
    return ids, np.append(starts, len(w))


def _charge(state: MatchState, node: np.ndarray, step: str, amount: np.ndarray, cost: float):
    np.add.at(state.cpu_s, node, amount * cost)
    state.cpu_by_step[step] = state.cpu_by_step.get(step, 0.0) + float(np.sum(amount) * cost)


def run_window(ctx: Context, state: MatchState, w_index: int, lo: int, hi: int, window_id: int):
    s = ctx.scenario
    work = ctx.work
    scheme = SCHEMES[s.scheme]
    net = Network(s)
    costs = ctx.costs
    rng = np.random.default_rng([s.seed, 1, int(window_id)])
    ups = np.arange(lo, hi)
    t_flush = (window_id + 1) * s.workload.query_batch_s
    answers_at_start = state.answers
    owner, table, key = exchange.fast_probes(scheme, work.up_hash[ups], work.up_float[ups])
    probes_per_upload = np.bincount(owner, minlength=len(ups))
    pair_row, pair_item, pair_tables, pair_first = ctx.index.join_ranked(owner, table, key)
    pair_up = ups[pair_row]

    # --- one exchange per (querier, holder): evaluate round trip
    queriers = np.unique(work.up_node[ups])
    q_grid, h_grid = np.meshgrid(queriers, ctx.holder_nodes, indexing="ij")
    q_of, h_of = q_grid.ravel(), h_grid.ravel()
    keep = q_of != h_of
    q_of, h_of = q_of[keep], h_of[keep]
    n_nodes = len(work.node_names)
    probes_q = np.bincount(work.up_node[ups], weights=probes_per_upload, minlength=n_nodes)
    hashes_q = np.bincount(work.up_node[ups], minlength=n_nodes)
    p = probes_q[q_of]
    # budget (section 8.3): a request over the hour's budget is refused whole and retried at the
    # next hour boundary (retry_after_ms); refused requests consume nothing.
    send = np.full(len(q_of), t_flush) + p * costs["blind"]
    hour = np.floor(send / 3600).astype(np.int64)
    for k in range(len(q_of)):
        while True:
            used = state.eval_hour.get((int(q_of[k]), int(h_of[k]), int(hour[k])), 0)
            if used + p[k] <= s.budget.evaluations_per_hour or used == 0:
                state.eval_hour[(int(q_of[k]), int(h_of[k]), int(hour[k]))] = used + int(p[k])
                break
            hour[k] += 1
            send[k] = hour[k] * 3600.0
            state.budget_delays += 1
    req_size = exchange.ENVELOPE_OVERHEAD + 24 + exchange.ELEMENT * p
    rep_size = exchange.ENVELOPE_OVERHEAD + 24 + exchange.ELEMENT * p + 64
    arrive, tx1 = net.deliver(rng, q_of, h_of, send, req_size)
    evaluated = arrive + p * costs["evaluate"]
    back, tx2 = net.deliver(rng, h_of, q_of, evaluated, rep_size)
    lookup = back + p * costs["finalize"]
    state.events += int(tx1.sum() + tx2.sum())
    state.exchanges += len(q_of)
    np.add.at(state.bytes_sent, q_of, req_size * tx1)
    np.add.at(state.bytes_received, h_of, req_size)
    np.add.at(state.bytes_sent, h_of, rep_size * tx2)
    np.add.at(state.bytes_received, q_of, rep_size)
    _charge(state, q_of, "blind", p, costs["blind"])
    _charge(state, h_of, "evaluate", p, costs["evaluate"])
    _charge(state, q_of, "finalize", p, costs["finalize"])
    np.add.at(state.probes_received, h_of, p)
    np.add.at(state.query_hashes_received, h_of, hashes_q[q_of])

    # --- candidates: pairs whose item's entries had reached the querier's replica at lookup
    slot = np.full((n_nodes, n_nodes), -1, dtype=np.int64)
    slot[q_of, h_of] = np.arange(len(q_of))
    holder = work.item_holder[pair_item]
    pq = work.up_node[pair_up]
    pslot = slot[pq, holder]
    ok = pslot >= 0
    ok &= work.item_added[pair_item] + s.network.replication_s <= np.where(
        ok, lookup[pslot], np.inf
    )
    pair_up, pair_item, pair_tables, pslot = pair_up[ok], pair_item[ok], pair_tables[ok], pslot[ok]
    pair_first = pair_first[ok]

    # --- threshold queries (7.3, 7.4, 8.5, 10.5). Each table that hit a pair is its own
    # candidate (hits do not link), so asked all at once, a true match costs one full answer
    # per table hit. In rounds (the node's way, ``PeerExchange.next_threshold_requests``), each
    # query hash's best candidate (its first probe's hit) is asked first; the rest follow in
    # one more round that names the query by digest and shows the token of the item the first
    # answer confirmed, whose other candidates are answered ``same``.
    rounds = s.threshold_flow == "rounds"
    full_bytes = exchange.answer_bytes(len(s.policy.bands), s.threshold)
    with_c, inverse = np.unique(pslot, return_inverse=True)
    refs = np.bitwise_count(pair_tables).astype(np.int64)  # candidates per pair
    n_items = np.bincount(inverse, weights=refs, minlength=len(with_c)).astype(np.int64)
    # query hashes per exchange, each one's pairs best candidate first
    order = np.lexsort((pair_item, pair_first, pair_up, pslot))
    head = np.ones(len(order), dtype=bool)
    head[1:] = (pslot[order][1:] != pslot[order][:-1]) | (pair_up[order][1:] != pair_up[order][:-1])
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(head) - 1
    first_pair = order[head]  # per query hash (and exchange): the pair its best candidate names
    group_c = inverse[first_pair]  # the exchange of each query hash, as an index into with_c
    n_qhash = np.bincount(group_c, minlength=len(with_c)).astype(np.int64)
    cq, ch = q_of[with_c], h_of[with_c]
    new_uploads = [u for u in np.unique(pair_up).tolist() if u not in state.encrypted]
    state.encrypted.update(new_uploads)
    if new_uploads:
        _charge(
            state,
            work.up_node[np.array(new_uploads)],
            "encrypt",
            np.ones(len(new_uploads)),
            costs["encrypt"],
        )
    d = exchange.distances(work.up_hash[pair_up], work.item_hash[pair_item])

    def round_trip(
        sel: np.ndarray,
        t_send: np.ndarray,
        q_size: np.ndarray,
        holder_cpu: np.ndarray,
        full: np.ndarray,
        same: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One threshold round for the exchanges ``with_c[sel]``: (answered, decided) times."""
        a_size = exchange.ENVELOPE_OVERHEAD + full * full_bytes + same * exchange.SAME_ANSWER
        arrive, tx3 = net.deliver(rng, cq[sel], ch[sel], t_send, q_size)
        answered = arrive + holder_cpu + full * costs["answer"] + same * costs["same"]
        back, tx4 = net.deliver(rng, ch[sel], cq[sel], answered, a_size)
        state.events += int(tx3.sum() + tx4.sum())
        state.threshold_round_trips += int(sel.sum())
        np.add.at(state.bytes_sent, cq[sel], q_size * tx3)
        np.add.at(state.bytes_received, ch[sel], q_size)
        np.add.at(state.bytes_sent, ch[sel], a_size * tx4)
        np.add.at(state.bytes_received, cq[sel], a_size)
        _charge(state, ch[sel], "answer", full, costs["answer"])
        _charge(state, ch[sel], "answer", same, costs["same"])
        _charge(state, cq[sel], "decide", full, costs["decide"])
        state.answers += int(full.sum())
        state.same_answers += int(same.sum())
        return answered, back + full * costs["decide"]

    # the holder verifies each query hash once and keeps it (7.3); its per-query sums are
    # built at its first answer (answer_threshold) and kept with it
    _charge(state, ch, "verify", n_qhash, costs["verify"])
    _charge(state, ch, "answer", n_qhash, costs["sums"])
    everyone = np.ones(len(with_c), dtype=bool)
    t_q = lookup[with_c] + n_qhash * costs["encrypt"]
    per_query = n_qhash * (costs["verify"] + costs["sums"])
    answered_2 = np.full(len(with_c), np.nan)
    decided_2 = np.full(len(with_c), np.nan)
    pair_full = refs.copy()  # full answers about each pair
    if not rounds:
        q_size = (
            exchange.ENVELOPE_OVERHEAD
            + n_qhash * (exchange.QUERY_BYTES + 8)
            + exchange.CANDIDATE * n_items
        )
        answered_1, decided_1 = round_trip(everyone, t_q, q_size, per_query, n_items, 0 * n_items)
        t_answer = answered_1[inverse]
        t_decided = decided_1[inverse]
    else:
        q_size = exchange.ENVELOPE_OVERHEAD + n_qhash * (
            exchange.QUERY_BYTES + 8 + exchange.CANDIDATE
        )
        answered_1, decided_1 = round_trip(everyone, t_q, q_size, per_query, n_qhash, 0 * n_qhash)
        # what each query hash's first answer confirmed (a match: its token is shown next)
        t1 = answered_1[group_c]
        fi = pair_item[first_pair]
        confirmed = (
            (work.item_added[fi] <= t1)
            & (t1 < work.item_removed[fi])
            & (d[first_pair] <= s.threshold)
        )
        rest = np.bincount(group, weights=refs, minlength=len(first_pair)).astype(np.int64) - 1
        same_q = np.where(confirmed & (rest > 0), refs[first_pair] - 1, 0)
        nc = len(with_c)
        q2 = np.bincount(group_c, weights=(rest > 0).astype(float), minlength=nc).astype(np.int64)
        items2 = np.bincount(group_c, weights=rest, minlength=nc).astype(np.int64)
        same2 = np.bincount(group_c, weights=same_q, minlength=nc).astype(np.int64)
        tokens2 = np.bincount(group_c, weights=(confirmed & (rest > 0)).astype(float), minlength=nc)
        sel = q2 > 0
        q_size2 = (
            exchange.ENVELOPE_OVERHEAD
            + q2[sel] * (exchange.QUERY_REF + 8)
            + exchange.CANDIDATE * items2[sel]
            + exchange.TOKEN * tokens2[sel].astype(np.int64)
        )
        a2, d2 = round_trip(
            sel, decided_1[sel], q_size2, 0.0 * q2[sel], items2[sel] - same2[sel], same2[sel]
        )
        answered_2[sel], decided_2[sel] = a2, d2
        pair_full[first_pair[confirmed]] = 1  # its other candidates: ``same``
        is_first = np.zeros(len(pair_up), dtype=bool)
        is_first[first_pair] = True
        t_answer = np.where(is_first, answered_1[inverse], answered_2[inverse])
        t_decided = np.where(is_first, decided_1[inverse], decided_2[inverse])

    active = (work.item_added[pair_item] <= t_answer) & (t_answer < work.item_removed[pair_item])
    band = np.where(active, exchange.band_of(d, s.policy.bands), -1)
    matched = band >= 0
    state.answers_on_matches += int(pair_full[matched].sum())
    state.cand.append(
        np.stack([pair_up, pair_item, pair_tables, np.round(t_answer * 1000).astype(np.int64)], 1)
    )
    state.match.append(
        np.stack(
            [
                pair_up[matched],
                pair_item[matched],
                band[matched],
                np.round(t_decided[matched] * 1000).astype(np.int64),
            ],
            1,
        )
    )

    if ctx.exact is not None:
        answer_time = np.stack([lookup, lookup], axis=1)
        answer_time[with_c, 0] = answered_1
        answer_time[with_c, 1] = np.where(np.isnan(answered_2), answered_1, answered_2)
        state.exact_answers_modelled += state.answers - answers_at_start
        _exact_window(ctx, state, ups, q_of, h_of, lookup, answer_time, pair_up, pair_item, band)


def _exact_window(
    ctx: Context,
    state: MatchState,
    ups: np.ndarray,
    q_of: np.ndarray,
    h_of: np.ndarray,
    lookup: np.ndarray,
    answer_time: np.ndarray,
    pair_up: np.ndarray,
    pair_item: np.ndarray,
    band: np.ndarray,
) -> None:
    """Run the real protocol for this window, at the times the network model gave, and record
    any disagreement with the ideal model (there should be none: tests/test_sim.py)."""
    s = ctx.scenario
    work = ctx.work
    scheme = SCHEMES[s.scheme]
    assert ctx.exact is not None
    if ctx.encryptions is None:
        ctx.encryptions = matching.EncryptionCache(os.urandom)
    got_c: set[tuple[int, int]] = set()
    got_m: set[tuple[int, int, int]] = set()
    for k in range(len(q_of)):
        q, h = int(q_of[k]), int(h_of[k])
        mine = ups[work.up_node[ups] == q]
        if h not in ctx.replicas:
            ctx.replicas[h] = ctx.exact[h].replica(scheme)
        t_lookup, t_answer = float(lookup[k]), answer_time[k].tolist()

        def replicated(i: int, t: float = t_lookup) -> bool:
            return bool(work.item_added[i] + s.network.replication_s <= t)

        def active(i: int, r: int, t: list[float] = t_answer) -> bool:
            return bool(work.item_added[i] <= t[min(r, 1)] < work.item_removed[i])

        res = exchange.exact_exchange(
            scheme,
            ctx.exact[h],
            ctx.replicas[h],
            mine,
            work.up_hash[mine],
            work.up_float[mine],
            replicated=replicated,
            active=active,
            item_hash=lambda i: work.item_hash[i].tobytes(),
            bands=tuple(s.policy.bands),
            encryptions=ctx.encryptions,
            cpu=state.cpu_measured,
            rounds=s.threshold_flow == "rounds",
        )
        state.exact_answers += res.answers
        state.exact_same_answers += res.same
        got_c.update(res.candidates)
        got_m.update(res.matches)
    want_c = set(zip(pair_up.tolist(), pair_item.tolist(), strict=True))
    m = band >= 0
    want_m = set(zip(pair_up[m].tolist(), pair_item[m].tolist(), band[m].tolist(), strict=True))
    state.exact_candidates += len(got_c)
    state.exact_matches += len(got_m)
    if got_c != want_c or got_m != want_m:
        state.exact_disagreements.append(
            {
                "candidates_only_exact": len(got_c - want_c),
                "candidates_only_modelled": len(want_c - got_c),
                "matches_only_exact": len(got_m - want_m),
                "matches_only_modelled": len(want_m - got_m),
            }
        )


def new_state(ctx: Context) -> MatchState:
    n = len(ctx.work.node_names)
    return MatchState(
        bytes_sent=np.zeros(n),
        bytes_received=np.zeros(n),
        cpu_s=np.zeros(n),
        probes_received=np.zeros(n),
        query_hashes_received=np.zeros(n),
    )


def save_checkpoint(out: Path, state: MatchState, fingerprint: str) -> None:
    tmp = out / (CHECKPOINT + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(
            {"version": CHECKPOINT_VERSION, "scenario": fingerprint, "state": state},
            f,
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out / CHECKPOINT)


def load_checkpoint(out: Path, fingerprint: str) -> MatchState | None:
    path = out / CHECKPOINT
    if not path.exists():
        return None
    with open(path, "rb") as f:
        data = pickle.load(f)  # our own file, written by save_checkpoint
    if data.get("version") != CHECKPOINT_VERSION or data.get("scenario") != fingerprint:
        raise ValueError(f"{path} belongs to another scenario or version; remove it to start over")
    return data["state"]


class Progress:
    """A one-line progress bar with an estimate of the time left, on stderr."""

    def __init__(self, total: int, enabled: bool, label: str = "sim") -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.started = time.time()
        self.first: int | None = None
        self.last_draw = 0.0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.first is None:
            self.first = done
        now = time.time()
        if now - self.last_draw < 0.5 and done < self.total:
            return
        self.last_draw = now
        rate = (done - self.first) / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        width = 30
        filled = int(width * done / max(self.total, 1))
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} windows"
            f"  {now - self.started:.0f}s elapsed, ~{eta:.0f}s left "
        )
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_matching(
    ctx: Context,
    out: Path | None,
    fingerprint: str,
    resume: bool = False,
    progress: bool = False,
    stop_after: int | None = None,
    on_window: Callable[[int], None] | None = None,
) -> MatchState:
    ids, starts = windows_of(ctx)
    state = (load_checkpoint(out, fingerprint) if (resume and out) else None) or new_state(ctx)
    bar = Progress(len(ids), progress)
    for done_here, w in enumerate(range(state.next_window, len(ids)), start=1):
        run_window(ctx, state, w, int(starts[w]), int(starts[w + 1]), int(ids[w]))
        state.next_window = w + 1
        bar.update(w + 1)
        if on_window:
            on_window(w)
        if out and (state.next_window % ctx.scenario.checkpoint_every == 0):
            save_checkpoint(out, state, fingerprint)
        if stop_after is not None and done_here >= stop_after:
            if out:
                save_checkpoint(out, state, fingerprint)
            raise Interrupted(f"stopped after {state.next_window} of {len(ids)} windows")
    bar.update(len(ids))
    return state
