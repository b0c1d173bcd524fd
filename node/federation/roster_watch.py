"""The roster in use, kept current: a changed roster file is verified and taken in without a
restart, and an expiry coming up is said in the log, in ``status`` and in ``/metrics`` well
before it happens.

Governance re-signs the roster with a higher serial and the file is replaced (``blindmatch
roster sign`` writes beside it and renames, so a node never reads half a file). A node checks
the file every ``roster_check_interval_s``: a valid roster with a higher serial replaces the one
in use at once (new members are queried and admitted, removed ones refused); an invalid one, a
rollback to a lower serial, or a different document under the same serial is refused with a
warning and the roster in use stays.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from typing import Protocol

from blindmatch.node.config import ConfigError, NodeConfig
from blindmatch.node.keys import NodeKeys
from blindmatch.protocol import roster as roster_mod

log = logging.getLogger("blindmatch.roster")

WARN_BEFORE_S = 7 * 86_400  # say so a week before the roster lapses
WARN_EVERY_S = 6 * 3600  # and repeat it in the log every six hours


def load_roster(cfg: NodeConfig, now_ms: int) -> roster_mod.Roster:
    if cfg.roster_path is None:
        raise ConfigError("no roster configured (set 'roster' in the config)")
    try:
        data = cfg.roster_path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no roster file at {cfg.roster_path} (governance writes it with"
            " 'blindmatch roster sign')"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{cfg.roster_path}: cannot read the roster: {exc.strerror}") from None
    try:
        return parse_roster_document(data, cfg.governance_keys, cfg.governance_threshold, now_ms)
    except ConfigError as exc:
        raise ConfigError(f"{cfg.roster_path}: {exc}") from None


def parse_roster_document(
    data: bytes, governance_keys: list[bytes], threshold: int, now_ms: int
) -> roster_mod.Roster:
    """A roster file's bytes as a verified roster: ConfigError if it is not JSON text,
    RosterError if it is not a roster the governance keys signed."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("the roster is not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"not JSON ({exc.__class__.__name__})") from None
    return roster_mod.verify_roster(document, governance_keys, threshold, now_ms)


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def roster_warnings(roster: roster_mod.Roster, now_s: float) -> list[str]:
    """What an operator must act on about the roster in use (empty when nothing)."""
    left = roster.expires_ms / 1000 - now_s
    expires = _when(roster.expires_ms / 1000)
    if left <= 0:
        return [
            f"the roster (serial {roster.serial}) expired at {expires}; peers refuse this node"
            f" until governance signs serial {roster.serial + 1}"
        ]
    if left <= WARN_BEFORE_S:
        return [
            f"the roster (serial {roster.serial}) expires in {left / 86_400:.1f} days, at"
            f" {expires}; ask governance for serial {roster.serial + 1}"
            " ('blindmatch roster sign'); nodes take the new file in without a restart"
        ]
    return []


def still_listed(new: roster_mod.Roster, node_id: str, keys: NodeKeys) -> roster_mod.Member:
    """This node's entry in a verified roster, if it still lists the node with the keys it
    holds (RosterError if not: the roster in use stays)."""
    me = new.member(node_id)
    if me is None:
        raise roster_mod.RosterError(f"the new roster does not list this node ({node_id})")
    if me.signing_key != keys.identity.public_key:
        raise roster_mod.RosterError("the new roster lists another identity key for this node")
    # our successor key may be named: the node promotes it (spec 8.4)
    if me.voprf_key is not None and me.voprf_key not in keys.roster_voprf_keys():
        raise roster_mod.RosterError("the new roster pins another VOPRF key for this node")
    return me


class RosterUser(Protocol):
    """What the watch needs of the node: the roster in use, and a way to put a verified one
    in use (which may refuse it with RosterError)."""

    @property
    def roster(self) -> roster_mod.Roster: ...

    async def adopt_roster(self, new: roster_mod.Roster) -> None: ...


class RosterWatch:
    def __init__(self, cfg: NodeConfig, node: RosterUser) -> None:
        self.cfg = cfg
        self.node = node
        self.last_error: str | None = None
        self._seen = self._stamp()
        self._warned_at = 0.0

    def _stamp(self) -> tuple[int, int] | None:
        path = self.cfg.roster_path
        if path is None:
            return None
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def check(self) -> bool:
        """Take in a changed roster file; returns True if a new roster is now in use."""
        self._warn_expiry()
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return False
        self._seen = stamp
        current = self.node.roster
        try:
            new = load_roster(self.cfg, int(time.time() * 1000))
            if new.serial < current.serial:
                raise roster_mod.RosterError(
                    f"serial {new.serial} is older than the roster in use ({current.serial})"
                )
            if new.serial == current.serial:
                if new.document != current.document:
                    raise roster_mod.RosterError(
                        f"a different roster under the serial in use ({new.serial}); a change"
                        " needs a higher serial"
                    )
                return False
            await self.node.adopt_roster(new)
        except (ConfigError, roster_mod.RosterError, OSError) as exc:
            self.last_error = str(exc)
            log.warning("roster file %s refused, keeping serial %d: %s",
                        self.cfg.roster_path, current.serial, exc)  # fmt: skip
            return False
        self.last_error = None
        self._warned_at = 0.0
        log.info("roster serial %d in use (%d members), was %d",
                 new.serial, len(new.members), current.serial)  # fmt: skip
        return True

    def _warn_expiry(self) -> None:
        now = time.time()
        warnings = roster_warnings(self.node.roster, now)
        if warnings and now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            for warning in warnings:
                log.warning("%s", warning)

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # keep watching; the error is logged without content
                log.exception("roster check failed")
            await asyncio.sleep(self.cfg.roster_check_interval_s)


__all__ = ["RosterUser", "RosterWatch", "load_roster", "roster_warnings", "still_listed"]
