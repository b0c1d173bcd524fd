"""Reviewer accounts and console sessions.

Passwords are stored as ``scrypt$n$r$p$salt$hash`` (``hashlib.scrypt`` at OWASP's current
parameters, n=2**17, r=8, p=1: 128 MiB and a few hundred ms per check; a random 16-byte salt,
32-byte output, hex) and compared in constant time. A hash stored under older parameters is
replaced with one under the current ones at the next successful login. A session token is 32
random bytes given to the browser once; the database keeps only its SHA-256, so a copy of the
database does not let anyone act as a reviewer. Sessions last eight hours from login, end at
logout, and end at once when the account is disabled. Each session has its own CSRF token.

Nothing here accepts or returns a hash of media.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass

from blindmatch.node.errors import BlindmatchError
from blindmatch.node.storage.reviewers import ReviewerStore

ROLES = ("reviewer", "admin", "auditor")
SESSION_SECONDS = 8 * 3600
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
# Actors the decision service writes into case histories; a person may not take these names.
RESERVED_IDS = frozenset({"policy", "uploader", "system", "platform", "holder"})
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1  # OWASP Password Storage Cheat Sheet (2025)
_SCRYPT_LEN = 32
# Parameters accepted when verifying a stored hash: never more than 128 MiB of work memory
# (128 * n * r bytes), so a tampered row cannot make a login exhaust the machine.
_MAX_N, _MAX_R, _MAX_P = 2**17, 8, 4
_MAX_MEM = 128 * _MAX_N * _MAX_R + (1 << 20)


class AccountError(BlindmatchError, ValueError):
    """An account operation refused: ``AccountError(sentence, code=...)``."""


@dataclass(frozen=True)
class Reviewer:
    reviewer_id: str
    role: str
    disabled: bool
    created_at: int


@dataclass(frozen=True)
class Session:
    reviewer_id: str
    role: str
    csrf_token: str
    expires_at: int
    token_hash: bytes


def check_reviewer_id(reviewer_id: str) -> str:
    if not isinstance(reviewer_id, str) or not _ID.fullmatch(reviewer_id):
        raise AccountError(
            "a reviewer ID is 1 to 64 letters, digits or . _ @ - (starting alphanumeric)",
            code="bad-id",
        )
    if reviewer_id.lower() in RESERVED_IDS:
        raise AccountError(f"{reviewer_id} names the system in case histories", code="bad-id")
    return reviewer_id


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", code="bad-password"
        )
    return password


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_SCRYPT_LEN, maxmem=_MAX_MEM,
    )  # fmt: skip


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored ``scrypt$...`` string."""
    try:
        scheme, n_s, r_s, p_s, salt_hex, hash_hex = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
    except (ValueError, AttributeError):
        return False
    if scheme != "scrypt" or not (2 <= n <= _MAX_N and n & (n - 1) == 0):
        return False
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P) or len(expected) != _SCRYPT_LEN:
        return False
    if len(password) > MAX_PASSWORD:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def needs_rehash(stored: str) -> bool:
    """True when a stored hash is not under the current parameters."""
    return not stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


@functools.cache
def _dummy_hash() -> str:
    """A well-formed hash nobody's password matches: verified against when the reviewer ID is
    unknown or disabled, so a wrong ID takes as long as a wrong password. Made once, at the
    first sign-in attempt whatever account it names (so its cost tells nothing about the ID),
    not at import: every process that imports the console (each ``blindmatch run``) would
    otherwise pay a full scrypt hash and its 128 MiB at start-up."""
    return hash_password(secrets.token_urlsafe(16))


def token_hash(token: str) -> bytes | None:
    """The stored form of a session token (SHA-256 of its 32 random bytes), or None."""
    try:
        raw = urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != 32:
        return None
    # base64 leaves 2 unused bits in the last character: several spellings decode to the same
    # bytes. Only the one canonical spelling is the token.
    if urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        return None
    return hashlib.sha256(raw).digest()


