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

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from blindmatch.crypto.signing import SigningKey
from blindmatch.node import signals
from blindmatch.node.cases import derivatives as derivative_cases
from blindmatch.node.cases import policy as policy_mod
from blindmatch.node.cases.case_log import CaseLog
from blindmatch.node.cases.context import ContextStore, Signals, UploadContext
from blindmatch.node.cases.webhooks import (
    WEBHOOK_KIND,
    WEBHOOK_PEER,
    webhook_body,
    webhook_message_id,
)
from blindmatch.node.clock import Clock
from blindmatch.node.errors import BlindmatchError
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import Database, FeedLog, Outbox
from blindmatch.node.storage.banks import BankStore
from blindmatch.node.storage.cases import Case, CaseStore
from blindmatch.node.storage.match_jobs import MatchJobStore
from blindmatch.node.storage.uploads import UploadStore
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import feedback as fb
from blindmatch.protocol import signal_types
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.roster import Roster
from blindmatch.protocol.signals import as_hash_matrix, hamming_matrix

log = logging.getLogger("blindmatch.decisions")

OUTCOMES = ("actioned", "dismissed", "escalated")
FEEDBACK_KIND = "feedback"
_REVIEW_STATES = ("queued", "quarantined", "escalated")


class DecisionError(BlindmatchError):
    """A decision refused: ``DecisionError(sentence, code=...)``."""

    _code_in_str = True


