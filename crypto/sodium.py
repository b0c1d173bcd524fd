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
import itertools
import os
from typing import Any

from cffi import FFI

POINT_BYTES = 32
SCALAR_BYTES = 32
HASH_BYTES = 64  # input to the one-way map (RFC 9496 section 4.3.4)
NONREDUCED_SCALAR_BYTES = 64
IDENTITY = bytes(POINT_BYTES)
# The order of the prime-order group (RFC 9496): 2^252 + 27742317777372353535851937790883648493.
ORDER = 2**252 + 27742317777372353535851937790883648493
# The field prime of curve25519: an encoding's integer s must be below it (RFC 9496 4.3.1).
FIELD_PRIME = 2**255 - 19

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
void randombytes_buf(void *buf, size_t size);
int sodium_memcmp(const void *b1_, const void *b2_, size_t len);
"""

_INSTALL_HINT = (
    "blindmatch needs libsodium >= 1.0.18 (for ristretto255); install it with "
    "'apt-get install libsodium23' (Debian/Ubuntu), 'dnf install libsodium' "
    "or 'brew install libsodium'"
)


class SodiumUnavailable(ImportError):
    """libsodium is missing or too old."""


def _load() -> tuple[FFI, Any]:
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
_ROWS32 = _ffi.typeof("unsigned char[][32]")
_ROWS64 = _ffi.typeof("unsigned char[][64]")


def version() -> str:
    return _ffi.string(_lib.sodium_version_string()).decode()


class GroupError(ValueError):
    """An operation produced or was given an element outside what the protocol allows."""


def _canonical_field_element(p: bytes) -> bool:
    """RFC 9496 section 4.3.1, first step, checked here rather than left to libsodium: the
    little-endian integer ``s`` must be below the field prime (which also refuses bit 255 set)
    and non-negative, i.e. even. libsodium 1.0.18 masks bit 255 off before its own check, so
    without this an encoding with that bit set decoded as another valid encoding's point."""
    s = int.from_bytes(p, "little")
    return s < FIELD_PRIME and not s & 1


def is_valid_point(p: bytes) -> bool:
    """True for a canonical encoding of a non-identity ristretto255 element."""
    return (
        len(p) == POINT_BYTES
        and p != IDENTITY
        and _canonical_field_element(p)
        and _lib.crypto_core_ristretto255_is_valid_point(p) == 1
    )


