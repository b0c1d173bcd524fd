"""Conformance operations of the derivatives chapter (specs/derivatives.md).

Gathered into :mod:`blindmatch.protocol.conformance_ops`'s table. Byte strings travel as
lower-case hex; float vectors as JSON numbers. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blindmatch.protocol import derivative, signals
from blindmatch.protocol.conformance_support import OpError
from blindmatch.protocol.lsh_ops import _floats


def _scheme(name: Any) -> derivative.DerivativeScheme:
    scheme = derivative.DERIVATIVE_SCHEMES.get(name) if isinstance(name, str) else None
    if scheme is None:
        raise OpError("derivative:unknown-scheme", str(name))
    return scheme


def _cell(scheme: derivative.DerivativeScheme, label: Any) -> derivative.Cell:
    try:
        cell = derivative.Cell.parse(label)
    except derivative.DerivativeError as exc:
        raise OpError("derivative:bad-cell", str(exc)) from exc
    if cell.grid not in scheme.query_grids:
        raise OpError("derivative:bad-cell", f"{label} is not a cell of {scheme.name}")
    return cell


def _hash(v: Any) -> bytes:
    try:
        return signals.pdq_from_hex(v)
    except signals.HashFormatError as exc:
        raise OpError("signals:bad-hash", str(exc)) from exc


def _size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 8 <= v <= 1 << 16:
        raise OpError("derivative:bad-size", "width and height are integers in 8..65536")
    return v


def _group(v: Any) -> bytes:
    try:
        b = bytes.fromhex(v)
    except (TypeError, ValueError) as exc:
        raise OpError("derivative:bad-group", "group is hex") from exc
    if len(b) != derivative.RELEASE_GROUP_BYTES:
        raise OpError("derivative:bad-group", f"group is {derivative.RELEASE_GROUP_BYTES} bytes")
    return b


def derivative_tiles(i: dict[str, Any]) -> dict[str, Any]:
    scheme = _scheme(i["scheme"])
    width, height = _size(i["width"]), _size(i["height"])
    role = i["role"]
    if role == "query":
        tiles = scheme.query_tiles(width, height)
    elif role == "index":
        tiles = scheme.index_tiles(width, height)
    else:
        raise OpError("derivative:bad-role", "role is query or index")
    return {"tiles": [{"cell": t.cell.label, "frame": t.frame, "box": list(t.box)} for t in tiles]}


def derivative_index_keys(i: dict[str, Any]) -> dict[str, Any]:
    scheme = _scheme(i["scheme"])
    keys = scheme.index_keys(_cell(scheme, i["cell"]), _hash(i["hash"]))
    return {"keys": [k.hex() for k in keys]}


def derivative_probe_keys(i: dict[str, Any]) -> dict[str, Any]:
    scheme = _scheme(i["scheme"])
    budget = i.get("budget")
    if budget is not None and (
        isinstance(budget, bool)
        or not isinstance(budget, int)
        or not 0 <= budget <= scheme.lsh.probe_budget
    ):
        raise OpError("lsh:bad-budget", f"budget must be in 0..{scheme.lsh.probe_budget}")
    probes = scheme.probes(
        _cell(scheme, i["cell"]), _hash(i["hash"]), _floats(i.get("float_vector")), budget
    )
    return {
        "probes": [
            {"table": p.table, "flipped": list(p.flipped), "key": p.key.hex()} for p in probes
        ]
    }


def derivative_classify(i: dict[str, Any]) -> dict[str, Any]:
    scheme = _scheme(i["scheme"])
    quality = [_cell(scheme, c) for c in i["quality_cells"]]
    confs = [
        derivative.TileConfirmation(_cell(scheme, c["cell"]), _group(c["group"]))
        for c in i["confirmations"]
    ]
    whole = i.get("whole_match", False)
    if not isinstance(whole, bool):
        raise OpError("bad-request", "whole_match is a boolean")
    source_cells = {}
    for g, mask in (i.get("source_cells") or {}).items():
        try:
            source_cells[_group(g)] = derivative.mask_cells(scheme, mask)
        except derivative.DerivativeError as exc:
            raise OpError("derivative:bad-mask", str(exc)) from exc
    verdicts = derivative.classify(scheme, quality, confs, whole, source_cells)
    return {
        "verdicts": [
            {**v.as_result(), "group": v.group.hex() if v.group is not None else None}
            for v in verdicts
        ]
    }


def derivative_cells_mask(i: dict[str, Any]) -> dict[str, Any]:
    scheme = _scheme(i["scheme"])
    return {"mask": derivative.cells_mask(scheme, [_cell(scheme, c) for c in i["cells"]])}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "derivative.tiles": derivative_tiles,
    "derivative.index_keys": derivative_index_keys,
    "derivative.probe_keys": derivative_probe_keys,
    "derivative.classify": derivative_classify,
    "derivative.cells_mask": derivative_cells_mask,
}
