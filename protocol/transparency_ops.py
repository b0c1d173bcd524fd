"""Conformance operations of the verifiable log (specs/transparency.md, section 9).

Gathered into :mod:`blindmatch.protocol.conformance_ops`'s table. Inputs and outputs are
JSON with byte strings as lower-case hex (entries as JSON maps with ``{"hex": ...}`` for byte
strings); a :class:`~blindmatch.protocol.transparency.LogError` becomes the vector error code
``log:<code>``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blindmatch.crypto import signing
from blindmatch.protocol import conformance_support
from blindmatch.protocol import transparency as tl
from blindmatch.protocol.conformance_support import OpError

Op = Callable[[dict[str, Any]], dict[str, Any]]


_b, _bl = conformance_support.hex_bytes, conformance_support.hex_bytes_list


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise OpError("bad-request", "expected an integer")
    return v


def _hl(values: list[bytes]) -> list[str]:
    return [v.hex() for v in values]


_from_json, _to_json = conformance_support.from_json_value, conformance_support.to_json_value


def _tree(leaves: Any) -> tl.MerkleTree:
    return tl.MerkleTree.from_entries(_bl(leaves))


def _head_json(head: tl.SignedTreeHead) -> dict[str, Any]:
    return {
        "log_id": head.log_id,
        "tree_size": head.tree_size,
        "root_hash": head.root_hash.hex(),
        "timestamp_ms": head.timestamp_ms,
    }


def merkle_root(i: dict[str, Any]) -> dict[str, Any]:
    """The root of the first ``size`` leaves (default: all of them)."""
    leaves = _bl(i["leaves"])
    size = _int(i.get("size", len(leaves)))
    if not 0 <= size <= len(leaves):
        raise OpError("log:out-of-range", f"no tree of size {size} in {len(leaves)} leaves")
    return {"root": tl.MerkleTree.from_entries(leaves[:size]).root().hex()}


def merkle_inclusion(i: dict[str, Any]) -> dict[str, Any]:
    tree = _tree(i["leaves"])
    return {"path": _hl(tree.inclusion_proof(_int(i["index"]), _int(i["size"])))}


def merkle_verify_inclusion(i: dict[str, Any]) -> dict[str, Any]:
    tl.verify_inclusion(
        tl.leaf_hash(_b(i["entry"])),
        _int(i["index"]),
        _int(i["size"]),
        _bl(i["path"]),
        _b(i["root"]),
    )
    return {"ok": True}


def merkle_consistency(i: dict[str, Any]) -> dict[str, Any]:
    tree = _tree(i["leaves"])
    return {"path": _hl(tree.consistency_proof(_int(i["first"]), _int(i["second"])))}


def merkle_verify_consistency(i: dict[str, Any]) -> dict[str, Any]:
    tl.verify_consistency(
        _int(i["first"]),
        _int(i["second"]),
        _b(i["first_root"]),
        _b(i["second_root"]),
        _bl(i["path"]),
    )
    return {"ok": True}


def sth_sign(i: dict[str, Any]) -> dict[str, Any]:
    try:
        key = signing.SigningKey(_b(i["signing_seed"]))
    except ValueError as exc:
        raise OpError("bad-request", str(exc)) from exc
    head = tl.sign_tree_head(
        key,
        i["log_id"],
        _int(i["tree_size"]),
        _b(i["root_hash"]),
        _int(i["timestamp_ms"]),
    )
    return {"sth": head.to_bytes().hex()}


def sth_verify(i: dict[str, Any]) -> dict[str, Any]:
    return _head_json(tl.verify_tree_head(_b(i["sth"]), _b(i["public_key"])))


def sth_monitor(i: dict[str, Any]) -> dict[str, Any]:
    """Feed heads to a fresh monitor in order; each step is {sth, proof, allow_older?}."""
    monitor = tl.TreeHeadMonitor(i["log_id"], _b(i["public_key"]))
    for step in i["steps"]:
        monitor.observe(
            _b(step["sth"]), _bl(step.get("proof", [])), allow_older=bool(step.get("allow_older"))
        )
    if monitor.latest is None:
        raise OpError("bad-request", "no steps")
    return _head_json(monitor.latest)


def log_encode_entry(i: dict[str, Any]) -> dict[str, Any]:
    data = tl.encode_entry(_from_json(i["entry"]))
    return {"entry": data.hex(), "leaf_hash": tl.leaf_hash(data).hex()}


def log_decode_entry(i: dict[str, Any]) -> dict[str, Any]:
    return {"entry": _to_json(tl.decode_entry(_b(i["entry"])))}


def log_audit(i: dict[str, Any]) -> dict[str, Any]:
    report = tl.audit_log(
        _bl(i["entries"]),
        _b(i["sth"]),
        _b(i["public_key"]),
        leaf_hashes=_bl(i["leaf_hashes"]) if "leaf_hashes" in i else None,
        earlier_heads=_bl(i.get("earlier_heads", [])),
    )
    return {
        "tree_size": report.tree_size,
        "root_hash": report.root_hash.hex(),
        "entries_after_head": report.entries_after_head,
        "kinds": dict(sorted(report.kinds.items())),
    }


def _guarded(fn: Op) -> Op:
    def run(i: dict[str, Any]) -> dict[str, Any]:
        try:
            return fn(i)
        except tl.LogError as exc:
            raise OpError(f"log:{exc.code}", exc.detail) from exc

    return run


_OPS: dict[str, Op] = {
    "merkle.root": merkle_root,
    "merkle.inclusion": merkle_inclusion,
    "merkle.verify_inclusion": merkle_verify_inclusion,
    "merkle.consistency": merkle_consistency,
    "merkle.verify_consistency": merkle_verify_consistency,
    "sth.sign": sth_sign,
    "sth.verify": sth_verify,
    "sth.monitor": sth_monitor,
    "log.encode_entry": log_encode_entry,
    "log.decode_entry": log_decode_entry,
    "log.audit": log_audit,
}

OPS: dict[str, Op] = {name: _guarded(fn) for name, fn in _OPS.items()}
