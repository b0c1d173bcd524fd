"""The holder answering its peers: VOPRF evaluations, threshold queries, feed pages, feedback.

Every answer is admitted first (:mod:`.admission`: nonce, budget, traffic count); the protocol
steps are :mod:`blindmatch.protocol.matching`'s. What a holder releases about a matched item is
its signal type's (``node/signals``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from blindmatch.node import signals
from blindmatch.node.cases.decisions import DecisionError, DecisionService
from blindmatch.node.clock import Clock
from blindmatch.node.errors import NodeError
from blindmatch.node.federation import oprf_workers
from blindmatch.node.federation.admission import Admission, PendingNonce
from blindmatch.node.federation.publisher import INDEX_FEED
from blindmatch.node.federation.uploader_signals import FEED as UPLOADERS_FEED
from blindmatch.node.federation.uploader_signals import UploaderSignals
from blindmatch.node.keys import NodeKeys
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import Database, FeedLog
from blindmatch.protocol import feedback as fb
from blindmatch.protocol import matching
from blindmatch.protocol.roster import Member

FEED_PAGE_BYTES = 8 * 1024 * 1024  # half the querier's reply limit
# An oprf.evaluate of this many elements or more runs in a worker process (a picture's tiles,
# ~3,000 elements, take a core for a quarter of a second); smaller ones in a thread.
EVALUATE_IN_WORKER_ELEMENTS = 512
FEEDS = (INDEX_FEED, fb.FEED)


class PeerResponder:
    def __init__(
        self,
        db: Database,
        admission: Admission,
        feeds: FeedLog,
        decisions: DecisionService,
        keys: NodeKeys,
        metrics: Metrics,
        clock: Clock,
        release_bands: Sequence[int],
        uploaders: UploaderSignals | None = None,
    ) -> None:
        self.db = db
        self.uploaders = uploaders
        self.admission = admission
        self.feeds = feeds
        self.decisions = decisions
        self.keys = keys
        self.metrics = metrics
        self.release_bands = tuple(release_bands)
        self.clock = clock
        self._verified_queries: OrderedDict[bytes, Any] = OrderedDict()

    async def evaluate(
        self, peer: Member, body: dict[str, Any], pending: PendingNonce | None = None
    ) -> dict[str, Any]:
        if body["key_id"] != self.keys.voprf_key_id:
            raise NodeError("not-allowed", "unknown or retired VOPRF key id")
        self.admission.refuse_early(peer, "evaluations")
        await self.admission.charge(
            peer, "evaluations", len(body["elements"]), "evaluations", pending
        )
        try:
            # The scalar multiplications run off the event loop: a large request (a picture's
            # tiles, thousands of elements) in a worker process, a small one in a thread.
            if len(body["elements"]) >= EVALUATE_IN_WORKER_ELEMENTS:
                return await oprf_workers.run(
                    matching.answer_evaluate, self.keys.voprf, self.keys.voprf_key_id, body
                )
            return await asyncio.to_thread(
                matching.answer_evaluate, self.keys.voprf, self.keys.voprf_key_id, body
            )
        except matching.ExchangeError as exc:
            raise NodeError(exc.code, str(exc)) from exc

    async def holder_items(self, refs: Sequence[bytes]) -> dict[bytes, matching.HolderItem | None]:
        """What the holder answers for each asked reference: the live item of whichever signal
        type holds it (None when none does: withdrawn, expired, never ours)."""
        now = self.clock.now()
        out: dict[bytes, matching.HolderItem | None] = {}
        for ref in refs:
            item = None
            for adapter in signals.ADAPTERS:
                item = await adapter.holder_item(self.db, ref, now, self.release_bands)
                if item is not None:
                    break
            out[ref] = item
        return out

    async def threshold(
        self, peer: Member, body: dict[str, Any], pending: PendingNonce | None = None
    ) -> dict[str, Any]:
        self.admission.refuse_early(peer, "threshold_items")
        digest = hashlib.sha256(body["query"]).digest()
        known_bad = self.admission.known_bad(digest)
        if known_bad is not None:  # the same bad proof again: refused without crypto
            self.metrics.inc("bad_proofs_total", labels={"peer": peer.node_id})
            raise known_bad
        await self.admission.charge(peer, "threshold_items", len(body["items"]), "queries", pending)
        if self.uploaders is not None:  # the candidates a peer may look uploaders up for
            await self.uploaders.note_candidates(peer.node_id, body["items"])
        verified = self._verified_queries.get(digest)
        # The candidates are read from the database while the proofs are checked off the loop.
        items_read = asyncio.ensure_future(self.holder_items(body["items"]))
        try:
            if verified is None:
                try:
                    verified = await asyncio.to_thread(matching.verify_threshold_query, body)
                except matching.ExchangeError as exc:
                    raise await self.admission.bad_proof(peer, digest, str(exc)) from exc
                self._verified_queries[digest] = verified
                while len(self._verified_queries) > 64:
                    self._verified_queries.popitem(last=False)
            items = await items_read
        finally:
            if not items_read.done():
                items_read.cancel()
            elif not items_read.cancelled():
                items_read.exception()  # retrieved: a refusal above is what the peer hears
        assert verified is not None
        answer = await asyncio.to_thread(matching.answer_threshold, verified, items, body)
        self.metrics.inc("threshold_answers_total", len(answer["answers"]))
        return answer

    async def feedback_submit(
        self, peer: Member, body: dict[str, Any], pending: PendingNonce | None = None
    ) -> dict[str, Any]:
        try:
            seq = await self.decisions.accept_feedback(peer.node_id, body["record"])
        except DecisionError as exc:
            raise NodeError(exc.code, exc.detail) from exc
        return {"seq": seq}

    async def feed_pull(
        self, peer: Member, body: dict[str, Any], pending: PendingNonce | None = None
    ) -> dict[str, Any]:
        uploaders_feed = (
            body["feed"] == UPLOADERS_FEED
            and self.uploaders is not None
            and self.uploaders.may_pull(peer)
        )
        if body["feed"] not in FEEDS and not uploaders_feed:
            raise NodeError("not-allowed", f"no feed named {body['feed']} for {peer.node_id}")
        entries = await self.feeds.read(body["feed"], body["after"], body["limit"])
        head = await self.feeds.head(body["feed"])
        # A page stops at a byte budget (always at least one entry), so a backlog of large
        # index deltas never makes a reply the querier must refuse as too large.
        page: list[dict[str, Any]] = []
        size = 0
        for e in entries:
            if page and size + len(e.payload) > FEED_PAGE_BYTES:
                break
            page.append({"seq": e.seq, "id": e.entry_id, "kind": e.kind, "payload": e.payload})
            size += len(e.payload)
        return {"feed": body["feed"], "entries": page, "head": head}
