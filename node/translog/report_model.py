"""What a transparency report counts: per period (UTC day, ISO week or month), the matches,
decisions, appeals, feedback, withdrawals, publications and traffic of one log."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
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
