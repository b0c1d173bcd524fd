"""Feed replication as state machines, without I/O (specs/protocol.md 10.3-10.4).

Two machines, in the manner of h11: each owns its state, and every change of that state happens
inside it; the driver (``blindmatch.node``) only sends what a machine asks for, reports what came
back and what it stored, and acts on the outcomes it is handed.

:class:`FeedPull` pulls one peer's feed from a cursor, page by page::

    pull = FeedPull(feed, cursor=stored_cursor)
    while (body := pull.request()) is not None:       # -> feed.pull
        page = pull.receive(reply_body)                # checks order; raises ReplicationError
        store(page.entries, page.cursor)               # durably, with the cursor
        pull.stored()                                  # only now does the cursor move

:class:`IndexReplica` applies a peer's stored index-feed entries to its replica, exactly once, in
feed order, and gives every entry an explicit outcome (an entry for another scheme or a retired
key is *counted*, never silently dropped).

Both enforce the per-peer caps (:class:`PeerCaps`, from the size the holder declared in the
roster): a page that would take the peer's stored feed past its byte cap is refused before
anything of it is stored, and an addition that would take the replica past its entry cap is not
applied; the replica then stays at its last good state and applies nothing more of that peer.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blindmatch.protocol import canonical, index, schema

DEFAULT_PAGE_LIMIT = 500
DEFAULT_MAX_PAGES = 1000

# Per-peer caps (spec 10.4), from the index entries a holder declared (roster budget
# ``index_entries``, 10.1). An honest holder grows between two rosters, so its replica may hold
# a quarter more than it declared; its feed keeps every addition and removal, so it may carry
# the declared index eight times over (re-publications after key rotations and churn) plus the
# feedback feed's records. Incidents about one peer are capped whatever its size: a peer that
# can make us file incidents must not grow our database with them.
ENTRY_HEADROOM = 1.25
MIN_ENTRY_CAP = 10_000
FEED_BYTES_PER_DECLARED_ENTRY = 8 * index.ENTRY_BYTES
FEED_BYTES_FLOOR = 4 << 20
INCIDENTS_PER_PEER = 1000


@dataclass(frozen=True)
class PeerCaps:
    entries: int  # distinct entries the replica may hold
    feed_bytes: int  # payload bytes of the peer's stored feeds (index and feedback)
    incidents: int = INCIDENTS_PER_PEER

    @classmethod
    def from_declared(cls, declared_entries: int) -> PeerCaps:
        if not isinstance(declared_entries, int) or declared_entries < 0:
            raise ValueError("a declared size is a non-negative integer")
        return cls(
            entries=max(MIN_ENTRY_CAP, int(declared_entries * ENTRY_HEADROOM)),
            feed_bytes=FEED_BYTES_FLOOR + declared_entries * FEED_BYTES_PER_DECLARED_ENTRY,
        )


@dataclass(frozen=True)
class CapExceeded:
    """What a peer went past: which cap, its limit, what it would have been, and where."""

    cap: str  # "entries" or "feed-bytes"
    limit: int
    would_be: int
    seq: int  # the first feed entry that would have passed it

    def describe(self) -> str:
        return f"{self.cap} cap {self.limit} exceeded ({self.would_be}) at entry {self.seq}"


class ReplicationError(ValueError):
    """A feed page breaks the protocol: the puller stops, stores nothing of it, moves no cursor."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PullState(enum.Enum):
    SEND = "send"  # the next feed.pull may be sent
    AWAIT = "await"  # a feed.pull is out; its page is awaited
    STORE = "store"  # a page was accepted; waiting for the driver to store it
    DONE = "done"  # caught up with the head, or the page allowance is used up
    FAILED = "failed"  # a page broke the protocol; this pull is over


@dataclass(frozen=True)
class PulledEntry:
    seq: int
    entry_id: bytes
    kind: str
    payload: bytes


