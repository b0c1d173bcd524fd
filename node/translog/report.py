"""Transparency reports built from a node's verifiable log, and nothing else.

:func:`build_report` first audits the entries against a signed tree head (the same check as
``blindmatch audit verify``): a report is only ever built from a log that matches a head the
node signed, and it states that head (size, root, timestamp, key), so anyone holding the log
can rebuild the very same report. It then counts, per period (UTC day or ISO week):

- matches (by band, by peer), decisions (outcome; by policy or by a reviewer; by policy rule),
- appeals (opened, upheld, overturned; the overturn rate, overall and by who decided),
- feedback (confirm, dispute, withdraw, retract, appeal-overturned; sent and received),
- withdrawals (feedback and index entries removed), index publications,
- query and evaluation volumes per peer and direction.

:func:`write_report` writes ``report.md``, ``report.json`` and PNG plots (matplotlib, Agg).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from blindmatch.node.translog.monitor import LogClient
from blindmatch.node.translog.plots import plot_report
from blindmatch.node.translog.report_model import (
    OPINIONS,
    PERIODS,
    PeriodStats,
    TrafficStats,
    TransparencyReport,
    period_of,
)
from blindmatch.protocol import transparency as tl


def build_report(
    entries: Sequence[bytes],
    sth: bytes | tl.SignedTreeHead,
    public_key: bytes,
    *,
    period: str = "week",
    leaf_hashes: Sequence[bytes] | None = None,
) -> TransparencyReport:
    """Audit ``entries`` against the signed head (raising the audit's LogError if they do not
    match), then count the first ``tree_size`` entries."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    audit = tl.audit_log(entries, sth, public_key, leaf_hashes=leaf_hashes)
    head = tl.verify_tree_head(sth, public_key)
    periods: dict[str, PeriodStats] = defaultdict(PeriodStats)
    totals = PeriodStats()
    by_policy: Counter[str] = Counter()
    by_signal: dict[str, Counter[str]] = defaultdict(Counter)
    uploader_signals: Counter[str] = Counter()
    decider_of: dict[bytes, str] = {}
    matches_seen: set[bytes] = set()
    unlinked: Counter[str] = Counter()
    overturns: dict[str, dict[str, int]] = {
        d: {"decision-upheld": 0, "decision-overturned": 0} for d in ("policy", "reviewer")
    }
    first = last = None
    for data in entries[: head.tree_size]:
        e = tl.decode_entry(bytes(data))
        t = e["time_ms"]
        first = t if first is None else min(first, t)
        last = t if last is None else max(last, t)
        kind = e["kind"]
        for s in (periods[period_of(t, period)], totals):
            if kind == "match":
                s.matches[str(e["band"])] += 1
                s.matches_by_peer[e["peer"]] += 1
            elif kind == "decision":
                s.decisions[e["outcome"]] += 1
                s.decisions_by[e["decided_by"]] += 1
            elif kind == "appeal":
                s.appeals[e["status"]] += 1
            elif kind == "feedback":
                target = s.feedback_sent if e["direction"] == "sent" else s.feedback_received
                target[e["opinion"]] += 1
            elif kind == "index-publication":
                s.index_publications += 1
                s.index_entries_added += e["entries_added"]
                s.index_entries_removed += e["entries_removed"]
            elif kind in ("evaluation-counts", "query-counts"):
                ts = s.traffic.setdefault((e["peer"], e["direction"]), TrafficStats())
                if kind == "evaluation-counts":
                    ts.requests += e["requests"]
                    ts.evaluations += e["evaluations"]
                else:
                    ts.queries += e["queries"]
                    ts.candidates += e["candidates"]
        if kind == "match":
            matches_seen.add(e["match_id"])
        elif kind == "decision":
            if e["match_id"] not in matches_seen:
                unlinked["decision-without-match"] += 1
            decider_of[e["decision_id"]] = e["decided_by"]
            for name in e.get("signals", ()):
                by_signal[name][e["outcome"]] += 1
            by_policy[
                e.get("policy", "(reviewer)" if e["decided_by"] == "reviewer" else "(none)")
            ] += 1
        elif kind == "uploader-signal":
            uploader_signals[f"{e['action']} ({e['direction']})"] += 1
        elif kind == "appeal":
            decider = decider_of.get(e["decision_id"])
            if decider is None:
                unlinked["appeal-without-decision"] += 1
            elif e["status"] != "opened":
                overturns[decider][e["status"]] += 1
    return TransparencyReport(
        head=head,
        public_key=public_key,
        period=period,
        entries=head.tree_size,
        kinds=audit.kinds,
        periods=dict(periods),
        totals=totals,
        traffic=dict(totals.traffic),
        decisions_by_policy=by_policy,
        overturns_by_decider=overturns,
        decisions_by_signal=dict(by_signal),
        uploader_signals=uploader_signals,
        entries_after_head=audit.entries_after_head,
        unlinked=dict(unlinked),
        first_time_ms=first,
        last_time_ms=last,
    )


