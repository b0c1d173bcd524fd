"""Decisions after a match: a small policy model, event by event.

This mirrors the node's policy semantics *as specified* (BRIEF "Decisions", "Feedback that
travels"), not the node's code (the review queue, policy, disputes and quarantine are being
built separately):

* **Auto-action** when the match's band is at most ``auto_max_band``, the holder is a trusted
  source (roster role flagged ``trusted``) and the item is not quarantined at the querier.
* **Review** otherwise: a reviewer decides ``review_hours`` later, correctly except with
  probability ``reviewer_error``.
* **Disputes**: the uploader of a wrongful takedown disputes it with ``dispute_prob``, about
  ``dispute_hours`` later; the querier reverses it and sends the dispute to the holder, which
  forwards it to every node that acted on the same item (feedback travels); those nodes re-review
  and reverse their own wrongful takedowns of that item. After ``quarantine_disputes`` disputes
  the holder suspends the item: it stops answering for it.
* **Quarantine**: a querier that sees one item match more than ``quarantine_matches_per_day``
  times in 24 hours sends its further matches to review instead of auto-action.
* Feedback adversaries: a ``withhold`` node never sends its disputes on; a ``replay`` node
  resends every feedback record it sent, which the receiver's replay protection (idempotent
  record ids) rejects; both are counted.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from dataclasses import dataclass, field

import numpy as np

from .scenario import Scenario
from .workload import EDITED, NCII, ORIGINAL, Workload


@dataclass
class Decisions:
    # per acted upload: action time (ms), auto (1) or reviewed (0), item, wrongful, reversed time
    actions: dict[int, dict] = field(default_factory=dict)
    reviews: int = 0
    suppressed_matches: int = 0  # matches of an item the holder had suspended
    quarantined: set[tuple[int, int]] = field(default_factory=set)  # (node, item)
    suspended: dict[int, int] = field(default_factory=dict)  # item -> time (ms)
    disputes_sent: int = 0
    disputes_withheld: int = 0
    feedback_forwarded: int = 0
    replays_rejected: int = 0
    confirms_sent: int = 0


def decide(
    s: Scenario, work: Workload, matches: np.ndarray, trusted: np.ndarray, rng: np.random.Generator
) -> Decisions:
    """``matches``: rows (upload, item, band, decided time in ms), any order."""
    p = s.policy
    out = Decisions()
    names = work.node_names
    behaviour = {names.index(n): how for n, how in s.adversaries.feedback.items()}
    order: np.ndarray | list[int] = (
        np.lexsort((matches[:, 1], matches[:, 0], matches[:, 3])) if len(matches) else []
    )
    queue: list[tuple[int, int, int, tuple]] = []  # (time ms, kind order, seq, payload)
    seq = 0

    def push(t: int, kind: int, payload: tuple) -> None:
        nonlocal seq
        heapq.heappush(queue, (int(t), kind, seq, payload))
        seq += 1

    for r in order:
        u, item, band, t = (int(x) for x in matches[r])
        push(t, 2, ("match", u, item, band))
    recent: dict[tuple[int, int], deque] = defaultdict(deque)
    disputes: dict[int, int] = defaultdict(int)
    acted_on: dict[int, list[int]] = defaultdict(list)  # item -> uploads acted on because of it
    day_ms = 86_400_000
    review_ms = int(p.review_hours * 3_600_000)
    feedback_ms = int(s.network.latency_ms * 2 + s.network.replication_s * 1000)
    while queue:
        t, _, _, payload = heapq.heappop(queue)
        kind = payload[0]
        if kind == "match":
            _, u, item, band = payload
            if item in out.suspended and out.suspended[item] <= t:
                out.suppressed_matches += 1
                continue
            if u in out.actions:
                continue  # already acted on (or in review) because of another match
            q = int(work.up_node[u])
            window = recent[(q, item)]
            window.append(t)
            while window and window[0] <= t - day_ms:
                window.popleft()
            if len(window) > p.quarantine_matches_per_day:
                out.quarantined.add((q, item))
            holder = int(work.item_holder[item])
            auto = band <= p.auto_max_band and trusted[holder] and (q, item) not in out.quarantined
            true = bool(
                work.item_kind[item] == NCII
                and work.up_kind[u] in (ORIGINAL, EDITED)
                and work.item_content[item] == work.up_content[u]
            )
            if auto:
                _act(out, acted_on, push, p, rng, u, item, t, True, not true)
            else:
                out.reviews += 1
                out.actions[u] = {"pending": True}
                takedown = (
                    (rng.uniform() >= p.reviewer_error)
                    if true
                    else (rng.uniform() < p.reviewer_error)
                )
                push(t + review_ms, 1, ("reviewed", u, item, takedown, not true))
        elif kind == "reviewed":
            _, u, item, takedown, wrongful = payload
            if takedown:
                _act(out, acted_on, push, p, rng, u, item, t, False, wrongful)
            else:
                out.actions.pop(u, None)
                out.actions[u] = {"time": None, "rejected_in_review": True, "item": item}
        elif kind == "dispute":
            _, u, item = payload
            a = out.actions[u]
            if a.get("reversed") is not None:
                continue
            a["reversed"] = t
            q = int(work.up_node[u])
            if behaviour.get(q) == "withhold":
                out.disputes_withheld += 1
                continue
            out.disputes_sent += 1
            if behaviour.get(q) == "replay":
                out.replays_rejected += 1
            push(t + feedback_ms, 0, ("holder_dispute", item, u))
        elif kind == "holder_dispute":
            _, item, u = payload
            disputes[item] += 1
            if disputes[item] >= p.quarantine_disputes and item not in out.suspended:
                out.suspended[item] = t
            # forward to every node that acted on the same item; they re-review
            for other in acted_on[item]:
                if other != u:
                    out.feedback_forwarded += 1
                    push(t + feedback_ms + review_ms, 0, ("rereview", other))
        elif kind == "rereview":
            _, u = payload
            a = out.actions[u]
            if a.get("wrongful") and a.get("reversed") is None:
                a["reversed"] = t
                a["reversed_by_feedback"] = True
    for _u, a in out.actions.items():
        a.pop("pending", None)
    return out


def _act(out, acted_on, push, p, rng, u, item, t, auto, wrongful) -> None:
    out.actions[u] = {"time": t, "auto": auto, "item": item, "wrongful": wrongful, "reversed": None}
    acted_on[item].append(u)
    if wrongful and rng.uniform() < p.dispute_prob:
        delay = int(p.dispute_hours * 3_600_000 * rng.uniform(0.5, 1.5))
        push(t + delay, 0, ("dispute", u, item))
    elif not wrongful:
        out.confirms_sent += 1
