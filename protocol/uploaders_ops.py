"""Conformance operations of repeat-uploader signals (specs/uploaders.md, section 10).

Gathered into :mod:`blindmatch.protocol.conformance_ops`'s table. Byte strings are
lower-case hex; an :class:`~blindmatch.protocol.uploaders.UploaderError` becomes the vector
error code ``uploader:<code>``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blindmatch.crypto import oprf, sodium
from blindmatch.protocol import conformance_support
from blindmatch.protocol import uploaders as up
from blindmatch.protocol.conformance_support import OpError

_b, _bl = conformance_support.hex_bytes, conformance_support.hex_bytes_list


def _key(sk_hex: Any) -> oprf.ServerKey:
    sk = oprf.deserialize_scalar(_b(sk_hex), "sk")
    return oprf.ServerKey(sk=sk, pk=sodium.scalarmult_base(sk))


def _wrap(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], Any]:
    def run(i: dict[str, Any]) -> dict[str, Any]:
        try:
            return fn(i)
        except up.UploaderError as exc:
            raise OpError(f"uploader:{exc.code}", str(exc)) from exc

    return run


def identifier(i: dict[str, Any]) -> dict[str, Any]:
    return {
        "normalised": up.normalise(i["kind"], i["value"]),
        "digest": up.identifier_digest(i["kind"], i["value"]).hex(),
    }


def tag(i: dict[str, Any]) -> dict[str, Any]:
    info = up.picture_info(i["holder"], _b(i["picture"]))
    holder, keeper = _key(i["holder_sk"]), _key(i["keeper_sk"])
    stage1 = oprf.poprf_evaluate(holder, _b(i["digest"]), info)
    return {
        "info": info.hex(),
        "stage1": stage1.hex(),
        "tag": up.tag_of(oprf.evaluate(keeper, stage1, oprf.Mode.VOPRF)).hex(),
    }


def lookup(i: dict[str, Any]) -> dict[str, Any]:
    """The blinded two-stage flow with fixed blinds and proof nonces, message by message."""
    holder, keeper = _key(i["holder_sk"]), _key(i["keeper_sk"])
    picture = _b(i["picture"])
    state, elements1 = up.start(
        i["holder"], picture, _bl(i["digests"]), holder.pk, blinds=_bl(i["blinds1"])
    )
    evaluated1, proof1 = up.holder_evaluate(
        holder, i["holder"], picture, elements1, _b(i["nonce1"])
    )
    elements2 = up.after_holder(state, evaluated1, proof1, keeper.pk, blinds=_bl(i["blinds2"]))
    evaluated2, proof2 = up.keeper_evaluate(keeper, elements2, _b(i["nonce2"]))
    tags = up.finish(state, evaluated2, proof2, keeper.pk)
    hx = [x.hex() for x in elements1]
    return {
        "holder_request": hx,
        "holder_answer": [x.hex() for x in evaluated1],
        "holder_proof": proof1.hex(),
        "keeper_request": [x.hex() for x in elements2],
        "keeper_answer": [x.hex() for x in evaluated2],
        "keeper_proof": proof2.hex(),
        "tags": [t.hex() for t in tags],
    }


def verify_holder_answer(i: dict[str, Any]) -> dict[str, Any]:
    """A querier checks a holder's answer for the picture it asked about (a swapped picture or
    key fails with ``uploader:bad-proof``)."""
    state, _ = up.start(
        i["holder"], _b(i["picture"]), _bl(i["digests"]), _b(i["holder_pk"]),
        blinds=_bl(i["blinds1"]),
    )  # fmt: skip
    up.after_holder(
        state, _bl(i["evaluated"]), _b(i["proof"]), _b(i["keeper_pk"]), blinds=_bl(i["blinds2"])
    )
    return {"stage1": [x.hex() for x in state.stage1]}


def entry(i: dict[str, Any]) -> dict[str, Any]:
    tags = _bl(i["tags"])
    if i["kind"] == up.ADD:
        kind, payload = up.add_entry(_b(i["key_id"]), tags, i["expires_ms"])
    elif i["kind"] == up.REMOVE:
        kind, payload = up.remove_entry(_b(i["key_id"]), tags)
    else:
        raise up.UploaderError("bad-entry", f"unknown entry kind {i['kind']!r}")
    return {"kind": kind, "payload": payload.hex()}


def apply(i: dict[str, Any]) -> dict[str, Any]:
    signals = up.SignalSet(_b(i["key_id"]))
    for e in i["entries"]:
        signals.apply(e["kind"], _b(e["payload"]))
    now = i["now_ms"]
    live = sorted(t for t in signals.tags if signals.known(t, now))
    return {
        "live": [t.hex() for t in live],
        "known": [signals.known(t, now) for t in _bl(i.get("probe", []))],
    }


def _publication(p: dict[str, Any]) -> up.Publication:
    return up.Publication(_b(p["id"]), p["origin"], tuple(_bl(p["tags"])), p["expires_ms"])


def remove_after(i: dict[str, Any]) -> dict[str, Any]:
    gone = _publication(i["gone"])
    rest = [_publication(p) for p in i["remaining"]]
    return {"remove": [t.hex() for t in up.tags_to_remove(gone, rest, i["now_ms"])]}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    name: _wrap(fn)
    for name, fn in {
        "uploader.identifier": identifier,
        "uploader.tag": tag,
        "uploader.lookup": lookup,
        "uploader.verify_holder_answer": verify_holder_answer,
        "uploader.entry": entry,
        "uploader.apply": apply,
        "uploader.remove_after": remove_after,
    }.items()
}
