"""The federation roster: who is in, with which keys, endpoints, roles and budgets.

A roster is a canonical-msgpack map signed by k of the federation's n governance keys. Nodes
pin the governance keys and threshold in their configuration; they accept a roster only if it
verifies against them, and only a roster with a higher serial than the one they hold.
On disk and in transit it is JSON (byte strings as hex), so operators can read it; signatures
cover the canonical msgpack encoding of the ``roster`` value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blindmatch.crypto import oprf, signing
from blindmatch.protocol import canonical

ROSTER_DOMAIN = b"blindmatch-v1 roster"
ROLES = ("hub", "platform", "auditor", "generator")
NODE_ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(?::\d{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
DEFAULT_BUDGET = {
    "evaluations_per_hour": 200_000,
    "evaluations_per_day": 2_000_000,
    # Candidates (spec 8.3, 8.5): the honest rate of a platform whose evaluations fill the
    # default evaluation budget (2M / 1,300 per upload x 9.17 spurious hits per upload at a
    # 1M-hash hub's real occupancy x 1.5 = 21,154); the hour may take the whole day's in a
    # burst of true matches. A holder scales it by its occupancy, decoys counted (8.3).
    "threshold_items_per_hour": 22_000,
    "threshold_items_per_day": 22_000,
    # repeat-uploader signals (specs/uploaders.md section 6)
    "uploader_evaluations_per_day": 2_000,
    "uploader_evaluations_per_picture_day": 16,
    # The index entries a holder declares it publishes (spec 10.1, 10.4): its queriers cap
    # their replica of it, and the feed bytes they store, from this. The default fits a
    # holder of 1,000,000 hashes (pictures, tiles and frames together) at pdq-lsh-1's 24
    # tables, the size the benches run at (a replica of ~0.6 GB at its cap); a larger holder
    # declares its size, so a holder that publishes far past it is cut off.
    "index_entries": 24_000_000,
}
# What governance lets a member do with repeat-uploader signals (specs/uploaders.md 5).
CAPABILITIES = ("uploader-read", "uploader-publish", "uploader-keeper")


class RosterError(ValueError):
    pass


def voprf_key_id(public_key: bytes) -> bytes:
    """Spec section 4: the first 8 bytes of SHA-256("blindmatch-v1 key id" || pkS)."""
    return hashlib.sha256(b"blindmatch-v1 key id" + public_key).digest()[:8]


@dataclass(frozen=True)
class Member:
    node_id: str
    signing_key: bytes  # Ed25519 public key
    voprf_key: bytes | None  # ristretto255 public key; None for nodes that hold no hashes
    endpoint: str
    roles: tuple[str, ...]
    budget: Mapping[str, int]
    capabilities: tuple[str, ...] = ()
    uploader_key: bytes | None = None  # POPRF key for uploader signals on its pictures
    keeper_key: bytes | None = None  # VOPRF key of the federation's uploader-signal keeper

    @property
    def voprf_key_id(self) -> bytes | None:
        return voprf_key_id(self.voprf_key) if self.voprf_key else None


@dataclass(frozen=True)
class Roster:
    federation: str
    serial: int
    issued_ms: int
    expires_ms: int
    members: Mapping[str, Member]
    document: Mapping[str, Any]  # the signed JSON document, as received

    def member(self, node_id: str) -> Member | None:
        return self.members.get(node_id)

    def signing_key(self, node_id: str) -> bytes | None:
        m = self.members.get(node_id)
        return m.signing_key if m else None

    def peers_of(self, node_id: str) -> list[Member]:
        return [m for m in self.members.values() if m.node_id != node_id]

    def has_role(self, node_id: str, role: str) -> bool:
        """Whether the roster gives ``node_id`` the role (e.g. only a ``generator`` may vouch
        that a federation generator made a picture)."""
        m = self.members.get(node_id)
        return m is not None and role in m.roles

    def can(self, node_id: str, capability: str) -> bool:
        """Whether governance gave ``node_id`` a capability (e.g. ``uploader-read``)."""
        m = self.members.get(node_id)
        return m is not None and capability in m.capabilities

    def keeper(self) -> Member | None:
        """The federation's uploader-signal keeper (at most one: verify_roster checks)."""
        return next((m for m in self.members.values() if "uploader-keeper" in m.capabilities), None)