@dataclass(frozen=True)
class Page:
    entries: tuple[PulledEntry, ...]
    cursor: int  # the cursor once this page is stored: its last entry's seq
    head: int  # the peer's head when it answered


class FeedPull:
    """One pass over a peer's feed from ``cursor`` (entries with seq > cursor)."""

    def __init__(
        self,
        feed: str,
        cursor: int,
        *,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        max_pages: int = DEFAULT_MAX_PAGES,
        stored_bytes: int = 0,
        max_bytes: int | None = None,
    ) -> None:
        if not isinstance(cursor, int) or cursor < 0:
            raise ValueError("a cursor is a non-negative integer")
        if not 1 <= page_limit <= 1000 or max_pages < 1:
            raise ValueError("page_limit is 1..1000 and max_pages at least 1")
        if stored_bytes < 0 or (max_bytes is not None and max_bytes < 0):
            raise ValueError("stored_bytes and max_bytes are non-negative")
        self.feed = feed
        self.cursor = cursor
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.state = PullState.SEND
        self.pages = 0
        self.pulled = 0  # entries stored in this pass
        self.head: int | None = None
        # Payload bytes of the peer's feeds already stored (this pass included), and its cap.
        self.stored_bytes = stored_bytes
        self.max_bytes = max_bytes
        self.over_cap: CapExceeded | None = None
        self._page: Page | None = None

    def _expect(self, state: PullState, action: str) -> None:
        if self.state is not state:
            raise RuntimeError(f"cannot {action} in state {self.state.value}")

    def request(self) -> dict[str, Any] | None:
        """The next ``feed.pull`` body, or None when the pass is over."""
        if self.state in (PullState.DONE, PullState.FAILED):
            return None
        self._expect(PullState.SEND, "send a request")
        self.state = PullState.AWAIT
        return {"feed": self.feed, "after": self.cursor, "limit": self.page_limit}

    def receive(self, body: Mapping[str, Any]) -> Page:
        """Check a ``feed.page`` body (already schema-checked) against the request."""
        self._expect(PullState.AWAIT, "receive a page")
        try:
            page = self._check(body)
        except ReplicationError:
            self.state = PullState.FAILED
            raise
        self.pages += 1
        self.head = page.head
        if not page.entries:
            self.state = PullState.DONE
        else:
            self._page = page
            self.state = PullState.STORE
        return page

    def _check(self, body: Mapping[str, Any]) -> Page:
        if body.get("feed") != self.feed:
            raise ReplicationError("bad-body", "page of another feed")
        raw = body.get("entries")
        head = body.get("head")
        if not isinstance(raw, list) or not isinstance(head, int):
            raise ReplicationError("bad-body", "a page has entries and a head")
        if len(raw) > self.page_limit:
            raise ReplicationError("bad-body", "page longer than the limit asked for")
        entries = tuple(PulledEntry(e["seq"], e["id"], e["kind"], e["payload"]) for e in raw)
        previous = self.cursor
        for e in entries:
            if e.seq <= previous:
                raise ReplicationError("bad-body", "feed page is not in order after the cursor")
            previous = e.seq
        if entries and head < entries[-1].seq:
            raise ReplicationError("bad-body", "feed page goes beyond the head it names")
        if self.max_bytes is not None:
            total = self.stored_bytes
            for e in entries:
                total += len(e.payload)
                if total > self.max_bytes:
                    # The whole page is refused, so nothing past the cap is ever stored.
                    self.over_cap = CapExceeded("feed-bytes", self.max_bytes, total, e.seq)
                    raise ReplicationError("over-cap", self.over_cap.describe())
        return Page(entries, previous, head)

    def stored(self) -> None:
        """The driver stored the last page (entries and cursor together): move the cursor."""
        self._expect(PullState.STORE, "confirm a stored page")
        page = self._page
        assert page is not None
        self._page = None
        self.cursor = page.cursor
        self.pulled += len(page.entries)
        self.stored_bytes += sum(len(e.payload) for e in page.entries)
        if self.cursor >= page.head or self.pages >= self.max_pages:
            self.state = PullState.DONE
        else:
            self.state = PullState.SEND

    @property
    def done(self) -> bool:
        return self.state in (PullState.DONE, PullState.FAILED)


