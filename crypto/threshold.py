"""Private Hamming-threshold test over ristretto255 (exponential ElGamal).

Querier (Q) holds a 256-bit hash x and an ElGamal key (sk, H = sk*G). Holder (S) holds y.

1. Q encrypts each bit x_i as C_i = (A_i, B_i) = (r_i*G, x_i*G + r_i*H) with a Fiat-Shamir
   OR-proof (Cramer-Damgard-Schoenmakers) that x_i is 0 or 1. This *encrypted query* is made once
   per query hash and reused for every candidate and every holder.
2. S verifies every proof, then for its y computes homomorphically D = Enc(d), d = HD(x, y):
   D = sum_i s_i*C_i + (0, w(y)*G) with s_i = +1 where y_i = 0 and -1 where y_i = 1.
3. For t = 0..T, S sends E_t = r_t*(D - (0, t*G)) + (s_t*G, s_t*H): the plaintext r_t*(d - t)
   is zero iff d = t and otherwise uniformly random; the fresh (s_t*G, s_t*H) hides r_t.
   The E_t are shuffled within each distance band the holder's policy releases.
4. Q decrypts: E_t encrypts zero iff B'_t == sk*A'_t. d <= T iff some E_t encrypts zero; the
   band holding it tells Q the coarse band and nothing finer.

Security model (specs/protocol.md): the querier may be malicious (the proofs stop it from
encrypting anything but bits); the holder is semi-honest (it learns nothing about x under DDH,
but a dishonest holder could claim a match, so matches carry the holder's signature and go to
review). Nothing here performs I/O; randomness comes from libsodium unless a seeded source is
passed in (for test vectors only).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from blindmatch.crypto import sodium
from blindmatch.crypto.hashing import PrefixedXmd, hash_to_scalar, i2osp

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8
QUERY_ID_BYTES = 16
CIPHERTEXT_BYTES = 2 * sodium.POINT_BYTES
BIT_PROOF_BYTES = 4 * sodium.SCALAR_BYTES
PROOF_DST = b"blindmatch-v1 threshold bit-proof ristretto255-SHA512"
MAX_THRESHOLD = 128  # bounds the holder's work and the response size
ENCRYPTED_QUERY_BYTES = (
    sodium.POINT_BYTES + QUERY_ID_BYTES + HASH_BITS * (CIPHERTEXT_BYTES + BIT_PROOF_BYTES)
)
_NIBBLES = HASH_BITS // 4

ScalarSource = Callable[[], bytes]


class ThresholdError(ValueError):
    """A threshold-test message was malformed or failed verification."""


def hash_bits(h: bytes) -> list[int]:
    """Bits of a 32-byte hash, most significant bit of byte 0 first (the hex order)."""
    if not isinstance(h, bytes) or len(h) != HASH_BYTES:
        raise ThresholdError(f"hash must be {HASH_BYTES} bytes")
    return [(h[i >> 3] >> (7 - (i & 7))) & 1 for i in range(HASH_BITS)]


VECTOR_SCALAR_DST = b"blindmatch-v1 test-vector scalars"


def vector_scalars(seed: bytes) -> ScalarSource:
    """The deterministic scalar stream used by the test vectors (and only by them).

    Scalar k (k = 0, 1, ...) is HashToScalar(seed || I2OSP(k, 4)) with ``VECTOR_SCALAR_DST``,
    zeros skipped, so any implementation can reproduce the vectors' randomness exactly.
    Real queries draw from libsodium's CSPRNG.
    """
    counter = 0

    def draw() -> bytes:
        nonlocal counter
        while True:
            s = hash_to_scalar(seed + i2osp(counter, 4), VECTOR_SCALAR_DST)
            counter += 1
            if s != bytes(32):
                return s

    return draw


# Small multiples k*G, computed on first use; they are public constants.
_SMALL_MULTIPLES: dict[int, bytes] = {}


def _multiple_of_g(k: int) -> bytes:
    if k not in _SMALL_MULTIPLES:
        _SMALL_MULTIPLES[k] = sodium.scalarmult_base(sodium.scalar_from_int(k))
    return _SMALL_MULTIPLES[k]


def _add_multiple_of_g(point: bytes, k: int) -> bytes:
    if k == 0:
        return point
    if k > 0:
        return sodium.point_add(point, _multiple_of_g(k))
    return sodium.point_sub(point, _multiple_of_g(-k))


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class QuerierKey:
    sk: bytes
    pk: bytes

    def __repr__(self) -> str:
        return f"QuerierKey(pk={self.pk.hex()[:16]}…)"

    @classmethod
    def generate(cls, scalars: ScalarSource = sodium.scalar_random) -> QuerierKey:
        sk = scalars()
        return cls(sk=sk, pk=sodium.scalarmult_base(sk))


# --- the encrypted query --------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptedQuery:
    """The querier's encrypted bits with their proofs; made once per query hash."""

    pk: bytes
    query_id: bytes
    ciphertexts: tuple[tuple[bytes, bytes], ...]
    proofs: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        parts = [self.pk, self.query_id]
        for (a, b), proof in zip(self.ciphertexts, self.proofs, strict=True):
            parts += [a, b, proof]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedQuery:
        """Parse only (lengths, canonical points); :func:`verify_query` checks the proofs."""
        if not isinstance(data, bytes):
            raise ThresholdError("encrypted query must be bytes")
        if len(data) != ENCRYPTED_QUERY_BYTES:
            raise ThresholdError(
                f"encrypted query must be {ENCRYPTED_QUERY_BYTES} bytes, got {len(data)}"
            )
        pk = _point(data[:32], "querier public key")
        query_id = data[32:48]
        cts = []
        proofs = []
        step = CIPHERTEXT_BYTES + BIT_PROOF_BYTES
        for i in range(HASH_BITS):
            off = 48 + i * step
            cts.append(
                (
                    _point(data[off : off + 32], f"bit {i} A"),
                    _point(data[off + 32 : off + 64], f"bit {i} B"),
                )
            )
            proof = data[off + 64 : off + step]
            for j in range(4):
                if not sodium.is_canonical_scalar(proof[32 * j : 32 * j + 32]):
                    raise ThresholdError(f"bit {i} proof: scalar is not reduced")
            proofs.append(proof)
        return cls(pk=pk, query_id=query_id, ciphertexts=tuple(cts), proofs=tuple(proofs))


