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
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from blindmatch.crypto import sodium
from blindmatch.crypto.hashing import hash_to_scalar, i2osp

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
_LP2 = b"\x00\x02"


def _challenge(
    pk: bytes, query_id: bytes, index: int, a: bytes, b: bytes, commitments: Sequence[bytes]
) -> bytes:
    # LP(pk, query_id, I2OSP(i, 2), A, B, T1_0, T2_0, T1_1, T2_1), spelled out for fixed sizes.
    transcript = b"".join(
        (
            _LP32, pk, b"\x00\x10", query_id, _LP2, index.to_bytes(2, "big"),
            _LP32, a, _LP32, b,
            _LP32, commitments[0], _LP32, commitments[1],
            _LP32, commitments[2], _LP32, commitments[3],
        )
    )  # fmt: skip
    return hash_to_scalar(transcript, PROOF_DST)


def encrypt_query(
    key: QuerierKey,
    query_hash: bytes,
    query_id: bytes,
    scalars: ScalarSource = sodium.scalar_random,
) -> EncryptedQuery:
    """Encrypt the 256 bits of ``query_hash`` with a bit proof each.

    Every multiplication is by the fixed generator: the querier knows sk, r and the bit, so
    r*H = (r*sk)*G and the simulated branch's commitments collapse to base multiplications.
    """
    if len(query_id) != QUERY_ID_BYTES:
        raise ThresholdError(f"query id must be {QUERY_ID_BYTES} bytes")
    bits = hash_bits(query_hash)
    sk = key.sk
    # m - j for the simulated branch j = 1 - m is -1 (m = 0) or +1 (m = 1).
    minus_one, one = sodium.scalar_from_int(-1), sodium.scalar_from_int(1)
    mul, add, sub = sodium.scalar_mul, sodium.scalar_add, sodium.scalar_sub
    base = sodium.scalarmult_base
    cts: list[tuple[bytes, bytes]] = []
    proofs: list[bytes] = []
    for i, m in enumerate(bits):
        while True:
            try:
                r = scalars()
                r_sk = mul(r, sk)
                a = base(r)
                b = base(add(r_sk, one)) if m else base(r_sk)
                # The simulated branch is j = 1 - m; log_G(B - j*G) = (m - j) + r*sk.
                c_j, z_j, w = scalars(), scalars(), scalars()
                b_minus_j = add(one if m else minus_one, r_sk)
                t1_j = base(sub(z_j, mul(c_j, r)))
                t2_j = base(sub(mul(z_j, sk), mul(c_j, b_minus_j)))
                t1_m = base(w)
                t2_m = base(mul(w, sk))
                break
            except sodium.GroupError:  # a zero scalar: probability ~2^-252; draw again
                continue
        commitments = (t1_m, t2_m, t1_j, t2_j) if m == 0 else (t1_j, t2_j, t1_m, t2_m)
        c = _challenge(key.pk, query_id, i, a, b, commitments)
        c_m = sub(c, c_j)
        z_m = add(w, mul(c_m, r))
        c0, c1, z0, z1 = (c_m, c_j, z_m, z_j) if m == 0 else (c_j, c_m, z_j, z_m)
        cts.append((a, b))
        proofs.append(c0 + c1 + z0 + z1)
    return EncryptedQuery(
        pk=key.pk, query_id=query_id, ciphertexts=tuple(cts), proofs=tuple(proofs)
    )


# Candidates answered before the holder builds per-nibble subset tables: the tables cost ~2,040
# point additions once and ~130 per candidate after; the other strategies ~510 (direct) or
# ~260 after a one-off ~510 (total minus twice the subset). Additions cost ~0.28 of a scalar
# multiplication through libsodium's encoded-point API, so this matters.
_TABLES_AFTER = 12


