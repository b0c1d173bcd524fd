"""Watching peers' verifiable logs: fetch their signed tree heads, prove consistency, catch
forks and rollbacks (specs/transparency.md section 7), and remember what was seen.

:class:`LogClient` speaks the read-only HTTP API of ``node/translog/http.py``.
:class:`LogMonitor` watches one peer's log with the Ed25519 key the roster pins for it: every
head it accepts is stored in ``peer_tree_heads`` (so a restart forgets nothing), and every
misbehaviour is stored in ``peer_log_incidents`` with both signed heads as evidence, then
raised (:class:`~blindmatch.protocol.transparency.ForkError`,
:class:`~blindmatch.protocol.transparency.RollbackError`,
:class:`~blindmatch.protocol.transparency.TreeHeadSignatureError`, ...).
:class:`FederationLogWatch` runs one monitor per roster peer and gossips: it asks each peer
which heads it has witnessed of the others' logs and checks those too, so a log that shows
different histories to different peers is caught.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from blindmatch.node.clock import Clock
from blindmatch.node.errors import BlindmatchError
from blindmatch.node.http_limits import read_limited
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.protocol import transparency as tl
from blindmatch.protocol.roster import Member

log = logging.getLogger("blindmatch.translog")

PREFIX = "/log/v1"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT_S = 15.0


class LogFetchError(BlindmatchError):
    """The log's server did not give a usable answer (network, status, or malformed JSON);
    ``status`` is the status it answered with, if any."""

    code = "log-unreachable"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _hex(value: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise LogFetchError(f"{what}: expected a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError as exc:
        raise LogFetchError(f"{what}: not hex") from exc
    if length is not None and len(data) != length:
        raise LogFetchError(f"{what}: expected {length} bytes, got {len(data)}")
    return data


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LogFetchError(f"{what}: expected a non-negative integer")
    return value


def _path(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > tl.MAX_PROOF_HASHES:
        raise LogFetchError(f"{what}: expected a list of at most {tl.MAX_PROOF_HASHES} hashes")
    return [_hex(h, f"{what}[{i}]", tl.HASH_BYTES) for i, h in enumerate(value)]


class LogClient:
    """A client of one log's HTTP API (``base_url`` is the node's federation endpoint)."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def __aenter__(self) -> LogClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _get(self, path: str, params: Mapping[str, int] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = self.base_url + PREFIX + path
        try:
            async with self._session.get(
                url, params={k: str(v) for k, v in (params or {}).items()}, timeout=self.timeout
            ) as response:
                raw = await read_limited(response.content, MAX_RESPONSE_BYTES)
                if len(raw) > MAX_RESPONSE_BYTES:
                    raise LogFetchError(f"GET {url}: response over {MAX_RESPONSE_BYTES} bytes")
                try:
                    body = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise LogFetchError(f"GET {url}: HTTP {response.status}, not JSON") from exc
                if response.status != 200:
                    message = body.get("message") if isinstance(body, dict) else None
                    code = body.get("error") if isinstance(body, dict) else None
                    raise LogFetchError(
                        f"GET {url}: HTTP {response.status} {code}: {message}",
                        status=response.status,
                    )
                return body
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise LogFetchError(f"GET {url}: {exc.__class__.__name__}: {exc}") from exc

    @staticmethod
    def _sth(body: Any) -> bytes:
        if not isinstance(body, dict):
            raise LogFetchError("tree head: expected a JSON object")
        return _hex(body.get("sth"), "sth")

    async def sth(self, size: int | None = None) -> bytes:
        """The bytes of the latest signed tree head (or the one signed for ``size``); not yet
        verified: the caller verifies them with the pinned key."""
        return self._sth(await self._get("/sth" if size is None else f"/sth/{size}"))

    async def consistency(self, first: int, second: int) -> list[bytes]:
        body = await self._get("/proof/consistency", {"first": first, "second": second})
        if not isinstance(body, dict):
            raise LogFetchError("consistency proof: expected a JSON object")
        return _path(body.get("path"), "consistency path")

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        body = await self._get("/proof/inclusion", {"index": index, "size": size})
        if not isinstance(body, dict):
            raise LogFetchError("inclusion proof: expected a JSON object")
        return _path(body.get("path"), "inclusion path")

    async def entries(self, start: int, end: int) -> list[tuple[bytes, bytes | None]]:
        """Entries ``start .. end-1`` as ``(entry, stored leaf hash or None)``, fetching as
        many pages as needed; fewer if the log has fewer."""
        out: list[tuple[bytes, bytes | None]] = []
        while start + len(out) < end:
            at = start + len(out)
            body = await self._get("/entries", {"start": at, "end": end})
            items = body.get("entries") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise LogFetchError('entries: expected {"entries": [...]}')
            if not items:
                break
            for i, item in enumerate(items):
                if not isinstance(item, dict) or item.get("index") != at + i:
                    raise LogFetchError(f"entries: item {i} of the page from {at} is out of order")
                entry = _hex(item.get("entry"), f"entry {at + i}")
                if len(entry) > tl.MAX_ENTRY_BYTES:
                    raise LogFetchError(f"entry {at + i}: over {tl.MAX_ENTRY_BYTES} bytes")
                stored = item.get("leaf_hash")
                out.append(
                    (entry, None if stored is None else _hex(stored, "leaf_hash", tl.HASH_BYTES))
                )
            if len(out) > end - start:
                raise LogFetchError("entries: the server sent more entries than asked for")
        return out

    async def witnessed(self) -> list[bytes]:
        """The heads of other logs this node says it has accepted (gossip)."""
        body = await self._get("/witnessed")
        heads = body.get("heads") if isinstance(body, dict) else None
        if not isinstance(heads, list) or len(heads) > 10_000:
            raise LogFetchError('witnessed: expected {"heads": [...]}')
        return [self._sth(h) for h in heads]


