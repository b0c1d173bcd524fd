"""The operations of the conformance interface, implemented by this package.

Each operation takes a JSON object and returns one, or raises :class:`OpError` with a stable
error code. The same operations, spoken as JSON lines over a pipe, are what an external
implementation must answer (specs/protocol.md, chapter 9: the JSON encoding in 9.4, the error
codes in 9.6). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from blindmatch.crypto import oprf, signing, sodium
from blindmatch.crypto import threshold as th
from blindmatch.protocol import (
    canonical,
    derivative_ops,
    envelope,
    federation_ops,
    lsh_ops,
    signal_types,
    transparency_ops,
    uploaders_ops,
)
from blindmatch.protocol.conformance_support import (
    JSON_SAFE_INT,
    OpError,
    big_ints_to_json,
    from_json_value,
    hex_bytes,
    hex_bytes_list,
    json_int,
    to_json_value,
)

__all__ = [
    "JSON_SAFE_INT",
    "OPS",
    "OpError",
    "big_ints_to_json",
    "from_json_value",
    "hex_bytes",
    "hex_bytes_list",
    "json_int",
    "make_case",
    "run",
    "to_json_value",
    "vector_seed",
]


def vector_seed(label: str) -> bytes:
    """The fixed seed a vector generator derives from a label (specs/generate_vectors.py)."""
    return hashlib.sha256(b"blindmatch-v1 vectors " + label.encode()).digest()


def make_case(case_id: str, op: str, data: dict[str, Any]) -> dict[str, Any]:
    """A conformance case whose expected result is what this implementation answers."""
    try:
        expected: dict[str, Any] = {"output": run(op, data)}
    except OpError as exc:
        expected = {"error": exc.code}
    return {"id": case_id, "op": op, "input": data, "expected": expected}


_b, _bl = hex_bytes, hex_bytes_list


def _h(b: bytes) -> str:
    return b.hex()


def _mode(v: Any) -> oprf.Mode:
    try:
        return oprf.Mode(v)
    except ValueError as exc:
        raise OpError("bad-request", "mode must be 0, 1 or 2") from exc


def oprf_derive_key_pair(i: dict[str, Any]) -> dict[str, Any]:
    key = oprf.derive_key_pair(_b(i["seed"]), _b(i["info"]), _mode(i["mode"]))
    return {"sk": _h(key.sk), "pk": _h(key.pk)}


def oprf_blind(i: dict[str, Any]) -> dict[str, Any]:
    _, blinded = oprf.blind(_bl(i["inputs"]), _mode(i["mode"]), blinds=_bl(i["blinds"]))
    return {"blinded": [_h(x) for x in blinded]}


def _server_key(sk_hex: Any) -> oprf.ServerKey:
    sk = oprf.deserialize_scalar(_b(sk_hex), "sk")
    return oprf.ServerKey(sk=sk, pk=sodium.scalarmult_base(sk))


def oprf_blind_evaluate(i: dict[str, Any]) -> dict[str, Any]:
    mode = _mode(i["mode"])
    nonce = _b(i["proof_nonce"]) if mode == oprf.Mode.VOPRF else None
    evaluated, proof = oprf.blind_evaluate(_server_key(i["sk"]), _bl(i["blinded"]), mode, nonce)
    out: dict[str, Any] = {"evaluated": [_h(x) for x in evaluated]}
    if proof is not None:
        out["proof"] = _h(proof)
    return out


def oprf_finalize(i: dict[str, Any]) -> dict[str, Any]:
    mode = _mode(i["mode"])
    verifiable = mode == oprf.Mode.VOPRF
    outputs = oprf.finalize(
        _bl(i["inputs"]),
        _bl(i["blinds"]),
        _bl(i["evaluated"]),
        mode,
        _bl(i["blinded"]) if verifiable else None,
        _b(i["proof"]) if verifiable else None,
        _b(i["pk"]) if verifiable else None,
    )
    return {"outputs": [_h(x) for x in outputs]}


def oprf_poprf_blind(i: dict[str, Any]) -> dict[str, Any]:
    _, blinded, _ = oprf.poprf_blind(_bl(i["inputs"]), _b(i["info"]), _b(i["pk"]), _bl(i["blinds"]))
    return {"blinded": [_h(x) for x in blinded]}


def oprf_poprf_blind_evaluate(i: dict[str, Any]) -> dict[str, Any]:
    evaluated, proof = oprf.poprf_blind_evaluate(
        _server_key(i["sk"]), _bl(i["blinded"]), _b(i["info"]), _b(i["proof_nonce"])
    )
    return {"evaluated": [_h(x) for x in evaluated], "proof": _h(proof)}


def oprf_poprf_finalize(i: dict[str, Any]) -> dict[str, Any]:
    info = _b(i["info"])
    outputs = oprf.poprf_finalize(
        _bl(i["inputs"]), _bl(i["blinds"]), _bl(i["evaluated"]), _bl(i["blinded"]),
        _b(i["proof"]), info, oprf.poprf_tweaked_key(_b(i["pk"]), info),
    )  # fmt: skip
    return {"outputs": [_h(x) for x in outputs]}


def _querier_key(sk_hex: Any) -> th.QuerierKey:
    sk = oprf.deserialize_scalar(_b(sk_hex), "sk")
    return th.QuerierKey(sk=sk, pk=sodium.scalarmult_base(sk))


def threshold_encrypt(i: dict[str, Any]) -> dict[str, Any]:
    query = th.encrypt_query(
        _querier_key(i["sk"]),
        _b(i["hash"]),
        _b(i["query_id"]),
        th.vector_scalars(_b(i["scalar_seed"])),
    ).to_bytes()
    # The query is 49,200 bytes; vectors compare its SHA-256 and its length in bytes.
    return {"query_sha256": hashlib.sha256(query).hexdigest(), "query_length": len(query)}


def threshold_verify(i: dict[str, Any]) -> dict[str, Any]:
    th.verify_query(th.EncryptedQuery.from_bytes(_b(i["query"])))
    return {"ok": True}


def threshold_respond(i: dict[str, Any]) -> dict[str, Any]:
    verified = th.verify_query(th.EncryptedQuery.from_bytes(_b(i["query"])))
    response = th.respond(
        verified,
        _b(i["holder_hash"]),
        i["bands"],
        th.vector_scalars(_b(i["scalar_seed"])),
        shuffle=lambda group: None,  # vectors fix the order: t ascending within each band
    )
    return {"response": _h(response.to_bytes())}


def threshold_decide(i: dict[str, Any]) -> dict[str, Any]:
    result = th.decide(_querier_key(i["sk"]), th.ThresholdResponse.from_bytes(_b(i["response"])))
    return {"matched": result.matched, "band": result.band}


def envelope_seal(i: dict[str, Any]) -> dict[str, Any]:
    data = envelope.seal(
        signing.SigningKey(_b(i["signing_seed"])),
        i["sender"],
        i["type"],
        from_json_value(i["body"]),
        i["timestamp_ms"],
        _b(i["nonce"]),
    )
    return {"envelope": _h(data)}


def envelope_open(i: dict[str, Any]) -> dict[str, Any]:
    roster = {name: _b(pk) for name, pk in i["roster"].items()}
    env = envelope.open_envelope(
        _b(i["envelope"]), now_ms=json_int(i["now_ms"]), sender_key=roster.get
    )
    # The receiver's replay memory: (sender, nonce) pairs it accepted inside the window. The
    # check comes last, so only an authentic, well-formed message is refused as a replay.
    seen = {(s["sender"], _b(s["nonce"])) for s in i.get("seen", [])}
    if (env.sender, env.nonce) in seen:
        raise OpError("envelope:replayed", "this (sender, nonce) was accepted before")
    return {
        "type": env.type,
        "sender": env.sender,
        "timestamp_ms": env.timestamp_ms,
        "nonce": _h(env.nonce),
        "body": to_json_value(env.body),
    }


def canonical_decode(i: dict[str, Any]) -> dict[str, Any]:
    return {"value": to_json_value(canonical.decode(_b(i["bytes"])))}


def group_decode(i: dict[str, Any]) -> dict[str, Any]:
    """Section 1's point validation: a canonical encoding (RFC 9496 4.3.1), not the identity."""
    element = _b(i["element"])
    if not sodium.is_valid_point(element):
        raise OpError("group-invalid", "not a canonical encoding of a non-identity element")
    return {"element": _h(element)}


