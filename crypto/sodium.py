"""ristretto255 group and scalar arithmetic from the system libsodium.

A minimal cffi (ABI mode) binding: PyNaCl does not expose ristretto255, and going through cffi
directly keeps the per-call overhead small next to a scalar multiplication (which is what the
benchmarks compare against). Nothing here implements arithmetic: every operation is one
libsodium call.

Encodings are the canonical 32-byte ristretto255 encodings (RFC 9496) and 32-byte
little-endian scalars reduced modulo the group order L.
"""

from __future__ import annotations

import ctypes.util
import os

from cffi import FFI

POINT_BYTES = 32
SCALAR_BYTES = 32
HASH_BYTES = 64  # input to the one-way map (RFC 9496 section 4.3.4)
NONREDUCED_SCALAR_BYTES = 64
IDENTITY = bytes(POINT_BYTES)
# The order of the prime-order group (RFC 9496): 2^252 + 27742317777372353535851937790883648493.
ORDER = 2**252 + 27742317777372353535851937790883648493

_CDEF = """
int sodium_init(void);
int sodium_library_version_major(void);
int sodium_library_version_minor(void);
const char *sodium_version_string(void);
int crypto_core_ristretto255_is_valid_point(const unsigned char *p);
int crypto_core_ristretto255_add(unsigned char *r, const unsigned char *p, const unsigned char *q);
int crypto_core_ristretto255_sub(unsigned char *r, const unsigned char *p, const unsigned char *q);
int crypto_core_ristretto255_from_hash(unsigned char *p, const unsigned char *r);
void crypto_core_ristretto255_scalar_random(unsigned char *r);
int crypto_core_ristretto255_scalar_invert(unsigned char *recip, const unsigned char *s);
void crypto_core_ristretto255_scalar_negate(unsigned char *neg, const unsigned char *s);
void crypto_core_ristretto255_scalar_add(unsigned char *z, const unsigned char *x,
                                         const unsigned char *y);
void crypto_core_ristretto255_scalar_sub(unsigned char *z, const unsigned char *x,
                                         const unsigned char *y);
void crypto_core_ristretto255_scalar_mul(unsigned char *z, const unsigned char *x,
                                         const unsigned char *y);
void crypto_core_ristretto255_scalar_reduce(unsigned char *r, const unsigned char *s);
int crypto_scalarmult_ristretto255(unsigned char *q, const unsigned char *n,
                                   const unsigned char *p);
int crypto_scalarmult_ristretto255_base(unsigned char *q, const unsigned char *n);
int sodium_memcmp(const void *b1_, const void *b2_, size_t len);
"""

_INSTALL_HINT = (
    "blindmatch needs libsodium >= 1.0.18 (for ristretto255); install it with "
    "'apt-get install libsodium23' (Debian/Ubuntu), 'dnf install libsodium' "
    "or 'brew install libsodium'"
)


class SodiumUnavailable(ImportError):
    """libsodium is missing or too old."""


def _load() -> tuple[FFI, object]:
    ffi = FFI()
    ffi.cdef(_CDEF)
    candidates = [os.environ.get("BLINDMATCH_LIBSODIUM"), ctypes.util.find_library("sodium")]
    candidates += ["libsodium.so.26", "libsodium.so.23", "libsodium.dylib", "libsodium.dll"]
    last_error: Exception | None = None
    for name in candidates:
        if not name:
            continue
        try:
            lib = ffi.dlopen(name)
        except OSError as exc:
            last_error = exc
            continue
        try:
            version = (lib.sodium_library_version_major(), lib.sodium_library_version_minor())
            # 1.0.18 is library version 10.3; ristretto255 appeared there.
            if version < (10, 3):
                raise SodiumUnavailable(f"{_INSTALL_HINT} (found library version {version})")
            lib.crypto_core_ristretto255_is_valid_point  # noqa: B018 - symbol must resolve
        except AttributeError as exc:
            last_error = exc
            continue
        if lib.sodium_init() < 0:
            raise SodiumUnavailable("libsodium failed to initialise (sodium_init() < 0)")
        return ffi, lib
    raise SodiumUnavailable(f"{_INSTALL_HINT} (last error: {last_error})")


_ffi, _lib = _load()
lib = _lib  # exposed for the benchmark's raw floor measurement
ffi = _ffi
_BUF32 = _ffi.typeof("unsigned char[32]")  # parsed once: ffi.new(str) re-parses every call


def version() -> str:
    return _ffi.string(_lib.sodium_version_string()).decode()