def _point(data: bytes, what: str) -> bytes:
    if len(data) != sodium.POINT_BYTES:
        raise ThresholdError(f"{what}: expected 32 bytes")
    if data == sodium.IDENTITY:
        raise ThresholdError(f"{what}: the identity element is not allowed")
    if not sodium.is_valid_point(data):
        raise ThresholdError(f"{what}: not a canonical ristretto255 encoding")
    return data


_LP32 = b"\x00\x20"  # I2OSP(32, 2): every point in the transcript is 32 bytes
# LP(I2OSP(i, 2)) then the length prefix of A, for every bit index i.
_LP_INDEX = tuple(b"\x00\x02" + i.to_bytes(2, "big") + _LP32 for i in range(HASH_BITS))
_ROW = sodium.SCALAR_BYTES
_COLUMN = HASH_BITS * _ROW  # one value for every bit, concatenated


def _challenger(pk: bytes, query_id: bytes) -> PrefixedXmd:
    # The transcript is LP(pk, query_id, I2OSP(i, 2), A, B, T1_0, T2_0, T1_1, T2_1); its head
    # is the same for every bit of a query, so it is hashed once.
    return PrefixedXmd(_LP32 + pk + b"\x00\x10" + query_id, PROOF_DST)


def _challenge_input(index: int, a: bytes, b: bytes, commitments: Sequence[bytes]) -> bytes:
    t1_0, t2_0, t1_1, t2_1 = commitments
    return b"".join(
        (_LP_INDEX[index], a, _LP32, b, _LP32, t1_0, _LP32, t2_0, _LP32, t1_1, _LP32, t2_1)
    )