def index_key_id(i: dict[str, Any]) -> dict[str, Any]:
    from blindmatch.protocol.roster import voprf_key_id

    return {"key_id": _h(voprf_key_id(oprf.public_key_from_bytes(_b(i["pk"]))))}


def index_entry(i: dict[str, Any]) -> dict[str, Any]:
    from blindmatch.protocol.index import make_entry

    key = _server_key(i["sk"])
    output = oprf.evaluate(key, _b(i["bucket_key"]), oprf.Mode.VOPRF)
    return {"entry": _h(make_entry(output, _b(i["item_ref"])))}


def index_table_entry(i: dict[str, Any]) -> dict[str, Any]:
    """Spec 8.5: an entry with its table reference, and the candidate a querier unmasks."""
    from blindmatch.protocol import index
    from blindmatch.protocol.roster import voprf_key_id

    key = _server_key(i["sk"])
    nonce = _b(i["nonce"])
    (entry,) = index.item_entries(
        key, voprf_key_id(key.pk), _b(i["item_ref"]), [_b(i["bucket_key"])], lambda n: nonce
    )
    f = oprf.evaluate(key, _b(i["bucket_key"]), oprf.Mode.VOPRF)
    candidate = entry[:8] + bytes(a ^ b for a, b in zip(entry[8:], f[8:24], strict=True))
    return {"entry": _h(entry), "candidate": _h(candidate)}


