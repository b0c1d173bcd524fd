"""Admission of a peer's request as one decision function, without I/O (specs/protocol.md 8.3).

A holder admits a request in one step: is the sender someone else, is its timestamp inside the
window, is its nonce fresh, does the sender's budget allow the units it asks for. :func:`decide`
takes those facts (what the store knows: whether the nonce was seen, the units already used in
the current windows) and returns one :class:`Decision` naming everything the driver must then do
in one transaction: record the nonce or not, charge the budget or not, count the traffic or not,
and the refusal to send. The driver makes no decision of its own.

A refused request still uses up its nonce (a replay of it is answered as a replay) except when
it is refused before its nonce means anything: a message from ourselves or outside the
timestamp window (the nonce store keeps nonces for the window only).
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_SECONDS = {"hour": 3600, "day": 86400}
DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000
# A nonce is kept for twice the skew: any envelope older than that is refused by its timestamp.
NONCE_RETENTION_S = 2 * DEFAULT_MAX_SKEW_MS // 1000


def window_start(kind: str, now: int) -> int:
    return now - now % WINDOW_SECONDS[kind]


@dataclass(frozen=True)
class Limits:
    per_hour: int
    per_day: int

    def __post_init__(self) -> None:
        if self.per_hour < 0 or self.per_day < 0:
            raise ValueError("budget limits are non-negative")


def occupancy_limits(limits: Limits, entries: int, real_entries: int) -> Limits:
    """A threshold budget set at the holder's real occupancy, scaled to the index it publishes
    (8.3): ``limits * entries // real_entries``, never below ``limits``.

    Decoys (8.7) are never removed, so they raise every honest querier's spurious candidates
    in proportion to the entries they add; a budget that stayed at the roster's figure would
    refuse an honest platform within weeks. The join, not this budget, is the defence against
    extraction (8.6), and ``entries / real_entries`` is public (the feed's size and the batch
    padding), so scaling it gives a querier nothing it could not compute.
    """
    if entries < 0 or real_entries < 0:
        raise ValueError("entry counts are non-negative")
    if real_entries == 0 or entries <= real_entries:
        return limits
    return Limits(
        limits.per_hour * entries // real_entries, limits.per_day * entries // real_entries
    )


@dataclass(frozen=True)
class Usage:
    """Units the sender already used in the current hour and day windows."""

    hour: int = 0
    day: int = 0


@dataclass(frozen=True)
class Charge:
    """A budgeted request: which budget, how many units, and the traffic counter it feeds."""

    budget: str  # e.g. "evaluations", "threshold_items"
    units: int
    limits: Limits
    usage: Usage
    counter: str  # the traffic counter, e.g. "evaluations", "queries"


@dataclass(frozen=True)
class Decision:
    admit: bool
    code: str | None = None  # the refusal's error code (specs/protocol.md 7.5)
    message: str = ""
    record_nonce: bool = False  # record (sender, nonce) until nonce_expires_at
    nonce_expires_at: int = 0
    charge_units: int = 0  # add to both the hour and the day window of the budget
    count_traffic: bool = False  # count one request of charge_units on the traffic counter
    retry_after_ms: int | None = None


def decide(
    *,
    sender: str,
    self_id: str,
    now_ms: int,
    timestamp_ms: int,
    nonce_seen: bool,
    charge: Charge | None = None,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
) -> Decision:
    """Decide one request. ``nonce_seen``: whether the store already holds (sender, nonce);
    ``charge``: the request's budget and usage, None for an unbudgeted request."""
    now = now_ms // 1000
    if sender == self_id:
        return Decision(False, "not-allowed", "a node does not talk to itself")
    if abs(timestamp_ms - now_ms) > max_skew_ms:
        return Decision(
            False,
            "stale-timestamp",
            f"timestamp is {abs(timestamp_ms - now_ms)} ms from now (max {max_skew_ms})",
        )
    expires = now + 2 * max_skew_ms // 1000
    if nonce_seen:
        return Decision(False, "replayed", "this message was already received")
    if charge is None:
        return Decision(True, record_nonce=True, nonce_expires_at=expires)
    if charge.units < 1:
        return Decision(False, "bad-body", "a request asks for at least one unit", True, expires)
    refused = [
        kind
        for kind, used, limit in (
            ("hour", charge.usage.hour, charge.limits.per_hour),
            ("day", charge.usage.day, charge.limits.per_day),
        )
        if used + charge.units > limit
    ]
    if refused:
        # Retry when the longest refusing window ends (a day refusal outlasts an hour's).
        kind = "day" if "day" in refused else "hour"
        retry = (window_start(kind, now) + WINDOW_SECONDS[kind] - now) * 1000
        return Decision(
            False,
            "budget-exhausted",
            f"{charge.budget} budget for {sender} is used up for this window",
            record_nonce=True,
            nonce_expires_at=expires,
            retry_after_ms=retry,
        )
    return Decision(
        True,
        record_nonce=True,
        nonce_expires_at=expires,
        charge_units=charge.units,
        count_traffic=True,
    )
