"""RFC 9497 Appendix A.1: every ristretto255-SHA512 vector in modes OPRF and VOPRF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blindmatch.crypto import oprf, sodium

DATA = json.loads((Path(__file__).parent / "data" / "rfc9497_ristretto255_sha512.json").read_text())


def _as_list(v: str | list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in (v if isinstance(v, list) else [v])]


def _cases(mode_name: str):
    block = DATA["modes"][mode_name]
    for i, vec in enumerate(block["vectors"]):
        yield pytest.param(block, vec, id=f"{mode_name}-{i}-batch{vec['Batch']}")


@pytest.mark.parametrize("mode_name", ["OPRF", "VOPRF"])
def test_derive_key_pair(mode_name: str) -> None:
    block = DATA["modes"][mode_name]
    key = oprf.derive_key_pair(
        bytes.fromhex(block["Seed"]), bytes.fromhex(block["KeyInfo"]), oprf.Mode(block["mode"])
    )
    assert key.sk.hex() == block["skSm"]
    if "pkSm" in block:
        assert key.pk.hex() == block["pkSm"]


@pytest.mark.parametrize(("block", "vec"), [*_cases("OPRF"), *_cases("VOPRF")])
def test_protocol_vectors(block: dict, vec: dict) -> None:
    mode = oprf.Mode(block["mode"])
    key = oprf.derive_key_pair(bytes.fromhex(block["Seed"]), bytes.fromhex(block["KeyInfo"]), mode)
    inputs = _as_list(vec["Input"])
    blinds_in = _as_list(vec["Blind"])
    assert len(inputs) == vec["Batch"]

    blinds, blinded = oprf.blind(inputs, mode, blinds=blinds_in)
    assert blinded == _as_list(vec["BlindedElement"])

    nonce = bytes.fromhex(vec["ProofRandomScalar"]) if mode == oprf.Mode.VOPRF else None
    evaluated, proof = oprf.blind_evaluate(key, blinded, mode, proof_nonce=nonce)
    assert evaluated == _as_list(vec["EvaluationElement"])
    if mode == oprf.Mode.VOPRF:
        assert proof is not None and proof.hex() == vec["Proof"]

    outputs = oprf.finalize(inputs, blinds, evaluated, mode, blinded, proof, key.pk)
    assert outputs == _as_list(vec["Output"])
    # Evaluate (the server's own unblinded computation) agrees with the protocol's output.
    assert [oprf.evaluate(key, x, mode) for x in inputs] == outputs


def test_voprf_proof_rejects_tampering() -> None:
    block = DATA["modes"]["VOPRF"]
    vec = block["vectors"][2]
    mode = oprf.Mode.VOPRF
    key = oprf.derive_key_pair(bytes.fromhex(block["Seed"]), bytes.fromhex(block["KeyInfo"]), mode)
    inputs = _as_list(vec["Input"])
    blinds, blinded = oprf.blind(inputs, mode, blinds=_as_list(vec["Blind"]))
    evaluated, proof = oprf.blind_evaluate(key, blinded, mode)
    assert proof is not None
    other = oprf.generate_key_pair()
    # A different key for one element of the batch (a holder keying per querier) is caught.
    forged = [evaluated[0], sodium.scalarmult(other.sk, blinded[1])]
    with pytest.raises(oprf.VerifyError):
        oprf.finalize(inputs, blinds, forged, mode, blinded, proof, key.pk)
    # Swapped elements, a flipped proof byte and the wrong public key are all refused.
    with pytest.raises(oprf.VerifyError):
        oprf.finalize(inputs, blinds, evaluated[::-1], mode, blinded, proof, key.pk)
    bad = bytearray(proof)
    bad[5] ^= 1
    with pytest.raises(oprf.OprfError):
        oprf.finalize(inputs, blinds, evaluated, mode, blinded, bytes(bad), key.pk)
    with pytest.raises(oprf.VerifyError):
        oprf.finalize(inputs, blinds, evaluated, mode, blinded, proof, other.pk)


@pytest.mark.parametrize(
    ("element", "message"),
    [
        (bytes(32), "identity"),
        (b"\x01" + bytes(31), "canonical"),
        (b"\xff" * 32, "canonical"),
        (b"\x00" * 31, "32 bytes"),
        (b"\x00" * 33, "32 bytes"),
    ],
)
def test_blind_evaluate_refuses_bad_elements(element: bytes, message: str) -> None:
    key = oprf.generate_key_pair()
    _, good = oprf.blind([b"x"], oprf.Mode.VOPRF)
    with pytest.raises(oprf.DeserializeError, match=message):
        oprf.blind_evaluate(key, [*good, element], oprf.Mode.VOPRF)


# --- POPRF (RFC 9497 A.1.3) ---------------------------------------------------------------


@pytest.mark.parametrize(("block", "vec"), [*_cases("POPRF")])
def test_poprf_vectors(block: dict, vec: dict) -> None:
    key = oprf.derive_key_pair(
        bytes.fromhex(block["Seed"]), bytes.fromhex(block["KeyInfo"]), oprf.Mode.POPRF
    )
    assert (key.sk.hex(), key.pk.hex()) == (block["skSm"], block["pkSm"])
    info = bytes.fromhex(block["Info"])
    inputs = _as_list(vec["Input"])
    blinds, blinded, tweaked = oprf.poprf_blind(inputs, info, key.pk, blinds=_as_list(vec["Blind"]))
    assert blinded == _as_list(vec["BlindedElement"])
    evaluated, proof = oprf.poprf_blind_evaluate(
        key, blinded, info, proof_nonce=bytes.fromhex(vec["ProofRandomScalar"])
    )
    assert evaluated == _as_list(vec["EvaluationElement"])
    assert proof.hex() == vec["Proof"]
    outputs = oprf.poprf_finalize(inputs, blinds, evaluated, blinded, proof, info, tweaked)
    assert outputs == _as_list(vec["Output"])
    assert [oprf.poprf_evaluate(key, x, info) for x in inputs] == outputs


def test_poprf_answer_under_another_info_is_refused() -> None:
    # The binding that matters for uploader signals: an evaluation made for one picture's info
    # does not verify as an evaluation for another.
    key = oprf.generate_key_pair()
    blinds, blinded, _ = oprf.poprf_blind([b"uploader"], b"picture A", key.pk)
    evaluated, proof = oprf.poprf_blind_evaluate(key, blinded, b"picture A")
    tweaked_b = oprf.poprf_tweaked_key(key.pk, b"picture B")
    with pytest.raises(oprf.VerifyError):
        oprf.poprf_finalize(
            [b"uploader"], blinds, evaluated, blinded, proof, b"picture B", tweaked_b
        )
    # and outputs for the same input under two infos are unrelated
    assert oprf.poprf_evaluate(key, b"uploader", b"picture A") != oprf.poprf_evaluate(
        key, b"uploader", b"picture B"
    )
