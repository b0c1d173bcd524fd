"""Hashing into ristretto255 and its scalar field (RFC 9380 expand_message_xmd with SHA-512).

These are the RFC 9380 / RFC 9497 constructions, built on hashlib's SHA-512 and libsodium's
one-way map; nothing here is a new primitive.
"""

from __future__ import annotations

import hashlib

from blindmatch.crypto import sodium

_SHA512_BLOCK = 128
_SHA512_OUT = 64


def i2osp(value: int, length: int) -> bytes:
    """RFC 8017 I2OSP: big-endian, fixed length; refuses values that do not fit."""
    if value < 0 or value >= 1 << (8 * length):
        raise ValueError(f"{value} does not fit in {length} bytes")
    return value.to_bytes(length, "big")


def length_prefixed(*parts: bytes) -> bytes:
    """I2OSP(len(p), 2) || p for each part: the framing RFC 9497 uses in its transcripts."""
    return b"".join(i2osp(len(p), 2) + p for p in parts)


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1, with H = SHA-512."""
    if len(dst) > 255:
        raise ValueError("DST longer than 255 bytes")
    ell = -(-length // _SHA512_OUT)
    if ell > 255 or length > 65535:
        raise ValueError("requested output too long")
    dst_prime = dst + i2osp(len(dst), 1)
    msg_prime = bytes(_SHA512_BLOCK) + msg + i2osp(length, 2) + b"\x00" + dst_prime
    b0 = hashlib.sha512(msg_prime).digest()
    blocks = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(hashlib.sha512(mixed + i2osp(i, 1) + dst_prime).digest())
    return b"".join(blocks)[:length]


def hash_to_group(msg: bytes, dst: bytes) -> bytes:
    """hash_to_ristretto255 (RFC 9380 appendix B / RFC 9496 section 4.3.4)."""
    return sodium.from_hash(expand_message_xmd(msg, dst, 64))


def hash_to_scalar(msg: bytes, dst: bytes) -> bytes:
    """RFC 9497 section 4.1 HashToScalar for ristretto255: 64 uniform bytes reduced mod L."""
    return sodium.scalar_reduce(expand_message_xmd(msg, dst, 64))


class PrefixedXmd:
    """expand_message_xmd(prefix || msg, dst, 64) for many msg sharing one prefix.

    The same construction as :func:`expand_message_xmd`; the SHA-512 state after the zero pad
    and the prefix is kept and copied, so a transcript's common head is hashed once.
    """

    def __init__(self, prefix: bytes, dst: bytes) -> None:
        if len(dst) > 255:
            raise ValueError("DST longer than 255 bytes")
        self._dst_prime = dst + i2osp(len(dst), 1)
        self._head = hashlib.sha512(bytes(_SHA512_BLOCK) + prefix)
        self._tail = i2osp(_SHA512_OUT, 2) + b"\x00" + self._dst_prime
        self._b1_tail = b"\x01" + self._dst_prime

    def expand64(self, msg: bytes) -> bytes:
        h = self._head.copy()
        h.update(msg + self._tail)
        return hashlib.sha512(h.digest() + self._b1_tail).digest()
