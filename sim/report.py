"""Outputs of a run: results.json (deterministic), timing.json, PNG plots and report.md."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blindmatch.protocol.key_lifetime import LIFETIME_CAP

from .figures import figure_style, save_figure

if TYPE_CHECKING:
    from .engine import Context
    from .policy import Decisions
    from .scenario import Scenario

SPEC_NOTE = (
    "The decision model mirrors the node's policy semantics as specified (auto-action for close "
    "matches from trusted provenance, review otherwise, disputes reverse and travel to every "
    "node that acted on the item, suspension after repeated disputes, quarantine of an item "
    "whose match rate jumps); it is not the node's code, which is being built separately."
)


def write(
    s: Scenario,
    results: dict[str, Any],
    timing: dict[str, Any],
    out: Path,
    ctx: Context,
    dec: Decisions,
) -> None:
    (out / "results.json").write_text(dumps(results))
    (out / "timing.json").write_text(json.dumps(timing, indent=1, sort_keys=True) + "\n")
    tables = write_csv(results, out)
    plots = _plots(s, results, ctx, dec, out)
    (out / "report.md").write_text(render(s, results, timing, plots, tables))


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every scalar of a results tree as (dotted path, value); list rows of the recall table
    are keyed by their ``uploads`` label, other lists by index."""
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for k in sorted(value):
            rows += _flat(value[k], f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(value, list):
        rows = []
        for i, v in enumerate(value):
            key = v.get("uploads", v.get("identities", i)) if isinstance(v, dict) else i
            rows += _flat(v, f"{prefix}[{key}]")
        return rows
    return [(prefix, value)]


def flat_metrics(results: dict) -> list[tuple[str, Any]]:
    """The numeric scalars of a run (what a table or a sweep aggregates)."""
    return [
        (k, v)
        for k, v in _flat({x: y for x, y in results.items() if x != "provenance"})
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    import csv

    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows([["" if v is None else v for v in r] for r in rows])


def write_csv(res: dict, out: Path) -> list[str]:
    """CSV tables beside results.json: every metric, and the report's tables."""
    made = ["metrics.csv"]
    _csv(out / "metrics.csv", ["metric", "value"], [[k, v] for k, v in flat_metrics(res)])
    cols = ["uploads", "catchable", "plaintext_pdq_recall", "protocol_recall", "taken_down"]
    _csv(out / "recall.csv", cols, [[r[c] for c in cols] for r in res["recall"]])
    made.append("recall.csv")
    if res.get("leakage"):
        keys = sorted({k for x in res["leakage"].values() for k in x})
        _csv(
            out / "leakage.csv",
            ["holder", *keys],
            [[name, *(x.get(k) for k in keys)] for name, x in res["leakage"].items()],
        )
        made.append("leakage.csv")
    runs = (res.get("attacks") or {}).get("runs", [])
    if runs:
        keys = sorted({k for x in runs for k in x})
        _csv(out / "attack.csv", keys, [[x.get(k) for k in keys] for x in runs])
        made.append("attack.csv")
    return made


def _plots(s: Scenario, res: dict, ctx: Context, dec: Decisions, out: Path) -> list[str]:
    figure_style()
    import matplotlib.pyplot as plt

    made: list[str] = []
    rows = [x for x in res["recall"] if x["catchable"]]
    if rows:
        fig, ax = plt.subplots(figsize=(5.5, max(2.2, 0.2 * len(rows) + 0.9)))
        y = np.arange(len(rows))
        ax.barh(y - 0.2, [x["plaintext_pdq_recall"] for x in rows], 0.4, label="plaintext PDQ <= T")
        protocol = [x["protocol_recall"] for x in rows]
        lo_hi = [wilson(x["protocol_recall"], x["catchable"]) for x in rows]
        # Clipped at 0: the recall is rounded to 4 places, the interval is not, so a bound can
        # sit a hair on the wrong side of it (matplotlib refuses a negative error bar).
        err = np.clip(
            np.array(
                [
                    [p - lo for p, (lo, _) in zip(protocol, lo_hi, strict=True)],
                    [hi - p for p, (_, hi) in zip(protocol, lo_hi, strict=True)],
                ]
            ),
            0,
            None,
        )
        ax.barh(
            y + 0.2,
            protocol,
            0.4,
            xerr=err,
            error_kw={"elinewidth": 0.6, "capsize": 1.5},
            label="protocol (LSH + test), 95% Wilson interval",
        )
        ax.set_yticks(y, [f"{x['uploads']} (n={x['catchable']:,})" for x in rows], fontsize=6)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("recall (share of n catchable uploads)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        made += save_figure(fig, out, "recall")
    work = ctx.work
    run_end_h = s.days * 24
    times = sorted(
        (a["time"] - work.up_time[u] * 1000) / 3.6e6
        for u, a in dec.actions.items()
        if a.get("time") is not None and not a["wrongful"]
    )
    wrong = [
        (a["time"], a["reversed"])
        for a in dec.actions.values()
        if a.get("time") is not None and a["wrongful"]
    ]
    if times or wrong:
        fig, axes = plt.subplots(1, 2, figsize=(6.5, 2.4))
        if times:
            axes[0].plot(times, np.arange(1, len(times) + 1) / len(times))
            axes[0].set_xscale("log")
        axes[0].set_xlabel("hours from upload to takedown")
        axes[0].set_ylabel("share of takedowns")
        axes[0].set_title(f"n = {len(times):,} takedowns")
        # The run ends at s.days: nothing after it was simulated, so the axis stops there.
        grid = np.linspace(0, s.days * 86_400_000, 200)
        standing = [sum(1 for t, rev in wrong if t <= g and (rev is None or rev > g)) for g in grid]
        axes[1].plot(grid / 3.6e6, standing)
        axes[1].set_xlim(0, run_end_h)
        axes[1].set_ylim(bottom=0)
        axes[1].set_xlabel("simulated hours")
        axes[1].set_ylabel("wrongful takedowns standing")
        axes[1].set_title(f"n = {len(wrong):,} wrongful takedowns")
        fig.tight_layout()
        made += save_figure(fig, out, "takedowns")
    runs = res.get("attacks", {}).get("runs", [])
    if runs:
        fig, ax = plt.subplots(figsize=(3.5, 2.6))
        ids = [x["identities"] for x in runs]
        ax.plot(ids, [x["days_to_first_hash"] for x in runs], "o-", label="measured attack")
        ax.plot(
            ids,
            [x["spec_days_to_enumerate_one_table"] for x in runs],
            "s--",
            label="one table enumerated (spec 8.3)",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("attacker identities (budgets)")
        ax.set_ylabel("days")
        ax.set_title(f"one attack per point, holder of n = {runs[0]['holder_hashes']:,} hashes")
        ax.legend()
        fig.tight_layout()
        made += save_figure(fig, out, "attack")
    from . import uploaders

    return made + uploaders.plots(res, out)


def wilson(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion ``p`` observed on ``n`` trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def _figure(plots: list[str], stem: str) -> list[str]:
    """Markdown for a figure: the PNG inline, the SVG linked."""
    if f"{stem}.png" not in plots:
        return []
    return [f"![{stem}]({stem}.png) ([SVG]({stem}.svg))"]


def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == float("inf"):
            return "never"
        return f"{x:.{nd}g}" if abs(x) < 1e5 else f"{x:.3e}"
    return str(x)


def render(
    s: Scenario, res: dict, timing: dict, plots: list[str], tables: Sequence[str] = ()
) -> str:
    fed, m, td, w, c = (
        res[k] for k in ("federation", "matching", "takedown", "wrongful_takedowns", "cost")
    )
    lines = [
        f"# Simulation: {s.name}",
        "",
        s.description.strip(),
        "",
        f"Mode **{s.mode}**, seed {s.seed}, {fed['days']} simulated days, {fed['nodes']} nodes "
        f"({fed['holders']} holding {fed['hashes_banked']:,} hashes), {fed['uploads']:,} "
        f"uploads ({', '.join(f'{k} {v:,}' for k, v in fed['uploads_by_kind'].items())}), "
        f"{fed['submissions_after_start']} survivor submissions and {fed['withdrawals']} "
        "withdrawals during the run.",
        "",
        f"Run: {timing['total_s']} s wall ({timing['matching_s']} s matching), "
        f"{m['simulated_events']:,} simulated message events, "
        f"{timing['events_per_s']:,} events/s.",
        "",
        *(
            [
                f"Threshold test asked {m['threshold_flow']} (spec 8.5, 10.5): "
                f"{m['threshold_candidates']:,} candidates (table hits) of {m['candidates']:,} "
                f"candidate pairs got {m['threshold_answers']:,} full answers and "
                f"{m['same_answers']:,} `same` answers in {m['threshold_round_trips']:,} "
                f"round trips ({_f(m['threshold_answers_per_match'])} full answers per match).",
                "",
            ]
            if "threshold_flow" in m
            else []
        ),
        "## Recall by upload kind",
        "",
        "Catchable: an upload of NCII banked by another node when uploaded. Plaintext PDQ: the "
        "nearest banked copy is within T (the rule the protocol must match); protocol: "
        "confirmed by the private test after LSH candidates; taken down: acted on and not a "
        "wrongful action.",
        "",
        "| uploads | catchable | plaintext PDQ | protocol | taken down |",
        "|---|---|---|---|---|",
    ]
    for r in res["recall"]:
        lines.append(
            f"| {r['uploads']} | {r['catchable']} | {_f(r['plaintext_pdq_recall'])} | "
            f"{_f(r['protocol_recall'])} | {_f(r['taken_down'])} |"
        )
    lines += ["", *_figure(plots, "recall")]
    lines += [
        "",
        "## Takedowns and wrongful takedowns",
        "",
        f"- Contents caught: {td['contents_taken_down']} of {td['contents_catchable']} "
        "catchable; time from a content's first upload anywhere to its first takedown "
        "(hours, p10/p50/p90): "
        f"{', '.join(_f(v) for v in td['first_upload_to_takedown_hours'].values())}.",
        f"- Upload to takedown (hours, p50/p90): "
        f"{', '.join(_f(v) for v in td['upload_to_takedown_hours'].values())}; "
        f"{td['auto_actions']} automatic actions, {td['reviews']} reviews.",
        f"- Confirmed matches {m['confirmed_matches']:,} ({m['true_matches']:,} true); "
        f"false matches by upload kind {m['false_matches_by_upload_kind']}, "
        f"{m['false_matches_on_poisoned_hashes']} on poisoned hashes.",
        f"- Wrongful takedowns: {w['total']} ({w['by_cause']}); reversed {w['reversed']} "
        f"({w['reversed_by_travelling_feedback']} by feedback from another node), "
        f"{w['still_standing_at_end']} still standing at the end; hours to reversal "
        f"(p50/p90) {', '.join(_f(v) for v in w['hours_to_reversal'].values())}.",
        f"- Items suspended after disputes: {w['items_suspended_by_disputes']} (then "
        f"{w['matches_suppressed_after_suspension']} matches suppressed); quarantines "
        f"{w['item_quarantines']}; disputes sent {w['disputes_sent']}, withheld "
        f"{w['disputes_withheld']}, replayed records rejected {w['replayed_feedback_rejected']}.",
        "",
        SPEC_NOTE,
        "",
    ]
    lines += _figure(plots, "takedowns")
    lines += [
        "",
        "## Cost",
        "",
        f"- Bytes per query (one upload sent to every holder): {c['bytes_per_query']:,}; per "
        f"query and peer {c['bytes_per_query_per_peer']}; per node-day (p50/max) "
        f"{', '.join(_f(v) for v in c['bytes_per_node_day'].values())}.",
        f"- CPU seconds per query {c['cpu_s_per_query']}; per node-day (p50/max) "
        f"{', '.join(_f(v) for v in c['cpu_s_per_node_day'].values())}; building the blinded "
        f"indexes {c['index_build_cpu_s']} s. By step: {c['cpu_s_by_step']}.",
        f"- {c['cost_model']}.",
        f"- Exchanges {m['exchanges']:,}; budget refusals {m['budget_refusals']}.",
        "",
    ]
    findings = []
    if res.get("leakage"):
        lines += [
            "## Leakage to a curious holder",
            "",
            "Measured: the holder's best inference of each query hash from a threshold query "
            "(bitwise majority of the candidate items' hashes), scored against the truth as "
            "256 x (1 - H2(bit error)) bits. Spec bound (protocol.md 8.1): the bits sampled by the "
            "LSH tables that hit.",
            "",
            "| holder | threshold queries | query hashes seen | bit error of guess | bits / "
            "threshold query | spec bound / threshold query | share over own bound | bits / "
            "query hash seen | bits / peer-day |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, x in res["leakage"].items():
            if not x.get("threshold_queries"):
                lines.append(
                    f"| {name} | 0 | {_f(x['query_hashes_seen'])} | - | 0 | - | - | 0 | 0 |"
                )
                continue
            lines.append(
                f"| {name} | {x['threshold_queries']} | {_f(x['query_hashes_seen'])} | "
                f"{_f(x['guess_bit_error'])} | {_f(x['bits_per_threshold_query'])} | "
                f"{_f(x['spec_bound_bits_per_threshold_query'])} | "
                f"{_f(x['share_of_threshold_queries_over_own_bound'])} | "
                f"{_f(x['bits_per_query_hash_seen'])} | {_f(x['bits_per_peer_day'])} |"
            )
            over = x["share_of_threshold_queries_over_own_bound"]
            if x["exceeds_spec_bound"] or over > 0.05:
                on_average = (
                    "exceeds it on average"
                    if x["exceeds_spec_bound"]
                    else "is within it on average"
                )
                findings.append(
                    f"**Leakage exceeds the spec's stated bound for some queries** at {name}: "
                    f"its best inference carries {_f(x['bits_per_threshold_query'])} bits per "
                    f"threshold query against a bound of "
                    f"{_f(x['spec_bound_bits_per_threshold_query'])} (the sampled bits of the "
                    f"tables that hit), so it {on_average}; but for {_f(100 * over)}% of "
                    "threshold queries (the near-duplicates) the guess's own information, "
                    "256 x (1 - H2(d/256)) for a guess at distance d, exceeds that query's own "
                    "bound. The bound counts only what a shared bucket proves; the holder also "
                    "knows that candidates are mostly near-duplicates of its item, so it learns "
                    "the query is within about T of that item (and that this querier saw that "
                    "picture at that time). Proposed bound for the spec: per threshold query, "
                    "256 x (1 - H2(d/256)) bits with d the query's distance to the nearest "
                    "candidate (for a near-duplicate: nearly the whole hash, which the holder "
                    "already has), plus which of its items and when; the guarantee is that the "
                    "holder learns nothing beyond its own items, not a small bit count."
                )
        lines += [
            "",
            "Also learned, as the spec says: from each `oprf.evaluate` the element count (so the "
            "number of query hashes a peer matched in a batch, i.e. its upload volume) and the "
            "time.",
            "",
        ]
    att = res.get("attacks") or {}
    if att.get("runs"):
        lines += [
            f"## Probing attacker against {att['target']}",
            "",
            "Random enumeration of bucket keys over all tables within the evaluation budget; "
            "linking hits by item reference; then random fills of the free bits against the "
            "threshold oracle and a boundary walk (one oracle call per free bit).",
            "",
            "| identities | evaluations/day | days to first hash | evaluations spent | free bits "
            "left | oracle calls (measured) | exact | hashes within run | spec: days per "
            "table |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for x in att["runs"]:
            lines.append(
                f"| {x['identities']} | {x['evaluations_per_day']:,} | "
                f"{_f(x['days_to_first_hash'])} | {_f(x['evaluations_to_first_hash'])} | "
                f"{x['free_bits_at_recovery']} | {x.get('oracle_calls_measured', '-')} | "
                f"{x.get('recovered_exactly', '-')} | {x['hashes_recovered_within_days']} of "
                f"{x['holder_hashes']:,} in {_f(x['days_simulated'])} d | "
                f"{_f(x['spec_days_to_enumerate_one_table'])} |"
            )
        lines += ["", *_figure(plots, "attack"), ""]
        one = att["runs"][0]
        faster = [
            x
            for x in att["runs"]
            if x["days_to_first_hash"] < x["spec_days_to_enumerate_one_table"]
        ]
        under_cap = [x for x in att["runs"] if x["evaluations_to_first_hash"] < LIFETIME_CAP]
        findings.append(
            "**This prober links hits by item reference, as the protocol did before issue 13** "
            "(per-table references now prevent it; `bench/results/extraction.md` models the "
            "attacker against today's protocol). 8.3 says "
            "the budget protects against enumerating a table (2^k evaluations: "
            f"{_f(one['spec_days_to_enumerate_one_table'])} days for one identity), and 8.2 caps "
            f"a key's lifetime evaluations at 2^{LIFETIME_CAP.bit_length() - 1}. Measured here: "
            "the first of "
            f"{one['holder_hashes']:,} hashes is recovered after "
            f"{_f(one['days_to_first_hash'])} days with one identity "
            f"({_f(one['evaluations_to_first_hash'])} evaluations); "
            + (
                f"with {', '.join(str(x['identities']) for x in faster)} identities that is "
                "sooner than enumerating one table, because the attack needs only *some* "
                "tables of *any* item (linked by item reference) and the threshold oracle "
                "finishes a hash with ~100 bits unknown; "
                if faster
                else ""
            )
            + (
                f"{len(under_cap)} of {len(att['runs'])} attacker sizes succeed within the "
                f"2^{LIFETIME_CAP.bit_length() - 1} lifetime cap of one key, so rotation alone "
                "does not stop them."
                if under_cap
                else ""
            )
        )
    if "exact_vs_modelled" in res:
        e = res["exact_vs_modelled"]
        lines += [
            "## Exact vs modelled",
            "",
            f"Exact mode ran the real protocol: {e['candidates']} candidates and {e['matches']} "
            f"matches; windows where the ideal model disagreed: {e['windows_disagreeing']}."
            + (
                f" Full threshold answers: {e['threshold_answers']:,} from the real code, "
                f"{e['threshold_answers_modelled']:,} modelled."
                if "threshold_answers" in e
                else ""
            ),
            "",
        ]
        if "cpu_measured_s_by_step" in timing:
            measured = timing["cpu_measured_s_by_step"]
            modelled = res["cost"]["cpu_s_by_step"]
            lines += ["| step | modelled CPU (s) | measured CPU (s) |", "|---|---|---|"]
            for k in sorted(modelled):
                lines.append(f"| {k} | {_f(modelled[k])} | {_f(measured.get(k))} |")
            lines.append(
                f"| index build | {_f(res['cost']['index_build_cpu_s'])} | "
                f"{_f(timing.get('cpu_measured_index_build_s'))} |"
            )
            lines += [
                "",
                "Measured figures are process CPU time on a shared machine (they are in "
                "timing.json, not results.json, which stays deterministic).",
                "",
            ]
    from . import uploaders

    lines += uploaders.report_lines(res, plots)
    lines += ["## Closing note", ""]
    lines += [f"- {f}" for f in findings] or ["- No measured figure exceeded a stated bound."]
    lines.append("")
    lines += _provenance(res.get("provenance"), tables)
    return "\n".join(lines)


def _provenance(p: dict | None, tables: Sequence[str]) -> list[str]:
    if not p:
        return []
    code, env = p["code"], p["environment"]
    return [
        "## Provenance",
        "",
        f"- Code: blindmatch {code['package_version']}, `git describe` "
        f"{code['git_describe'] or 'unavailable'}, sources sha256 `{code['source_sha256'][:16]}`.",
        f"- Inputs (scenario, simulator, CPU costs, LSH schemes) sha256 "
        f"`{p['inputs_sha256']}`; the resolved scenario is in results.json under "
        "`provenance.scenario`.",
        f"- Environment: Python {env['python']} ({env['platform']}), numpy {env['numpy']}, "
        f"libsodium {env['libsodium']}, {env['cpus']} CPUs.",
        "- Tables: " + ", ".join(f"[{t}]({t})" for t in tables) + "." if tables else "",
        "",
    ]


def dumps(results: dict[str, Any]) -> str:
    return json.dumps(results, indent=1, sort_keys=True, default=_json_default) + "\n"


def _json_default(o: object) -> object:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(type(o))
