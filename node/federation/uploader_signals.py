"""Repeat-uploader signals in the node (specs/uploaders.md): every role in one service.

* **holder** (a member with an ``uploader_key``): answers stage 1 (``uploader.evaluate``) for its
  own pictures, only to members with a capability, only for an item the member had as a
  candidate in the last 7 days, within a daily and a per-picture budget;
* **keeper** (the member with ``uploader-keeper``): answers stage 2 (``uploader.tag``), accepts
  publications backed by the publisher's ``confirm`` record in the holder's feedback feed,
  withdraws them, expires them, and publishes the ``uploaders`` feed without publishers' names;
* **reader**: after a confirmed match on a picture whose holder has an ``uploader_key``, computes
  its uploader's tags through both stages and looks them up in its replica of the keeper's feed;
  a later add or remove in that feed raises or clears the signal on open cases;
* **publisher**: after a reviewer actions such a case, sends the tags to the keeper, and
  withdraws them when an appeal is upheld.

Identifiers and digests never leave this node except blinded; tags travel only to the keeper
and in its feed. Every publication and every evaluation is logged (chapter 12 kinds
``uploader-signal`` and ``uploader-evaluation-counts``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from blindmatch.node.errors import NodeError
from blindmatch.node.storage.budget import BudgetLimits
from blindmatch.protocol import canonical
from blindmatch.protocol import uploaders as up
from blindmatch.protocol.roster import Member, voprf_key_id

if TYPE_CHECKING:
    from blindmatch.node.clock import Clock
    from blindmatch.node.federation.peer_client import PeerClient
    from blindmatch.node.keys import NodeKeys
    from blindmatch.node.metrics import Metrics
    from blindmatch.node.storage.budget import BudgetLedger
    from blindmatch.node.storage.feeds import FeedLog
    from blindmatch.node.storage.outbox import Outbox
    from blindmatch.node.storage.replicas import ReplicaStore
    from blindmatch.node.storage.uploaders import UploaderStore
    from blindmatch.node.translog.hooks import TrafficCounts
    from blindmatch.node.translog.log import TransparencyLog
    from blindmatch.protocol.roster import Roster

log = logging.getLogger("blindmatch.uploaders")

FEED = up.FEED
PUBLISH_KIND = "uploader-publish"
WITHDRAW_KIND = "uploader-withdraw"
REQUEST_TYPES = tuple(up.REPLY_TYPES)


class UploaderSignalError(NodeError):
    """A refusal of an uploader-signal request, reported to the peer like any other."""

    code = "not-allowed"  # its usual refusal; others name theirs


@dataclass(frozen=True)
class Change:
    """Tags whose state changed in the reader's replica after a pull."""

    added: frozenset[bytes]
    removed: frozenset[bytes]