def index_resolve(i: dict[str, Any]) -> dict[str, Any]:
    from blindmatch.protocol import index
    from blindmatch.protocol.roster import voprf_key_id

    key = _server_key(i["sk"])
    try:
        tag, prefix = index.resolve_candidate(
            index.reference_key(key.sk), voprf_key_id(key.pk), _b(i["candidate"])
        )
    except index.IndexFormatError as exc:
        raise OpError("index-invalid", str(exc)) from exc
    return {"tag": _h(tag), "item_prefix": _h(prefix)}


def threshold_seal(i: dict[str, Any]) -> dict[str, Any]:
    from blindmatch.crypto import release

    verified = th.verify_query(th.EncryptedQuery.from_bytes(_b(i["query"])))
    answer = release.seal(
        verified,
        _b(i["holder_hash"]),
        i["bands"],
        _b(i["candidate"]),
        _b(i["release"]),
        th.vector_scalars(_b(i["scalar_seed"])),
        shuffle=lambda group: None,
    )
    return {"response": _h(answer.response.to_bytes()), "sealed": _h(answer.sealed)}


def threshold_open(i: dict[str, Any]) -> dict[str, Any]:
    from blindmatch.crypto import release

    try:
        opened = release.open_sealed(
            _querier_key(i["sk"]),
            _b(i["query_id"]),
            _b(i["candidate"]),
            th.ThresholdResponse.from_bytes(_b(i["response"])),
            _b(i["sealed"]),
        )
    except release.ReleaseError as exc:
        raise OpError("threshold-invalid", str(exc)) from exc
    if opened is None:
        return {"matched": False, "band": None, "release": None, "token": None}
    return {
        "matched": True,
        "band": opened.band,
        "release": _h(opened.release),
        "token": _h(opened.token),
    }


def threshold_release_scalar(i: dict[str, Any]) -> dict[str, Any]:
    """The holder's release scalar for an item and a query, its point and the token a querier
    that opened such an answer shows (8.5)."""
    from blindmatch.crypto import release

    query = _b(i["query"])
    if len(query) != th.ENCRYPTED_QUERY_BYTES:
        raise OpError("threshold-invalid", "an encrypted query is 49,200 bytes")
    key = release.scalar_key(_b(i["secret"]))
    mu = release.release_scalar(key, query, _b(i["item_ref"]))
    point = sodium.scalarmult_base(mu)
    token = release.confirmation_token(query[32:48], point)
    return {"mu": _h(mu), "point": _h(point), "token": _h(token)}


def roster_verify(i: dict[str, Any]) -> dict[str, Any]:
    from blindmatch.protocol.roster import RosterError, verify_roster

    try:
        r = verify_roster(
            i["document"], [_b(k) for k in i["governance_keys"]], i["threshold"], i["now_ms"]
        )
    except RosterError as exc:
        raise OpError("roster-invalid", str(exc)) from exc
    return {
        "federation": r.federation,
        "serial": r.serial,
        "members": sorted(r.members),
        # what each holder declared it publishes (10.1), from which its queriers cap it (10.4)
        "index_entries": {
            m.node_id: m.budget["index_entries"]
            for m in r.members.values()
            if m.voprf_key is not None
        },
    }