def _hex(v: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(v, str) or not _HEX.fullmatch(v):
        raise RosterError(f"{what}: must be lower-case hex")
    b = bytes.fromhex(v)
    if length is not None and len(b) != length:
        raise RosterError(f"{what}: must be {length} bytes")
    return b


def _member(raw: Any, i: int) -> Member:
    where = f"members[{i}]"
    if not isinstance(raw, dict):
        raise RosterError(f"{where}: must be a map")
    allowed = {
        "id", "signing_key", "voprf_key", "endpoint", "roles", "budget", "capabilities",
        "uploader_key", "keeper_key",
    }  # fmt: skip
    extra = set(raw) - allowed
    if extra:
        raise RosterError(f"{where}: unexpected field(s) {sorted(extra)}")
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not NODE_ID.fullmatch(node_id):
        raise RosterError(f"{where}.id: must match {NODE_ID.pattern}")
    endpoint = raw.get("endpoint")
    if not isinstance(endpoint, str) or not _ENDPOINT.fullmatch(endpoint):
        raise RosterError(f"{where}.endpoint: must be an http(s) URL")
    roles = raw.get("roles")
    if (
        not isinstance(roles, list)
        or not roles
        or any(r not in ROLES for r in roles)
        or len(set(roles)) != len(roles)
    ):
        raise RosterError(f"{where}.roles: a non-empty list of {', '.join(ROLES)}")
    voprf_key, uploader_key, keeper_key = (
        _point(raw, name, where) for name in ("voprf_key", "uploader_key", "keeper_key")
    )
    caps = raw.get("capabilities", [])
    if (
        not isinstance(caps, list)
        or any(c not in CAPABILITIES for c in caps)
        or len(set(caps)) != len(caps)
    ):
        raise RosterError(f"{where}.capabilities: a list of {', '.join(CAPABILITIES)}")
    if "uploader-keeper" in caps and keeper_key is None:
        raise RosterError(f"{where}: the uploader-keeper needs a keeper_key")
    if keeper_key is not None and "uploader-keeper" not in caps:
        raise RosterError(f"{where}.keeper_key: only the uploader-keeper has one")
    budget = dict(DEFAULT_BUDGET)
    if raw.get("budget") is not None:
        if not isinstance(raw["budget"], dict) or set(raw["budget"]) - set(DEFAULT_BUDGET):
            raise RosterError(f"{where}.budget: only {', '.join(DEFAULT_BUDGET)}")
        for k, v in raw["budget"].items():
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 10**12:
                raise RosterError(f"{where}.budget.{k}: a non-negative integer")
            budget[k] = v
    return Member(
        node_id=node_id,
        signing_key=_hex(raw.get("signing_key"), f"{where}.signing_key", 32),
        voprf_key=voprf_key,
        endpoint=endpoint,
        roles=tuple(roles),
        budget=budget,
        capabilities=tuple(caps),
        uploader_key=uploader_key,
        keeper_key=keeper_key,
    )


def _point(raw: dict[str, Any], name: str, where: str) -> bytes | None:
    if raw.get(name) is None:
        return None
    try:
        return oprf.public_key_from_bytes(_hex(raw[name], f"{where}.{name}", 32))
    except oprf.OprfError as exc:
        raise RosterError(f"{where}.{name}: {exc}") from exc


def signed_bytes(roster: Mapping[str, Any]) -> bytes:
    return canonical.encode(dict(roster))


def sign_roster(roster: Mapping[str, Any], keys: Sequence[signing.SigningKey]) -> dict[str, Any]:
    """Governance: sign a roster body with each of ``keys``."""
    message = signed_bytes(roster)
    return {
        "roster": dict(roster),
        "signatures": [
            {"key": k.public_key.hex(), "signature": k.sign(ROSTER_DOMAIN, message).hex()}
            for k in keys
        ],
    }


def verify_roster(
    document: Any,
    governance_keys: Sequence[bytes],
    threshold: int,
    now_ms: int,
    min_serial: int = 0,
) -> Roster:
    """Check a signed roster document; raises :class:`RosterError` saying what is wrong."""
    if not 1 <= threshold <= len(governance_keys):
        raise RosterError("governance threshold must be between 1 and the number of keys")
    if not isinstance(document, dict) or set(document) != {"roster", "signatures"}:
        raise RosterError("a roster document has exactly the fields roster and signatures")
    body, sigs = document["roster"], document["signatures"]
    if not isinstance(body, dict) or not isinstance(sigs, list):
        raise RosterError("roster must be a map and signatures a list")
    try:
        message = signed_bytes(body)
    except canonical.CanonicalError as exc:
        raise RosterError(f"roster is not a protocol value: {exc}") from exc
    valid: set[bytes] = set()
    pinned = set(governance_keys)
    for i, s in enumerate(sigs):
        if not isinstance(s, dict) or set(s) != {"key", "signature"}:
            raise RosterError(f"signatures[{i}]: fields key and signature")
        key = _hex(s["key"], f"signatures[{i}].key", 32)
        if key not in pinned:
            continue  # a signature by a key we do not trust counts for nothing
        try:
            signing.verify(key, ROSTER_DOMAIN, message, _hex(s["signature"], "signature", 64))
        except signing.SignatureError as exc:
            raise RosterError(f"signatures[{i}]: does not verify") from exc
        valid.add(key)
    if len(valid) < threshold:
        raise RosterError(
            f"roster carries {len(valid)} valid governance signature(s); {threshold} required"
        )
    expected = {"federation", "serial", "issued_ms", "expires_ms", "members"}
    if set(body) != expected:
        raise RosterError(f"roster fields must be exactly {sorted(expected)}")
    for f in ("serial", "issued_ms", "expires_ms"):
        if not isinstance(body[f], int) or isinstance(body[f], bool) or body[f] < 0:
            raise RosterError(f"roster.{f}: a non-negative integer")
    if body["serial"] < min_serial:
        raise RosterError(f"roster serial {body['serial']} is older than {min_serial}")
    if not body["issued_ms"] <= now_ms < body["expires_ms"]:
        raise RosterError("roster is not valid now (issued in the future or expired)")
    if not isinstance(body["members"], list) or not body["members"]:
        raise RosterError("roster.members: a non-empty list")
    members: dict[str, Member] = {}
    for i, raw in enumerate(body["members"]):
        m = _member(raw, i)
        if m.node_id in members:
            raise RosterError(f"members[{i}]: duplicate id {m.node_id}")
        members[m.node_id] = m
    keepers = [m.node_id for m in members.values() if "uploader-keeper" in m.capabilities]
    if len(keepers) > 1:
        raise RosterError(f"at most one uploader-keeper ({', '.join(keepers)})")
    if not isinstance(body["federation"], str) or not NODE_ID.fullmatch(body["federation"]):
        raise RosterError("roster.federation: a name like a node id")
    return Roster(
        federation=body["federation"],
        serial=body["serial"],
        issued_ms=body["issued_ms"],
        expires_ms=body["expires_ms"],
        members=members,
        document=document,
    )