class EntryOutcome(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    CHECKPOINT = "checkpoint"
    OTHER_SCHEME = "other-scheme"  # an index of a scheme this replica does not match against
    OTHER_KEY = "other-key"  # published under another (retired or future) VOPRF key
    ALREADY_APPLIED = "already-applied"  # at or below the replica's position: skipped
    REJECTED = "rejected"  # unreadable: the peer's fault, an incident for the operator
    OVER_CAP = "over-cap"  # past the peer's entry cap, or after it: not applied


@dataclass(frozen=True)
class Applied:
    seq: int
    outcome: EntryOutcome
    reason: str = ""  # why an entry was rejected


class IndexReplica:
    """A querier's replica of one peer's index for one scheme and VOPRF key.

    Entries are applied strictly in feed order, each exactly once (``position`` is the last seq
    applied); ``counts`` has one counter per outcome, so what was skipped and why is always
    visible. With ``max_entries``, an addition that could take the replica past it is not
    applied (``over_cap`` says where), and neither is anything after it: the replica keeps the
    last state within the cap; the position still moves, so the driver's catch-up ends.
    """

    def __init__(self, scheme: str, key_id: bytes, max_entries: int | None = None) -> None:
        self.index = index.ReplicaIndex(scheme, key_id)
        self.position = 0
        self.counts: Counter[EntryOutcome] = Counter()
        self.max_entries = max_entries
        self.over_cap: CapExceeded | None = None

    @property
    def scheme(self) -> str:
        return self.index.scheme

    @property
    def key_id(self) -> bytes:
        return self.index.key_id

    def apply(self, seq: int, kind: str, payload: bytes) -> Applied:
        if seq <= self.position:
            return self._count(Applied(seq, EntryOutcome.ALREADY_APPLIED))
        self.position = seq
        if self.over_cap is not None:
            return self._count(Applied(seq, EntryOutcome.OVER_CAP, self.over_cap.describe()))
        try:
            body = schema.check(index.FEED_SCHEMAS[kind], canonical.decode(payload))
        except KeyError:
            return self._count(Applied(seq, EntryOutcome.REJECTED, "unknown entry kind"))
        except (canonical.CanonicalError, schema.SchemaError) as exc:
            return self._count(Applied(seq, EntryOutcome.REJECTED, str(exc)))
        if body["scheme"] != self.scheme:
            return self._count(Applied(seq, EntryOutcome.OTHER_SCHEME))
        if body["key_id"] != self.key_id:
            return self._count(Applied(seq, EntryOutcome.OTHER_KEY))
        try:
            if kind == "index.add":
                added = len(body["entries"]) // index.ENTRY_BYTES
                # An upper bound (entries already present are not counted twice), checked
                # before the index grows: a replica never holds more than its cap.
                if self.max_entries is not None and self.index.entries + added > self.max_entries:
                    would_be = self.index.entries + added
                    self.over_cap = CapExceeded("entries", self.max_entries, would_be, seq)
                    return self._count(
                        Applied(seq, EntryOutcome.OVER_CAP, self.over_cap.describe())
                    )
                self.index.add(body["entries"])
                return self._count(Applied(seq, EntryOutcome.ADDED))
            if kind == "index.remove":
                self.index.remove(body["entries"])
                return self._count(Applied(seq, EntryOutcome.REMOVED))
        except index.IndexFormatError as exc:
            return self._count(Applied(seq, EntryOutcome.REJECTED, str(exc)))
        return self._count(Applied(seq, EntryOutcome.CHECKPOINT))

    def _count(self, applied: Applied) -> Applied:
        self.counts[applied.outcome] += 1
        return applied
