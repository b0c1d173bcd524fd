"""RFC 9497 Appendix A.1 (ristretto255-SHA512, OPRF, VOPRF and POPRF) as conformance cases.

The published values are kept verbatim in tests/data/rfc9497_ristretto255_sha512.json; this
turns each into derive / blind / blind-evaluate / finalize cases, expected outputs taken from
the RFC, not from this implementation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blindmatch.crypto import sodium

RFC_DATA = (
    Path(__file__).resolve().parent.parent / "tests" / "data" / "rfc9497_ristretto255_sha512.json"
)


def _l(v: str | list[str]) -> list[str]:
    return v if isinstance(v, list) else [v]


def _poprf_cases(name: str, block: dict[str, Any]) -> list[dict[str, Any]]:
    # No derive case: key derivation is the same algorithm in every mode and the core profile's
    # oprf.derive_key_pair covers modes 0 and 1 (tests/test_oprf_rfc9497.py checks mode 2).
    cases: list[dict[str, Any]] = []
    info = block["Info"]
    for i, vec in enumerate(block["vectors"]):
        cid = f"{name}-{i + 1}"
        blinded = _l(vec["BlindedElement"])
        evaluated = _l(vec["EvaluationElement"])
        cases += [
            {
                "id": f"{cid}-blind",
                "op": "oprf.poprf_blind",
                "input": {"inputs": _l(vec["Input"]), "blinds": _l(vec["Blind"]),
                          "info": info, "pk": block["pkSm"]},
                "expected": {"output": {"blinded": blinded}},
            },
            {
                "id": f"{cid}-evaluate",
                "op": "oprf.poprf_blind_evaluate",
                "input": {"sk": block["skSm"], "blinded": blinded, "info": info,
                          "proof_nonce": vec["ProofRandomScalar"]},
                "expected": {"output": {"evaluated": evaluated, "proof": vec["Proof"]}},
            },
            {
                "id": f"{cid}-finalize",
                "op": "oprf.poprf_finalize",
                "input": {"inputs": _l(vec["Input"]), "blinds": _l(vec["Blind"]),
                          "evaluated": evaluated, "blinded": blinded, "proof": vec["Proof"],
                          "info": info, "pk": block["pkSm"]},
                "expected": {"output": {"outputs": _l(vec["Output"])}},
            },
        ]  # fmt: skip
    return cases


def generate() -> dict[str, object]:
    data = json.loads(RFC_DATA.read_text())
    cases: list[dict[str, Any]] = []
    for name, block in data["modes"].items():
        mode = block["mode"]
        if mode == 2:
            cases += _poprf_cases(name, block)
            continue
        derived = {"sk": block["skSm"]}
        # RFC 9497 publishes pkSm for VOPRF only; for OPRF it is skSm * G.
        derived["pk"] = (
            block.get("pkSm") or sodium.scalarmult_base(bytes.fromhex(block["skSm"])).hex()
        )
        cases.append(
            {
                "id": f"{name}-derive",
                "op": "oprf.derive_key_pair",
                "input": {"mode": mode, "seed": block["Seed"], "info": block["KeyInfo"]},
                "expected": {"output": derived},
            }
        )
        for i, vec in enumerate(block["vectors"]):
            cid = f"{name}-{i + 1}"
            ev_in: dict[str, Any] = {
                "mode": mode,
                "sk": block["skSm"],
                "blinded": _l(vec["BlindedElement"]),
            }
            ev_out: dict[str, Any] = {"evaluated": _l(vec["EvaluationElement"])}
            fin: dict[str, Any] = {
                "mode": mode,
                "inputs": _l(vec["Input"]),
                "blinds": _l(vec["Blind"]),
                "evaluated": _l(vec["EvaluationElement"]),
            }
            if mode == 1:
                ev_in["proof_nonce"] = vec["ProofRandomScalar"]
                ev_out["proof"] = vec["Proof"]
                fin |= {
                    "blinded": _l(vec["BlindedElement"]),
                    "proof": vec["Proof"],
                    "pk": block["pkSm"],
                }
            cases += [
                {
                    "id": f"{cid}-blind",
                    "op": "oprf.blind",
                    "input": {"mode": mode, "inputs": _l(vec["Input"]), "blinds": _l(vec["Blind"])},
                    "expected": {"output": {"blinded": _l(vec["BlindedElement"])}},
                },
                {
                    "id": f"{cid}-evaluate",
                    "op": "oprf.blind_evaluate",
                    "input": ev_in,
                    "expected": {"output": ev_out},
                },
                {
                    "id": f"{cid}-finalize",
                    "op": "oprf.finalize",
                    "input": fin,
                    "expected": {"output": {"outputs": _l(vec["Output"])}},
                },
            ]
    return {
        "rfc9497.json": {
            "name": "RFC 9497 Appendix A.1, ristretto255-SHA512",
            "spec": "https://www.rfc-editor.org/rfc/rfc9497#appendix-A.1",
            "version": 1,
            "cases": cases,
        }
    }
