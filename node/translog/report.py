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
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindmatch.protocol import transparency as tl

PERIODS = ("day", "week", "month")
OUTCOMES = ("actioned", "dismissed", "escalated")
OPINIONS = ("confirm", "dispute", "withdraw", "retract", "appeal-overturned")
APPEAL_STATUSES = ("opened", "decision-upheld", "decision-overturned")


def period_of(time_ms: int, period: str) -> str:
    """The label of the UTC period holding ``time_ms``: ``2026-11-23`` (day), ``2026-W48``
    (ISO week) or ``2026-11`` (month)."""
    day = dt.datetime.fromtimestamp(time_ms / 1000, tz=dt.UTC).date()
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    raise ValueError(f"period must be one of {', '.join(PERIODS)}")


@dataclass
class TrafficStats:
    requests: int = 0
    evaluations: int = 0
    queries: int = 0
    candidates: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "evaluation_requests": self.requests,
            "evaluations": self.evaluations,
            "threshold_queries": self.queries,
            "candidates": self.candidates,
        }


@dataclass
class PeriodStats:
    matches: Counter[str] = field(default_factory=Counter)  # by band (as str)
    matches_by_peer: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)  # by outcome
    decisions_by: Counter[str] = field(default_factory=Counter)  # policy / reviewer
    appeals: Counter[str] = field(default_factory=Counter)  # by status
    feedback_sent: Counter[str] = field(default_factory=Counter)  # by opinion
    feedback_received: Counter[str] = field(default_factory=Counter)
    index_publications: int = 0
    index_entries_added: int = 0
    index_entries_removed: int = 0
    traffic: dict[tuple[str, str], TrafficStats] = field(default_factory=dict)

    @property
    def overturn_rate(self) -> float | None:
        closed = self.appeals["decision-upheld"] + self.appeals["decision-overturned"]
        return self.appeals["decision-overturned"] / closed if closed else None

    def to_json(self) -> dict[str, Any]:
        return {
            "matches": sum(self.matches.values()),
            "matches_by_band": dict(sorted(self.matches.items(), key=lambda kv: int(kv[0]))),
            "matches_by_peer": dict(sorted(self.matches_by_peer.items())),
            "decisions": {o: self.decisions[o] for o in OUTCOMES},
            "decisions_by": {k: self.decisions_by[k] for k in ("policy", "reviewer")},
            "appeals": {s: self.appeals[s] for s in APPEAL_STATUSES},
            "overturn_rate": self.overturn_rate,
            "feedback_sent": {o: self.feedback_sent[o] for o in OPINIONS},
            "feedback_received": {o: self.feedback_received[o] for o in OPINIONS},
            "index_publications": self.index_publications,
            "index_entries_added": self.index_entries_added,
            "index_entries_removed": self.index_entries_removed,
            "traffic": [
                {"peer": peer, "direction": direction, **t.to_json()}
                for (peer, direction), t in sorted(self.traffic.items())
            ],
        }


@dataclass
class TransparencyReport:
    head: tl.SignedTreeHead
    public_key: bytes
    period: str
    entries: int
    kinds: dict[str, int]
    periods: dict[str, PeriodStats]
    totals: PeriodStats
    traffic: dict[tuple[str, str], TrafficStats]  # (peer, direction)
    decisions_by_policy: Counter[str]
    overturns_by_decider: dict[str, dict[str, int]]  # policy/reviewer -> upheld/overturned
    entries_after_head: int = 0
    # Decisions by the context signal that moved the case (signal -> outcome -> count), and
    # repeat-uploader publications by action: counts only, never an identity.
    decisions_by_signal: dict[str, Counter[str]] = field(default_factory=dict)
    uploader_signals: Counter[str] = field(default_factory=Counter)
    # Entries that name an id no earlier entry introduced (an auditor's consistency check):
    # "decision-without-match", "appeal-without-decision".
    unlinked: dict[str, int] = field(default_factory=dict)
    first_time_ms: int | None = None
    last_time_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_head": {
                "log_id": self.head.log_id,
                "tree_size": self.head.tree_size,
                "root_hash": self.head.root_hash.hex(),
                "timestamp_ms": self.head.timestamp_ms,
                "signature": self.head.signature.hex(),
                "public_key": self.public_key.hex(),
                "signature_verified": True,
                "sth": self.head.to_bytes().hex(),
            },
            "period": self.period,
            "entries": self.entries,
            "entries_after_head": self.entries_after_head,
            "kinds": dict(sorted(self.kinds.items())),
            "first_time_ms": self.first_time_ms,
            "last_time_ms": self.last_time_ms,
            "totals": self.totals.to_json(),
            "periods": {p: s.to_json() for p, s in sorted(self.periods.items())},
            "traffic": [
                {"peer": peer, "direction": direction, **t.to_json()}
                for (peer, direction), t in sorted(self.traffic.items())
            ],
            "decisions_by_policy": dict(sorted(self.decisions_by_policy.items())),
            "decisions_by_signal": {
                k: dict(sorted(v.items())) for k, v in sorted(self.decisions_by_signal.items())
            },
            "uploader_signals": dict(sorted(self.uploader_signals.items())),
            "overturns_by_decider": self.overturns_by_decider,
            "unlinked": dict(sorted(self.unlinked.items())),
        }


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


