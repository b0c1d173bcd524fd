"""From match to decision: cases, policy, reviewers' decisions, appeals, feedback and actions.

Every confirmed match (from a peer) and every local match becomes a **case** unless the policy
suppresses it (allowlist, withdrawn item). The policy acts automatically only where it may, and
otherwise queues the case for a person with a priority; a hash that suddenly matches far too
much is quarantined. Decisions send **signed webhooks** to the platform (block, remove,
restore, notify) through the outbox, and **feedback** (confirm, dispute, appeal-upheld) to the
item's holder, which re-publishes it in its feedback feed so every node that acted on the same
item hears of it: a dispute or upheld appeal raises a re-review task on every case for that
item; a withdrawal closes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from blindmatch.node import signals
from blindmatch.node.cases import derivatives as derivative_cases
from blindmatch.node.cases import policy as policy_mod
from blindmatch.protocol import feedback as fb
from blindmatch.protocol import signal_types
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.signals import as_hash_matrix, hamming_matrix

if TYPE_CHECKING:
    from blindmatch.node.node import Node

log = logging.getLogger("blindmatch.decisions")

OUTCOMES = ("actioned", "dismissed", "escalated")
FEEDBACK_KIND = "feedback"
WEBHOOK_KIND = "webhook"
_REVIEW_STATES = ("queued", "quarantined", "escalated")


class DecisionError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message


@dataclass(frozen=True)
class Case:
    case_ref: bytes
    content_ref: str
    source: str
    holder: str
    item_ref: bytes
    band: int
    variant: str
    release: dict[str, Any]
    state: str
    priority: int
    decided_by: str | None
    reason: str | None
    appeal: str | None
    needs_rereview: bool
    created_at: int
    updated_at: int


def _case(row: Any) -> Case:
    return Case(
        case_ref=bytes(row["case_ref"]),
        content_ref=row["content_ref"],
        source=row["source"],
        holder=row["holder"],
        item_ref=bytes(row["item_ref"]),
        band=int(row["band"]),
        variant=row["variant"],
        release=json.loads(row["release"]),
        state=row["state"],
        priority=int(row["priority"]),
        decided_by=row["decided_by"],
        reason=row["reason"],
        appeal=row["appeal"],
        needs_rereview=bool(row["needs_rereview"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
    )


_LOG_OPINION = {"appeal-upheld": "appeal-overturned"}  # the log's name for the same event


def _derived_id(*parts: bytes) -> bytes:
    return hashlib.sha256(b"blindmatch-v1 log id\x00" + b"\x00".join(parts)).digest()[:16]


def webhook_message_id(case_ref: bytes, sequence: int) -> bytes:
    return case_ref + sequence.to_bytes(4, "big") + b"webhook"


class DecisionService:
    def __init__(
        self,
        node: Node,
        policy: policy_mod.Policy | None = None,
        webhook_url: str | None = None,
        webhook_secret: bytes | None = None,
    ) -> None:
        self.node = node
        self.db = node.db
        self.policy = policy or policy_mod.Policy()
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret or b""
        self._local_cache: tuple[tuple[Any, ...], dict[str, Any] | None] | None = None

    # --- the verifiable log -------------------------------------------------------------------

    async def _decision_log_id(self, case_ref: bytes, event_id: int) -> bytes:
        # A decision's log id is derived from its case event, so an appeal can name it later.
        return _derived_id(case_ref, b"decision", str(event_id).encode())

    async def _log_decision(self, case_ref: bytes, outcome: str, by: str) -> None:
        from blindmatch.node.translog import hooks as translog_hooks

        row = await self.db.fetch_one(
            "SELECT job_ref, holder, item_ref FROM cases WHERE case_ref = ?", case_ref
        )
        job_ref = bytes(row["job_ref"]) if row["job_ref"] is not None else case_ref
        match_id = translog_hooks.match_id_for(job_ref, row["holder"], bytes(row["item_ref"]), 0)
        event_id = await self.db.fetch_value(
            "SELECT MAX(id) FROM case_events WHERE case_ref = ?", case_ref
        )
        await translog_hooks.log_decision(
            self.node.translog,
            decision_id=await self._decision_log_id(case_ref, int(event_id)),
            match_id=match_id,
            outcome=outcome,
            decided_by=by,
        )

    async def _log_feedback(self, record: fb.FeedbackRecord, direction: str, peer: str) -> None:
        from blindmatch.node.translog import hooks as translog_hooks

        await translog_hooks.log_feedback(
            self.node.translog,
            feedback_id=record.id,
            peer=peer,
            direction=direction,
            item_ref=record.item,
            opinion=_LOG_OPINION.get(record.opinion, record.opinion),
        )

    async def _log_appeal(self, case_ref: bytes, status: str) -> None:
        from blindmatch.node.translog import hooks as translog_hooks

        # The appealed decision is the one that actioned the case (by policy or a reviewer).
        event_id = await self.db.fetch_value(
            "SELECT MAX(id) FROM case_events WHERE case_ref = ?"
            " AND event IN ('decided:actioned', 'opened:actioned')",
            case_ref,
        )
        await translog_hooks.log_appeal(
            self.node.translog,
            appeal_id=_derived_id(case_ref, b"appeal"),
            decision_id=await self._decision_log_id(case_ref, int(event_id)),
            status=status,
        )

    # --- cases ------------------------------------------------------------------------------

    async def _event(self, case_ref: bytes, actor: str, event: str, detail: dict | None = None):  # type: ignore[no-untyped-def]
        await self.db.execute(
            "INSERT INTO case_events (case_ref, at, actor, event, detail) VALUES (?, ?, ?, ?, ?)",
            case_ref, self.node.now(), actor, event, json.dumps(detail or {}, sort_keys=True),
        )  # fmt: skip

    async def opinion(self, holder: str, item_ref: bytes) -> fb.Opinion:
        rows = await self.db.fetch_all(
            "SELECT record FROM feedback_records WHERE holder = ? AND item_ref = ?",
            holder,
            item_ref,
        )
        records = []
        for r in rows:
            try:
                records.append(fb.open_record(bytes(r["record"]), self.node.roster.signing_key))
            except fb.FeedbackError:
                continue  # verified on receipt; a key since removed from the roster: ignore
        return fb.aggregate(records)

    async def _match_rate(self, holder: str, item_ref: bytes) -> tuple[int, float]:
        """Matches of this item in the current window, and its mean over the previous 24."""
        w = self.policy.quarantine.window_s
        now = self.node.now()
        start = now - now % w
        await self.db.execute(
            "INSERT INTO item_match_counts (holder, item_ref, window_start, matches)"
            " VALUES (?, ?, ?, 1) ON CONFLICT (holder, item_ref, window_start)"
            " DO UPDATE SET matches = item_match_counts.matches + 1",
            holder, item_ref, start,
        )  # fmt: skip
        current = await self.db.fetch_value(
            "SELECT matches FROM item_match_counts WHERE holder = ? AND item_ref = ?"
            " AND window_start = ?",
            holder, item_ref, start,
        )  # fmt: skip
        past = await self.db.fetch_value(
            "SELECT COALESCE(SUM(matches), 0) FROM item_match_counts WHERE holder = ?"
            " AND item_ref = ? AND window_start >= ? AND window_start < ?",
            holder, item_ref, start - 24 * w, start,
        )  # fmt: skip
        return int(current), int(past) / 24.0

    async def open_case(
        self,
        *,
        content_ref: str,
        source: str,
        holder: str,
        item_ref: bytes,
        band: int,
        variant: str,
        release: dict[str, Any],
        allowlisted: bool,
        job_ref: bytes | None = None,
        kind: str | None = None,
        generator_confirmed: bool = False,
    ) -> Case | None:
        """Apply the policy to one match; returns the case, or None when suppressed."""
        existing = await self.db.fetch_one(
            "SELECT * FROM cases WHERE content_ref = ? AND holder = ? AND item_ref = ?",
            content_ref, holder, item_ref,
        )  # fmt: skip
        if existing is not None:
            return _case(existing)
        opinion = await self.opinion(holder, item_ref)
        current, baseline = await self._match_rate(holder, item_ref)
        verdict = policy_mod.decide(
            self.policy,
            policy_mod.MatchFacts(
                holder=holder,
                band=band,
                provenance=release.get("provenance"),
                confirmations=opinion.confirmations,
                disputes=opinion.disputes + opinion.appeals_upheld,
                withdrawn=opinion.withdrawn,
                allowlisted=allowlisted,
                matches_this_window=current,
                baseline_per_window=baseline,
                kind=kind,
                generator_confirmed=generator_confirmed,
            ),
        )
        self.node.metrics.inc("policy_verdicts_total", labels={"action": verdict.action})
        if verdict.action == "suppress":
            log.info("match suppressed by policy: %s", verdict.reason)
            return None
        state = {"auto-action": "actioned", "review": "queued", "quarantine": "quarantined"}[
            verdict.action
        ]
        case_ref = os.urandom(16)
        now = self.node.now()
        release_json = json.dumps({**release, "opinion": opinion.label}, sort_keys=True)
        async with self.db.transaction():
            await self.db.execute(
                "INSERT INTO cases (case_ref, content_ref, job_ref, source, holder, item_ref, band,"
                " variant, release, state, priority, decided_by, reason, decided_at, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                case_ref, content_ref, job_ref, source, holder, item_ref, band, variant,
                release_json, state, verdict.priority,
                "policy" if state == "actioned" else None, verdict.reason,
                now if state == "actioned" else None, now, now,
            )  # fmt: skip
            await self._event(case_ref, "policy", f"opened:{state}", {"reason": verdict.reason})
            if state == "actioned":
                await self._log_decision(case_ref, "actioned", "policy")
                await self._webhook("block", case_ref, content_ref, verdict.reason)
        return await self.case(case_ref)

    async def case(self, case_ref: bytes) -> Case:
        row = await self.db.fetch_one("SELECT * FROM cases WHERE case_ref = ?", case_ref)
        if row is None:
            raise DecisionError("unknown-case", "no such case")
        return _case(row)

    async def history(self, case_ref: bytes) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT at, actor, event, detail FROM case_events WHERE case_ref = ? ORDER BY id",
            case_ref,
        )
        return [
            {"at": int(r["at"]), "actor": r["actor"], "event": r["event"],
             "detail": json.loads(r["detail"])}
            for r in rows
        ]  # fmt: skip

    async def queue(self, limit: int = 100) -> list[Case]:
        """Cases waiting for a person: re-reviews and appeals first, then by priority."""
        rows = await self.db.fetch_all(
            "SELECT * FROM cases WHERE state IN ('queued', 'quarantined', 'escalated')"
            " OR needs_rereview = 1 OR appeal = 'open'"
            " ORDER BY needs_rereview DESC, (appeal = 'open') DESC, priority DESC, created_at"
            " LIMIT ?",
            limit,
        )
        return [_case(r) for r in rows]

    async def cases_for_content(self, content_ref: str) -> list[Case]:
        rows = await self.db.fetch_all(
            "SELECT * FROM cases WHERE content_ref = ? ORDER BY created_at", content_ref
        )
        return [_case(r) for r in rows]

    # --- matches into cases -----------------------------------------------------------------

    async def _local_bank(self) -> dict[str, Any] | None:
        """This node's live PDQ items as arrays, rebuilt only when the banks changed.

        Matching every upload reads them; reading every row per upload would be the node's
        largest per-job cost at scale. The signature query aggregates in SQL and returns one row.
        """
        sig_row = await self.db.fetch_one(
            "SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS top,"
            " COALESCE(SUM(CASE WHEN withdrawn_at IS NULL THEN 0 ELSE 1 END), 0) AS gone"
            " FROM bank_items WHERE signal_type = ?",
            signal_types.PDQ.name,
        )
        banks = await self.db.fetch_all(
            "SELECT id, name, enabled, distance_threshold, provenance, categories FROM banks"
            " ORDER BY id"
        )  # a handful of rows: their settings are part of the signature
        signature = (
            *(int(sig_row[k]) for k in ("n", "top", "gone")),
            *(tuple(b.values()) for b in banks),
        )
        if self._local_cache is not None and self._local_cache[0] == signature:
            return self._local_cache[1]
        rows = await self.db.fetch_all(
            "SELECT i.item_ref, i.hash, i.expires_at, b.name AS bank, b.provenance,"
            " b.categories, b.distance_threshold FROM bank_items i JOIN banks b"
            " ON b.id = i.bank_id WHERE i.signal_type = ? AND i.withdrawn_at IS NULL"
            " AND b.enabled = 1",
            signal_types.PDQ.name,
        )
        bank: dict[str, Any] | None = None
        if rows:
            bank = {
                "hashes": as_hash_matrix([bytes(r["hash"]) for r in rows]),
                "thresholds": np.array([int(r["distance_threshold"]) for r in rows]),
                "expires": np.array(
                    [np.inf if r["expires_at"] is None else r["expires_at"] for r in rows],
                    dtype=float,
                ),
                "rows": rows,
            }
        self._local_cache = (signature, bank)
        return bank

    async def local_matches(
        self, queries: Sequence[QueryHash]
    ) -> list[tuple[str, bytes, int, str, dict[str, Any], bool]]:
        """Plain matching against this node's own enabled banks (no privacy issue: local)."""
        bank = await self._local_bank()
        # Tile hashes are only ever compared with tiles (under the rule), never with pictures.
        # The node's own banks hold whole pictures: only whole-picture queries meet them.
        queries = [q for q in queries if signal_types.for_variant(q.variant) is signal_types.PDQ]
        if bank is None or not queries:
            return []
        rows = bank["rows"]
        dist = hamming_matrix(as_hash_matrix([q.hash for q in queries]), bank["hashes"])
        best = dist.min(axis=0)
        which = dist.argmin(axis=0)
        out = []
        bands = self.node.cfg.release_bands
        live = bank["expires"] > self.node.now()
        for j in np.nonzero((best <= bank["thresholds"]) & live)[0]:
            r = rows[int(j)]
            d = int(best[j])
            thr = int(r["distance_threshold"])
            band = next((b for b in (*[b for b in bands if b < thr], thr) if d <= b), thr)
            release = {"provenance": r["provenance"], "signal": signal_types.PDQ.release_signal,
                       "categories": json.loads(r["categories"]), "bank": r["bank"]}  # fmt: skip
            allow = r["bank"] in self.policy.allowlist_banks
            out.append((r["bank"], bytes(r["item_ref"]), band, queries[int(which[j])].variant,
                        release, allow))  # fmt: skip
        return out

    async def on_job_done(self, job_ref: bytes) -> list[Case]:
        """Turn a finished job's matches (peer and local) into cases, once."""
        job = await self.db.fetch_one(
            "SELECT content_ref, cases_opened FROM match_jobs WHERE job_ref = ?", job_ref
        )
        if job is None or job["content_ref"] is None or job["cases_opened"]:
            return []
        content_ref = job["content_ref"]
        queries = await self.node._job_queries(job_ref)
        local = await self.local_matches(queries)
        allowlisted = any(m[5] for m in local)
        opened: list[Case] = []
        for _bank, item_ref, band, variant, release, allow in local:
            if allow:
                continue
            case = await self.open_case(
                content_ref=content_ref, source="local", holder=self.node.node_id,
                item_ref=item_ref, band=band, variant=variant, release=release,
                allowlisted=allowlisted, job_ref=job_ref,
            )  # fmt: skip
            if case:
                opened.append(case)
        status = await self.node.job_status(job_ref)
        matches = derivative_cases.review_matches(
            queries,
            [
                derivative_cases.PeerMatch(r.peer, r.item_ref, r.variant, r.band, r.release)
                for r in status.results
            ],
            self.node.roster.has_role,
        )
        for m in matches:
            case = await self.open_case(
                content_ref=content_ref, source="peer", holder=m.holder, item_ref=m.item_ref,
                band=m.band, variant=m.variant, release=m.release, allowlisted=allowlisted,
                job_ref=job_ref, kind=m.kind, generator_confirmed=bool(m.generator_nodes),
            )  # fmt: skip
            if case:
                opened.append(case)
        await self.db.execute("UPDATE match_jobs SET cases_opened = 1 WHERE job_ref = ?", job_ref)
        return opened

    # --- decisions and appeals --------------------------------------------------------------

    async def decide(self, case_ref: bytes, outcome: str, reviewer: str, reason: str = "") -> Case:
        if outcome not in OUTCOMES:
            raise DecisionError("bad-request", f"outcome must be one of {', '.join(OUTCOMES)}")
        case = await self.case(case_ref)
        if case.state == "closed":
            raise DecisionError("conflict", "the case is closed")
        was_actioned = case.state == "actioned"
        now = self.node.now()
        async with self.db.transaction():
            await self.db.execute(
                "UPDATE cases SET state = ?, decided_by = ?, reason = ?, decided_at = ?,"
                " needs_rereview = 0, priority = CASE WHEN ? = 'escalated' THEN priority + 50"
                " ELSE priority END, updated_at = ? WHERE case_ref = ?",
                outcome, reviewer, reason[:500], now, outcome, now, case_ref,
            )  # fmt: skip
            await self._event(case_ref, reviewer, f"decided:{outcome}", {"reason": reason[:500]})
            await self._log_decision(case_ref, outcome, "reviewer")
            if outcome == "actioned" and not was_actioned:
                await self._webhook("remove", case_ref, case.content_ref, reason)
                await self._feedback(case, "confirm")
            elif outcome == "dismissed":
                if was_actioned:
                    await self._webhook("restore", case_ref, case.content_ref, reason)
                await self._feedback(case, "dispute")
        return await self.case(case_ref)

    async def open_appeal(self, case_ref: bytes, reason: str = "") -> Case:
        case = await self.case(case_ref)
        if case.state != "actioned":
            raise DecisionError("conflict", "only an action can be appealed")
        if case.appeal == "open":
            return case
        async with self.db.transaction():
            await self.db.execute(
                "UPDATE cases SET appeal = 'open', priority = priority + 60, updated_at = ?"
                " WHERE case_ref = ?",
                self.node.now(), case_ref,
            )  # fmt: skip
            await self._event(case_ref, "uploader", "appeal:opened", {"reason": reason[:500]})
            await self._log_appeal(case_ref, "opened")
        return await self.case(case_ref)

    async def decide_appeal(
        self, case_ref: bytes, upheld: bool, reviewer: str, reason: str = ""
    ) -> Case:
        case = await self.case(case_ref)
        if case.appeal != "open":
            raise DecisionError("conflict", "no open appeal on this case")
        now = self.node.now()
        async with self.db.transaction():
            if upheld:
                await self.db.execute(
                    "UPDATE cases SET appeal = 'upheld', state = 'dismissed', decided_by = ?,"
                    " reason = ?, decided_at = ?, updated_at = ? WHERE case_ref = ?",
                    reviewer, reason[:500], now, now, case_ref,
                )  # fmt: skip
                await self._webhook("restore", case_ref, case.content_ref, "appeal upheld")
                await self._feedback(case, "appeal-upheld")
            else:
                await self.db.execute(
                    "UPDATE cases SET appeal = 'denied', updated_at = ? WHERE case_ref = ?",
                    now, case_ref,
                )  # fmt: skip
            await self._event(
                case_ref, reviewer, "appeal:upheld" if upheld else "appeal:denied",
                {"reason": reason[:500]},
            )  # fmt: skip
            # The log speaks of the decision: an upheld appeal overturns it.
            await self._log_appeal(case_ref, "decision-overturned" if upheld else "decision-upheld")
        return await self.case(case_ref)

    # --- feedback ---------------------------------------------------------------------------

    async def _feedback(self, case: Case, opinion: str) -> None:
        """Sign a record about the case's item and get it to the holder (or publish it)."""
        record = fb.make_record(
            self.node.keys.identity,
            record_id=os.urandom(16),
            origin=self.node.node_id,
            holder=case.holder,
            item=case.item_ref,
            opinion=opinion,
            at_ms=self.node.now() * 1000,
        )
        if case.holder == self.node.node_id:
            await self.publish_feedback(record)
        else:
            await self.node.outbox.enqueue(
                record.id, case.holder, FEEDBACK_KIND, record.signed, self.node.now()
            )
            await self._log_feedback(record, "sent", case.holder)

    async def withdraw_item(self, item_ref: bytes) -> None:
        """The holder's side of a withdrawal: a signed record every node will replicate, one
        for the item and one for each part a querier may know it by (a video's frames)."""
        refs = [item_ref]
        for adapter in signals.ADAPTERS:
            refs += await adapter.part_refs(self.db, item_ref)
        for ref in refs:
            record = fb.make_record(
                self.node.keys.identity,
                record_id=os.urandom(16),
                origin=self.node.node_id,
                holder=self.node.node_id,
                item=ref,
                opinion="withdraw",
                at_ms=self.node.now() * 1000,
            )
            await self.publish_feedback(record)

    async def publish_feedback(self, record: fb.FeedbackRecord) -> None:
        """Holder: put a record about one of our items in our feedback feed, and apply it."""
        if record.holder != self.node.node_id:
            raise DecisionError("not-allowed", "records are published by the item's holder")
        await self.node.feeds.append(
            fb.FEED, record.id, "feedback.record", record.signed, self.node.now()
        )
        await self.apply_feedback(record)

    async def accept_feedback(self, sender: str, data: bytes) -> int:
        """Holder: a peer sent a record about one of our items (feedback.submit)."""
        try:
            record = fb.open_record(data, self.node.roster.signing_key)
        except fb.FeedbackError as exc:
            raise DecisionError(exc.code, str(exc)) from exc
        if record.origin != sender:
            raise DecisionError("not-allowed", "a node submits only its own records")
        if record.holder != self.node.node_id:
            raise DecisionError("not-allowed", "the record is about another holder's item")
        known = await self.db.fetch_value(
            "SELECT COUNT(*) FROM bank_items WHERE item_ref = ?", record.item
        )
        if not known:
            for adapter in signals.ADAPTERS:  # a part of an item (a video's frame)
                known = known or await adapter.owner_of(self.db, record.item) is not None
        if not known:
            raise DecisionError("unknown-item", "no such item here")
        await self.publish_feedback(record)
        return await self.node.feeds.head(fb.FEED)

    async def apply_feedback(self, record: fb.FeedbackRecord) -> None:
        """Store a verified record (idempotent) and act on the cases it concerns."""
        inserted = await self.db.execute(
            "INSERT INTO feedback_records (record_id, origin, holder, item_ref, opinion, at_ms,"
            " record, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            record.id, record.origin, record.holder, record.item, record.opinion,
            record.at_ms, record.signed, self.node.now(),
        )  # fmt: skip
        if not inserted:
            return  # seen before: a replay changes nothing
        if record.origin != self.node.node_id:
            await self._log_feedback(record, "received", record.origin)
        self.node.metrics.inc("feedback_records_total", labels={"opinion": record.opinion})
        cases = await self.db.fetch_all(
            "SELECT * FROM cases WHERE holder = ? AND item_ref = ?", record.holder, record.item
        )
        for row in cases:
            case = _case(row)
            if record.opinion == "withdraw" and case.state != "closed":
                await self.db.execute(
                    "UPDATE cases SET state = 'closed', reason = ?, needs_rereview = 0,"
                    " updated_at = ? WHERE case_ref = ?",
                    "the holder withdrew the item", self.node.now(), case.case_ref,
                )  # fmt: skip
                await self._event(case.case_ref, record.origin, "closed:withdrawn")
                if case.state == "actioned":
                    # The basis for the action is gone; whether to restore is the platform's
                    # call (it may have other grounds), so it is told, not instructed.
                    await self._webhook(
                        "notify", case.case_ref, case.content_ref, "the holder withdrew the item"
                    )
            elif (
                record.opinion in ("dispute", "appeal-upheld")
                and record.origin != self.node.node_id
                and case.state != "closed"
            ):
                await self.db.execute(
                    "UPDATE cases SET needs_rereview = 1, updated_at = ? WHERE case_ref = ?",
                    self.node.now(), case.case_ref,
                )  # fmt: skip
                await self._event(
                    case.case_ref, record.origin, f"re-review:{record.opinion}",
                    {"from": record.origin},
                )  # fmt: skip

    # --- webhooks -----------------------------------------------------------------------------

    async def _webhook(self, event: str, case_ref: bytes, content_ref: str, reason: str) -> None:
        """Queue a signed webhook; its idempotency key is stable across retries."""
        if not self.webhook_url:
            return
        # Sequenced per case: delivery holds a later event while an earlier one is pending,
        # so a platform never sees "restore" overtake "remove".
        sequence = int(
            await self.db.fetch_value(
                "SELECT COUNT(*) FROM case_events WHERE case_ref = ?", case_ref
            )
        )
        key = hashlib.sha256(case_ref + sequence.to_bytes(4, "big") + event.encode()).digest()
        body = json.dumps(
            {"event": event, "case": case_ref.hex(), "content_ref": content_ref,
             "sequence": sequence, "reason": reason[:200], "idempotency_key": key[:16].hex(),
             "node": self.node.node_id},
            sort_keys=True,
        ).encode()  # fmt: skip
        await self.node.outbox.enqueue(
            webhook_message_id(case_ref, sequence), "platform-webhook", WEBHOOK_KIND, body,
            self.node.now(),
        )  # fmt: skip

    async def earlier_webhook_pending(self, case_ref: bytes, sequence: int) -> bool:
        # A case's webhook ids are case_ref || sequence: the earlier ones are a key range.
        earlier = await self.db.fetch_value(
            "SELECT COUNT(*) FROM outbox WHERE kind = ? AND state = 'pending'"
            " AND message_id >= ? AND message_id < ?",
            WEBHOOK_KIND,
            case_ref,
            webhook_message_id(case_ref, sequence),
        )
        return bool(earlier)

    def webhook_signature(self, body: bytes) -> str:
        return hmac.new(self.webhook_secret, body, hashlib.sha256).hexdigest()