class Accounts:
    """Reviewer accounts and sessions in the node's database."""

    def __init__(self, store: ReviewerStore, now: Callable[[], int]) -> None:
        self.store = store
        self.now = now

    # --- accounts ---------------------------------------------------------------------------

    async def create(self, reviewer_id: str, role: str, password: str) -> Reviewer:
        check_reviewer_id(reviewer_id)
        if role not in ROLES:
            raise AccountError(f"the role is one of {', '.join(ROLES)}", code="bad-role")
        check_password(password)
        stored = await asyncio.to_thread(hash_password, password)
        now = self.now()
        if not await self.store.insert(reviewer_id, role, stored, now):
            raise AccountError(f"reviewer {reviewer_id} already exists", code="exists")
        return Reviewer(reviewer_id, role, False, now)

    async def set_password(self, reviewer_id: str, password: str) -> None:
        check_password(password)
        stored = await asyncio.to_thread(hash_password, password)
        async with self.store.transaction():
            if not await self.store.set_password_hash(reviewer_id, stored):
                raise AccountError(f"no reviewer {reviewer_id}", code="unknown")
            await self.store.delete_sessions(reviewer_id)

    async def set_disabled(self, reviewer_id: str, disabled: bool = True) -> None:
        """Disable (and log out everywhere) or re-enable an account."""
        async with self.store.transaction():
            if not await self.store.set_disabled(reviewer_id, disabled):
                raise AccountError(f"no reviewer {reviewer_id}", code="unknown")
            if disabled:
                await self.store.delete_sessions(reviewer_id)

    async def get(self, reviewer_id: str) -> Reviewer | None:
        row = await self.store.get(reviewer_id)
        if row is None:
            return None
        return Reviewer(
            row["reviewer_id"], row["role"], bool(row["disabled"]), int(row["created_at"])
        )

    async def list(self) -> list[Reviewer]:
        return [
            Reviewer(r["reviewer_id"], r["role"], bool(r["disabled"]), int(r["created_at"]))
            for r in await self.store.all()
        ]

    async def authenticate(self, reviewer_id: str, password: str) -> Reviewer | None:
        """The account when the password is right and the account enabled, else None."""
        dummy = await asyncio.to_thread(_dummy_hash)
        row = None
        if isinstance(reviewer_id, str) and _ID.fullmatch(reviewer_id):
            row = await self.store.credentials(reviewer_id)
        usable = row is not None and not row["disabled"]
        stored = row["password_hash"] if usable and row is not None else dummy
        ok = await asyncio.to_thread(
            verify_password, password if isinstance(password, str) else "", stored
        )
        if not (ok and usable) or row is None:
            return None
        if needs_rehash(stored):
            # Transparent upgrade: the password is at hand only now.
            fresh = await asyncio.to_thread(hash_password, password)
            await self.store.upgrade_hash(row["reviewer_id"], stored, fresh)
        return Reviewer(row["reviewer_id"], row["role"], False, int(row["created_at"]))

    # --- sessions ---------------------------------------------------------------------------

    async def start_session(self, reviewer_id: str) -> tuple[str, Session]:
        """A new session: returns the token for the cookie (shown once) and the session."""
        raw = secrets.token_bytes(32)
        token = urlsafe_b64encode(raw).rstrip(b"=").decode()
        digest = hashlib.sha256(raw).digest()
        csrf = secrets.token_urlsafe(32)
        now = self.now()
        expires = now + SESSION_SECONDS
        role = await self.store.enabled_role(reviewer_id)
        if role is None:
            raise AccountError(f"no enabled reviewer {reviewer_id}", code="unknown")
        await self.store.add_session(digest, reviewer_id, csrf, expires, now)
        return token, Session(reviewer_id, role, csrf, expires, digest)

    async def session(self, token: str | None) -> Session | None:
        """The live session for a cookie value (not expired, account enabled), or None."""
        if not token or len(token) > 64:
            return None
        digest = token_hash(token)
        if digest is None:
            return None
        row = await self.store.session(digest)
        if row is None or int(row["expires_at"]) <= self.now():
            return None
        return Session(
            row["reviewer_id"], row["role"], row["csrf_token"], int(row["expires_at"]), digest
        )

    async def end_session(self, session: Session) -> None:
        await self.store.end_session(session.token_hash)


class LoginLimiter:
    """Failed sign-ins slow down the source that makes them, not the reviewer they name.

    Failures are counted per (source address, reviewer ID) and per source address. After
    ``attempts`` failures for a pair (or ``source_attempts`` from one source, whatever IDs it
    tries), that pair (or source) waits ``base_lock_s``, doubling with every further failure up
    to ``max_lock_s``. A reviewer signing in from anywhere else is never locked out by someone
    guessing at their ID, which a per-account lockout would let anyone do; a guesser is held to
    a few tries an hour per address, each costing a full scrypt check. Failures are forgotten
    after ``window_s`` without one, and a successful sign-in clears its pair. In memory, per
    process (a node's console is one process); the source is the TCP peer address (a reverse
    proxy in front must be the only path in, and then all sources are the proxy: set
    ``source_attempts`` with that in mind).
    """

    MAX_KEYS = 10_000

    def __init__(
        self,
        now: Callable[[], int],
        attempts: int = 5,
        source_attempts: int = 30,
        window_s: int = 3600,
        base_lock_s: int = 60,
        max_lock_s: int = 3600,
    ) -> None:
        self.now = now
        self.attempts = attempts
        self.source_attempts = source_attempts
        self.window_s = window_s
        self.base_lock_s = base_lock_s
        self.max_lock_s = max_lock_s
        self._failures: dict[tuple[str, ...], list[int]] = {}

    @staticmethod
    def _keys(source: str, reviewer_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("pair", source[:64], reviewer_id.lower()[:64]), ("source", source[:64])

    def _recent(self, key: tuple[str, ...]) -> list[int]:
        times = self._failures.get(key, [])
        if times and times[-1] <= self.now() - self.window_s:
            self._failures.pop(key, None)
            return []
        return times

    def _wait(self, key: tuple[str, ...], allowed: int) -> int:
        times = self._recent(key)
        if len(times) < allowed:
            return 0
        lock = min(self.max_lock_s, self.base_lock_s * 2 ** min(len(times) - allowed, 30))
        return max(0, times[-1] + lock - self.now())

    def retry_after(self, source: str, reviewer_id: str) -> int:
        """Seconds until this source may try this reviewer ID again (0: now)."""
        pair, whole = self._keys(source, reviewer_id)
        return max(self._wait(pair, self.attempts), self._wait(whole, self.source_attempts))

    def failed(self, source: str, reviewer_id: str) -> None:
        if len(self._failures) > self.MAX_KEYS:
            for key in list(self._failures):
                self._recent(key)
            while len(self._failures) > self.MAX_KEYS:  # still full: forget the oldest
                self._failures.pop(next(iter(self._failures)))
        for key in self._keys(source, reviewer_id):
            times = self._recent(key)
            times.append(self.now())
            self._failures[key] = times[-64:]

    def succeeded(self, source: str, reviewer_id: str) -> None:
        self._failures.pop(self._keys(source, reviewer_id)[0], None)