class DecisionService:
    def __init__(
        self,
        db: Database,
        *,
        node_id: str,
        identity: SigningKey,
        roster: Roster,
        clock: Clock,
        metrics: Metrics,
        translog: TransparencyLog,
        outbox: Outbox,
        feeds: FeedLog,
        jobs: MatchJobStore,
        cases: CaseStore,
        bank_items: BankStore,
        release_bands: Sequence[int],
        policy: policy_mod.Policy | None = None,
        webhook_url: str | None = None,
        webhook_secret: bytes | None = None,
        uploaders: Any = None,  # federation.uploader_signals.UploaderSignals, when configured
    ) -> None:
        self.db = db
        self.node_id = node_id
        # One opening of a job's cases at a time: a task's end and the matcher's sweep may
        # both get to it, and both would open the same cases.
        self._opening: dict[bytes, asyncio.Lock] = {}
        self.identity = identity
        self.roster = roster
        self.clock = clock
        self.metrics = metrics
        self.translog = translog
        self.outbox = outbox
        self.feeds = feeds
        self.jobs = jobs
        self.cases = cases
        self.bank_items = bank_items
        self.release_bands = tuple(release_bands)
        self.policy = policy or policy_mod.Policy()
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret or b""
        self.case_log = CaseLog(cases, translog)
        self.uploaders = uploaders
        self.contexts = ContextStore(UploadStore(db))
        self._local_cache: tuple[tuple[Any, ...], dict[str, Any] | None] | None = None

    # --- cases ------------------------------------------------------------------------------

    async def _event(
        self, case_ref: bytes, actor: str, event: str, detail: dict[str, Any] | None = None
    ) -> None:
        await self.cases.add_event(case_ref, self.clock.now(), actor, event, detail or {})

    async def opinion(self, holder: str, item_ref: bytes) -> fb.Opinion:
        records = []
        for signed in await self.cases.feedback_records(holder, item_ref):
            try:
                records.append(fb.open_record(signed, self.roster.signing_key))
            except fb.FeedbackError:
                continue  # verified on receipt; a key since removed from the roster: ignore
        return fb.aggregate(records)

    async def _match_rate(self, holder: str, item_ref: bytes) -> tuple[int, float]:
        """Matches of this item in the current window, and its mean over the previous 24."""
        w = self.policy.quarantine.window_s
        now = self.clock.now()
        start = now - now % w
        current, past = await self.cases.count_match(holder, item_ref, start, w, 24)
        return current, past / 24.0

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
        context: UploadContext | None = None,
        signals: Signals | None = None,
        tags: Sequence[bytes] = (),
    ) -> Case | None:
        """Apply the policy to one match; returns the case, or None when suppressed.
        ``context`` is the platform's, ``signals`` the node's (recidivism, known elsewhere);
        ``tags`` the uploader's repeat-uploader tags for this picture, kept to publish them if
        a reviewer actions the case and to follow the keeper's feed."""
        signals = signals or Signals()
        existing = await self.cases.case_for_match(content_ref, holder, item_ref)
        if existing is not None:
            return existing
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
                context=context,
                signals=signals,
            ),
        )
        self.metrics.inc("policy_verdicts_total", labels={"action": verdict.action})
        for name in verdict.signals:
            # Counted by signal name, never by uploader.
            self.metrics.inc("policy_signals_total", labels={"signal": name.split(":")[0]})
        if verdict.action == "suppress":
            log.info("match suppressed by policy: %s", verdict.reason)
            return None
        state = {"auto-action": "actioned", "review": "queued", "quarantine": "quarantined"}[
            verdict.action
        ]
        case_ref = os.urandom(16)
        now = self.clock.now()
        release_json = json.dumps({**release, "opinion": opinion.label}, sort_keys=True)
        signals_json = json.dumps(
            {
                "known_elsewhere": signals.known_elsewhere,
                "recidivism": signals.recidivism,
                "fired": list(verdict.signals),
                "context": context.for_reviewer() if context is not None else {},
            },
            sort_keys=True,
        )
        async with self.db.transaction():
            await self.cases.insert(
                case_ref, content_ref=content_ref, job_ref=job_ref, source=source,
                holder=holder, item_ref=item_ref, band=band, variant=variant,
                release_json=release_json, state=state, priority=verdict.priority,
                decided_by="policy" if state == "actioned" else None, reason=verdict.reason,
                decided_at=now if state == "actioned" else None, now=now,
                signals_json=signals_json,
            )  # fmt: skip
            await self._event(case_ref, "policy", f"opened:{state}", {"reason": verdict.reason})
            if tags and self.uploaders is not None:
                await self.uploaders.remember_tags(case_ref, holder, tags)
            if state == "actioned":
                await self.case_log.decision(case_ref, "actioned", "policy")
                await self._webhook("block", case_ref, content_ref, verdict.reason)
        return await self.case(case_ref)

    async def case(self, case_ref: bytes) -> Case:
        case = await self.cases.case(case_ref)
        if case is None:
            raise DecisionError("no such case", code="unknown-case")
        return case

    async def history(self, case_ref: bytes) -> list[dict[str, Any]]:
        return await self.cases.history(case_ref)

    async def queue(self, limit: int = 100) -> list[Case]:
        """Cases waiting for a person: re-reviews and appeals first, then by priority."""
        return await self.cases.queue(limit)

    async def cases_for_content(self, content_ref: str) -> list[Case]:
        return await self.cases.for_content(content_ref)

    # --- matches into cases -----------------------------------------------------------------

    async def _local_bank(self) -> dict[str, Any] | None:
        """This node's live PDQ items as arrays, rebuilt only when the banks changed.

        Matching every upload reads them; reading every row per upload would be the node's
        largest per-job cost at scale. The signature query aggregates in SQL and returns one row.
        """
        signature = await self.bank_items.local_signature(signal_types.PDQ.name)
        if self._local_cache is not None and self._local_cache[0] == signature:
            return self._local_cache[1]
        rows = await self.bank_items.local_items(signal_types.PDQ.name)
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
        bands = self.release_bands
        live = bank["expires"] > self.clock.now()
        # An item's banked crops are more rows of the same item: one match per item, through
        # its closest row (the picture as banked first on a tie).
        closest: dict[bytes, tuple[int, bool, int]] = {}  # item_ref -> (distance, crop, row)
        for found in np.nonzero((best <= bank["thresholds"]) & live)[0]:
            row = int(found)
            key = (int(best[row]), rows[row]["crop"] is not None, row)
            ref = bytes(rows[row]["item_ref"])
            closest[ref] = min(closest.get(ref, key), key)
        for _, _, j in closest.values():
            r = rows[j]
            d = int(best[j])
            thr = int(r["distance_threshold"])
            band = next((b for b in (*[b for b in bands if b < thr], thr) if d <= b), thr)
            release = {"provenance": r["provenance"], "signal": signal_types.PDQ.release_signal,
                       "categories": json.loads(r["categories"]), "bank": r["bank"]}  # fmt: skip
            if r["crop"] is not None:
                release["banked_crop"] = r["crop"]
            allow = r["bank"] in self.policy.allowlist_banks
            out.append((r["bank"], bytes(r["item_ref"]), band, queries[int(which[j])].variant,
                        release, allow))  # fmt: skip
        return out

    async def on_job_done(self, job_ref: bytes) -> list[Case]:
        """Turn a finished job's matches (peer and local) into cases, once."""
        lock = self._opening.setdefault(job_ref, asyncio.Lock())
        try:
            # The node's other processes may open the same job's cases at once (the one that
            # ran its last part, and any that found it finished without cases).
            async with lock, self.db.exclusive(f"cases:{job_ref.hex()}"):
                return await self._open_job_cases(job_ref)
        finally:
            if not lock.locked():
                self._opening.pop(job_ref, None)

    async def _open_job_cases(self, job_ref: bytes) -> list[Case]:
        job = await self.jobs.job(job_ref)
        if job is None or job["content_ref"] is None or job["cases_opened"]:
            return []
        content_ref = job["content_ref"]
        context = await self.contexts.get(content_ref)
        signals = Signals(
            recidivism=await self.contexts.recidivism(
                context.uploader_ref if context else None, content_ref
            )
        )
        queries = await self.jobs.queries(job_ref) or []
        local = await self.local_matches(queries)
        allowlisted = any(m[5] for m in local)
        opened: list[Case] = []
        for _bank, item_ref, band, variant, release, allow in local:
            if allow:
                continue
            case = await self.open_case(
                content_ref=content_ref, source="local", holder=self.node_id,
                item_ref=item_ref, band=band, variant=variant, release=release,
                allowlisted=allowlisted, job_ref=job_ref, context=context, signals=signals,
            )  # fmt: skip
            if case:
                opened.append(case)
        matches = derivative_cases.review_matches(
            queries,
            [
                derivative_cases.PeerMatch(r.peer, r.item_ref, r.variant, r.band, r.release)
                for r in await self.jobs.results(job_ref)
            ],
            self.roster.has_role,
        )
        for m in matches:
            tags = await self._uploader_tags(context, m.holder, m.item_ref, m.release)
            known = bool(tags) and await self.uploaders.known_elsewhere(tags)
            case = await self.open_case(
                content_ref=content_ref, source="peer", holder=m.holder, item_ref=m.item_ref,
                band=m.band, variant=m.variant, release=m.release, allowlisted=allowlisted,
                job_ref=job_ref, kind=m.kind, generator_confirmed=bool(m.generator_nodes),
                context=context, signals=replace(signals, known_elsewhere=known), tags=tags,
            )  # fmt: skip
            if case:
                opened.append(case)
        await self.jobs.mark_cases_opened(job_ref)
        return opened

    async def _uploader_tags(
        self, context: UploadContext | None, holder: str, item_ref: bytes, release: dict
    ) -> list[bytes]:
        """The uploader's tags for this picture (specs/uploaders.md), or none: without
        identifiers, capability, keeper or holder key, or when a peer does not answer (the case
        opens regardless; the signal only orders the queue)."""
        member = self.roster.member(holder)
        if self.uploaders is None or context is None or not context.identifiers or not member:
            return []
        from blindmatch.node.federation.peer_client import PeerError
        from blindmatch.protocol.uploaders import UploaderError

        try:
            tags = await self.uploaders.lookup(
                member, item_ref, release, [d for _, d in context.identifiers]
            )
        except (PeerError, BlindmatchError, UploaderError) as exc:
            log.info("uploader lookup at %s failed: %s", holder, getattr(exc, "code", "?"))
            self.metrics.inc("uploader_lookups_failed_total", labels={"peer": holder})
            return []
        return tags or []

    async def apply_uploader_change(self, change: Any) -> int:
        """The keeper's feed changed: open cases whose uploader's tags were added or removed
        gain or lose "known elsewhere for this picture" (and its priority), with an event."""
        tags = set(change.added) | set(change.removed)
        if not tags or self.uploaders is None:
            return 0
        weight = self.policy.context.known_elsewhere_priority
        changed = 0
        for case in await self.cases.open_with_uploader_tags():
            mine = set(await self.uploaders.case_tags(case.case_ref))
            if not mine & tags:
                continue
            known = await self.uploaders.known_elsewhere(sorted(mine))
            if known == bool(case.signals.get("known_elsewhere")):
                continue
            fired = [f for f in case.signals.get("fired", []) if f != "known-elsewhere"]
            if known:
                fired.append("known-elsewhere")
            signals = {**case.signals, "known_elsewhere": known, "fired": fired,
                       "context": case.context}  # fmt: skip
            priority = max(0, case.priority + (weight if known else -weight))
            async with self.db.transaction():
                await self.cases.set_signals(
                    case.case_ref, json.dumps(signals, sort_keys=True), priority, self.clock.now()
                )
                event = "signal:known-elsewhere" if known else "signal:known-elsewhere-withdrawn"
                await self._event(case.case_ref, "keeper", event)
            changed += 1
        return changed

    # --- decisions and appeals --------------------------------------------------------------

    async def decide(self, case_ref: bytes, outcome: str, reviewer: str, reason: str = "") -> Case:
        if outcome not in OUTCOMES:
            raise DecisionError(f"outcome must be one of {', '.join(OUTCOMES)}", code="bad-request")
        case = await self.case(case_ref)
        if case.state == "closed":
            raise DecisionError("the case is closed", code="conflict")
        was_actioned = case.state == "actioned"
        now = self.clock.now()
        async with self.db.transaction():
            await self.cases.set_decision(case_ref, outcome, reviewer, reason[:500], now)
            await self._event(case_ref, reviewer, f"decided:{outcome}", {"reason": reason[:500]})
            await self.case_log.decision(case_ref, outcome, "reviewer")
            if outcome == "actioned" and not was_actioned:
                await self._webhook("remove", case_ref, case.content_ref, reason)
                confirm = await self._feedback(case, "confirm")
                if self.uploaders is not None:  # a person actioned it: the tags may be published
                    await self.uploaders.publish(case_ref, case.holder, case.item_ref, confirm.id)
            elif outcome == "dismissed":
                if was_actioned:
                    await self._webhook("restore", case_ref, case.content_ref, reason)
                    if self.uploaders is not None:
                        await self.uploaders.withdraw_case(case_ref)
                await self._feedback(case, "dispute")
        return await self.case(case_ref)

    async def open_appeal(self, case_ref: bytes, reason: str = "") -> Case:
        case = await self.case(case_ref)
        if case.state != "actioned":
            raise DecisionError("only an action can be appealed", code="conflict")
        if case.appeal == "open":
            return case
        async with self.db.transaction():
            await self.cases.open_appeal(case_ref, self.clock.now())
            await self._event(case_ref, "uploader", "appeal:opened", {"reason": reason[:500]})
            await self.case_log.appeal(case_ref, "opened")
        return await self.case(case_ref)

    async def decide_appeal(
        self, case_ref: bytes, upheld: bool, reviewer: str, reason: str = ""
    ) -> Case:
        case = await self.case(case_ref)
        if case.appeal != "open":
            raise DecisionError("no open appeal on this case", code="conflict")
        now = self.clock.now()
        async with self.db.transaction():
            if upheld:
                await self.cases.uphold_appeal(case_ref, reviewer, reason[:500], now)
                await self._webhook("restore", case_ref, case.content_ref, "appeal upheld")
                await self._feedback(case, "appeal-upheld")
                if self.uploaders is not None:
                    await self.uploaders.withdraw_case(case_ref)
            else:
                await self.cases.deny_appeal(case_ref, now)
            await self._event(
                case_ref, reviewer, "appeal:upheld" if upheld else "appeal:denied",
                {"reason": reason[:500]},
            )  # fmt: skip
            # The log speaks of the decision: an upheld appeal overturns it.
            await self.case_log.appeal(
                case_ref, "decision-overturned" if upheld else "decision-upheld"
            )
        return await self.case(case_ref)

    # --- feedback ---------------------------------------------------------------------------

    async def _feedback(self, case: Case, opinion: str) -> fb.FeedbackRecord:
        """Sign a record about the case's item and get it to the holder (or publish it)."""
        record = fb.make_record(
            self.identity,
            record_id=os.urandom(16),
            origin=self.node_id,
            holder=case.holder,
            item=case.item_ref,
            opinion=opinion,
            at_ms=self.clock.now() * 1000,
        )
        if case.holder == self.node_id:
            await self.publish_feedback(record)
        else:
            await self.outbox.enqueue(
                record.id, case.holder, FEEDBACK_KIND, record.signed, self.clock.now()
            )
            await self.case_log.feedback(record, "sent", case.holder)
        return record

    async def withdraw_item(self, item_ref: bytes) -> None:
        """The holder's side of a withdrawal: a signed record every node will replicate, one
        for the item and one for each part a querier may know it by (a video's frames)."""
        refs = [item_ref]
        for adapter in signals.ADAPTERS:
            refs += await adapter.part_refs(self.db, item_ref)
        for ref in refs:
            record = fb.make_record(
                self.identity,
                record_id=os.urandom(16),
                origin=self.node_id,
                holder=self.node_id,
                item=ref,
                opinion="withdraw",
                at_ms=self.clock.now() * 1000,
            )
            await self.publish_feedback(record)

    async def publish_feedback(self, record: fb.FeedbackRecord) -> None:
        """Holder: put a record about one of our items in our feedback feed, and apply it."""
        if record.holder != self.node_id:
            raise DecisionError("records are published by the item's holder", code="not-allowed")
        await self.feeds.append(
            fb.FEED, record.id, "feedback.record", record.signed, self.clock.now()
        )
        await self.apply_feedback(record)

    async def accept_feedback(self, sender: str, data: bytes) -> int:
        """Holder: a peer sent a record about one of our items (feedback.submit)."""
        try:
            record = fb.open_record(data, self.roster.signing_key)
        except fb.FeedbackError as exc:
            raise DecisionError(str(exc), code=exc.code) from exc
        if record.origin != sender:
            raise DecisionError("a node submits only its own records", code="not-allowed")
        if record.holder != self.node_id:
            raise DecisionError("the record is about another holder's item", code="not-allowed")
        known = await self.bank_items.ref_taken(record.item)
        for adapter in signals.ADAPTERS:  # a part of an item (a video's frame)
            known = known or await adapter.owner_of(self.db, record.item) is not None
        if not known:
            raise DecisionError("no such item here", code="unknown-item")
        await self.publish_feedback(record)
        return await self.feeds.head(fb.FEED)

    async def apply_feedback(self, record: fb.FeedbackRecord) -> None:
        """Store a verified record (idempotent) and act on the cases it concerns."""
        inserted = await self.cases.add_feedback_record(
            record.id, record.origin, record.holder, record.item, record.opinion,
            record.at_ms, record.signed, self.clock.now(),
        )  # fmt: skip
        if not inserted:
            return  # seen before: a replay changes nothing
        if record.origin != self.node_id:
            await self.case_log.feedback(record, "received", record.origin)
        self.metrics.inc("feedback_records_total", labels={"opinion": record.opinion})
        for case in await self.cases.for_item(record.holder, record.item):
            if record.opinion == "withdraw" and case.state != "closed":
                await self.cases.close(
                    case.case_ref, "the holder withdrew the item", self.clock.now()
                )
                await self._event(case.case_ref, record.origin, "closed:withdrawn")
                if case.state == "actioned":
                    # The basis for the action is gone; whether to restore is the platform's
                    # call (it may have other grounds), so it is told, not instructed.
                    await self._webhook(
                        "notify", case.case_ref, case.content_ref, "the holder withdrew the item"
                    )
            elif (
                record.opinion in ("dispute", "appeal-upheld")
                and record.origin != self.node_id
                and case.state != "closed"
            ):
                await self.cases.ask_rereview(case.case_ref, self.clock.now())
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
        sequence = await self.cases.event_count(case_ref)
        body = webhook_body(event, case_ref, content_ref, sequence, reason, self.node_id)
        await self.outbox.enqueue(
            webhook_message_id(case_ref, sequence), WEBHOOK_PEER, WEBHOOK_KIND, body,
            self.clock.now(),
        )  # fmt: skip