def plot_report(report: TransparencyReport, out_dir: Path) -> list[Path]:
    """Write the PNG plots; returns their paths (none if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    labels = sorted(report.periods)
    if not labels:
        return []
    stats = [report.periods[p] for p in labels]
    xs = list(range(len(labels)))
    paths: list[Path] = []

    def finish(fig: Any, ax: Any, name: str, title: str, ylabel: str) -> None:
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        step = max(1, (len(labels) + 13) // 14)  # at most ~14 labels on the axis
        ax.set_xticks(xs[::step])
        ax.set_xticklabels(labels[::step], rotation=45 if len(labels) > 6 else 0, ha="right")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(axis="y", alpha=0.3)
        fig.text(
            0.99, 0.01,
            f"log {report.head.log_id}, tree size {report.head.tree_size}, "
            f"root {report.head.root_hash.hex()[:16]}…",
            ha="right", fontsize=7, color="grey",
        )  # fmt: skip
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    def stacked(name: str, title: str, series: dict[str, list[int]], ylabel: str) -> None:
        if not any(v for values in series.values() for v in values):
            return  # nothing of this kind in the log: no empty chart
        fig, ax = plt.subplots(figsize=(9, 4))
        bottom = [0] * len(xs)
        for label, values in series.items():
            ax.bar(xs, values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        finish(fig, ax, name, title, ylabel)

    bands = sorted({b for s in stats for b in s.matches}, key=int)
    stacked(
        "matches.png",
        f"Confirmed matches per {report.period}, by distance band",
        {f"distance ≤ {b}": [s.matches[b] for s in stats] for b in bands}
        or {"matches": [0] * len(xs)},
        "matches",
    )

    def plot_decisions() -> None:
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.38
        bottom = [0] * len(xs)
        for o in OUTCOMES:
            values = [s.decisions[o] for s in stats]
            ax.bar([x - width / 2 for x in xs], values, width, bottom=bottom, label=o)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        bottom = [0] * len(xs)
        for who, hatch in (("policy", "//"), ("reviewer", "..")):
            values = [s.decisions_by[who] for s in stats]
            ax.bar([x + width / 2 for x in xs], values, width, bottom=bottom, hatch=hatch,
                   fill=False, label=f"by {who}")  # fmt: skip
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        finish(fig, ax, "decisions.png",
               f"Review decisions per {report.period}: outcome (left), who decided (right)",
               "decisions")  # fmt: skip

    def plot_appeals() -> None:
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.27
        for i, status in enumerate(APPEAL_STATUSES):
            ax.bar([x + (i - 1) * width for x in xs], [s.appeals[status] for s in stats], width,
                   label=status)  # fmt: skip
        rates = [s.overturn_rate for s in stats]
        if any(r is not None for r in rates):
            ax2 = ax.twinx()
            ax2.plot(
                [x for x, r in zip(xs, rates, strict=True) if r is not None],
                [100 * r for r in rates if r is not None],
                color="black", marker="o", label="overturn rate",
            )  # fmt: skip
            ax2.set_ylim(0, 100)
            ax2.set_ylabel("overturn rate (%)")
            ax2.legend(fontsize="small", loc="lower left", bbox_to_anchor=(1.08, 0.0))
        finish(fig, ax, "appeals.png", f"Appeals per {report.period}", "appeals")

    if any(s.decisions_by[w] for s in stats for w in ("policy", "reviewer")):
        plot_decisions()
    if any(s.appeals[a] for s in stats for a in APPEAL_STATUSES):
        plot_appeals()
    stacked(
        "feedback.png",
        f"Feedback per {report.period} (sent and received)",
        {o: [s.feedback_sent[o] + s.feedback_received[o] for s in stats] for o in OPINIONS},
        "records",
    )
    stacked(
        "index.png",
        f"Blinded index entries published per {report.period}",
        {
            "added": [s.index_entries_added for s in stats],
            "removed (withdrawn, expired)": [s.index_entries_removed for s in stats],
        },
        "index entries",
    )
    if report.traffic:
        keys = sorted(report.traffic)
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(keys) + 2))
        names = [f"{peer} ({direction})" for peer, direction in keys]
        ys = list(range(len(keys)))
        axes[0].barh(ys, [report.traffic[k].evaluations for k in keys], color="tab:blue")
        axes[0].set_title("blinded evaluations")
        axes[1].barh(ys, [report.traffic[k].candidates for k in keys], color="tab:orange")
        axes[1].set_title("candidates tested (threshold queries)")
        for ax in axes:
            ax.set_yticks(ys)
            ax.set_yticklabels(names, fontsize="small")
            ax.grid(axis="x", alpha=0.3)
        axes[1].set_yticklabels([])
        fig.suptitle("Per-peer volumes (received: this node answered; sent: it asked)")
        fig.tight_layout()
        path = out_dir / "traffic.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


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
