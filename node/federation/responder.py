"""The holder answering its peers: VOPRF evaluations, threshold queries, feed pages, feedback.

Every answer is admitted first (:mod:`.admission`: nonce, budget, traffic count); the protocol
steps are :mod:`blindmatch.protocol.matching`'s. What a holder releases about a matched item is
its signal type's (``node/signals``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from blindmatch.crypto import release
from blindmatch.node import signals
from blindmatch.node.cases.decisions import DecisionError, DecisionService
from blindmatch.node.clock import Clock
from blindmatch.node.errors import NodeError
from blindmatch.node.federation import oprf_workers
from blindmatch.node.federation.admission import Admission, PendingNonce
from blindmatch.node.federation.key_ring import VoprfKeyRing
from blindmatch.node.federation.publisher import INDEX_FEED, label_threshold
from blindmatch.node.federation.query_cache import VerifiedQueryCache
from blindmatch.node.federation.uploader_signals import FEED as UPLOADERS_FEED
from blindmatch.node.federation.uploader_signals import UploaderSignals
from blindmatch.node.metrics import Metrics
from blindmatch.node.signals.base import bands as band_bounds
from blindmatch.node.storage import Database, FeedLog
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.protocol import feedback as fb
from blindmatch.protocol import index, matching
from blindmatch.protocol.roster import Member
from blindmatch.protocol.signals import PDQ_MATCH_THRESHOLD

log = logging.getLogger("blindmatch.node")

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
        ring: VoprfKeyRing,
        metrics: Metrics,
        clock: Clock,
        release_bands: Sequence[int],
        uploaders: UploaderSignals | None = None,
        published: PublishedIndexStore | None = None,
        queries: VerifiedQueryCache | None = None,
    ) -> None:
        self.db = db
        self.published = published or PublishedIndexStore(db)
        self.uploaders = uploaders
        self.admission = admission
        self.feeds = feeds
        self.decisions = decisions
        self.ring = ring
        self.metrics = metrics
        self.release_bands = tuple(release_bands)
        self.clock = clock
        # verified queries, per peer, for the later rounds that name them (query_ref, 7.3)
        self.queries = queries if queries is not None else VerifiedQueryCache()
        self._verifying: dict[bytes, asyncio.Future[Any]] = {}

    async def evaluate(
        self, peer: Member, body: dict[str, Any], pending: PendingNonce | None = None
    ) -> dict[str, Any]:
        key_id = body["key_id"]
        key = self.ring.answering(key_id, self.clock.now())
        if key is None and await self.ring.refresh():  # another process of ours rotated
            key = self.ring.answering(key_id, self.clock.now())
        if key is None:
            raise NodeError("unknown or retired VOPRF key id", code="not-allowed")
        self.admission.refuse_early(peer, "evaluations")
        n = len(body["elements"])
        # Counted against the key's lifetime first (refused whole past its cap, spec 8.2),
        # then the budget; a request the budget refuses is taken off the key's count again.
        used = await self.ring.count(key_id, n)
        try:
            await self.admission.charge(peer, "evaluations", n, "evaluations", pending)
        except NodeError:
            await self.ring.uncount(key_id, n)
            raise
        await self.ring.note_usage(key_id, used)  # at 7/8 of the cap: the rotation starts
        try:
            # The scalar multiplications run off the event loop: a large request (a picture's
            # tiles, thousands of elements) in a worker process, a small one in a thread.
            if len(body["elements"]) >= EVALUATE_IN_WORKER_ELEMENTS:
                return await oprf_workers.run(matching.answer_evaluate, key, key_id, body)
            return await asyncio.to_thread(matching.answer_evaluate, key, key_id, body)
        except matching.ExchangeError as exc:
            raise NodeError(str(exc), code=exc.code) from exc

    async def resolve_candidates(
        self, candidates: Sequence[bytes]
    ) -> dict[bytes, matching.HolderItem | matching.DecoyItem | None]:
        """What each candidate a querier names resolves to (spec 8.5): its table reference,
        opened with our reference key, gives an item prefix; the item must be published with an
        entry of the candidate's tag and still be live. Anything else resolves to None (the
        querier gets a decoy answer, as for an item that does not match)."""
        # a candidate comes from the index of a key we answer for: the current one or, during
        # a rotation, the successor or the retired one (8.4)
        await self.ring.refresh()  # another process of this node may have rotated
        ref_keys = self.ring.candidate_keys(self.clock.now())
        named: dict[bytes, bytes | None] = {}
        for c in candidates:
            if c in named:
                continue
            named[c] = None
            for key_id, ref_key in ref_keys.items():
                tag, prefix = index.resolve_candidate(ref_key, key_id, c)
                rows = await self.published.with_prefix(prefix, key_id)
                found = [ref for ref, entries in rows.items() if tag in index.entry_tags(entries)]
                if found:
                    named[c] = found[0]
                    break
        items: dict[bytes, matching.HolderItem | matching.DecoyItem | None] = dict(
            await self.holder_items([r for r in set(named.values()) if r is not None])
        )
        # a decoy, or an item no longer answered for: answered as a decoy with the bands of the
        # policy it was published under, as the entries it hides among are (8.7)
        unanswered = [r for r, item in items.items() if item is None]
        for ref, label in (await self.published.labels(unanswered)).items():
            items[ref] = matching.DecoyItem(band_bounds(self.release_bands, label_threshold(label)))
        return {c: (items.get(ref) if ref is not None else None) for c, ref in named.items()}

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

    async def _verify_once(self, peer: Member, digest: bytes, body: dict[str, Any]) -> Any:
        """Verify a threshold query's proofs once however many copies of it arrive together:
        copies that come while it is being checked wait for that check (a bad proof sent n
        times at once would otherwise cost n verifications before the first one's penalty)."""
        running = self._verifying.get(digest)
        if running is not None:
            try:
                return await asyncio.shield(running)  # its refusal, if bad, is theirs too
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this request was cancelled
                # the first check was abandoned (its caller went away): check here instead
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._verifying[digest] = done
        try:
            verified = await asyncio.to_thread(matching.verify_threshold_query, body)
        except matching.ExchangeError as exc:
            refusal = await self.admission.bad_proof(peer, digest, str(exc))
            done.set_exception(refusal)
            done.exception()  # retrieved here: waiters may be none
            raise refusal from exc
        except BaseException:
            done.cancel()
            raise
        finally:
            self._verifying.pop(digest, None)
        done.set_result(verified)
        return verified

    async def threshold(
        self, peer: Member, body: dict[str, Any], pending: PendingNonce | None = None
    ) -> dict[str, Any]:
        self.admission.refuse_early(peer, "threshold_items")
        now = self.clock.now()
        if "query_ref" in body:
            # a later round naming a query this peer sent before (7.3): answered from the one
            # verified then, or refused before anything is charged or read
            digest = body["query_ref"]
            verified = self.queries.get(peer.node_id, digest, now)
            if verified is None:
                self.metrics.inc("query_refs_total", labels={"outcome": "unknown"})
                raise NodeError(
                    "no encrypted query with this digest is kept for you (never sent whole, "
                    "expired or evicted): send it whole",
                    code="unknown-query",
                )
            self.metrics.inc("query_refs_total", labels={"outcome": "kept"})
        else:
            digest = hashlib.sha256(body["query"]).digest()
            known_bad = self.admission.known_bad(digest)
            if known_bad is not None:  # the same bad proof again: refused without crypto
                self.metrics.inc("bad_proofs_total", labels={"peer": peer.node_id})
                raise known_bad
            verified = self.queries.get(peer.node_id, digest, now)
        await self.admission.charge(peer, "threshold_items", len(body["items"]), "queries", pending)
        # The candidates are read from the database while the proofs are checked off the loop.
        items_read = asyncio.ensure_future(self.resolve_candidates(body["items"]))
        try:
            if verified is None:
                verified = await self._verify_once(peer, digest, body)
            items = await items_read
        finally:
            if not items_read.done():
                items_read.cancel()
            elif not items_read.cancelled():
                items_read.exception()  # retrieved: a refusal above is what the peer hears
        assert verified is not None
        self.queries.put(peer.node_id, digest, verified, now)
        if self.uploaders is not None:  # the items a peer may look uploaders up for: those its
            # candidates named (resolved here; the peer learns a reference only on a match)
            named = sorted(
                {it.item_ref for it in items.values() if isinstance(it, matching.HolderItem)}
            )
            await self.uploaders.note_candidates(peer.node_id, named)
        # The release scalars' key (8.5): from the reference key of the oldest key id we
        # answer for, the same in every process of this node; a token shown across a rotation
        # that changes it is not recognised, and its candidates get full answers.
        ref_keys = self.ring.candidate_keys(self.clock.now())
        scalar_key = release.scalar_key(ref_keys[min(ref_keys)]) if ref_keys else None
        answer = await asyncio.to_thread(
            matching.answer_threshold,
            verified,
            items,
            body,
            band_bounds(self.release_bands, PDQ_MATCH_THRESHOLD),
            scalar_key,
        )
        self.metrics.inc("threshold_answers_total", len(answer["answers"]))
        return answer

    async def feedback_submit(
        self, peer: Member, body: dict[str, Any], pending: PendingNonce | None = None
    ) -> dict[str, Any]:
        try:
            seq = await self.decisions.accept_feedback(peer.node_id, body["record"])
        except DecisionError as exc:
            raise NodeError(exc.detail, code=exc.code) from exc
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
            raise NodeError(f"no feed named {body['feed']} for {peer.node_id}", code="not-allowed")
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
