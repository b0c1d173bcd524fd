"""The optional Rust backend (the ``voprf`` wheel) against libsodium, the reference: the same
key from the same seed, the same evaluated elements and outputs, proofs our verifier accepts,
and the same refusals. Skipped where the wheel is not installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from blindmatch.crypto import oprf, sodium

pytest.importorskip("voprf")

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "rfc9497_ristretto255_sha512.json").read_text()
)["modes"]["VOPRF"]


@pytest.fixture
def reference():
    """Run a block with the backend turned off, then turn it back on."""

    class Switch:
        def __enter__(self) -> None:
            oprf.use_backend("libsodium")

        def __exit__(self, *exc: object) -> None:
            oprf.use_backend("voprf")

    return Switch()


def _hex_list(v: str | list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in (v if isinstance(v, list) else [v])]


def test_every_rfc9497_voprf_vector_the_backend_can_take() -> None:
    key = oprf.derive_key_pair(
        bytes.fromhex(VECTORS["Seed"]), bytes.fromhex(VECTORS["KeyInfo"]), oprf.Mode.VOPRF
    )
    assert oprf.backend(key) == "voprf"
    assert key.pk.hex() == VECTORS["pkSm"]
    for vec in VECTORS["vectors"]:
        blinded = _hex_list(vec["BlindedElement"])
        evaluated, proof = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF)  # fresh nonce
        assert evaluated == _hex_list(vec["EvaluationElement"])
        oprf.verify_proof(sodium.GENERATOR, key.pk, blinded, evaluated, proof, oprf.VOPRF_SUITE)
        for data, out in zip(_hex_list(vec["Input"]), _hex_list(vec["Output"]), strict=True):
            assert oprf.evaluate(key, data, oprf.Mode.VOPRF) == out


def test_the_backend_and_libsodium_agree_on_random_batches(reference) -> None:
    key = oprf.derive_key_pair(os.urandom(32), b"blindmatch test", oprf.Mode.VOPRF)
    inputs = [os.urandom(n) for n in range(1, 300)]
    blinds, blinded = oprf.blind(inputs, oprf.Mode.VOPRF)
    evaluated, proof = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF)
    fast = [oprf.evaluate(key, x, oprf.Mode.VOPRF) for x in inputs[:40]]
    with reference:
        assert oprf.backend(key) == "libsodium"
        ref_evaluated, _ = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF)
        slow = [oprf.evaluate(key, x, oprf.Mode.VOPRF) for x in inputs[:40]]
    assert evaluated == ref_evaluated and fast == slow
    # The querier's side (libsodium) verifies the backend's proof and gets Evaluate's outputs.
    outputs = oprf.finalize(inputs, blinds, evaluated, oprf.Mode.VOPRF, blinded, proof, key.pk)
    assert outputs[:40] == fast


def test_a_proof_for_other_elements_fails_our_verifier() -> None:
    key = oprf.derive_key_pair(os.urandom(32), b"", oprf.Mode.VOPRF)
    _, blinded = oprf.blind([b"a", b"b", b"c"], oprf.Mode.VOPRF)
    evaluated, proof = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF)
    swapped = [evaluated[1], evaluated[0], evaluated[2]]
    with pytest.raises(oprf.VerifyError):
        oprf.verify_proof(sodium.GENERATOR, key.pk, blinded, swapped, proof, oprf.VOPRF_SUITE)


@pytest.mark.parametrize(
    "bad",
    [
        sodium.IDENTITY,
        b"\xff" * 32,  # not a canonical encoding
        b"\x01" * 31,  # short
    ],
)
def test_both_backends_refuse_the_same_bad_elements(reference, bad: bytes) -> None:
    key = oprf.derive_key_pair(os.urandom(32), b"", oprf.Mode.VOPRF)
    _, blinded = oprf.blind([b"x", b"y"], oprf.Mode.VOPRF)
    batch = [blinded[0], bad, blinded[1]]
    with pytest.raises(oprf.DeserializeError) as fast:
        oprf.blind_evaluate(key, batch, oprf.Mode.VOPRF)
    with reference, pytest.raises(oprf.DeserializeError) as slow:
        oprf.blind_evaluate(key, batch, oprf.Mode.VOPRF)
    assert str(fast.value) == str(slow.value)


def test_keys_without_a_seed_and_fixed_nonces_stay_on_libsodium() -> None:
    derived = oprf.derive_key_pair(os.urandom(32), b"", oprf.Mode.VOPRF)
    bare = oprf.ServerKey(derived.sk, derived.pk)
    assert oprf.backend(bare) == "libsodium" and bare == derived
    assert oprf.backend(oprf.derive_key_pair(os.urandom(32), b"", oprf.Mode.OPRF)) == "libsodium"
    _, blinded = oprf.blind([b"x"], oprf.Mode.VOPRF)
    nonce = sodium.scalar_random()
    assert oprf.blind_evaluate(derived, blinded, oprf.Mode.VOPRF, nonce) == oprf.blind_evaluate(
        bare, blinded, oprf.Mode.VOPRF, nonce
    )


def test_the_backend_decodes_exactly_what_libsodium_decodes() -> None:
    """The backend leaves element decoding to the wheel: it must accept and refuse the same
    encodings as deserialize_element (random strings, edge encodings, valid points)."""
    from voprf import ristretto as rust

    p = 2**255 - 19
    edge = [sodium.IDENTITY, b"\xff" * 32, bytes([1]) + bytes(31)]
    edge += [v.to_bytes(32, "little") for v in (p - 1, p, p + 1, 2**255 - 1)]
    valid = [sodium.scalarmult_base(sodium.scalar_random()) for _ in range(200)]
    for encoding in edge + valid + [os.urandom(32) for _ in range(5000)]:
        try:
            oprf.deserialize_element(encoding)
            ours = True
        except oprf.DeserializeError:
            ours = False
        try:
            rust.BlindedInput.deserialize(encoding)
            theirs = True
        except ValueError:
            theirs = False
        assert ours == theirs, encoding.hex()


def test_a_bad_element_of_any_type_is_refused_like_libsodium_refuses_it(reference) -> None:
    key = oprf.derive_key_pair(os.urandom(32), b"", oprf.Mode.VOPRF)
    _, blinded = oprf.blind([b"x"], oprf.Mode.VOPRF)
    for bad in ("not bytes", 7, blinded[0] + b"\x00"):
        with pytest.raises(oprf.DeserializeError) as fast:
            oprf.blind_evaluate(key, [blinded[0], bad], oprf.Mode.VOPRF)  # type: ignore[list-item]
        with reference, pytest.raises(oprf.DeserializeError) as slow:
            oprf.blind_evaluate(key, [blinded[0], bad], oprf.Mode.VOPRF)  # type: ignore[list-item]
        assert str(fast.value) == str(slow.value)
