"""Run a scenario end to end: workload, matching, decisions, adversaries, metrics, outputs.

``results.json`` holds only figures that follow from the seed (same seed, same file, byte for
byte, in one checkout and environment) and their provenance (the resolved scenario, the code
version and the environment: :mod:`.provenance`); wall-clock and measured CPU figures go to
``timing.json``. In exact mode the ciphertexts
and blinds come from libsodium's randomness, so the determinism claim is about matches,
decisions and every metric derived from them, not about message bytes (which we never record).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blindmatch.protocol.lsh import SCHEMES

from . import adversary, engine, policy, provenance, workload
from .scenario import Scenario
from .workload import EDITED, NCII, ORIGINAL, POISON, POPULAR, UNIQUE, UPLOAD_KINDS


@dataclass
class RunResult:
    results: dict[str, Any]
    timing: dict[str, Any]
    out: Path | None
    # the prepared run (workload, indexes, exact holders) and its matching state, for a caller
    # that matches the same workload again another way (bench/sim.py: rounds vs all at once)
    context: engine.Context | None = None
    state: engine.MatchState | None = None


def fingerprint(s: Scenario) -> str:
    return hashlib.sha256(json.dumps(asdict(s), sort_keys=True, default=str).encode()).hexdigest()


def _q(v: np.ndarray, qs: tuple[float, ...] = (50, 90)) -> dict[str, float | None]:
    if len(v) == 0:
        return {f"p{int(q)}": None for q in qs}
    return {f"p{int(q)}": round(float(np.percentile(v, q)), 4) for q in qs}


def catchable(work: workload.Workload) -> tuple[np.ndarray, np.ndarray]:
    """For each NCII upload: is its content banked by another node at upload time, and the
    smallest plaintext PDQ distance to such a banked copy (the plaintext-PDQ baseline)."""
    ups = np.flatnonzero(work.up_kind <= EDITED)
    ncii_items = np.flatnonzero(work.item_kind == NCII)
    order = ncii_items[np.argsort(work.item_content[ncii_items], kind="stable")]
    contents = work.item_content[order]
    lo = np.searchsorted(contents, work.up_content[ups], "left")
    hi = np.searchsorted(contents, work.up_content[ups], "right")
    ok = np.zeros(len(work.up_time), dtype=bool)
    best = np.full(len(work.up_time), 999)
    for u, a, b in zip(ups.tolist(), lo.tolist(), hi.tolist(), strict=True):
        items = order[a:b]
        t = work.up_time[u]
        live = items[
            (work.item_holder[items] != work.up_node[u])
            & (work.item_added[items] <= t)
            & (t < work.item_removed[items])
        ]
        if len(live):
            ok[u] = True
            d = np.bitwise_count(work.item_hash[live] ^ work.up_hash[u]).sum(axis=1)
            best[u] = int(d.min())
    return ok, best


def metrics(
    s: Scenario, ctx: engine.Context, st: engine.MatchState, dec: policy.Decisions
) -> dict[str, Any]:
    work = ctx.work
    scheme = SCHEMES[s.scheme]
    T = s.threshold
    cand = np.concatenate(st.cand) if st.cand else np.zeros((0, 4), np.int64)
    match = np.concatenate(st.match) if st.match else np.zeros((0, 4), np.int64)
    n_up = len(work.up_time)
    mu, mi = match[:, 0], match[:, 1]
    true_m = (
        (work.item_kind[mi] == NCII)
        & (work.item_content[mi] == work.up_content[mu])
        & (work.up_kind[mu] <= EDITED)
    )
    matched_true = np.zeros(n_up, dtype=bool)
    matched_true[mu[true_m]] = True
    ok, plain_d = catchable(work)
    acted = np.zeros(n_up, dtype=bool)
    act_time = np.full(n_up, np.nan)
    for u, a in dec.actions.items():
        if a.get("time") is not None and not a["wrongful"]:
            acted[u] = True
            act_time[u] = a["time"] / 1000
    # recall by upload kind / edit type
    rows = []

    def row(label: str, sel: np.ndarray) -> None:
        sel = sel & ok
        n = int(sel.sum())
        rows.append(
            {
                "uploads": label,
                "catchable": n,
                "plaintext_pdq_recall": round(float((plain_d[sel] <= T).mean()), 4) if n else None,
                "protocol_recall": round(float(matched_true[sel].mean()), 4) if n else None,
                "taken_down": round(float(acted[sel].mean()), 4) if n else None,
            }
        )

    row("original", work.up_kind == ORIGINAL)
    row("edited (all)", work.up_kind == EDITED)
    for e, name in enumerate(work.edit_list):
        if (work.up_edit == e).any():
            row(f"edited: {name}", work.up_edit == e)
    # federation-wide time from first upload of a content to its first takedown
    first_up: dict[int, float] = {}
    first_down: dict[int, float] = {}
    for u in np.flatnonzero(ok).tolist():
        c = int(work.up_content[u])
        first_up[c] = min(first_up.get(c, np.inf), float(work.up_time[u]))
        if acted[u]:
            first_down[c] = min(first_down.get(c, np.inf), float(act_time[u]))
    delays = np.array([first_down[c] - first_up[c] for c in first_down]) / 3600
    per_upload = (act_time[acted] - work.up_time[acted]) / 3600
    # wrongful takedowns
    wrong = [(u, a) for u, a in dec.actions.items() if a.get("time") is not None and a["wrongful"]]
    cause = {"poisoned hash": 0, "reviewer error": 0, "false match": 0}
    rev_hours, standing_end = [], 0
    by_feedback = 0
    for _u, a in wrong:
        item = a["item"]
        if work.item_kind[item] == POISON:
            cause["poisoned hash"] += 1
        elif not a["auto"]:
            cause["reviewer error"] += 1
        else:
            cause["false match"] += 1
        if a["reversed"] is not None:
            rev_hours.append((a["reversed"] - a["time"]) / 3_600_000)
            by_feedback += bool(a.get("reversed_by_feedback"))
        else:
            standing_end += 1
    false_matches = {
        k: int(((~true_m) & (work.up_kind[mu] == kind)).sum())
        for k, kind in (
            ("original", ORIGINAL),
            ("edited", EDITED),
            ("popular", POPULAR),
            ("unique", UNIQUE),
        )
    }
    days = s.days
    n_nodes = len(work.node_names)
    bytes_total = float(st.bytes_sent.sum())
    cpu_total = float(st.cpu_s.sum())
    holders = ctx.holder_nodes
    index_cpu = float(len(work.item_hash) * scheme.tables * ctx.costs["index_evaluate"])
    out: dict[str, Any] = {
        "scenario": s.name,
        "seed": s.seed,
        "mode": s.mode,
        "federation": {
            "nodes": n_nodes,
            "holders": len(holders),
            "hashes_banked": len(work.item_hash),
            "uploads": n_up,
            "uploads_by_kind": {
                k: int((work.up_kind == i).sum()) for i, k in enumerate(UPLOAD_KINDS)
            },
            "days": days,
            "withdrawals": int(np.isfinite(work.item_removed).sum()),
            "submissions_after_start": int((work.item_added > 0).sum()),
        },
        "matching": {
            "exchanges": st.exchanges,
            "simulated_events": st.events,
            "candidates": len(cand),
            # how the querier asks (spec 8.5, 10.5): in rounds with tokens, or all at once
            "threshold_flow": s.threshold_flow,
            # every table that hit a pair is a candidate the holder answers (8.5: hits do not
            # link): in full, or ``same`` when the querier shows the item's token
            "threshold_candidates": int(np.bitwise_count(cand[:, 2]).sum()),
            "threshold_answers": st.answers,
            "same_answers": st.same_answers,
            "threshold_round_trips": st.threshold_round_trips,
            "threshold_answers_per_match": round(st.answers_on_matches / len(match), 3)
            if len(match)
            else None,
            "confirmed_matches": len(match),
            "true_matches": int(true_m.sum()),
            "false_matches_by_upload_kind": false_matches,
            "false_matches_on_poisoned_hashes": int((work.item_kind[mi] == POISON).sum()),
            "budget_refusals": st.budget_delays,
        },
        "recall": rows,
        "takedown": {
            "contents_catchable": len(first_up),
            "contents_taken_down": len(first_down),
            "first_upload_to_takedown_hours": _q(delays, (10, 50, 90)),
            "upload_to_takedown_hours": _q(per_upload, (50, 90)),
            "auto_actions": sum(1 for a in dec.actions.values() if a.get("auto")),
            "reviews": dec.reviews,
        },
        "wrongful_takedowns": {
            "total": len(wrong),
            "by_cause": cause,
            "reversed": len(rev_hours),
            "reversed_by_travelling_feedback": by_feedback,
            "still_standing_at_end": standing_end,
            "hours_to_reversal": _q(np.array(rev_hours), (50, 90)),
            "items_suspended_by_disputes": len(dec.suspended),
            "matches_suppressed_after_suspension": dec.suppressed_matches,
            "item_quarantines": len(dec.quarantined),
            "disputes_sent": dec.disputes_sent,
            "disputes_withheld": dec.disputes_withheld,
            "feedback_forwarded": dec.feedback_forwarded,
            "replayed_feedback_rejected": dec.replays_rejected,
        },
        "cost": {
            "bytes_per_query": round(bytes_total / max(n_up, 1), 1),
            "bytes_per_query_per_peer": round(bytes_total / max(st.exchanges, 1), 1)
            if st.exchanges
            else None,
            "bytes_per_node_day": _q(st.bytes_sent / days, (50, 100)),
            "cpu_s_per_query": round(cpu_total / max(n_up, 1), 5),
            "cpu_s_per_node_day": _q(st.cpu_s / days, (50, 100)),
            "cpu_s_by_step": {k: round(v, 4) for k, v in sorted(st.cpu_by_step.items())},
            "index_build_cpu_s": round(index_cpu, 2),
            "cost_model": "modelled CPU charges from bench/results/crypto.json (per-step medians)",
        },
    }
    # curious holders
    leak = {}
    if len(cand):
        for name in s.adversaries.curious_holders:
            h = work.node_names.index(name)
            mine = cand[work.item_holder[cand[:, 1]] == h]
            pos = adversary.hit_positions(scheme, mine[:, 2]) if len(mine) else np.zeros(0)
            peers = int((np.bincount(work.up_node, minlength=n_nodes) > 0).sum()) - (
                1 if (work.up_node == h).any() else 0
            )
            leak[name] = adversary.curious_holder(
                scheme,
                work.up_hash,
                work.item_hash,
                mine,
                pos,
                float(st.query_hashes_received[h]),
                peers,
                days,
            )
            leak[name]["probe_elements_seen"] = float(st.probes_received[h])
    out["leakage"] = leak
    if s.mode == "exact":
        out["exact_vs_modelled"] = {
            "candidates": st.exact_candidates,
            "matches": st.exact_matches,
            # full answers the real code gave vs the model's count (they differ only when one
            # probe's bucket holds two of a holder's items: the replica's order picks the first)
            "threshold_answers": st.exact_answers,
            "threshold_answers_modelled": st.exact_answers_modelled,
            "same_answers": st.exact_same_answers,
            "windows_disagreeing": len(st.exact_disagreements),
            "disagreements": st.exact_disagreements[:5],
        }
    return out


def attacks(s: Scenario, ctx: engine.Context) -> dict[str, Any]:
    p = s.adversaries.prober
    if p is None:
        return {}
    work = ctx.work
    h = work.node_names.index(p.target)
    hashes = work.item_hash[work.item_holder == h]
    rng = np.random.default_rng(engine.seeds(s)["attack"])
    runs = [
        adversary.probing_attack(SCHEMES[s.scheme], hashes, s.budget, n, p.days, s.threshold, rng)
        for n in p.identities
    ]
    return {"target": p.target, "runs": runs}


def run(
    s: Scenario,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    stop_after: int | None = None,
    write: bool = True,
) -> RunResult:
    """Run a scenario. ``stop_after`` stops (checkpointed) after that many windows, raising
    :class:`engine.Interrupted`, as an interruption would; ``resume`` continues from the
    checkpoint in ``out``."""
    out_dir = Path(out) if out is not None else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ctx = engine.prepare(s)
    t_prep = time.time() - t0
    t1 = time.time()
    st = engine.run_matching(
        ctx, out_dir, fingerprint(s), resume=resume, progress=progress, stop_after=stop_after
    )
    t_match = time.time() - t1
    t2 = time.time()
    match = np.concatenate(st.match) if st.match else np.zeros((0, 4), np.int64)
    dec = policy.decide(
        s, ctx.work, match, ctx.trusted, np.random.default_rng(engine.seeds(s)["policy"])
    )
    res = metrics(s, ctx, st, dec)
    res["attacks"] = attacks(s, ctx)
    if s.uploaders is not None:
        from . import uploaders

        res["uploaders"] = uploaders.evaluate(s, ctx.work, match, ctx.trusted)
    res["cost"]["charged_cpu_s_per_step"] = dict(sorted(ctx.costs.items()))
    res["provenance"] = provenance.record(s)
    t_after = time.time() - t2
    timing: dict[str, Any] = {
        "prepare_s": round(t_prep, 2),
        "matching_s": round(t_match, 2),
        "decisions_metrics_attacks_s": round(t_after, 2),
        "total_s": round(time.time() - t0, 2),
        "simulated_events": st.events,
        "events_per_s": round(st.events / max(t_match, 1e-9), 1),
        "exact_index_build_s": round(ctx.exact_build_s, 2),
    }
    if s.mode == "exact":
        timing["cpu_measured_s_by_step"] = {
            k: round(v, 4) for k, v in sorted(st.cpu_measured.items())
        }
        measured_index = sum(h.cpu.get("index_evaluate", 0.0) for h in (ctx.exact or {}).values())
        timing["cpu_measured_index_build_s"] = round(measured_index, 3)
    result = RunResult(res, timing, out_dir, ctx, st)
    if out_dir and write:
        from . import report

        report.write(s, result.results, result.timing, out_dir, ctx, dec)
        (out_dir / engine.CHECKPOINT).unlink(missing_ok=True)
    return result