def _challenge(
    pk: bytes, query_id: bytes, index: int, a: bytes, b: bytes, commitments: Sequence[bytes]
) -> bytes:
    wide = _challenger(pk, query_id).expand64(_challenge_input(index, a, b, commitments))
    return sodium.scalar_reduce(wide)


def _column(data: bytes, k: int) -> bytes:
    return data[k * _COLUMN : (k + 1) * _COLUMN]


_BIT_SCALAR = (sodium.scalar_from_int(0), sodium.scalar_from_int(1))
# m - j for the simulated branch j = 1 - m: -1 (m = 0) or +1 (m = 1).
_M_MINUS_J = (sodium.scalar_from_int(-1), sodium.scalar_from_int(1))


def encrypt_query(
    key: QuerierKey,
    query_hash: bytes,
    query_id: bytes,
    scalars: ScalarSource | None = None,
) -> EncryptedQuery:
    """Encrypt the 256 bits of ``query_hash`` with a bit proof each.

    Every multiplication is by the fixed generator: the querier knows sk, r and the bit, so
    r*H = (r*sk)*G and the simulated branch's commitments collapse to base multiplications.
    ``scalars`` (test vectors only) replaces libsodium's CSPRNG; it is drawn per bit in order
    r, c_j, z_j, w.
    """
    if len(query_id) != QUERY_ID_BYTES:
        raise ThresholdError(f"query id must be {QUERY_ID_BYTES} bytes")
    bits = hash_bits(query_hash)
    while True:
        if scalars is None:
            drawn = sodium.scalar_random_many(4 * HASH_BITS)
            r, c_j, z_j, w = (_column(drawn, k) for k in range(4))
        else:
            stream = [scalars() for _ in range(4 * HASH_BITS)]
            r, c_j, z_j, w = (b"".join(stream[k::4]) for k in range(4))
        try:
            return _encrypt_bits(key, bits, query_id, r, c_j, z_j, w)
        except sodium.GroupError:  # a zero exponent: probability ~2^-242 per query; draw again
            continue


def _encrypt_bits(
    key: QuerierKey, bits: list[int], query_id: bytes, r: bytes, c_j: bytes, z_j: bytes, w: bytes
) -> EncryptedQuery:
    # Every bit runs the same libsodium calls in the same order; the bit only selects which
    # public constant (0 or 1, -1 or +1) enters them, and the order of the proof's halves.
    sk = key.sk
    mul, add, sub = sodium.scalar_mul_many, sodium.scalar_add_many, sodium.scalar_sub_many
    m_scalars = b"".join([_BIT_SCALAR[m] for m in bits])
    m_minus_j = b"".join([_M_MINUS_J[m] for m in bits])
    r_sk = mul(r, sk)
    u = sub(z_j, mul(c_j, r))  # log_G T1_j = z_j - c_j*r
    # log_G T2_j = z_j*sk - c_j*log_G(B - j*G) = z_j*sk - c_j*((m - j) + r*sk) = u*sk - c_j*(m - j)
    t2_j = sub(mul(u, sk), mul(c_j, m_minus_j))
    points = sodium.scalarmult_base_many(
        b"".join((r, add(r_sk, m_scalars), u, t2_j, w, mul(w, sk)))
    )
    a_col, b_col, t1j_col, t2j_col, t1m_col, t2m_col = (_column(points, k) for k in range(6))
    xmd = _challenger(key.pk, query_id)
    wides = []
    cts: list[tuple[bytes, bytes]] = []
    for i, m in enumerate(bits):
        o, e = i * _ROW, (i + 1) * _ROW
        a, b = a_col[o:e], b_col[o:e]
        t_j, t_m = (t1j_col[o:e], t2j_col[o:e]), (t1m_col[o:e], t2m_col[o:e])
        commitments = t_j + t_m if m else t_m + t_j
        wides.append(xmd.expand64(_challenge_input(i, a, b, commitments)))
        cts.append((a, b))
    c_m = sub(sodium.scalar_reduce_many(b"".join(wides)), c_j)
    z_m = add(w, mul(c_m, r))
    proofs = []
    for i, m in enumerate(bits):
        o, e = i * _ROW, (i + 1) * _ROW
        cm, cj, zm, zj = c_m[o:e], c_j[o:e], z_m[o:e], z_j[o:e]
        proofs.append(cj + cm + zj + zm if m else cm + cj + zm + zj)
    return EncryptedQuery(
        pk=key.pk, query_id=query_id, ciphertexts=tuple(cts), proofs=tuple(proofs)
    )