@dataclass
class VerifiedQuery:
    """An encrypted query whose proofs all verified, with the holder's cached sums."""

    query: EncryptedQuery
    answered: int = 0
    _total: tuple[bytes, bytes] | None = None
    _tables: list[list[tuple[bytes, bytes] | None]] | None = field(default=None, repr=False)

    def _build_total(self) -> None:
        cts = self.query.ciphertexts
        a_sum, b_sum = cts[0]
        for a, b in cts[1:]:
            a_sum, b_sum = sodium.point_add(a_sum, a), sodium.point_add(b_sum, b)
        self._total = (a_sum, b_sum)

    def _build_tables(self) -> None:
        cts = self.query.ciphertexts
        # Subset sums per nibble: entry p = sum of C_{4g+j} over the set bits j of p (bit 3 of
        # p is the nibble's first hash bit). 11 additions per nibble and component, after which a
        # candidate costs at most 63 additions per component instead of ~128.
        tables: list[list[tuple[bytes, bytes] | None]] = []
        for g in range(_NIBBLES):
            row: list[tuple[bytes, bytes] | None] = [None] * 16
            for p in range(1, 16):
                low = p & -p
                j = 3 - (low.bit_length() - 1)
                single = cts[4 * g + j]
                rest = row[p ^ low]
                row[p] = (
                    single
                    if rest is None
                    else (
                        sodium.point_add(rest[0], single[0]),
                        sodium.point_add(rest[1], single[1]),
                    )
                )
            tables.append(row)
        self._tables = tables

    def _ones_sum(self, holder_hash: bytes) -> tuple[bytes, bytes] | None:
        """sum of C_i over the bits y_i = 1 (None when y is all zeros)."""
        out: tuple[bytes, bytes] | None = None

        def add(entry: tuple[bytes, bytes]) -> None:
            nonlocal out
            out = (
                entry
                if out is None
                else (sodium.point_add(out[0], entry[0]), sodium.point_add(out[1], entry[1]))
            )

        if self._tables is not None:
            for g in range(_NIBBLES):
                nibble = (holder_hash[g >> 1] >> (4 if g % 2 == 0 else 0)) & 0xF
                if nibble:
                    entry = self._tables[g][nibble]
                    assert entry is not None
                    add(entry)
        else:
            for i, bit in enumerate(hash_bits(holder_hash)):
                if bit:
                    add(self.query.ciphertexts[i])
        return out

    def encrypted_distance(self, holder_hash: bytes) -> tuple[bytes, bytes]:
        """Enc(HD(x, y)) under the querier's key, by additions only."""
        if len(holder_hash) != HASH_BYTES:
            raise ThresholdError(f"hash must be {HASH_BYTES} bytes")
        self.answered += 1
        weight = sum(bin(byte).count("1") for byte in holder_hash)
        if self.answered == 1 and self._total is None:
            # One candidate (the common case): the signed sum directly, no shared work.
            cts = self.query.ciphertexts
            bits = hash_bits(holder_hash)
            a_sum, b_sum = cts[0]
            if bits[0]:
                a_sum, b_sum = (
                    sodium.point_sub(sodium.IDENTITY, a_sum),
                    sodium.point_sub(sodium.IDENTITY, b_sum),
                )
            for (a, b), bit in zip(cts[1:], bits[1:], strict=True):
                op = sodium.point_sub if bit else sodium.point_add
                a_sum, b_sum = op(a_sum, a), op(b_sum, b)
            return a_sum, _add_multiple_of_g(b_sum, weight)
        if self._total is None:
            self._build_total()
        if self._tables is None and self.answered > _TABLES_AFTER:
            self._build_tables()
        assert self._total is not None
        a_sum, b_sum = self._total
        ones = self._ones_sum(holder_hash)
        if ones is not None:
            # sum_i s_i C_i = total - 2 * (sum over y_i = 1)
            a_sum = sodium.point_sub(a_sum, sodium.point_add(ones[0], ones[0]))
            b_sum = sodium.point_sub(b_sum, sodium.point_add(ones[1], ones[1]))
        return a_sum, _add_multiple_of_g(b_sum, weight)


def verify_query(query: EncryptedQuery) -> VerifiedQuery:
    """Check every bit proof; raises :class:`ThresholdError` naming the first bad bit."""
    if len(query.ciphertexts) != HASH_BITS or len(query.proofs) != HASH_BITS:
        raise ThresholdError(f"encrypted query must have {HASH_BITS} ciphertexts and proofs")
    h = query.pk
    g = sodium.GENERATOR
    for i, ((a, b), proof) in enumerate(zip(query.ciphertexts, query.proofs, strict=True)):
        if len(proof) != BIT_PROOF_BYTES:
            raise ThresholdError(f"bit {i} proof: expected {BIT_PROOF_BYTES} bytes")
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


def respond(
    verified: VerifiedQuery,
    holder_hash: bytes,
    bands: Sequence[int],
    scalars: ScalarSource = sodium.scalar_random,
    shuffle: Callable[[list], None] | None = None,
) -> ThresholdResponse:
    """The holder's answer for one candidate: reveals only the band of d, if d <= T."""
    bands = validate_bands(bands)
    a_d, b_d = verified.encrypted_distance(holder_hash)
    h = verified.query.pk
    rng = random.SystemRandom() if shuffle is None else None
    groups = []
    low = 0
    for bound in bands:
        group = []
        for t in range(low, bound + 1):
            while True:
                try:
                    r_t, s_t = scalars(), scalars()
                    b_t = _add_multiple_of_g(b_d, -t)
                    a_out = sodium.point_add(
                        sodium.scalarmult(r_t, a_d), sodium.scalarmult_base(s_t)
                    )
                    b_out = sodium.point_add(sodium.scalarmult(r_t, b_t), sodium.scalarmult(s_t, h))
                    break
                except sodium.GroupError:  # an identity intermediate: ~2^-252; draw again
                    continue
            group.append((a_out, b_out))
        if shuffle is None:
            assert rng is not None
            rng.shuffle(group)
        else:
            shuffle(group)
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
    found: int | None = None
    for bound, group in zip(response.bands, response.groups, strict=True):
        for a, b in group:
            # All T+1 are decrypted, so the work does not depend on where (or whether) d lies.
            if sodium.ct_equal(sodium.scalarmult(key.sk, a), b) and found is None:
                found = bound
    return ThresholdResult(found is not None, found)
