"""Signal types, PDQ hash encodings and the vPDQ match rule (pure code, no media)."""

from __future__ import annotations

import numpy as np
import pdqhash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from media_samples import textured_image as smooth_image

from blindmatch.protocol.signal_types import VPDQ
from blindmatch.protocol.signal_types.vpdq.frames import VpdqFrame, vpdq_match
from blindmatch.protocol.signals import (
    DIHEDRAL_NAMES,
    HashFormatError,
    SignalType,
    as_hash_matrix,
    dihedral_float_vectors,
    hamming,
    hamming_matrix,
    pdq_bits_from_float,
    pdq_from_bits,
    pdq_from_hex,
    pdq_to_bits,
    pdq_to_hex,
)


def threatexchange_hex(bits: np.ndarray) -> str:
    # python-threatexchange's conversion: the bit vector read as one big binary number.
    return format(int("".join(str(int(b)) for b in bits), 2), "064x")


def test_hex_form_is_threatexchanges_and_bit_i_is_pdqhash_element_i() -> None:
    bits, _quality = pdqhash.compute(smooth_image(1))
    hash32 = pdq_from_bits(bits)
    assert pdq_to_hex(hash32) == threatexchange_hex(bits)
    assert pdq_from_hex(threatexchange_hex(bits).upper()) == hash32
    unpacked = pdq_to_bits(hash32)
    assert np.array_equal(unpacked, bits)
    for i in (0, 7, 8, 100, 255):
        assert (hash32[i // 8] >> (7 - i % 8)) & 1 == bits[i]


def test_bit_255_is_the_last_hex_digits_low_bit() -> None:
    bits = np.zeros(256, dtype=np.uint8)
    bits[255] = 1
    assert pdq_to_hex(pdq_from_bits(bits)) == "0" * 63 + "1"
    bits[:] = 0
    bits[0] = 1
    assert pdq_to_hex(pdq_from_bits(bits)) == "8" + "0" * 63


@pytest.mark.parametrize(
    "bad", ["", "0" * 63, "0" * 65, "g" * 64, "0x" + "0" * 62, " " * 64, "é" * 64]
)
def test_bad_hex_is_refused(bad: str) -> None:
    with pytest.raises(HashFormatError):
        pdq_from_hex(bad)


def test_bad_bytes_and_bits_are_refused() -> None:
    with pytest.raises(HashFormatError):
        pdq_to_hex(b"\x00" * 31)
    with pytest.raises(HashFormatError):
        pdq_from_bits([0, 1, 2] + [0] * 253)
    with pytest.raises(HashFormatError):
        pdq_from_bits([0] * 255)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_hamming_agrees_with_bit_vectors(a: bytes, b: bytes) -> None:
    expected = int((pdq_to_bits(a) != pdq_to_bits(b)).sum())
    assert hamming(a, b) == expected
    m = hamming_matrix(as_hash_matrix([a, b]), as_hash_matrix([b]))
    assert m.tolist() == [[expected], [0]]


def test_float_vector_threshold_reproduces_pdqhash() -> None:
    for seed in range(4):
        img = smooth_image(seed)
        bits, quality = pdqhash.compute(img)
        vector, quality_f = pdqhash.compute_float(img)
        assert quality == quality_f
        assert np.array_equal(pdq_bits_from_float(vector), bits)


def test_dihedral_float_vectors_reproduce_compute_dihedral() -> None:
    for seed in range(4):
        img = smooth_image(seed, 80, 112)
        variants, _ = pdqhash.compute_dihedral(img)
        vector, _ = pdqhash.compute_float(img)
        derived = dihedral_float_vectors(vector)
        assert len(DIHEDRAL_NAMES) == 8
        for k in range(8):
            assert np.array_equal(pdq_bits_from_float(derived[k]), variants[k]), DIHEDRAL_NAMES[k]


def test_signal_type_threatexchange_names() -> None:
    assert SignalType.PDQ.threatexchange_name == "pdq"
    assert SignalType.PDQ.threatexchange_indicator_type == "HASH_PDQ"
    assert VPDQ.threatexchange_name == "vpdq"
    assert SignalType.SHA256.threatexchange_name is None
    assert SignalType.SHA256.threatexchange_indicator_type == "HASH_SHA256"


def _frames(hashes: list[bytes], quality: int = 100) -> list[VpdqFrame]:
    return [VpdqFrame(i, h, quality, float(i)) for i, h in enumerate(hashes)]


def _far_hashes(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.bytes(32) for _ in range(n)]


def _near(h: bytes, flips: int) -> bytes:
    bits = pdq_to_bits(h).copy()
    bits[:flips] ^= 1
    return pdq_from_bits(bits)


def test_vpdq_match_rule() -> None:
    video = _far_hashes(10, 1)
    same = vpdq_match(_frames(video), _frames([_near(h, 20) for h in video]))
    assert (same.query_match_percent, same.compared_match_percent) == (100.0, 100.0)
    assert same.is_match()
    # A 4-frame clip of the 10-frame video: all of the clip is found, 40% of the video.
    clip = vpdq_match(_frames(video[3:7]), _frames(video))
    assert (clip.query_match_percent, clip.compared_match_percent) == (100.0, 40.0)
    assert clip.is_match()
    # Unrelated frames do not match; a distance of 32 is beyond the threshold.
    assert not vpdq_match(_frames(video), _frames(_far_hashes(10, 2))).is_match()
    assert vpdq_match(_frames(video[:1]), _frames([_near(video[0], 32)])).query_match_percent == 0


def test_vpdq_low_quality_and_duplicate_frames_do_not_count() -> None:
    video = _far_hashes(4, 3)
    query = [*_frames(video), VpdqFrame(9, _far_hashes(1, 4)[0], 10, 9.0)]
    result = vpdq_match(query, _frames(video))
    assert result.query_match_percent == 100.0  # the low-quality stranger is ignored
    duplicated = _frames([video[0]] * 5 + [video[1]])
    result = vpdq_match(duplicated, _frames(video[:1]))
    assert result.query_match_percent == 50.0  # two distinct frames, one found
    assert vpdq_match([], _frames(video)).query_match_percent == 0.0


def test_vpdq_frame_validation() -> None:
    with pytest.raises(HashFormatError):
        VpdqFrame(0, b"\x00" * 31, 50, 0.0)
    with pytest.raises(HashFormatError):
        VpdqFrame(0, b"\x00" * 32, 101, 0.0)
    with pytest.raises(HashFormatError):
        VpdqFrame(-1, b"\x00" * 32, 50, 0.0)