class UploaderSignals:
    def __init__(
        self,
        store: UploaderStore,
        *,
        node_id: str,
        roster: Callable[[], Roster],  # the roster in force (a node may adopt a newer one)
        keys: NodeKeys,
        feeds: FeedLog,
        replicas: ReplicaStore,
        client: PeerClient,
        outbox: Outbox,
        budgets: BudgetLedger,
        traffic: TrafficCounts,
        translog: TransparencyLog,
        metrics: Metrics,
        clock: Clock,
        refresh_feedback: Callable[[Member], Awaitable[Any]],
    ) -> None:
        self.store, self.node_id, self._roster, self.keys = store, node_id, roster, keys
        self.feeds, self.replicas, self.client, self.outbox = feeds, replicas, client, outbox
        self.budgets, self.traffic, self.translog = budgets, traffic, translog
        self.metrics, self.clock = metrics, clock
        # The keeper checks a publication against the holder's feedback feed; when the record
        # has not arrived yet it pulls that feed once (instead of refusing and waiting a round).
        self.refresh_feedback = refresh_feedback

    def now(self) -> int:
        return self.clock.now()

    @property
    def roster(self) -> Roster:
        return self._roster()

    # --- roster ----------------------------------------------------------------------------

    def keeper(self) -> Member | None:
        k = self.roster.keeper()
        return k if k is not None and k.keeper_key is not None else None

    def can_read(self) -> bool:
        return self.roster.can(self.node_id, up.CAP_READ)

    def can_publish(self) -> bool:
        return self.roster.can(self.node_id, up.CAP_PUBLISH)

    def _require(self, peer: Member, *caps: str) -> None:
        if not any(c in peer.capabilities for c in caps):
            raise UploaderSignalError(f"{peer.node_id} has no {' or '.join(caps)} capability")

    async def _charge(self, peer: Member, key: str, n: int, per_day: int) -> None:
        now = self.now()
        ok = await self.budgets.charge(
            f"{peer.node_id}/{key}", n, now, BudgetLimits(per_hour=per_day, per_day=per_day)
        )
        if not ok:
            self.metrics.inc(
                "budget_refusals_total", labels={"peer": peer.node_id, "what": "uploader"}
            )
            raise UploaderSignalError(
                f"uploader-signal budget for {peer.node_id} is used up today",
                code="budget-exhausted",
                retry_after_ms=(86_400 - now % 86_400) * 1000,
            )

    async def _count(self, peer: str, counter: str, direction: str, n: int) -> None:
        await self.traffic.record(peer, counter, direction, 1, n, self.now() * 1000)

    # --- holder: stage 1 ---------------------------------------------------------------------

    async def note_candidates(self, peer_id: str, items: Sequence[bytes]) -> None:
        """The peer asked a threshold query naming these items: it may look uploaders up for
        them during the candidate window."""
        if self.keys.uploader is None:
            return
        await self.store.note_candidates(peer_id, items, self.now())

    async def _picture_of_own_item(self, item_ref: bytes) -> bytes | None:
        row = await self.store.live_item(item_ref, self.now())
        if row is not None:
            return bytes(row["grp"]) if row["grp"] is not None else item_ref
        return await self.store.tile_group(item_ref)

    async def answer_evaluate(
        self, peer: Member, body: dict[str, Any], pending: Any = None
    ) -> dict[str, Any]:
        key = self.keys.uploader
        if key is None or body["key_id"] != voprf_key_id(key.pk):
            raise UploaderSignalError("no uploader key with that id here")
        self._require(peer, up.CAP_READ, up.CAP_PUBLISH)
        picture = await self._picture_of_own_item(body["item"])
        if picture is None:
            raise UploaderSignalError("no such live item here", code="unknown-item")
        if picture != body["picture"]:
            raise UploaderSignalError(
                "picture is not the item's picture reference", code="bad-body"
            )
        seen = await self.store.candidate_at(peer.node_id, body["item"])
        if seen is None or seen < self.now() - up.CANDIDATE_WINDOW_MS // 1000:
            raise UploaderSignalError(
                "uploaders are looked up only for a recent candidate of the item",
            )
        n = len(body["elements"])
        await self._charge(
            peer, "uploader", n, peer.budget.get("uploader_evaluations_per_day", 2000)
        )
        await self._charge(
            peer, f"uploader-picture/{picture.hex()}", n,
            peer.budget.get("uploader_evaluations_per_picture_day", 16),
        )  # fmt: skip
        try:
            evaluated, proof = up.holder_evaluate(
                key, self.node_id, picture, list(body["elements"])
            )
        except up.UploaderError as exc:
            raise UploaderSignalError(str(exc), code="bad-body") from exc
        await self._count(peer.node_id, "uploader-holder", "received", n)
        return {"key_id": body["key_id"], "elements": evaluated, "proof": proof}

    # --- keeper: stage 2, publications, the feed ------------------------------------------------

    async def answer_tag(
        self, peer: Member, body: dict[str, Any], pending: Any = None
    ) -> dict[str, Any]:
        key = self.keys.keeper
        if key is None or body["key_id"] != voprf_key_id(key.pk):
            raise UploaderSignalError("this node keeps no uploader signals")
        self._require(peer, up.CAP_READ, up.CAP_PUBLISH)
        n = len(body["elements"])
        await self._charge(
            peer, "uploader-keeper", n, peer.budget.get("uploader_evaluations_per_day", 2000)
        )
        evaluated, proof = up.keeper_evaluate(key, list(body["elements"]))
        await self._count(peer.node_id, "uploader-keeper", "received", n)
        return {"key_id": body["key_id"], "elements": evaluated, "proof": proof}

    def _keeper_key_id(self) -> bytes:
        key = self.keys.keeper
        if key is None:
            raise UploaderSignalError("this node keeps no uploader signals")
        return voprf_key_id(key.pk)

    async def _confirm_ok(self, peer: Member, body: dict[str, Any]) -> bool:
        at_ms = await self.store.confirm_at(
            body["confirm"], peer.node_id, body["holder"], body["item"]
        )
        if at_ms is None:
            return False
        retracted = await self.store.retracted_since(
            peer.node_id, body["holder"], body["item"], at_ms
        )
        fresh = at_ms >= self.now() * 1000 - up.CONFIRM_WINDOW_MS
        return fresh and not retracted

    async def accept_publish(
        self, peer: Member, body: dict[str, Any], pending: Any = None
    ) -> dict[str, Any]:
        key_id = self._keeper_key_id()
        self._require(peer, up.CAP_PUBLISH)
        if body["key_id"] != key_id:
            raise UploaderSignalError("tags under another keeper key")
        known = await self.store.publication(body["publication"])
        if known is not None:
            if known["origin"] != peer.node_id:
                raise UploaderSignalError("another member's publication id")
            return {"publication": body["publication"], "seq": await self.feeds.head(FEED)}
        holder = self.roster.member(body["holder"])
        if holder is None or holder.uploader_key is None:
            raise UploaderSignalError("the item's holder keeps no uploader key")
        if not await self._confirm_ok(peer, body):
            from blindmatch.node.federation.peer_client import PeerError

            try:
                await self.refresh_feedback(holder)  # the record may be on its way: pull once
            except PeerError as exc:  # the holder is down: the publisher's outbox retries
                log.info("could not pull %s's feedback feed: %s", holder.node_id, exc.code)
            if not await self._confirm_ok(peer, body):
                raise UploaderSignalError(
                    "no recent confirm record by the publisher about this item"
                )
        now_ms = self.now() * 1000
        try:
            expires = up.expiry_for(body.get("expires_ms"), now_ms)
        except up.UploaderError as exc:
            raise UploaderSignalError(str(exc), code="bad-body") from exc
        tags = sorted(set(body["tags"]))
        async with self.store.transaction():
            if await self.store.confirm_used(body["confirm"]):
                raise UploaderSignalError("that confirm record backs a publication")
            live = await self._live_tags(now_ms)
            await self.store.add_publication(
                body["publication"], peer.node_id, body["holder"], body["item"],
                body["confirm"], b"".join(tags), expires, self.now(),
            )  # fmt: skip
            grow = [t for t in tags if live.get(t, 0) < expires]
            if grow:
                kind, payload = up.add_entry(key_id, grow, expires)
                await self.feeds.append(FEED, os.urandom(16), kind, payload, self.now())
            await self._log_signal(body["publication"], peer.node_id, "received", "publish")
        self.metrics.inc("uploader_publications_total")
        return {"publication": body["publication"], "seq": await self.feeds.head(FEED)}

    async def _publications(
        self, now_ms: int, exclude: bytes | None = None
    ) -> list[up.Publication]:
        rows = await self.store.live_publications(now_ms)
        return [
            up.Publication(
                bytes(r["publication"]), r["origin"], _split(bytes(r["tags"])), int(r["expires_ms"])
            )
            for r in rows
            if bytes(r["publication"]) != exclude
        ]

    async def _live_tags(self, now_ms: int) -> dict[bytes, int]:
        return up.live_tags(await self._publications(now_ms), now_ms)

    async def _take_down(self, row: Any, now_ms: int, action: str) -> None:
        gone = up.Publication(
            bytes(row["publication"]), row["origin"], _split(bytes(row["tags"])),
            int(row["expires_ms"]),
        )  # fmt: skip
        remaining = await self._publications(now_ms, exclude=gone.id)
        await self.store.mark_withdrawn(gone.id, self.now())
        remove = up.tags_to_remove(gone, remaining, now_ms)
        if remove:
            kind, payload = up.remove_entry(self._keeper_key_id(), remove)
            await self.feeds.append(FEED, os.urandom(16), kind, payload, self.now())
        await self._log_signal(gone.id, gone.origin, "received", action)

    async def accept_withdraw(
        self, peer: Member, body: dict[str, Any], pending: Any = None
    ) -> dict[str, Any]:
        self._keeper_key_id()
        row = await self.store.publication(body["publication"])
        if row is None:
            raise UploaderSignalError("no such publication", code="unknown-item")
        if row["origin"] != peer.node_id:
            raise UploaderSignalError("only its publisher withdraws a publication")
        if row["withdrawn_at"] is None:
            async with self.store.transaction():
                await self._take_down(row, self.now() * 1000, "withdraw")
        return {"publication": body["publication"], "seq": await self.feeds.head(FEED)}

    async def expire(self) -> int:
        """Keeper: take expired publications out of the feed (readers ignore them anyway)."""
        if self.keys.keeper is None:
            return 0
        now_ms = self.now() * 1000
        rows = await self.store.expired_publications(now_ms)
        for row in rows:
            async with self.store.transaction():
                await self._take_down(row, now_ms, "expire")
        return len(rows)

    async def _log_signal(self, publication: bytes, peer: str, direction: str, action: str) -> None:
        await self.translog.append(
            {
                "kind": "uploader-signal",
                "time_ms": self.now() * 1000,
                "publication": publication,
                "peer": peer,
                "direction": direction,
                "action": action,
            }
        )

    def may_pull(self, peer: Member) -> bool:
        return self.keys.keeper is not None and up.CAP_READ in peer.capabilities

    # --- reader -------------------------------------------------------------------------------

    async def lookup(
        self,
        holder: Member,
        item_ref: bytes,
        release: dict[str, Any],
        digests: Sequence[bytes],
    ) -> list[bytes] | None:
        """Our uploader's tags for the picture of a confirmed match, or None when the signals
        do not apply (no capability, no keeper, a holder without an uploader key)."""
        keeper = self.keeper()
        if (
            not digests
            or keeper is None
            or holder.uploader_key is None
            or not (self.can_read() or self.can_publish())
        ):
            return None
        picture = up.picture_of(item_ref, release)
        state, elements = up.start(holder.node_id, picture, digests, holder.uploader_key)
        reply = await self.client.call(
            holder,
            "uploader.evaluate",
            {"key_id": voprf_key_id(holder.uploader_key), "item": item_ref, "picture": picture,
             "elements": elements},
        )  # fmt: skip
        await self._count(holder.node_id, "uploader-holder", "sent", len(elements))
        keeper_key = _key_of(keeper)
        elements2 = up.after_holder(state, reply.body["elements"], reply.body["proof"],
                                    keeper_key)  # fmt: skip
        if keeper.node_id == self.node_id:
            assert self.keys.keeper is not None
            ev2, proof2 = up.keeper_evaluate(self.keys.keeper, elements2)
        else:
            reply2 = await self.client.call(
                keeper, "uploader.tag",
                {"key_id": voprf_key_id(keeper_key), "elements": elements2},
            )  # fmt: skip
            ev2, proof2 = reply2.body["elements"], reply2.body["proof"]
            await self._count(keeper.node_id, "uploader-keeper", "sent", len(elements2))
        return up.finish(state, ev2, proof2, keeper_key)

    async def known_elsewhere(self, tags: Sequence[bytes]) -> bool:
        """Whether the keeper's feed (as replicated here) holds one of these tags, not counting
        the ones this node published itself."""
        keeper = self.keeper()
        if keeper is None or not tags:
            return False
        now_ms = self.now() * 1000
        mine = await self.store.own_published_tags()
        for t in tags:
            if t in mine:
                continue
            exp = await self.store.signal_expiry(keeper.node_id, t)
            if exp is not None and exp > now_ms:
                return True
        return False

    async def pull(self, max_pages: int = 100) -> Change:
        """Reader: pull the keeper's feed and apply it; returns the tags that changed."""
        keeper = self.keeper()
        if keeper is None or keeper.node_id == self.node_id or not self.can_read():
            return Change(frozenset(), frozenset())
        added: set[bytes] = set()
        removed: set[bytes] = set()
        key_id = voprf_key_id(_key_of(keeper))
        for _ in range(max_pages):
            cursor = await self.replicas.cursor(keeper.node_id, FEED)
            reply = await self.client.call(
                keeper, "feed.pull", {"feed": FEED, "after": cursor, "limit": 500}
            )
            body = reply.body
            entries = body["entries"]
            seqs = [e["seq"] for e in entries]
            if body["feed"] != FEED or seqs != sorted(set(seqs)) or (seqs and seqs[0] <= cursor):
                raise UploaderSignalError("uploaders feed page out of order", code="bad-body")
            if not entries:
                break
            from blindmatch.node.storage.feeds import FeedEntry

            stored = [
                FeedEntry(FEED, e["seq"], e["id"], e["kind"], e["payload"], 0) for e in entries
            ]
            async with self.store.transaction():
                await self.replicas.store_pulled(keeper.node_id, FEED, stored, seqs[-1], self.now())
                for e in entries:
                    try:
                        parsed = up.parse_entry(e["kind"], e["payload"])
                    except up.UploaderError as exc:
                        log.warning("rejected uploaders entry %d: %s", e["seq"], exc.code)
                        continue
                    if parsed["key_id"] != key_id:
                        continue
                    for t in parsed["tags"]:
                        if e["kind"] == up.ADD:
                            await self.store.add_signal(keeper.node_id, t, parsed["expires_ms"])
                            added.add(t)
                            removed.discard(t)
                        else:
                            await self.store.remove_signal(keeper.node_id, t)
                            removed.add(t)
                            added.discard(t)
            if seqs[-1] >= body["head"]:
                break
        return Change(frozenset(added), frozenset(removed))

    # --- publisher ----------------------------------------------------------------------------

    async def remember_tags(self, case_ref: bytes, holder: str, tags: Sequence[bytes]) -> None:
        await self.store.remember_tags(case_ref, holder, tags)

    async def case_tags(self, case_ref: bytes) -> list[bytes]:
        return await self.store.case_tags(case_ref)

    async def publish(self, case_ref: bytes, holder: str, item_ref: bytes, confirm: bytes) -> bool:
        """Queue the publication of a reviewer-actioned case's tags (delivered by the outbox)."""
        keeper = self.keeper()
        tags = await self.case_tags(case_ref)
        if keeper is None or not tags or not self.can_publish():
            return False
        publication = os.urandom(16)
        body = {
            "publication": publication, "key_id": voprf_key_id(_key_of(keeper)),
            "holder": holder, "item": item_ref, "confirm": confirm,
            "tags": tags[: up.MAX_IDENTIFIERS],
        }  # fmt: skip
        await self.store.add_outgoing(publication, case_ref, keeper.node_id, self.now())
        await self.outbox.enqueue(
            publication, keeper.node_id, PUBLISH_KIND, _pack(body), self.now()
        )
        await self._log_signal(publication, keeper.node_id, "sent", "publish")
        return True

    async def withdraw_case(self, case_ref: bytes) -> int:
        """Queue the withdrawal of the case's publications (an upheld appeal, a reversal)."""
        rows = await self.store.outgoing_published(case_ref)
        for r in rows:
            pub = bytes(r["publication"])
            await self.store.mark_outgoing_withdrawn(pub, self.now())
            await self.outbox.enqueue(
                pub + b"withdraw", r["keeper"], WITHDRAW_KIND, _pack({"publication": pub}),
                self.now(),
            )  # fmt: skip
            await self._log_signal(pub, r["keeper"], "sent", "withdraw")
        return len(rows)

    async def deliver(self, kind: str, peer_id: str, payload: bytes) -> None:
        """Outbox delivery of a publish or withdraw message to the keeper."""
        keeper = self.roster.member(peer_id)
        if keeper is None:
            raise UploaderSignalError(f"{peer_id} is no longer in the roster")
        message = "uploader.publish" if kind == PUBLISH_KIND else "uploader.withdraw"
        await self.client.call(keeper, message, _unpack(payload))


def _key_of(keeper: Member) -> bytes:
    # keeper() returns only a member that has a keeper_key
    assert keeper.keeper_key is not None
    return keeper.keeper_key


def _split(packed: bytes) -> tuple[bytes, ...]:
    return tuple(packed[i : i + up.TAG_BYTES] for i in range(0, len(packed), up.TAG_BYTES))


def _pack(body: dict[str, Any]) -> bytes:
    return canonical.encode(body)


def _unpack(payload: bytes) -> dict[str, Any]:
    value = canonical.decode(payload)
    assert isinstance(value, dict)  # our own outbox payload
    return value