# The holder sums ciphertexts through per-nibble subset tables (entry p of nibble g is the sum
# of C_{4g+j} over the set bits j of p), built entry by entry as candidates need them. The
# first candidate takes 255 additions per component, as a running signed sum would, but sums
# zeros and ones from table entries, leaving ~2 entries per nibble behind; from then on a
# candidate costs total - 2*(sum over y_i = 1): ~63 additions per component plus the entries it
# is the first to need (at most 11 per nibble over the query's life). A fixed strategy (direct,
# then total minus twice the subset, then full tables after a dozen candidates) costs as much
# for the first candidate and more for every later one. Additions cost ~0.28 of a scalar
# multiplication through libsodium's encoded-point API, so this matters. Byte-wide tables would
# cost ~14,400 more additions to save ~60 per candidate: they pay off only after ~240
# candidates of one query, and a threshold.query carries at most 64.

_CT = CIPHERTEXT_BYTES


def _sum_ciphertexts(items: list[bytes]) -> bytes:
    """The sum of non-empty A || B ciphertexts, pairwise so each level is one batch call."""
    while len(items) > 1:
        half = len(items) // 2
        summed = sodium.point_add_many(
            b"".join(items[0 : 2 * half : 2]), b"".join(items[1 : 2 * half : 2])
        )
        rest = items[2 * half :]
        items = [summed[k * _CT : (k + 1) * _CT] for k in range(half)] + rest
    return items[0]


def _nibbles(h: bytes) -> list[int]:
    """The 64 nibbles of a hash; bit 3 of each is its first hash bit."""
    return [(h[g >> 1] >> (4 if g % 2 == 0 else 0)) & 0xF for g in range(_NIBBLES)]


