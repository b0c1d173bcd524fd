"""ristretto255 and its scalars, one libsodium call per operation (ctypes, not the package's
cffi binding). The only logic here is the spec's treatment of the identity: libsodium reports a
product or sum that is the identity as a failure, while specs/protocol.md 5.5 requires a holder
to carry on with it, so this module represents the identity as 32 zero bytes and passes it
through instead of refusing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

L = 2**252 + 27742317777372353535851937790883648493  # section 1
IDENTITY = bytes(32)


def _load() -> ctypes.CDLL:
    for name in (ctypes.util.find_library("sodium"), "libsodium.so.23", "libsodium.so.26"):
        if name:
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                continue
            if lib.sodium_init() < 0:
                raise RuntimeError("sodium_init failed")
            return lib
    raise RuntimeError("libsodium not found")


_lib = _load()


class DecodeError(ValueError):
    """Bytes that are not a valid point (section 1) or a reduced scalar."""


def _buf() -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(32)


P = 2**255 - 19


def is_valid_point(p: bytes) -> bool:
    """Section 1: 32 bytes, canonical (RFC 9496 4.3.1), not the identity. The checks on s are
    made here because older libsodium releases ignore bit 255 (section 1 says so)."""
    if len(p) != 32 or p == IDENTITY:
        return False
    s = int.from_bytes(p, "little")
    if s >= P or s & 1:
        return False
    return _lib.crypto_core_ristretto255_is_valid_point(p) == 1


def check_point(p: bytes) -> bytes:
    if not is_valid_point(p):
        raise DecodeError("not a valid ristretto255 point")
    return p


def check_scalar(s: bytes) -> bytes:
    if len(s) != 32 or int.from_bytes(s, "little") >= L:
        raise DecodeError("not a reduced scalar")
    return s


def from_uniform(h: bytes) -> bytes:
    """RFC 9496 4.3.4, the one-way map of 64 uniform bytes."""
    out = _buf()
    if _lib.crypto_core_ristretto255_from_hash(out, h) != 0:
        raise DecodeError("from_hash failed")
    return out.raw


def mul(s: bytes, p: bytes) -> bytes:
    if p == IDENTITY or s == bytes(32):
        return IDENTITY
    out = _buf()
    if _lib.crypto_scalarmult_ristretto255(out, s, p) != 0 and out.raw != IDENTITY:
        raise DecodeError("scalar multiplication failed")
    return out.raw


def mul_base(s: bytes) -> bytes:
    if s == bytes(32):
        return IDENTITY
    out = _buf()
    if _lib.crypto_scalarmult_ristretto255_base(out, s) != 0 and out.raw != IDENTITY:
        raise DecodeError("base multiplication failed")
    return out.raw


def add(p: bytes, q: bytes) -> bytes:
    out = _buf()
    if _lib.crypto_core_ristretto255_add(out, p, q) != 0:
        raise DecodeError("addition failed")
    return out.raw


def sub(p: bytes, q: bytes) -> bytes:
    out = _buf()
    if _lib.crypto_core_ristretto255_sub(out, p, q) != 0:
        raise DecodeError("subtraction failed")
    return out.raw


def scalar(n: int) -> bytes:
    return (n % L).to_bytes(32, "little")


def scalar_reduce64(b: bytes) -> bytes:
    out = _buf()
    _lib.crypto_core_ristretto255_scalar_reduce(out, b)
    return out.raw


def scalar_add(a: bytes, b: bytes) -> bytes:
    out = _buf()
    _lib.crypto_core_ristretto255_scalar_add(out, a, b)
    return out.raw


def scalar_sub(a: bytes, b: bytes) -> bytes:
    out = _buf()
    _lib.crypto_core_ristretto255_scalar_sub(out, a, b)
    return out.raw


def scalar_mul(a: bytes, b: bytes) -> bytes:
    out = _buf()
    _lib.crypto_core_ristretto255_scalar_mul(out, a, b)
    return out.raw


def scalar_invert(a: bytes) -> bytes:
    out = _buf()
    if _lib.crypto_core_ristretto255_scalar_invert(out, a) != 0:
        raise DecodeError("zero has no inverse")
    return out.raw


GENERATOR = mul_base(scalar(1))