def is_canonical_encoding(p: bytes) -> bool:
    """True for a canonical encoding of any element, the identity included."""
    return len(p) == POINT_BYTES and (
        p == IDENTITY
        or (_canonical_field_element(p) and _lib.crypto_core_ristretto255_is_valid_point(p) == 1)
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


# --- batches -------------------------------------------------------------------------------
#
# The same libsodium calls over many operands, each operand list given as the concatenation of
# its 32-byte encodings (a single 32-byte operand is used for every row). One Python call per
# batch and 2-D cdata views instead of a wrapper call, an allocation and a copy per operation:
# through cffi's ABI mode those cost as much as a third of a fixed-base multiplication.


def _rows(data: Any, width: int = SCALAR_BYTES) -> Any:
    if len(data) % width:
        raise ValueError(f"batch operands are {width}-byte rows")
    return _ffi.from_buffer(_ROWS32 if width == SCALAR_BYTES else _ROWS64, data)


def _operands(xs: bytes, ys: bytes) -> tuple[Any, Any, Any]:
    n = max(len(xs), len(ys)) // SCALAR_BYTES
    if len(xs) not in (SCALAR_BYTES, n * SCALAR_BYTES) or len(ys) not in (
        SCALAR_BYTES,
        n * SCALAR_BYTES,
    ):
        raise ValueError("batch operands must have the same number of rows, or one row")
    x = _rows(xs) if len(xs) == n * SCALAR_BYTES else itertools.repeat(_ffi.from_buffer(xs), n)
    y = _rows(ys) if len(ys) == n * SCALAR_BYTES else itertools.repeat(_ffi.from_buffer(ys), n)
    return _ffi.new(_ROWS32, n), x, y


def _binary_many(fn: Any, xs: bytes, ys: bytes) -> bytes:
    out, x, y = _operands(xs, ys)
    for o, a, b in zip(out, x, y):  # noqa: B905 - itertools.repeat is unbounded on purpose
        fn(o, a, b)
    return _ffi.buffer(out)[:]


def _checked_many(fn: Any, xs: bytes, ys: bytes, failure: str) -> bytes:
    out, x, y = _operands(xs, ys)
    for i, (o, a, b) in enumerate(zip(out, x, y)):  # noqa: B905
        if fn(o, a, b) != 0:
            raise GroupError(f"{failure} (row {i})")
    return _ffi.buffer(out)[:]


def random_bytes(n: int) -> bytes:
    """n bytes from libsodium's CSPRNG."""
    buf = _ffi.new("unsigned char[]", n)
    _lib.randombytes_buf(buf, n)
    return _ffi.buffer(buf)[:]


def scalar_random_many(n: int) -> bytes:
    """n uniformly random non-zero scalars, concatenated: 64 CSPRNG bytes reduced mod L each.

    One randombytes call for the whole batch (libsodium's scalar_random asks the system for 32
    bytes per scalar); a 512-bit value reduced mod L is within 2^-259 of uniform (RFC 9380,
    section 5), and the rare batch holding a zero (~2^-252 a row) is drawn again.
    """
    size = n * NONREDUCED_SCALAR_BYTES
    wide = _ffi.new("unsigned char[]", size)
    while True:
        _lib.randombytes_buf(wide, size)
        out = scalar_reduce_many(_ffi.buffer(wide))
        zero = bytes(SCALAR_BYTES)
        # find() also sees unaligned runs of zeros; only an aligned one is a zero scalar.
        if out.find(zero) < 0 or all(
            out[o : o + SCALAR_BYTES] != zero for o in range(0, len(out), SCALAR_BYTES)
        ):
            return out


def scalar_reduce_many(wide: Any) -> bytes:
    """Each 64-byte row reduced modulo L (``wide``: bytes, or a cffi buffer of them)."""
    rows = _rows(wide, NONREDUCED_SCALAR_BYTES)
    out = _ffi.new(_ROWS32, len(wide) // NONREDUCED_SCALAR_BYTES)
    reduce = _lib.crypto_core_ristretto255_scalar_reduce
    for o, w in zip(out, rows, strict=True):
        reduce(o, w)
    return _ffi.buffer(out)[:]


def scalar_mul_many(xs: bytes, ys: bytes) -> bytes:
    return _binary_many(_lib.crypto_core_ristretto255_scalar_mul, xs, ys)


def scalar_add_many(xs: bytes, ys: bytes) -> bytes:
    return _binary_many(_lib.crypto_core_ristretto255_scalar_add, xs, ys)


def scalar_sub_many(xs: bytes, ys: bytes) -> bytes:
    return _binary_many(_lib.crypto_core_ristretto255_scalar_sub, xs, ys)


def scalarmult_base_many(ns: bytes) -> bytes:
    """n_k * G for every row; fails on a scalar that is 0 mod L."""
    rows = _rows(ns)
    out = _ffi.new(_ROWS32, len(ns) // SCALAR_BYTES)
    mult = _lib.crypto_scalarmult_ristretto255_base
    for i, (o, n) in enumerate(zip(out, rows, strict=True)):
        if mult(o, n) != 0:
            raise GroupError(f"base multiplication by a zero scalar (row {i})")
    return _ffi.buffer(out)[:]


def scalarmult_many(ns: bytes, ps: bytes) -> bytes:
    """n_k * P_k for every row (either operand may be a single row used for all)."""
    return _checked_many(
        _lib.crypto_scalarmult_ristretto255,
        ns,
        ps,
        "scalar multiplication gave the identity or had an invalid point",
    )


def point_add_many(ps: bytes, qs: bytes) -> bytes:
    return _checked_many(
        _lib.crypto_core_ristretto255_add, ps, qs, "point addition on an invalid encoding"
    )


def point_sub_many(ps: bytes, qs: bytes) -> bytes:
    return _checked_many(
        _lib.crypto_core_ristretto255_sub, ps, qs, "point subtraction on an invalid encoding"
    )


GENERATOR = scalarmult_base(scalar_from_int(1))