@dataclass
class VerifiedQuery:
    """An encrypted query whose proofs all verified, with the holder's cached sums."""

    query: EncryptedQuery
    answered: int = 0
    # _tables[g][p]: sum of C_{4g+j} over the set bits j of p (bit 3 is j = 0), when built
    _tables: list[list[bytes | None]] = field(default_factory=list, repr=False)
    _first: tuple[bytes | None, bytes | None] | None = field(default=None, repr=False)
    _total: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._tables = [[None] * 16 for _ in range(_NIBBLES)]
        for i, (a, b) in enumerate(self.query.ciphertexts):
            self._tables[i >> 2][8 >> (i & 3)] = a + b

    def _entries(self, wanted: list[tuple[int, int]]) -> list[bytes]:
        """Entries (g, p != 0), building the missing ones and those they are made from."""
        tables = self._tables
        missing: dict[int, list[tuple[int, int]]] = {}
        queued: set[tuple[int, int]] = set()
        for g, p in wanted:
            # entry p = entry (p without its lowest bit) + the single of that bit
            while tables[g][p] is None and (g, p) not in queued:
                queued.add((g, p))
                missing.setdefault(p.bit_count(), []).append((g, p))
                p ^= p & -p
        for weight in sorted(missing):  # each popcount is one batch, after the one below it
            jobs = missing[weight]
            summed = sodium.point_add_many(
                b"".join(tables[g][p ^ (p & -p)] or b"" for g, p in jobs),
                b"".join(tables[g][p & -p] or b"" for g, p in jobs),
            )
            for k, (g, p) in enumerate(jobs):
                tables[g][p] = summed[k * _CT : (k + 1) * _CT]
        return [tables[g][p] or b"" for g, p in wanted]

    def encrypted_distance(self, holder_hash: bytes) -> tuple[bytes, bytes]:
        """Enc(HD(x, y)) under the querier's key, by additions only."""
        if len(holder_hash) != HASH_BYTES:
            raise ThresholdError(f"hash must be {HASH_BYTES} bytes")
        self.answered += 1
        weight = sum(bin(byte).count("1") for byte in holder_hash)
        nibbles = _nibbles(holder_hash)
        ones_wanted = [(g, n) for g, n in enumerate(nibbles) if n]
        if self._first is None and self._total is None:
            # sum over y_i = 0 minus sum over y_i = 1; both sums are kept for the total.
            zeros_wanted = [(g, 15 ^ n) for g, n in enumerate(nibbles) if n != 15]
            entries = self._entries(zeros_wanted + ones_wanted)
            zeros = _sum_ciphertexts(entries[: len(zeros_wanted)]) if zeros_wanted else None
            ones = _sum_ciphertexts(entries[len(zeros_wanted) :]) if ones_wanted else None
            self._first = (zeros, ones)
            if ones is None:
                assert zeros is not None
                d = zeros
            else:
                d = sodium.point_sub_many(zeros or sodium.IDENTITY * 2, ones)
        else:
            if self._total is None:
                assert self._first is not None
                zeros, ones = self._first
                self._total = (
                    sodium.point_add_many(zeros, ones) if zeros and ones else zeros or ones
                )
            assert self._total is not None
            d = self._total
            if ones_wanted:
                # sum_i s_i C_i = total - 2 * (sum over y_i = 1)
                ones = _sum_ciphertexts(self._entries(ones_wanted))
                d = sodium.point_sub_many(sodium.point_sub_many(d, ones), ones)
        return d[:32], _add_multiple_of_g(d[32:], weight)


def _verify_one_by_one(query: EncryptedQuery) -> None:
    """The bit-by-bit check, run only to name the first failing bit of a refused query."""
    h = query.pk
    g = sodium.GENERATOR
    for i, ((a, b), proof) in enumerate(zip(query.ciphertexts, query.proofs, strict=True)):
        c0, c1, z0, z1 = (proof[k : k + 32] for k in range(0, 128, 32))
        try:
            b_minus_g = sodium.point_sub(b, g)
            t1_0 = sodium.point_sub(sodium.scalarmult_base(z0), sodium.scalarmult(c0, a))
            t2_0 = sodium.point_sub(sodium.scalarmult(z0, h), sodium.scalarmult(c0, b))
            t1_1 = sodium.point_sub(sodium.scalarmult_base(z1), sodium.scalarmult(c1, a))
            t2_1 = sodium.point_sub(sodium.scalarmult(z1, h), sodium.scalarmult(c1, b_minus_g))
        except sodium.GroupError as exc:
            raise ThresholdError(f"bit {i} proof does not verify") from exc
        c = _challenge(h, query.query_id, i, a, b, (t1_0, t2_0, t1_1, t2_1))
        if not sodium.ct_equal(sodium.scalar_add(c0, c1), c):
            raise ThresholdError(f"bit {i} proof does not verify (not an encryption of 0 or 1)")


