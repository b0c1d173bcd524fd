"""Signal types and the pure arithmetic on their hash values (no media decoding here).

A PDQ hash travels as 32 bytes. Its canonical text form is ThreatExchange's: 64 lowercase hex
characters, most significant first, exactly as Meta's reference ``Hash256::format()`` prints
``w[15] .. w[0]``. "Bit ``i``" of a hash in blindmatch always means bit ``i`` of the 32-byte value
counted from the left: ``(hash32[i // 8] >> (7 - i % 8)) & 1``. That is element ``i`` of the bit
vector the ``pdqhash`` binding returns, element ``i`` of its float vector, and bit ``255 - i`` of
the reference implementation's ``Hash256`` (where bit ``k`` is ``(w[k >> 4] >> (k & 15)) & 1``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence

import numpy as np

PDQ_BITS = 256
PDQ_BYTES = 32
PDQ_MATCH_THRESHOLD = 31  # "same picture" as HMA and ThreatExchange define it: distance <= 31
PDQ_QUALITY_THRESHOLD = 50  # hashes of flatter pictures are unreliable and are not indexed
SHA256_BYTES = 32

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class SignalType(enum.Enum):
    """The two base hash formats the protocol's generic code works with: a picture's PDQ hash and
    an exact SHA-256 digest. ``value`` is the name used on the wire and in bucket keys.

    Every other signal type (and the full list of names) is the registry's
    (:mod:`blindmatch.protocol.signal_types`): each entry declares its name and its bucket signal,
    so this module names no type beyond these two."""

    PDQ = "pdq"
    SHA256 = "sha256"

    @property
    def threatexchange_name(self) -> str | None:
        """python-threatexchange's signal type name, where one exists."""
        return _TE_SIGNAL_NAMES[self]

    @property
    def threatexchange_indicator_type(self) -> str | None:
        """The ThreatExchange Graph API indicator type, where one exists."""
        return _TE_INDICATOR_TYPES[self]


_TE_SIGNAL_NAMES: dict[SignalType, str | None] = {
    SignalType.PDQ: "pdq",
    SignalType.SHA256: None,  # python-threatexchange ships MD5 signals only
}
_TE_INDICATOR_TYPES: dict[SignalType, str | None] = {
    SignalType.PDQ: "HASH_PDQ",
    SignalType.SHA256: "HASH_SHA256",
}

# The eight dihedral transforms in the order Meta's pdqDihedralHash256esFromFloatLuma (and the
# pdqhash binding's compute_dihedral) return them. Each of these is its own inverse except the
# two quarter turns, which are each other's; matching takes the minimum over all eight, so the
# direction convention does not matter for a match decision.
DIHEDRAL_NAMES: tuple[str, ...] = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flip_x",
    "flip_y",
    "flip_plus1",
    "flip_minus1",
)


class HashFormatError(ValueError):
    """A hash value of the wrong length or encoding."""


def pdq_from_hex(text: str) -> bytes:
    """Parse ThreatExchange's 64-hex-character PDQ form (case-insensitive) into 32 bytes."""
    if not isinstance(text, str):
        raise HashFormatError("PDQ hex must be a string")
    lowered = text.strip().lower()
    if not _HEX64.match(lowered):
        raise HashFormatError("PDQ hex must be exactly 64 hexadecimal characters")
    return bytes.fromhex(lowered)


def pdq_to_hex(hash32: bytes) -> str:
    check_pdq_bytes(hash32)
    return hash32.hex()


def check_pdq_bytes(hash32: bytes) -> None:
    if not isinstance(hash32, bytes | bytearray) or len(hash32) != PDQ_BYTES:
        raise HashFormatError(f"a PDQ hash is {PDQ_BYTES} bytes")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float_vector(values: object) -> np.ndarray:
    """A PDQ float vector as the LSH ranking needs it: 256 finite numbers that float32 holds
    (a query's vector is stored as float32; 1e39 would become inf there, and an infinite or
    NaN value makes every probe cost undefined). Returns it as float64."""
    if isinstance(values, bytes | str) or not hasattr(values, "__len__"):
        raise HashFormatError(f"a PDQ float vector is {PDQ_BITS} numbers")
    if len(values) != PDQ_BITS:
        raise HashFormatError(f"a PDQ float vector is {PDQ_BITS} numbers")
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "fiu":
            raise HashFormatError("a PDQ float vector holds numbers")
        array = values.astype(np.float64)
    else:
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in values):  # type: ignore[attr-defined]
            raise HashFormatError("a PDQ float vector holds numbers")
        try:
            array = np.array(values, dtype=np.float64)
        except OverflowError:  # an int beyond float64
            raise HashFormatError("a PDQ float vector value is out of range") from None
    if array.shape != (PDQ_BITS,):
        raise HashFormatError(f"a PDQ float vector is {PDQ_BITS} numbers")
    if not np.isfinite(array).all() or (np.abs(array) > _FLOAT32_MAX).any():
        raise HashFormatError("a PDQ float vector value is not a finite float32")
    return array


