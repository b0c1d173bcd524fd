"""The verifiable log's records of cases: decisions, appeals and feedback (never a hash).

A decision's log id is derived from its case event, so an appeal can name the decision later;
a match's id is the one the querier logged when the match was confirmed.
"""

from __future__ import annotations

import hashlib

from blindmatch.node.storage.cases import CaseStore
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import feedback as fb

_LOG_OPINION = {"appeal-upheld": "appeal-overturned"}  # the log's name for the same event


def _derived_id(*parts: bytes) -> bytes:
    return hashlib.sha256(b"blindmatch-v1 log id\x00" + b"\x00".join(parts)).digest()[:16]


class CaseLog:
    def __init__(self, cases: CaseStore, translog: TransparencyLog) -> None:
        self.cases = cases
        self.translog = translog

    async def decision_log_id(self, case_ref: bytes, event_id: int) -> bytes:
        # A decision's log id is derived from its case event, so an appeal can name it later.
        return _derived_id(case_ref, b"decision", str(event_id).encode())

    async def decision(self, case_ref: bytes, outcome: str, by: str) -> None:
        job_ref, holder, item_ref = await self.cases.match_of(case_ref)
        match_id = translog_hooks.match_id_for(job_ref or case_ref, holder, item_ref, 0)
        event_id = await self.cases.last_event_id(case_ref)
        signals = await self.cases.signals_of(case_ref)
        await translog_hooks.log_decision(
            self.translog,
            decision_id=await self.decision_log_id(case_ref, int(event_id)),
            match_id=match_id,
            outcome=outcome,
            decided_by=by,
            signals=signals.get("fired", []),  # names only, for the report's counts
        )

    async def feedback(self, record: fb.FeedbackRecord, direction: str, peer: str) -> None:
        await translog_hooks.log_feedback(
            self.translog,
            feedback_id=record.id,
            peer=peer,
            direction=direction,
            item_ref=record.item,
            opinion=_LOG_OPINION.get(record.opinion, record.opinion),
        )

    async def appeal(self, case_ref: bytes, status: str) -> None:
        # The appealed decision is the one that actioned the case (by policy or a reviewer).
        event_id = await self.cases.last_event_id(case_ref, ("decided:actioned", "opened:actioned"))
        await translog_hooks.log_appeal(
            self.translog,
            appeal_id=_derived_id(case_ref, b"appeal"),
            decision_id=await self.decision_log_id(case_ref, int(event_id)),
            status=status,
        )