class GroupError(ValueError):
    """An operation produced or was given an element outside what the protocol allows."""


def is_valid_point(p: bytes) -> bool:
    """True for a canonical encoding of a non-identity ristretto255 element."""
    return (
        len(p) == POINT_BYTES
        and p != IDENTITY
        and _lib.crypto_core_ristretto255_is_valid_point(p) == 1
    )


def is_canonical_encoding(p: bytes) -> bool:
    """True for a canonical encoding of any element, the identity included."""
    return len(p) == POINT_BYTES and (
        p == IDENTITY or _lib.crypto_core_ristretto255_is_valid_point(p) == 1
    )


def point_add(p: bytes, q: bytes) -> bytes:
    out = _ffi.new(_BUF32)
    if _lib.crypto_core_ristretto255_add(out, p, q) != 0:
        raise GroupError("point addition on an invalid encoding")
    return bytes(out)


def point_sub(p: bytes, q: bytes) -> bytes:
    out = _ffi.new(_BUF32)
    if _lib.crypto_core_ristretto255_sub(out, p, q) != 0:
        raise GroupError("point subtraction on an invalid encoding")
    return bytes(out)


def from_hash(h: bytes) -> bytes:
    """The ristretto255 one-way map (RFC 9496 section 4.3.4) of 64 uniform bytes."""
    if len(h) != HASH_BYTES:
        raise ValueError("from_hash needs 64 bytes")
    out = _ffi.new(_BUF32)
    _lib.crypto_core_ristretto255_from_hash(out, h)
    return bytes(out)


def scalarmult(n: bytes, p: bytes) -> bytes:
    """n * P. Fails if P is not a valid encoding or the result is the identity."""
    out = _ffi.new(_BUF32)
    if _lib.crypto_scalarmult_ristretto255(out, n, p) != 0:
        raise GroupError("scalar multiplication gave the identity or had an invalid point")
    return bytes(out)


def scalarmult_base(n: bytes) -> bytes:
    """n * G for the ristretto255 generator G. Fails if n is 0 mod L."""
    out = _ffi.new(_BUF32)
    if _lib.crypto_scalarmult_ristretto255_base(out, n) != 0:
        raise GroupError("base multiplication by a zero scalar")
    return bytes(out)


def scalar_random() -> bytes:
    """A uniformly random non-zero scalar (libsodium's CSPRNG)."""
    out = _ffi.new(_BUF32)
    _lib.crypto_core_ristretto255_scalar_random(out)
    return bytes(out)


def scalar_reduce(wide: bytes) -> bytes:
    """Reduce a 64-byte little-endian integer modulo L."""
    if len(wide) != NONREDUCED_SCALAR_BYTES:
        raise ValueError("scalar_reduce needs 64 bytes")
    out = _ffi.new(_BUF32)
    _lib.crypto_core_ristretto255_scalar_reduce(out, wide)
    return bytes(out)


def scalar_invert(s: bytes) -> bytes:
    out = _ffi.new(_BUF32)
    if _lib.crypto_core_ristretto255_scalar_invert(out, s) != 0:
        raise GroupError("inverse of zero")
    return bytes(out)


def scalar_negate(s: bytes) -> bytes:
    out = _ffi.new(_BUF32)
    _lib.crypto_core_ristretto255_scalar_negate(out, s)
    return bytes(out)


def scalar_add(x: bytes, y: bytes) -> bytes:
    out = _ffi.new(_BUF32)
    _lib.crypto_core_ristretto255_scalar_add(out, x, y)
    return bytes(out)


def scalar_sub(x: bytes, y: bytes) -> bytes:
    out = _ffi.new(_BUF32)
    _lib.crypto_core_ristretto255_scalar_sub(out, x, y)
    return bytes(out)


def scalar_mul(x: bytes, y: bytes) -> bytes:
    out = _ffi.new(_BUF32)
    _lib.crypto_core_ristretto255_scalar_mul(out, x, y)
    return bytes(out)


def scalar_from_int(n: int) -> bytes:
    return (n % ORDER).to_bytes(SCALAR_BYTES, "little")


def scalar_to_int(s: bytes) -> int:
    return int.from_bytes(s, "little")


def is_canonical_scalar(s: bytes) -> bool:
    return len(s) == SCALAR_BYTES and int.from_bytes(s, "little") < ORDER


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of equal-length byte strings."""
    return len(a) == len(b) and _lib.sodium_memcmp(a, b, len(a)) == 0


GENERATOR = scalarmult_base(scalar_from_int(1))