def _feedback_keys(i: dict[str, Any]) -> Callable[[str], bytes | None]:
    keys = {name: _b(pk) for name, pk in i["keys"].items()}
    return keys.get


def feedback_open(i: dict[str, Any]) -> dict[str, Any]:
    from blindmatch.protocol import feedback as fb

    try:
        r = fb.open_record(_b(i["record"]), _feedback_keys(i))
    except fb.FeedbackError as exc:
        raise OpError(f"feedback:{exc.code}", str(exc)) from exc
    return {
        "id": _h(r.id),
        "origin": r.origin,
        "holder": r.holder,
        "item": _h(r.item),
        "opinion": r.opinion,
        "at_ms": r.at_ms,
    }


def feedback_aggregate(i: dict[str, Any]) -> dict[str, Any]:
    from blindmatch.protocol import feedback as fb

    try:
        records = [fb.open_record(_b(r), _feedback_keys(i)) for r in i["records"]]
    except fb.FeedbackError as exc:
        raise OpError(f"feedback:{exc.code}", str(exc)) from exc
    op = fb.aggregate(records)
    return {
        "confirmations": op.confirmations,
        "disputes": op.disputes,
        "appeals_upheld": op.appeals_upheld,
        "withdrawn": op.withdrawn,
        "label": op.label,
    }


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "oprf.derive_key_pair": oprf_derive_key_pair,
    "oprf.blind": oprf_blind,
    "oprf.blind_evaluate": oprf_blind_evaluate,
    "oprf.finalize": oprf_finalize,
    "oprf.poprf_blind": oprf_poprf_blind,
    "oprf.poprf_blind_evaluate": oprf_poprf_blind_evaluate,
    "oprf.poprf_finalize": oprf_poprf_finalize,
    "threshold.encrypt": threshold_encrypt,
    "threshold.verify": threshold_verify,
    "threshold.respond": threshold_respond,
    "threshold.decide": threshold_decide,
    "envelope.seal": envelope_seal,
    "envelope.open": envelope_open,
    "canonical.decode": canonical_decode,
    "group.decode": group_decode,
    "index.key_id": index_key_id,
    "index.entry": index_entry,
    "index.table_entry": index_table_entry,
    "index.resolve": index_resolve,
    "threshold.seal": threshold_seal,
    "threshold.open": threshold_open,
    "threshold.release_scalar": threshold_release_scalar,
    "roster.verify": roster_verify,
    "feedback.open": feedback_open,
    "feedback.aggregate": feedback_aggregate,
}
# The signals, derivatives, registry and log chapters define their own operations, and so may
# each signal type's registry entry.
OPS.update(lsh_ops.OPS)
OPS.update(derivative_ops.OPS)
OPS.update(signal_types.conformance_ops())
for _chapter in (federation_ops, transparency_ops, uploaders_ops):
    OPS.update(_chapter.OPS)

# Error codes a conforming implementation reports; vectors name them.
_ERROR_CODES: tuple[tuple[type[Exception], str], ...] = (
    (oprf.VerifyError, "oprf-verify"),
    (oprf.DeserializeError, "oprf-deserialize"),
    (oprf.OprfError, "oprf-input"),
    (th.ThresholdError, "threshold-invalid"),
    (canonical.CanonicalError, "canonical"),
)


def register_op(name: str, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    OPS[name] = fn


def run(op: str, data: dict[str, Any]) -> dict[str, Any]:
    """Run one operation; errors come back as ``OpError`` with a vector-level code."""
    fn = OPS.get(op)
    if fn is None:
        raise OpError("unsupported-op", op)
    try:
        return big_ints_to_json(fn(data))
    except OpError:
        raise
    except envelope.EnvelopeError as exc:
        raise OpError(f"envelope:{exc.code}", exc.detail) from exc
    except (KeyError, TypeError) as exc:
        raise OpError("bad-request", f"{exc.__class__.__name__}: {exc}") from exc
    except Exception as exc:
        for cls, code in _ERROR_CODES:
            if isinstance(exc, cls):
                raise OpError(code, str(exc)) from exc
        raise