async def witnessed_heads(store: TranslogStore) -> list[tl.SignedTreeHead]:
    """The latest head this node accepted of each peer's log (served for gossip)."""
    await store.ensure()
    return [tl.parse_tree_head(sth) for sth in await store.witnessed()]


class LogMonitor:
    """Watches one peer's log (see the module docstring)."""

    def __init__(
        self,
        store: TranslogStore,
        peer: Member,
        clock: Clock,
        client: LogClient | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.store = store
        self.peer = peer
        self.clock = clock
        self.client = client or LogClient(peer.endpoint, session)
        self.monitor: tl.TreeHeadMonitor | None = None

    async def load(self) -> tl.TreeHeadMonitor:
        await self.store.ensure()
        self.monitor = tl.TreeHeadMonitor(
            self.peer.node_id, self.peer.signing_key, await self.store.peer_heads(self.peer.node_id)
        )
        return self.monitor

    @property
    def latest(self) -> tl.SignedTreeHead | None:
        return self.monitor.latest if self.monitor else None

    async def _monitor(self) -> tl.TreeHeadMonitor:
        return self.monitor if self.monitor is not None else await self.load()

    async def _remember(self, head: tl.SignedTreeHead) -> None:
        await self.store.remember_peer_head(
            self.peer.node_id, head.tree_size, head.root_hash, head.timestamp_ms,
            head.to_bytes(), self.clock.now(),
        )  # fmt: skip

    async def record_incident(self, exc: tl.LogError, evidence: Mapping[str, Any]) -> None:
        # Every observation is kept (a fork seen twice is evidence twice), up to the per-peer
        # incident cap: a peer whose log misbehaves on every poll cannot grow the database.
        await self.store.peer_incidents.record(
            self.peer.node_id, exc.code, exc.detail, evidence, self.clock.now(), once=False
        )
        log.warning("log of %s: %s: %s", self.peer.node_id, exc.code, exc.detail)

    @staticmethod
    def evidence_of(exc: tl.LogError, presented: bytes | None = None) -> dict[str, Any]:
        if isinstance(exc, tl.ForkError):
            return exc.evidence()
        if isinstance(exc, tl.RollbackError):
            return {
                "log_id": exc.previous.log_id,
                "reason": exc.detail,
                "previous": exc.previous.to_bytes().hex(),
                "presented": exc.presented.to_bytes().hex(),
            }
        return {"reason": exc.detail, "presented": presented.hex() if presented else None}

    async def _proof_to(
        self, monitor: tl.TreeHeadMonitor, head: tl.SignedTreeHead, allow_older: bool
    ) -> list[bytes]:
        latest = monitor.latest
        if latest is None or latest.tree_size == head.tree_size or head.tree_size in monitor.heads:
            return []
        older = head.tree_size < latest.tree_size or head.timestamp_ms < latest.timestamp_ms
        if older and not allow_older:
            return []  # a rollback: no proof can help
        lo, hi = sorted((latest.tree_size, head.tree_size))
        if lo == 0:
            return []
        try:
            return await self.client.consistency(lo, hi)
        except LogFetchError as exc:
            if exc.status in (400, 404):
                # The log refuses to prove that a tree it signed extends another it signed:
                # no valid proof exists, which the check below reports as a fork.
                return []
            raise

    async def _observe(self, sth: bytes, *, allow_older: bool) -> tl.SignedTreeHead:
        monitor = await self._monitor()
        try:
            head = tl.verify_tree_head(sth, self.peer.signing_key)
            proof = await self._proof_to(monitor, head, allow_older)
            try:
                accepted = monitor.observe(head, proof, allow_older=allow_older)
            except tl.ForkError:
                if not proof:
                    raise
                # Rule out corruption in transit: ask once more before accusing (spec 7).
                proof = await self._proof_to(monitor, head, allow_older)
                accepted = monitor.observe(head, proof, allow_older=allow_older)
        except tl.LogError as exc:
            await self.record_incident(exc, self.evidence_of(exc, sth))
            raise
        await self._remember(accepted)
        return accepted

    async def check(self) -> tl.SignedTreeHead:
        """Fetch the peer's latest head, verify it against the pinned key, prove it extends
        the last one seen, store it. Raises a LogError (recorded as an incident) on a bad
        signature, a fork or a rollback; :class:`LogFetchError` if the log cannot be read."""
        sth = await self.client.sth()
        return await self._observe(sth, allow_older=False)

    async def check_gossiped(self, sth: bytes) -> tl.SignedTreeHead:
        """Check a head of this peer's log obtained from someone else (another peer's
        ``/witnessed``, an old receipt): it must be consistent with what we saw, though it
        may be older (specs/transparency.md 7, step 4's exception)."""
        monitor = await self._monitor()
        # A head that does not verify is no evidence against this log (whoever relayed it may
        # have garbled it): refuse it without recording an incident.
        head = tl.verify_tree_head(sth, self.peer.signing_key)
        latest = monitor.latest
        if latest is not None and (head.tree_size, head.timestamp_ms) > (
            latest.tree_size,
            latest.timestamp_ms,
        ):
            return await self._observe(sth, allow_older=False)
        return await self._observe(sth, allow_older=True)

    async def incidents(self) -> list[dict[str, Any]]:
        await self.store.ensure()
        rows = await self.store.incidents(self.peer.node_id)
        return [{**r, "evidence": json.loads(r["evidence"])} for r in rows]


class FederationLogWatch:
    """One :class:`LogMonitor` per peer of the roster, plus gossip between them."""

    def __init__(
        self,
        store: TranslogStore,
        peers: list[Member],
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.monitors = {p.node_id: LogMonitor(store, p, clock, session=session) for p in peers}

    async def check_all(self) -> dict[str, str]:
        """Check every peer's log, then the heads each peer witnessed of the others.

        Returns ``{peer: "ok size N" | "<code>: detail"}``; misbehaviour is also stored as an
        incident (and logged), never raised, so one bad peer does not stop the round."""
        out: dict[str, str] = {}
        for peer_id, m in self.monitors.items():
            try:
                head = await m.check()
                out[peer_id] = f"ok size {head.tree_size}"
            except (tl.LogError, LogFetchError) as exc:
                out[peer_id] = f"{exc.code}: {getattr(exc, 'detail', exc)}"
        for peer_id, m in self.monitors.items():
            try:
                gossip = await m.client.witnessed()
            except LogFetchError:
                continue
            for sth in gossip:
                try:
                    other = tl.parse_tree_head(sth).log_id
                except tl.LogError:
                    continue
                target = self.monitors.get(other)
                if target is None or other == peer_id:
                    continue
                try:
                    await target.check_gossiped(sth)
                except (tl.LogError, LogFetchError) as exc:
                    out[other] = f"{exc.code}: {getattr(exc, 'detail', exc)} (gossip via {peer_id})"
        return out

    async def run(self, interval_s: float = 300.0, when: Callable[[], bool] = lambda: True) -> None:
        """Background task: a round every ``interval_s`` in which ``when()`` holds (one of a
        node's several processes watches: its leader)."""
        while True:
            try:
                if when():
                    await self.check_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("log monitoring round failed")
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        for m in self.monitors.values():
            await m.client.close()