def verify_query(query: EncryptedQuery) -> VerifiedQuery:
    """Check every bit proof; raises :class:`ThresholdError` naming the first bad bit."""
    if len(query.ciphertexts) != HASH_BITS or len(query.proofs) != HASH_BITS:
        raise ThresholdError(f"encrypted query must have {HASH_BITS} ciphertexts and proofs")
    for i, proof in enumerate(query.proofs):
        if len(proof) != BIT_PROOF_BYTES:
            raise ThresholdError(f"bit {i} proof: expected {BIT_PROOF_BYTES} bytes")
    h = query.pk
    a_col = b"".join(a for a, _ in query.ciphertexts)
    b_col = b"".join(b for _, b in query.ciphertexts)
    c0, c1, z0, z1 = (b"".join(p[k : k + 32] for p in query.proofs) for k in range(0, 128, 32))
    try:
        b_minus_g = sodium.point_sub_many(b_col, sodium.GENERATOR)
        # c0*A, c1*A, c0*B, c1*(B - G), z0*H, z1*H in one batch, then z0*G, z1*G.
        products = sodium.scalarmult_many(
            b"".join((c0, c1, c0, c1, z0, z1)),
            b"".join((a_col, a_col, b_col, b_minus_g, h * (2 * HASH_BITS))),
        )
        z_terms = sodium.scalarmult_base_many(z0 + z1) + products[4 * _COLUMN :]
        # [z0 G, z1 G, z0 H, z1 H] - [c0 A, c1 A, c0 B, c1 (B - G)] = T1_0, T1_1, T2_0, T2_1
        commitments = sodium.point_sub_many(z_terms, products[: 4 * _COLUMN])
    except sodium.GroupError:
        _verify_one_by_one(query)
        raise ThresholdError("encrypted query does not verify") from None
    t1_0, t1_1, t2_0, t2_1 = (_column(commitments, k) for k in range(4))
    xmd = _challenger(h, query.query_id)
    wides = []
    for i, (a, b) in enumerate(query.ciphertexts):
        o, e = i * _ROW, (i + 1) * _ROW
        wides.append(
            xmd.expand64(_challenge_input(i, a, b, (t1_0[o:e], t2_0[o:e], t1_1[o:e], t2_1[o:e])))
        )
    c = sodium.scalar_reduce_many(b"".join(wides))
    if not sodium.ct_equal(sodium.scalar_add_many(c0, c1), c):
        _verify_one_by_one(query)
        raise ThresholdError("encrypted query does not verify")
    return VerifiedQuery(query)


# --- the holder's answer --------------------------------------------------------------------


def validate_bands(bands: Sequence[int]) -> tuple[int, ...]:
    """Band upper bounds, strictly increasing; the last one is the threshold T."""
    bands = tuple(bands)
    if not bands or any(not isinstance(b, int) or isinstance(b, bool) for b in bands):
        raise ThresholdError("bands must be a non-empty list of integers")
    if bands[0] < 0 or bands[-1] > MAX_THRESHOLD:
        raise ThresholdError(f"band bounds must lie in 0..{MAX_THRESHOLD}")
    if any(x >= y for x, y in itertools.pairwise(bands)):
        raise ThresholdError("band bounds must be strictly increasing")
    return bands


@dataclass(frozen=True)
class ThresholdResponse:
    """T+1 ciphertexts grouped by band (bands[k] is the upper bound of group k)."""

    bands: tuple[int, ...]
    groups: tuple[tuple[tuple[bytes, bytes], ...], ...]

    def to_bytes(self) -> bytes:
        head = i2osp(len(self.bands), 1) + b"".join(i2osp(b, 1) for b in self.bands)
        body = b"".join(a + b for group in self.groups for a, b in group)
        return head + body

    @classmethod
    def from_bytes(cls, data: bytes) -> ThresholdResponse:
        if not isinstance(data, bytes) or len(data) < 2:
            raise ThresholdError("threshold response too short")
        nbands = data[0]
        if len(data) < 1 + nbands:
            raise ThresholdError("threshold response truncated in its band list")
        bands = validate_bands(list(data[1 : 1 + nbands]))
        expected = 1 + nbands + (bands[-1] + 1) * CIPHERTEXT_BYTES
        if len(data) != expected:
            raise ThresholdError(
                f"threshold response must hold {bands[-1] + 1} ciphertexts "
                f"({expected} bytes), got {len(data)} bytes"
            )
        off = 1 + nbands
        groups = []
        low = 0
        for bound in bands:
            group = []
            for _ in range(low, bound + 1):
                a = _point(data[off : off + 32], "response A")
                b = _point(data[off + 32 : off + 64], "response B")
                group.append((a, b))
                off += 64
            groups.append(tuple(group))
            low = bound + 1
        return cls(bands=bands, groups=tuple(groups))


