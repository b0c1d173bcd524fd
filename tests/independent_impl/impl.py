#!/usr/bin/env python3
"""An independent implementation of the ``core`` conformance profile of blindmatch, written
from specs/protocol.md alone (chapters 1-7, 9 and 10.2). It imports nothing from the
blindmatch package: ristretto255 comes from libsodium through ctypes, Ed25519 from PyNaCl,
canonical msgpack from the msgpack reference packer, hashing from hashlib.

    blindmatch spec verify --impl "python tests/independent_impl/impl.py" --profile core

It speaks the JSON-lines interface of 9.2: one request per line on stdin, one reply per line on
stdout, in order; ops outside ``core`` are answered ``unsupported-op``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from typing import Any

import group as g
import rfc9497
import threshold
import wire

SAFE = 2**53 - 1
HEX = re.compile(r"(?:[0-9a-f]{2})*")
TAGS = ("hex", "int", "map")


class Err(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --- 9.4: typed fields -------------------------------------------------------------------------


def b(v: Any) -> bytes:
    if not isinstance(v, str) or not HEX.fullmatch(v):
        raise Err("bad-request")
    return bytes.fromhex(v)


def bl(v: Any) -> list[bytes]:
    if not isinstance(v, list):
        raise Err("bad-request")
    return [b(x) for x in v]


def i(v: Any) -> int:
    if isinstance(v, bool):
        raise Err("bad-request")
    if isinstance(v, int) and abs(v) <= SAFE:
        return v
    text = v.get("int") if isinstance(v, dict) and list(v) == ["int"] else None
    if isinstance(text, str) and re.fullmatch(r"-?(0|[1-9][0-9]*)", text) and abs(int(text)) > SAFE:
        return int(text)
    raise Err("bad-request")


def s(v: Any) -> str:
    if not isinstance(v, str):
        raise Err("bad-request")
    return v


def out_int(n: int) -> Any:
    return n if abs(n) <= SAFE else {"int": str(n)}


def value_from_json(v: Any) -> Any:
    if isinstance(v, dict):
        if len(v) == 1 and next(iter(v)) in TAGS:
            tag, inner = next(iter(v.items()))
            if tag == "hex":
                return b(inner)
            if tag == "int":
                return i(v)
            if not isinstance(inner, dict):
                raise Err("bad-request")
            return {k: value_from_json(x) for k, x in inner.items()}
        return {k: value_from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [value_from_json(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    return i(v)  # floats are not protocol values


def value_to_json(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return out_int(v)
    if isinstance(v, list):
        return [value_to_json(x) for x in v]
    m = {k: value_to_json(x) for k, x in v.items()}
    return {"map": m} if len(m) == 1 and next(iter(m)) in TAGS else m


# --- ops ---------------------------------------------------------------------------------------


def mode_of(v: Any) -> int:
    if i(v) not in (0, 1):
        raise Err("bad-request")
    return v


def op_derive(x: dict) -> dict:
    sk, pk = rfc9497.derive_key_pair(b(x["seed"]), b(x["info"]), mode_of(x["mode"]))
    return {"sk": sk.hex(), "pk": pk.hex()}


def op_blind(x: dict) -> dict:
    mode = mode_of(x["mode"])
    blinded = rfc9497.blind(bl(x["inputs"]), bl(x["blinds"]), mode)
    return {"blinded": [p.hex() for p in blinded]}


def op_blind_evaluate(x: dict) -> dict:
    mode = mode_of(x["mode"])
    nonce = b(x["proof_nonce"]) if mode == 1 else None
    evaluated, proof = rfc9497.blind_evaluate(b(x["sk"]), bl(x["blinded"]), mode, nonce)
    out: dict[str, Any] = {"evaluated": [e.hex() for e in evaluated]}
    if proof is not None:
        out["proof"] = proof.hex()
    return out


def op_finalize(x: dict) -> dict:
    mode = mode_of(x["mode"])
    extra = (bl(x["blinded"]), b(x["proof"]), b(x["pk"])) if mode == 1 else (None, None, None)
    outputs = rfc9497.finalize(bl(x["inputs"]), bl(x["blinds"]), bl(x["evaluated"]), mode, *extra)
    return {"outputs": [o.hex() for o in outputs]}


def op_encrypt(x: dict) -> dict:
    draw = threshold.vector_scalars(b(x["scalar_seed"]))
    q = threshold.encrypt(b(x["sk"]), b(x["hash"]), b(x["query_id"]), draw)
    return {"query_sha256": hashlib.sha256(q).hexdigest(), "query_length": len(q)}


def op_verify(x: dict) -> dict:
    threshold.verify(b(x["query"]))
    return {"ok": True}


def op_respond(x: dict) -> dict:
    bands = x["bands"]
    if not isinstance(bands, list):
        raise Err("bad-request")
    bands = [i(v) for v in bands]
    draw = threshold.vector_scalars(b(x["scalar_seed"]))
    return {"response": threshold.respond(b(x["query"]), b(x["holder_hash"]), bands, draw).hex()}


def op_decide(x: dict) -> dict:
    matched, band = threshold.decide(b(x["sk"]), b(x["response"]))
    return {"matched": matched, "band": band}


def op_seal(x: dict) -> dict:
    env = wire.sign_envelope(
        b(x["signing_seed"]),
        s(x["sender"]),
        s(x["type"]),
        value_from_json(x["body"]),
        i(x["timestamp_ms"]),
        b(x["nonce"]),
    )
    return {"envelope": env.hex()}


def op_open(x: dict) -> dict:
    roster = x["roster"]
    if not isinstance(roster, dict):
        raise Err("bad-request")
    keys = {s(k): b(v) for k, v in roster.items()}
    seen = x.get("seen", [])
    if not isinstance(seen, list):
        raise Err("bad-request")
    seen_pairs = {(s(e["sender"]), b(e["nonce"])) for e in seen}
    try:
        _, mtype, sender, ts, nonce, body, _ = wire.open_envelope(
            b(x["envelope"]), i(x["now_ms"]), keys
        )
    except wire.Refused as exc:
        raise Err(f"envelope:{exc.code}") from exc
    if (sender, nonce) in seen_pairs:
        raise Err("envelope:replayed")
    return {
        "type": mtype,
        "sender": sender,
        "timestamp_ms": out_int(ts),
        "nonce": nonce.hex(),
        "body": value_to_json(body),
    }


def op_decode(x: dict) -> dict:
    return {"value": value_to_json(wire.decode(b(x["bytes"])))}


def op_group_decode(x: dict) -> dict:
    p = b(x["element"])
    if not g.is_valid_point(p):
        raise Err("group-invalid")
    return {"element": p.hex()}


def op_key_id(x: dict) -> dict:
    pk = g.check_point(b(x["pk"]))
    return {"key_id": hashlib.sha256(b"blindmatch-v1 key id" + pk).digest()[:8].hex()}


def op_entry(x: dict) -> dict:
    sk = g.check_scalar(b(x["sk"]))
    item_ref = b(x["item_ref"])
    if len(item_ref) != 16:
        raise Err("bad-request")
    f = rfc9497.evaluate(sk, b(x["bucket_key"]), 1)
    return {"entry": (f[:8] + bytes(a ^ c for a, c in zip(item_ref, f[8:24], strict=True))).hex()}


OPS = {
    "oprf.derive_key_pair": op_derive,
    "oprf.blind": op_blind,
    "oprf.blind_evaluate": op_blind_evaluate,
    "oprf.finalize": op_finalize,
    "threshold.encrypt": op_encrypt,
    "threshold.verify": op_verify,
    "threshold.respond": op_respond,
    "threshold.decide": op_decide,
    "envelope.seal": op_seal,
    "envelope.open": op_open,
    "canonical.decode": op_decode,
    "group.decode": op_group_decode,
    "index.key_id": op_key_id,
    "index.entry": op_entry,
}


def answer(op: str, data: Any) -> dict:
    fn = OPS.get(op)
    if fn is None:
        return {"error": "unsupported-op"}
    try:
        if not isinstance(data, dict):
            raise Err("bad-request")
        return {"output": fn(data)}
    except Err as exc:
        return {"error": exc.code}
    except (KeyError, TypeError, AttributeError):
        return {"error": "bad-request"}
    except g.DecodeError:
        return {"error": "threshold-invalid" if op.startswith("threshold.") else "oprf-deserialize"}
    except rfc9497.InputError:
        return {"error": "oprf-input"}
    except rfc9497.VerifyError:
        return {"error": "oprf-verify"}
    except threshold.Invalid:
        return {"error": "threshold-invalid"}
    except wire.NotCanonical:
        return {"error": "canonical"}


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            rid, op, data = req["id"], req["op"], req["input"]
        except (ValueError, KeyError, TypeError):
            print("independent_impl: unreadable request line", file=sys.stderr)
            continue
        reply = {"id": rid, **answer(op, data)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