# --- output ------------------------------------------------------------------------------------


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(report: TransparencyReport, plots: Sequence[Path] = ()) -> str:
    h = report.head
    t = report.totals
    lines = [
        f"# Transparency report: {h.log_id}",
        "",
        f"Built from the node's verifiable log only, per {report.period} (UTC), covering "
        f"{_iso(report.first_time_ms)} to {_iso(report.last_time_ms)}.",
        "",
        "## Signed tree head",
        "",
        f"- log: `{h.log_id}`",
        f"- tree size: **{h.tree_size}** entries (all audited: every entry recomputed into "
        "the signed root)",
        f"- root hash: `{h.root_hash.hex()}`",
        f"- signed at: {_iso(h.timestamp_ms)} (`{h.timestamp_ms}`)",
        f"- signature: verified under Ed25519 key `{report.public_key.hex()}`",
        f"- the head's bytes (hex): `{h.to_bytes().hex()}`",
    ]
    if report.entries_after_head:
        lines.append(
            f"- {report.entries_after_head} later entries are not covered by this head and "
            "are not counted"
        )
    lines += [
        "",
        "Anyone with the log can rebuild this report: `blindmatch audit verify` checks the "
        "same head, and `blindmatch report` over the same entries gives the same numbers.",
        "",
        "## Totals",
        "",
    ]
    closed = t.appeals["decision-upheld"] + t.appeals["decision-overturned"]
    lines += _table(
        ("what", "count"),
        [
            ("confirmed matches", sum(t.matches.values())),
            ("decisions: actioned", t.decisions["actioned"]),
            ("decisions: dismissed", t.decisions["dismissed"]),
            ("decisions: escalated", t.decisions["escalated"]),
            ("decided automatically by policy", t.decisions_by["policy"]),
            ("decided by a reviewer", t.decisions_by["reviewer"]),
            ("appeals opened", t.appeals["opened"]),
            ("appeals decided", closed),
            ("decisions overturned on appeal", t.appeals["decision-overturned"]),
            ("overturn rate", _rate(t.overturn_rate)),
            (
                "disputes received (false positives reported by peers)",
                t.feedback_received["dispute"],
            ),
            ("disputes sent", t.feedback_sent["dispute"]),
            ("withdrawals received", t.feedback_received["withdraw"]),
            ("withdrawals sent", t.feedback_sent["withdraw"]),
            ("index publications", t.index_publications),
            (
                "index entries added / removed",
                f"{t.index_entries_added} / {t.index_entries_removed}",
            ),
        ],
    )
    lines += ["", f"## Per {report.period}", ""]
    rows = []
    for p, s in sorted(report.periods.items()):
        rows.append(
            (
                p,
                sum(s.matches.values()),
                s.decisions["actioned"],
                s.decisions["dismissed"],
                s.decisions["escalated"],
                f"{s.decisions_by['policy']} / {s.decisions_by['reviewer']}",
                s.appeals["opened"],
                s.appeals["decision-upheld"],
                s.appeals["decision-overturned"],
                _rate(s.overturn_rate),
                s.feedback_received["dispute"] + s.feedback_sent["dispute"],
                s.feedback_received["withdraw"] + s.feedback_sent["withdraw"],
                s.index_publications,
            )
        )
    lines += _table(
        (
            report.period, "matches", "actioned", "dismissed", "escalated", "policy / reviewer",
            "appeals", "upheld", "overturned", "overturn rate", "disputes", "withdrawals",
            "index pubs",
        ),
        rows,
    )  # fmt: skip
    lines += ["", "## Matches", ""]
    bands = sorted(t.matches, key=int)
    lines += _table(("distance band", "matches"), [(f"≤ {b}", t.matches[b]) for b in bands])
    lines += [""]
    lines += _table(
        ("peer", "matches"), sorted(t.matches_by_peer.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    lines += ["", "## Decisions and appeals", ""]
    lines += _table(
        ("decided by (policy rule)", "decisions"), sorted(report.decisions_by_policy.items())
    )
    lines += [""]
    if report.decisions_by_signal:
        # Which context signals moved the cases that were decided (names, never identities).
        outcomes = ("actioned", "dismissed", "escalated")
        lines += _table(
            ("context signal", *outcomes),
            [
                (name, *(report.decisions_by_signal[name][o] for o in outcomes))
                for name in sorted(report.decisions_by_signal)
            ],
        )
        lines += [""]
    if report.uploader_signals:
        lines += _table(
            ("repeat-uploader publications", "count"), sorted(report.uploader_signals.items())
        )
        lines += [""]
    lines += _table(
        ("appeals of decisions made by", "upheld", "overturned", "overturn rate"),
        [
            (
                who,
                v["decision-upheld"],
                v["decision-overturned"],
                _rate(
                    v["decision-overturned"] / (v["decision-upheld"] + v["decision-overturned"])
                    if v["decision-upheld"] + v["decision-overturned"]
                    else None
                ),
            )
            for who, v in report.overturns_by_decider.items()
        ],
    )
    if report.unlinked:
        lines += [
            "",
            "Entries naming an id that no earlier entry of this log introduced (a decision "
            "should follow its match, an appeal its decision):",
            "",
        ]
        lines += _table(("check", "entries"), sorted(report.unlinked.items()))
    lines += ["", "## Feedback", ""]
    lines += _table(
        ("opinion", "sent", "received"),
        [(o, t.feedback_sent[o], t.feedback_received[o]) for o in OPINIONS],
    )
    lines += ["", "## Volumes per peer", ""]
    if report.traffic:
        lines += _table(
            ("peer", "direction", "evaluation requests", "blinded evaluations",
             "threshold queries", "candidates tested"),
            [
                (peer, d, s.requests, s.evaluations, s.queries, s.candidates)
                for (peer, d), s in sorted(report.traffic.items())
            ],
        )  # fmt: skip
    else:
        lines.append("No query or evaluation counts were logged in this range.")
    if report.traffic and len(report.periods) > 1:
        lines += ["", f"Volumes per {report.period}:", ""]
        lines += _table(
            (report.period, "peer", "direction", "evaluations", "candidates tested"),
            [
                (p, peer, d, t.evaluations, t.candidates)
                for p, s in sorted(report.periods.items())
                for (peer, d), t in sorted(s.traffic.items())
            ],
        )
    lines += ["", "## Log entries by kind", ""]
    lines += _table(("kind", "entries"), sorted(report.kinds.items()))
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    lines += [
        "",
        "The log records *that* and *how much*, never *what*: it holds no hash, no bucket key "
        "and no image (specs/transparency.md 3.4).",
        "",
    ]
    return "\n".join(lines)


def write_report(report: TransparencyReport, out_dir: Path, plots: bool = True) -> list[Path]:
    """Write ``report.md``, ``report.json`` and the plots into ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = plot_report(report, out_dir) if plots else []
    md = out_dir / "report.md"
    md.write_text(render_markdown(report, images))
    js = out_dir / "report.json"
    js.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    return [md, js, *images]


async def fetch_log(url: str, public_key: bytes) -> tuple[list[bytes], list[bytes] | None, bytes]:
    """Entries (with stored leaf hashes when the node serves them) and the latest head."""
    async with LogClient(url) as client:
        sth = await client.sth()
        head = tl.verify_tree_head(sth, public_key)
        fetched = await client.entries(0, head.tree_size)
    entries = [e for e, _ in fetched]
    hashes = [h for _, h in fetched]
    stored = [h for h in hashes if h is not None]
    return entries, stored if hashes and len(stored) == len(hashes) else None, sth


def make_report(
    entries: list[bytes],
    leaf_hashes: list[bytes] | None,
    sth: bytes,
    public_key: bytes,
    out_dir: Path,
    period: str = "week",
    plots: bool = True,
    out: TextIO | None = None,
) -> int:
    """Build and write the report, printing what was written; 1 if the log fails its audit."""
    out = sys.stdout if out is None else out
    try:
        report = build_report(entries, sth, public_key, period=period, leaf_hashes=leaf_hashes)
    except tl.LogError as exc:
        print(f"FAIL [{exc.code}] {exc.detail}", file=out)
        print("no report: the log does not match its signed tree head", file=out)
        return 1
    paths = write_report(report, out_dir, plots=plots)
    h = report.head
    print(
        f"report of log {h.log_id} at tree size {h.tree_size} (root {h.root_hash.hex()}, "
        "signature verified)",
        file=out,
    )
    for p in paths:
        print(f"wrote {p}", file=out)
    return 0
