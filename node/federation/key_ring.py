"""The holder's VOPRF keys over their lifetime (spec 8.2, 8.4): counting, rotating, retiring.

Every element evaluated under a key is counted durably (``voprf_key_usage``, all peers
together); a request that would pass the cap is refused whole. At 7/8 of the cap the ring makes
a **successor** key; the publisher's next round publishes the whole index under it too, so
queriers replicate it before governance names it in the roster (the last eighth of the cap is
the time that takes). When the roster names the successor it
is promoted: it becomes the key, and the old one is **retired**: still answered (evaluations
and candidates) for the overlap window, so a querier a roster behind loses no match, then its
index is withdrawn and its secret erased.

The publisher and the responder read the keys here, never a copy, so a rotation reaches both.
The processes of one node (README: Running several processes) share the key files and the
database: each re-reads the files when they change (:meth:`refresh`), the first to record a
retirement sets its deadline for all, and file moves another process already made are not
made again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from blindmatch.crypto import oprf
from blindmatch.node import keys as keyfiles
from blindmatch.node.clock import Clock
from blindmatch.node.errors import NodeError
from blindmatch.node.keys import NodeKeys
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage.key_usage import KeyUsageStore
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import index
from blindmatch.protocol.key_lifetime import LIFETIME_CAP, KeyExhausted, KeyLifetime
from blindmatch.protocol.roster import voprf_key_id

log = logging.getLogger("blindmatch.node")


class VoprfKeyRing:
    def __init__(
        self,
        usage: KeyUsageStore,
        keys: NodeKeys,
        keys_dir: Path,
        translog: TransparencyLog,
        metrics: Metrics,
        clock: Clock,
        *,
        cap: int = LIFETIME_CAP,
        overlap_s: int = 7 * 86_400,
    ) -> None:
        self.usage = usage
        self.keys_dir = keys_dir
        self.translog = translog
        self.metrics = metrics
        self.clock = clock
        self.lifetime = KeyLifetime(cap)
        self.overlap_s = overlap_s
        self._retire_at: dict[bytes, int] = {}  # retired key id -> when it stops answering
        self._settled: bytes | None = None  # the retired key whose deadline is durable
        self._files = self._file_stamps()
        self._set(keys)

    def _set(self, keys: NodeKeys) -> None:
        self.keys = keys
        # the keys of our table references (spec 8.5), one per VOPRF key we answer for
        self.reference_keys = {
            kid: index.reference_key(k.sk) for kid, k in keys.voprf_keys().items()
        }

    @property
    def current(self) -> oprf.ServerKey:
        return self.keys.voprf

    def _file_stamps(self) -> tuple[tuple[str, int, int], ...]:
        stamps = []
        for name in ("voprf.key", "voprf.next.key", "voprf.retired.key"):
            try:
                st = (self.keys_dir / name).stat()
                stamps.append((name, st.st_ino, st.st_mtime_ns))
            except FileNotFoundError:
                stamps.append((name, 0, 0))
        return tuple(stamps)

    async def refresh(self) -> bool:
        """Take in a successor, promotion or erasure another process of this node made (the
        files changed); True if the keys changed. Cheap when nothing did (three stats)."""
        stamps = self._file_stamps()
        if stamps == self._files:
            return False
        try:
            current, successor, retired = keyfiles.voprf_on_disk(self.keys_dir)
        except (keyfiles.KeyFileError, OSError):
            return False  # a promotion under way in another process: read again later
        self._files = stamps
        before = set(self.keys.voprf_keys())
        self._set(replace(self.keys, voprf=current, successor=successor, retired=retired))
        if retired is not None and voprf_key_id(retired.pk) not in self._retire_at:
            self._retire_at = {voprf_key_id(retired.pk): self.clock.now() + self.overlap_s}
        await self.settle()
        return set(self.keys.voprf_keys()) != before

    def publishing(self) -> list[oprf.ServerKey]:
        """The keys the index is published under: the current one and, during a rotation,
        its successor."""
        return [k for k in (self.keys.voprf, self.keys.successor) if k is not None]

    def answering(self, key_id: bytes, now: int) -> oprf.ServerKey | None:
        """The key a peer's ``oprf.evaluate`` names, if we answer it: the current key, the
        successor (a querier with a newer roster than ours), and the retired key until its
        overlap ends."""
        key = self.keys.voprf_keys().get(key_id)
        if key is None:
            return None
        if key is self.keys.retired and now >= self._retire_at.get(key_id, 0):
            return None
        return key

    def candidate_keys(self, now: int) -> dict[bytes, bytes]:
        """Key id -> reference key of every index a candidate may come from (8.5)."""
        return {
            kid: ref
            for kid, ref in self.reference_keys.items()
            if self.answering(kid, now) is not None
        }

    # --- the count and the cap (8.2) ---------------------------------------------------------

    async def count(self, key_id: bytes, n: int) -> int:
        """Count ``n`` evaluations under a key, durably, refusing (whole, nothing counted) any
        that would take it past its lifetime cap; returns the new count."""
        now = self.clock.now()
        async with self.usage.locked():
            # Read, check, write: the node's processes take turns (else two could both read
            # the same count and one's evaluations would go uncounted).
            await self.usage.add_key(key_id, now)
            used = await self.usage.evaluations(key_id)
            try:
                total = self.lifetime.admit(used, n)
            except KeyExhausted as exc:
                self.metrics.inc("voprf_key_cap_refusals_total")
                raise NodeError(str(exc), code="not-allowed") from exc
            await self.usage.set_evaluations(key_id, total)
        return total

    async def uncount(self, key_id: bytes, n: int) -> None:
        await self.usage.uncount(key_id, n)

    async def used(self, key_id: bytes) -> int:
        return await self.usage.evaluations(key_id)

    async def note_usage(self, key_id: bytes, used: int) -> None:
        """After a count: at 7/8 of the cap of the current key, start its rotation."""
        if key_id == self.keys.voprf_key_id and self.lifetime.needs_successor(used):
            await self.start_rotation()

    # --- rotation (8.4) ----------------------------------------------------------------------

    async def start_rotation(self) -> bool:
        """Make the successor (the publisher's next round publishes the index under it, so
        queriers hold it by the time governance names it). False if one is under way."""
        await self.refresh()
        if self.keys.successor is not None:
            return False
        try:
            self._set(keyfiles.make_successor(self.keys_dir, self.keys))
        except (keyfiles.KeyFileError, OSError) as exc:
            # the request that crossed 7/8 is still answered; the next one tries again
            log.error("could not make the successor VOPRF key: %s", type(exc).__name__)
            return False
        self._files = self._file_stamps()
        successor = self.keys.successor
        assert successor is not None
        new_id = voprf_key_id(successor.pk)
        await self.usage.add_key(new_id, self.clock.now())
        self.metrics.inc("voprf_key_rotation_due_total")
        # the public key is what governance needs; the node never logs a secret
        log.warning(
            "VOPRF key %s reached 7/8 of its lifetime cap of %d evaluations: successor %s made"
            " and its index is being published; governance must name its public key %s as"
            " this node's voprf_key in the next roster (spec 8.4)",
            self.keys.voprf_key_id.hex(), self.lifetime.cap, new_id.hex(), successor.pk.hex(),
        )  # fmt: skip
        return True

    def roster_names(self, pk: bytes) -> bool:
        """Whether the roster's ``voprf_key`` for us is one we can run under: the current key,
        or the successor (then it is promoted)."""
        if pk == self.keys.voprf.pk:
            return True
        if self.keys.successor is not None and pk == self.keys.successor.pk:
            self.promote()
            return True
        return False

    def promote(self) -> None:
        """The roster names our successor: it becomes the key; the old one answers until the
        overlap ends (made durable, and logged, by :meth:`settle`)."""
        old_id = self.keys.voprf_key_id
        self._set(keyfiles.promote_successor(self.keys_dir, self.keys))
        self._files = self._file_stamps()
        self._retire_at = {old_id: self.clock.now() + self.overlap_s}
        self.metrics.inc("voprf_key_rotations_total")
        log.info("VOPRF key rotated: %s is the key, %s answers for %d s more",
                 self.keys.voprf_key_id.hex(), old_id.hex(), self.overlap_s)  # fmt: skip

    async def settle(self) -> None:
        """Make the retired key's deadline durable and the same for every process of the node:
        the first to record it sets it (and logs the rotation); the others adopt it. After a
        promotion, at start and on every publication round."""
        retired = self.keys.retired
        if retired is None:
            self._retire_at = {}
            return
        rid = voprf_key_id(retired.pk)
        if rid == self._settled:
            return
        async with self.usage.locked():
            stored = await self.usage.retire_at(rid)
            if stored is None:
                stored = self._retire_at.get(rid, self.clock.now() + self.overlap_s)
                await self.usage.set_retire_at(rid, self.clock.now(), stored)
                await translog_hooks.log_key_rotation(
                    self.translog,
                    key_type="voprf",
                    new_key_id=self.keys.voprf_key_id,
                    old_key_id=rid,
                    overlap_ms=max(0, int(stored) - self.clock.now()) * 1000,
                )
        self._retire_at = {rid: int(stored)}
        self._settled = rid

    async def load(self) -> None:
        """At start: the retired key's deadline, recorded if a promotion (here or before a
        crash) has not been yet."""
        await self.settle()

    def expired_retired(self, now: int) -> bytes | None:
        """The retired key's id once its overlap has ended (its index is then withdrawn and its
        secret erased), else None."""
        retired = self.keys.retired
        if retired is None:
            return None
        rid = voprf_key_id(retired.pk)
        return rid if now >= self._retire_at.get(rid, 0) else None

    def erase_retired(self) -> None:
        retired = self.keys.retired
        if retired is None:
            return
        rid = voprf_key_id(retired.pk)
        self._set(keyfiles.erase_retired(self.keys_dir, self.keys))
        self._files = self._file_stamps()
        self._retire_at.pop(rid, None)
        self.metrics.inc("voprf_keys_erased_total")
        log.info("retired VOPRF key %s erased after its overlap window", rid.hex())
