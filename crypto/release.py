"""Sealed release: the holder's metadata about a candidate, readable only if it matches.

The holder's threshold answer (``threshold.respond``) holds, per ``t = 0..T``, an ElGamal
ciphertext of ``rho_t * (d - t)`` under the querier's key. Sealing adds one fresh point
``M = mu*G`` to every ``B'_t``: the querier's decryption ``P_t = B'_t - sk*A'_t`` is then
``rho_t*(d - t)*G + M``, which is ``M`` exactly when ``d = t`` and otherwise a uniform point
independent of ``M``. The release is encrypted (XChaCha20-Poly1305, libsodium) under a key
derived from ``M``, so the querier reads it, and knows the band, only if some ``t <= T`` equals
the distance (spec section 8.5).

Pure: bytes in, bytes out.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.bindings as aead
import nacl.exceptions

from blindmatch.crypto import sodium
from blindmatch.crypto import threshold as th
from blindmatch.crypto.hashing import i2osp

RELEASE_PLAINTEXT_BYTES = 256  # every release is padded to this, so lengths do not link items
SEALED_BYTES = RELEASE_PLAINTEXT_BYTES + aead.crypto_aead_xchacha20poly1305_ietf_ABYTES
_KEY_DST = b"blindmatch-v1 release"
_SCALAR_KEY_DST = b"blindmatch-v1 release scalar key"
_TOKEN_DST = b"blindmatch-v1 confirmed"
TOKEN_BYTES = 16
SCALAR_KEY_BYTES = 32
_NONCE = bytes(aead.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)  # each key is used once
_ROW = sodium.POINT_BYTES


class ReleaseError(ValueError):
    pass


def _lp(*parts: bytes) -> bytes:
    return b"".join(i2osp(len(p), 2) + p for p in parts)


def release_key(query_id: bytes, candidate: bytes, point: bytes) -> bytes:
    """The AEAD key of one answer: bound to the query, the candidate it answers and ``M``."""
    return hashlib.sha512(_KEY_DST + _lp(query_id, candidate, point)).digest()[:32]


def scalar_key(secret: bytes) -> bytes:
    """The holder's key for release scalars, from a secret of its own (the node uses its
    reference key ``Kref``, spec 10.2): ``SHA-512(DST || secret)[0:32]``."""
    return hashlib.sha512(_SCALAR_KEY_DST + secret).digest()[:SCALAR_KEY_BYTES]


def release_scalar(key: bytes, query: bytes, item_ref: bytes) -> bytes:
    """``mu`` for an answer about one item to one encrypted query (spec 8.5): HMAC-SHA-512
    under the holder's scalar key of ``LP(SHA-256(query), item_ref)``, reduced mod L. Every
    answer about that item to that very query carries the same ``M = mu*G``; another query
    (another hash, key or query id) gets an unrelated one. Non-zero (a zero draws again)."""
    if len(key) != SCALAR_KEY_BYTES:
        raise ReleaseError(f"a release scalar key is {SCALAR_KEY_BYTES} bytes")
    msg = _lp(hashlib.sha256(query).digest(), item_ref)
    counter = 0
    while True:
        wide = hmac.new(key, msg + i2osp(counter, 1), hashlib.sha512).digest()
        mu = sodium.scalar_reduce(wide)
        if mu != bytes(32):
            return mu
        counter += 1


def confirmation_token(query_id: bytes, point: bytes) -> bytes:
    """What a querier that opened an answer shows the holder to have that item's other
    candidates of the same query answered ``same`` (spec 8.5): ``SHA-512(DST || LP(query_id,
    M))[0:16]``. Only a querier whose test matched knows ``M``."""
    return hashlib.sha512(_TOKEN_DST + _lp(query_id, point)).digest()[:TOKEN_BYTES]


def pad(plaintext: bytes) -> bytes:
    if len(plaintext) > RELEASE_PLAINTEXT_BYTES - 2:
        raise ReleaseError(f"a release is at most {RELEASE_PLAINTEXT_BYTES - 2} bytes")
    body = i2osp(len(plaintext), 2) + plaintext
    return body + bytes(RELEASE_PLAINTEXT_BYTES - len(body))


def unpad(padded: bytes) -> bytes:
    n = int.from_bytes(padded[:2], "big")
    if n > len(padded) - 2 or any(padded[2 + n :]):
        raise ReleaseError("release padding is malformed")
    return padded[2 : 2 + n]


@dataclass(frozen=True)
class SealedAnswer:
    response: th.ThresholdResponse
    sealed: bytes  # SEALED_BYTES


def seal(
    verified: th.VerifiedQuery,
    holder_hash: bytes,
    bands: Sequence[int],
    candidate: bytes,
    release: bytes,
    scalars: th.ScalarSource | None = None,
    shuffle: Callable[[list[Any]], None] | None = None,
    mu: bytes | None = None,
) -> SealedAnswer:
    """The holder's answer for one named candidate, its release sealed to a match.

    ``mu``: the release scalar (:func:`release_scalar`); None draws a fresh one (a decoy).
    ``scalars`` (vectors only) replaces the CSPRNG: ``respond``'s draws, then ``mu``."""
    response = th.respond(verified, holder_hash, bands, scalars, shuffle)
    if mu is None:
        mu = scalars() if scalars is not None else sodium.scalar_random()
    m = sodium.scalarmult_base(mu)
    cts = [ct for group in response.groups for ct in group]
    shifted = sodium.point_add_many(b"".join(b for _, b in cts), m * len(cts))
    groups, k = [], 0
    for group in response.groups:
        out = []
        for a, _ in group:
            out.append((a, shifted[k * _ROW : (k + 1) * _ROW]))
            k += 1
        groups.append(tuple(out))
    key = release_key(verified.query.query_id, candidate, m)
    sealed = aead.crypto_aead_xchacha20poly1305_ietf_encrypt(pad(release), candidate, _NONCE, key)
    return SealedAnswer(th.ThresholdResponse(response.bands, tuple(groups)), sealed)


