"""The private Hamming-threshold test: correctness at every distance, and every refusal."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.crypto import sodium
from blindmatch.crypto import threshold as th

KEY = th.QuerierKey.generate()
QUERY_HASH = os.urandom(32)
ENCRYPTED = th.encrypt_query(KEY, QUERY_HASH, os.urandom(16))
VERIFIED = th.verify_query(th.EncryptedQuery.from_bytes(ENCRYPTED.to_bytes()))


def at_distance(h: bytes, d: int, rng: random.Random) -> bytes:
    out = bytearray(h)
    for i in rng.sample(range(256), d):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


def hamming(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


def test_every_distance_0_to_256_against_threshold_31() -> None:
    rng = random.Random(7)
    for d in range(257):
        y = at_distance(QUERY_HASH, d, rng)
        assert hamming(QUERY_HASH, y) == d
        wire = th.respond(VERIFIED, y, (31,)).to_bytes()
        result = th.decide(KEY, th.ThresholdResponse.from_bytes(wire))
        assert result.matched == (d <= 31), d
        assert result.band == (31 if d <= 31 else None)


@pytest.mark.parametrize("d", [0, 1, 8, 9, 16, 17, 24, 31, 32, 64])
def test_coarse_bands_reveal_the_band_only(d: int) -> None:
    y = at_distance(QUERY_HASH, d, random.Random(d))
    result = th.decide(KEY, th.respond(VERIFIED, y, (8, 16, 31)))
    expected = next((b for b in (8, 16, 31) if d <= b), None)
    assert result.band == expected


@settings(max_examples=8, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.integers(0, 64))
def test_random_pairs(x: bytes, y: bytes, t: int) -> None:
    key = th.QuerierKey.generate()
    verified = th.verify_query(th.encrypt_query(key, x, b"q" * 16))
    assert th.decide(key, th.respond(verified, y, (t,))).matched == (hamming(x, y) <= t)


def test_response_is_shuffled_and_rerandomised() -> None:
    y = at_distance(QUERY_HASH, 3, random.Random(1))
    first = th.respond(VERIFIED, y, (31,))
    second = th.respond(VERIFIED, y, (31,))
    assert set(first.groups[0]).isdisjoint(second.groups[0])
    hits = [i for i, (a, b) in enumerate(first.groups[0]) if sodium.scalarmult(KEY.sk, a) == b]
    assert len(hits) == 1  # exactly one zero, at a position that says nothing about d


# --- refusals -------------------------------------------------------------------------------

STEP = th.CIPHERTEXT_BYTES + th.BIT_PROOF_BYTES


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def test_rejects_invalid_point_in_a_ciphertext() -> None:
    wire = ENCRYPTED.to_bytes()
    bad = _with(wire, 48 + 10 * STEP, b"\xff" * 32)
    with pytest.raises(th.ThresholdError, match="bit 10 A: not a canonical"):
        th.EncryptedQuery.from_bytes(bad)


def test_rejects_non_canonical_encoding_of_a_valid_point() -> None:
    # Ristretto encodings must be even and below p; p + small is a non-canonical alias.
    p = 2**255 - 19
    a = ENCRYPTED.ciphertexts[0][0]
    alias = (
        (int.from_bytes(a, "little") + p).to_bytes(32, "little")
        if int.from_bytes(a, "little") + p < 2**256
        else b"\xed" + b"\xff" * 30 + b"\x7f"
    )
    bad = _with(ENCRYPTED.to_bytes(), 48, alias)
    with pytest.raises(th.ThresholdError, match="canonical"):
        th.EncryptedQuery.from_bytes(bad)


def test_rejects_identity_in_a_ciphertext() -> None:
    bad = _with(ENCRYPTED.to_bytes(), 48 + 32, bytes(32))
    with pytest.raises(th.ThresholdError, match="identity"):
        th.EncryptedQuery.from_bytes(bad)


def _forge_non_bit(value: int) -> th.EncryptedQuery:
    """Encrypt ``value`` (not a bit) at position 5, reusing bit 5's proof."""
    r = sodium.scalar_random()
    a = sodium.scalarmult_base(r)
    b = sodium.scalarmult_base(
        sodium.scalar_add(sodium.scalar_mul(r, KEY.sk), sodium.scalar_from_int(value))
    )
    cts = list(ENCRYPTED.ciphertexts)
    cts[5] = (a, b)
    return th.EncryptedQuery(ENCRYPTED.pk, ENCRYPTED.query_id, tuple(cts), ENCRYPTED.proofs)