def pdq_from_bits(bits: Sequence[int] | np.ndarray) -> bytes:
    """Pack a 256-element 0/1 vector (as ``pdqhash.compute`` returns it) into 32 bytes."""
    array = np.asarray(bits)
    if array.shape != (PDQ_BITS,) or not np.isin(array, (0, 1)).all():
        raise HashFormatError("a PDQ bit vector has 256 elements, each 0 or 1")
    return np.packbits(array.astype(np.uint8)).tobytes()


def pdq_to_bits(hash32: bytes) -> np.ndarray:
    """Unpack 32 bytes into the 256-element uint8 bit vector (bit 0 first)."""
    check_pdq_bytes(hash32)
    return np.unpackbits(np.frombuffer(bytes(hash32), dtype=np.uint8))


def hamming(a: bytes, b: bytes) -> int:
    check_pdq_bytes(a)
    check_pdq_bytes(b)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def as_hash_matrix(hashes: Iterable[bytes] | np.ndarray) -> np.ndarray:
    """Stack hashes into an (n, 32) uint8 matrix for batch distance computations."""
    if isinstance(hashes, np.ndarray):
        if hashes.dtype != np.uint8 or hashes.ndim != 2 or hashes.shape[1] != PDQ_BYTES:
            raise HashFormatError("expected an (n, 32) uint8 matrix")
        return hashes
    rows = list(hashes)
    for h in rows:
        check_pdq_bytes(h)
    if not rows:
        return np.zeros((0, PDQ_BYTES), dtype=np.uint8)
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), PDQ_BYTES)


def hamming_matrix(queries: np.ndarray, index: np.ndarray) -> np.ndarray:
    """All pairwise distances between (q, 32) and (n, 32) uint8 matrices, as a (q, n) array."""
    q = as_hash_matrix(queries)
    n = as_hash_matrix(index)
    out = np.empty((q.shape[0], n.shape[0]), dtype=np.uint16)
    # Row blocks keep the (block, n, 32) temporary small.
    block = max(1, 4_000_000 // max(1, n.shape[0] * PDQ_BYTES))
    for start in range(0, q.shape[0], block):
        xor = np.bitwise_xor(q[start : start + block, None, :], n[None, :, :])
        out[start : start + block] = np.bitwise_count(xor).sum(axis=2, dtype=np.uint16)
    return out


# How each dihedral variant permutes and re-signs PDQ's 16x16 DCT block. The block holds DCT
# frequencies 1..16 along rows and columns (PDQ drops the DC term), so index i is frequency i + 1
# and a mirror negates the odd frequencies, i.e. the even indices. Entries are (transpose, negate
# even rows, negate even columns), applied in that order to the block whose row r, column c holds
# float-vector element 255 - (16 r + c). Verified against pdqhash.compute_dihedral in the tests.
_DIHEDRAL_DCT_OPS: tuple[tuple[bool, bool, bool], ...] = (
    (False, False, False),  # original
    (True, True, False),  # rotate90
    (False, True, True),  # rotate180
    (True, False, True),  # rotate270
    (False, True, False),  # flip_x
    (False, False, True),  # flip_y
    (True, False, False),  # flip_plus1
    (True, True, True),  # flip_minus1
)
_ODD_FREQUENCY_SIGN = np.array([-1.0 if i % 2 == 0 else 1.0 for i in range(16)])


def pdq_bits_from_float(float_vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """PDQ's quantisation: bit i is 1 when element i exceeds the median of all 256."""
    v = np.asarray(float_vector, dtype=np.float64)
    if v.shape != (PDQ_BITS,):
        raise HashFormatError("a PDQ float vector has 256 elements")
    return (v > np.median(v)).astype(np.uint8)


def dihedral_float_vectors(float_vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """The float vectors of the 8 dihedral variants (in DIHEDRAL_NAMES order), computed from the
    original's, so a querier can multi-probe every variant without re-hashing the picture."""
    v = np.asarray(float_vector, dtype=np.float64)
    if v.shape != (PDQ_BITS,):
        raise HashFormatError("a PDQ float vector has 256 elements")
    block = v[::-1].reshape(16, 16)
    out = np.empty((8, PDQ_BITS), dtype=np.float64)
    for k, (transpose, negate_rows, negate_cols) in enumerate(_DIHEDRAL_DCT_OPS):
        m = block.T if transpose else block
        if negate_rows:
            m = m * _ODD_FREQUENCY_SIGN[:, None]
        if negate_cols:
            m = m * _ODD_FREQUENCY_SIGN[None, :]
        out[k] = m.reshape(-1)[::-1]
    return out