def _shuffle(group: list[Any]) -> None:
    """A uniform permutation: sort by 128-bit CSPRNG keys, drawn in one call (SystemRandom
    makes one system call per swap). Two equal keys among 129 come with probability < 2^-113."""
    keys = sodium.random_bytes(16 * len(group))
    order = sorted(range(len(group)), key=lambda k: keys[16 * k : 16 * k + 16])
    group[:] = [group[k] for k in order]


def _times(ns: bytes, ps: bytes) -> bytes:
    """n_k * P_k per row, where n_k * O = O: libsodium refuses an identity result, but a
    querier picks its r_i and can make D (or D - t*G) the identity for a y of its choice."""
    try:
        return sodium.scalarmult_many(ns, ps)
    except sodium.GroupError:
        rows = range(0, len(ps), sodium.POINT_BYTES)
        return b"".join(
            sodium.IDENTITY
            if ps[o : o + 32] == sodium.IDENTITY
            else sodium.scalarmult(ns[o : o + 32], ps[o : o + 32])
            for o in rows
        )


def respond(
    verified: VerifiedQuery,
    holder_hash: bytes,
    bands: Sequence[int],
    scalars: ScalarSource | None = None,
    shuffle: Callable[[list], None] | None = None,
) -> ThresholdResponse:
    """The holder's answer for one candidate: reveals only the band of d, if d <= T.

    ``scalars`` (test vectors only) replaces libsodium's CSPRNG; it is drawn per t in order
    rho_t, sigma_t.
    """
    bands = validate_bands(bands)
    a_d, b_d = verified.encrypted_distance(holder_hash)
    h = verified.query.pk
    n = bands[-1] + 1
    # B_D - t*G for t = 0..T
    shifted = b_d
    if n > 1:
        shifted += sodium.point_sub_many(b_d, b"".join(_multiple_of_g(t) for t in range(1, n)))
    if scalars is None:
        drawn = sodium.scalar_random_many(2 * n)
        rho, sigma = drawn[: n * _ROW], drawn[n * _ROW :]
    else:
        stream = [scalars() for _ in range(2 * n)]
        rho, sigma = b"".join(stream[0::2]), b"".join(stream[1::2])
    # rho_t*A_D, rho_t*(B_D - t*G), sigma_t*H, then sigma_t*G; all scalars are non-zero.
    products = _times(rho + rho + sigma, a_d * n + shifted + h * n)
    blinds = sodium.scalarmult_base_many(sigma) + products[2 * n * _ROW :]
    out = sodium.point_add_many(products[: 2 * n * _ROW], blinds)
    groups = []
    low = 0
    for bound in bands:
        group = []
        for t in range(low, bound + 1):
            o = t * _ROW
            group.append((out[o : o + _ROW], out[n * _ROW + o : n * _ROW + o + _ROW]))
        (shuffle or _shuffle)(group)
        groups.append(tuple(group))
        low = bound + 1
    return ThresholdResponse(bands=bands, groups=tuple(groups))


@dataclass(frozen=True)
class ThresholdResult:
    matched: bool
    band: int | None  # the upper bound of the band that holds d, when matched

    def __bool__(self) -> bool:
        return self.matched


def decide(key: QuerierKey, response: ThresholdResponse) -> ThresholdResult:
    """Decrypt the holder's answer: which band (if any) holds the distance."""
    cts = [ct for group in response.groups for ct in group]
    # All T+1 are decrypted, so the work does not depend on where (or whether) d lies.
    shared = sodium.scalarmult_many(key.sk, b"".join(a for a, _ in cts))
    found: int | None = None
    k = 0
    for bound, group in zip(response.bands, response.groups, strict=True):
        for _, b in group:
            if sodium.ct_equal(shared[k * _ROW : (k + 1) * _ROW], b) and found is None:
                found = bound
            k += 1
    return ThresholdResult(found is not None, found)