@pytest.mark.parametrize("value", [2, 100, -1])
def test_rejects_an_encrypted_value_that_is_not_a_bit(value: int) -> None:
    with pytest.raises(th.ThresholdError, match="bit 5 proof does not verify"):
        th.verify_query(_forge_non_bit(value))


def test_rejects_a_proof_for_another_transcript() -> None:
    # The same ciphertexts and proofs under another query id...
    moved = th.EncryptedQuery(ENCRYPTED.pk, b"x" * 16, ENCRYPTED.ciphertexts, ENCRYPTED.proofs)
    with pytest.raises(th.ThresholdError, match="bit 0 proof does not verify"):
        th.verify_query(moved)
    # ...or with two bits' (ciphertext, proof) pairs swapped: proofs bind their index.
    cts, proofs = list(ENCRYPTED.ciphertexts), list(ENCRYPTED.proofs)
    cts[3], cts[4] = cts[4], cts[3]
    proofs[3], proofs[4] = proofs[4], proofs[3]
    swapped = th.EncryptedQuery(ENCRYPTED.pk, ENCRYPTED.query_id, tuple(cts), tuple(proofs))
    with pytest.raises(th.ThresholdError, match="bit 3 proof"):
        th.verify_query(swapped)
    # ...or under another querier's key.
    other = th.QuerierKey.generate()
    rekeyed = th.EncryptedQuery(
        other.pk, ENCRYPTED.query_id, ENCRYPTED.ciphertexts, ENCRYPTED.proofs
    )
    with pytest.raises(th.ThresholdError, match="proof does not verify"):
        th.verify_query(rekeyed)


@pytest.mark.parametrize("delta", [-1, 1, -STEP, STEP])
def test_rejects_a_wrong_number_of_ciphertexts_in_the_query(delta: int) -> None:
    wire = ENCRYPTED.to_bytes()
    bad = wire[:delta] if delta < 0 else wire + b"\x00" * delta
    with pytest.raises(th.ThresholdError, match=f"must be {th.ENCRYPTED_QUERY_BYTES} bytes"):
        th.EncryptedQuery.from_bytes(bad)


def test_rejects_a_wrong_number_of_ciphertexts_in_the_response() -> None:
    wire = th.respond(VERIFIED, QUERY_HASH, (8, 31)).to_bytes()
    for bad in (wire[:-64], wire + wire[-64:]):
        with pytest.raises(th.ThresholdError, match="must hold 32 ciphertexts"):
            th.ThresholdResponse.from_bytes(bad)


@pytest.mark.parametrize(
    ("bands", "message"),
    [((), "non-empty"), ((16, 8), "increasing"), ((8, 8), "increasing"), ((200,), "0..128")],
)
def test_rejects_bad_bands(bands: tuple[int, ...], message: str) -> None:
    with pytest.raises(th.ThresholdError, match=message):
        th.respond(VERIFIED, QUERY_HASH, bands)


def test_rejects_unreduced_proof_scalar() -> None:
    wire = ENCRYPTED.to_bytes()
    bad = _with(wire, 48 + 64, b"\xff" * 32)
    with pytest.raises(th.ThresholdError, match="not reduced"):
        th.EncryptedQuery.from_bytes(bad)


# --- the holder's strategies and hostile queries ---------------------------------------------


def test_every_summing_path_gives_the_same_encrypted_distance() -> None:
    rng = random.Random(11)
    ys = [at_distance(QUERY_HASH, d, rng) for d in (0, 5, 31, 128, 256)]
    ys += [bytes(32), b"\xff" * 32, b"\x0f" * 32, b"\xf0" * 32]
    reference = []
    for y in ys:
        # the signed sum over the bits, one addition at a time
        a_d, b_d = sodium.IDENTITY, sodium.IDENTITY
        for (a, b), bit in zip(ENCRYPTED.ciphertexts, th.hash_bits(y), strict=True):
            op = sodium.point_sub if bit else sodium.point_add
            a_d, b_d = op(a_d, a), op(b_d, b)
        weight = sum(th.hash_bits(y))
        reference.append(
            (
                a_d,
                sodium.point_add(b_d, sodium.scalarmult_base(sodium.scalar_from_int(weight)))
                if weight
                else b_d,
            )
        )
    for first in ys:  # whichever candidate comes first, the later ones take the other path
        cached = th.VerifiedQuery(ENCRYPTED)
        got = [cached.encrypted_distance(first)] + [cached.encrypted_distance(y) for y in ys]
        assert got == [reference[ys.index(first)], *reference]
    # a query whose tables are complete
    full = th.VerifiedQuery(ENCRYPTED)
    for _ in range(80):
        full.encrypted_distance(os.urandom(32))
    assert [full.encrypted_distance(y) for y in ys] == reference