@dataclass(frozen=True)
class Opened:
    band: int  # the upper bound of the band that holds the distance
    release: bytes
    token: bytes  # confirmation_token(query_id, M): shown to the holder in a later round


def open_sealed(
    key: th.QuerierKey,
    query_id: bytes,
    candidate: bytes,
    response: th.ThresholdResponse,
    sealed: bytes,
) -> Opened | None:
    """The querier's side: decrypt every ``P_t`` (all ``T+1``, so the work does not depend on
    where or whether the distance lies) and try each as the release key. None: no match."""
    if len(sealed) != SEALED_BYTES:
        raise ReleaseError(f"a sealed release is {SEALED_BYTES} bytes")
    cts = [ct for group in response.groups for ct in group]
    shared = sodium.scalarmult_many(key.sk, b"".join(a for a, _ in cts))
    bs = b"".join(b for _, b in cts)
    try:
        points = sodium.point_sub_many(bs, shared)
        rows = [points[k * _ROW : (k + 1) * _ROW] for k in range(len(cts))]
    except sodium.GroupError:  # some P_t is the identity: never the key (M is not)
        rows = []
        for k in range(len(cts)):
            b, s = bs[k * _ROW : (k + 1) * _ROW], shared[k * _ROW : (k + 1) * _ROW]
            rows.append(sodium.IDENTITY if b == s else sodium.point_sub(b, s))
    found: Opened | None = None
    k = 0
    for bound, group in zip(response.bands, response.groups, strict=True):
        for _ in group:
            p = rows[k]
            k += 1
            if p == sodium.IDENTITY:
                continue
            try:
                plain = aead.crypto_aead_xchacha20poly1305_ietf_decrypt(
                    sealed, candidate, _NONCE, release_key(query_id, candidate, p)
                )
            except nacl.exceptions.CryptoError:
                continue
            if found is None:
                found = Opened(bound, unpad(plain), confirmation_token(query_id, p))
    return found