LIGHT_HASH = b"\xff\xff\x0f" + bytes(29)  # weight 20, so HD(x, 0) = 20


def _query_with_r(rs: list[bytes]) -> th.EncryptedQuery:
    """A proper query whose per-bit randomness r_i the (hostile) querier chose."""
    fresh = iter(rs)

    def source() -> bytes:
        source.count += 1  # type: ignore[attr-defined]
        return next(fresh) if source.count % 4 == 1 else sodium.scalar_random()  # type: ignore[attr-defined]

    source.count = 0  # type: ignore[attr-defined]
    return th.encrypt_query(KEY, LIGHT_HASH, b"h" * 16, source)


@pytest.mark.parametrize("candidate", [0, 1, 20])
def test_a_querier_made_identity_distance_is_answered_correctly(candidate: int) -> None:
    # r_255 = -(r_0 + ... + r_254): for y = 0 every s_i is +1, so A_D is the identity and
    # B_D - t*G is the identity at t = d. libsodium refuses identity products; the holder must
    # still answer (rho * O = O), not fail or retry forever.
    rs = [sodium.scalar_random() for _ in range(255)]
    total = rs[0]
    for r in rs[1:]:
        total = sodium.scalar_add(total, r)
    query = _query_with_r([*rs, sodium.scalar_negate(total)])
    verified = th.verify_query(query)
    for _ in range(candidate):
        verified.encrypted_distance(os.urandom(32))
    a_d, _ = verified.encrypted_distance(bytes(32))
    assert a_d == sodium.IDENTITY
    for bands, band in [((20,), 20), ((19,), None), ((8, 20, 31), 20), ((21, 31), 21)]:
        wire = th.respond(verified, bytes(32), bands).to_bytes()
        assert th.decide(KEY, th.ThresholdResponse.from_bytes(wire)).band == band


def test_refusal_names_the_first_bad_bit_whatever_kind_of_failure() -> None:
    # Bit 9 encrypts 2 (its proof fails the challenge); bit 20's proof has c0 = 0, so c0*A is
    # the identity and the batch stops at a group error first. The refusal still names bit 9.
    forged = _forge_non_bit(2)
    cts, proofs = list(forged.ciphertexts), list(forged.proofs)
    cts[9], cts[5] = cts[5], ENCRYPTED.ciphertexts[5]
    proofs[9], proofs[5] = ENCRYPTED.proofs[9], ENCRYPTED.proofs[5]
    proofs[20] = bytes(32) + proofs[20][32:]
    bad = th.EncryptedQuery(ENCRYPTED.pk, ENCRYPTED.query_id, tuple(cts), tuple(proofs))
    with pytest.raises(th.ThresholdError, match="bit 9 proof does not verify"):
        th.verify_query(bad)
    proofs[9] = ENCRYPTED.proofs[9]
    cts[9] = ENCRYPTED.ciphertexts[9]
    only_zero_c = th.EncryptedQuery(ENCRYPTED.pk, ENCRYPTED.query_id, tuple(cts), tuple(proofs))
    with pytest.raises(th.ThresholdError, match="bit 20 proof does not verify"):
        th.verify_query(only_zero_c)


def test_vector_scalar_stream_is_drawn_per_bit_in_spec_order() -> None:
    # Section 9.3: per bit r, c_j, z_j, w. A = r*G shows the first of every four is r.
    stream = th.vector_scalars(b"order")
    drawn = [stream() for _ in range(4 * 256)]
    query = th.encrypt_query(KEY, QUERY_HASH, b"o" * 16, th.vector_scalars(b"order"))
    assert [a for a, _ in query.ciphertexts] == [sodium.scalarmult_base(r) for r in drawn[0::4]]


def test_the_zero_lands_anywhere_in_its_band() -> None:
    y = at_distance(QUERY_HASH, 3, random.Random(2))
    positions = set()
    for _ in range(48):
        group = th.respond(VERIFIED, y, (31,)).groups[0]
        hits = [i for i, (a, b) in enumerate(group) if sodium.scalarmult(KEY.sk, a) == b]
        assert len(hits) == 1
        positions |= set(hits)
    # 48 uniform draws from 32 positions: fewer than 12 distinct has probability < 2^-40.
    assert len(positions) >= 12


def test_the_shuffle_is_a_permutation_reaching_every_position() -> None:
    seen = [set() for _ in range(8)]
    for _ in range(600):
        group = list(range(8))
        th._shuffle(group)
        assert sorted(group) == list(range(8))
        for position, item in enumerate(group):
            seen[item].add(position)
    assert all(len(positions) == 8 for positions in seen)
