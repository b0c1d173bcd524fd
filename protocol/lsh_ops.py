"""Conformance operations of the signals and LSH chapter (specs/signals-and-lsh.md).

Gathered into :mod:`blindmatch.protocol.conformance_ops`'s table. Byte strings travel as
lower-case hex; float vectors as JSON numbers (IEEE doubles). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# signal_types: its entries register the bucket signals of PDQ-valued types as they are imported.
from blindmatch.protocol import signal_types, signals  # noqa: F401
from blindmatch.protocol.conformance_support import OpError
from blindmatch.protocol.lsh import SCHEMES, BitSamplingScheme, pdq_valued_signals

Op = Callable[[dict[str, Any]], dict[str, Any]]


def _op_error(code: str, message: str = "") -> Exception:
    return OpError(code, message)


def _scheme(name: Any) -> BitSamplingScheme:
    scheme = SCHEMES.get(name) if isinstance(name, str) else None
    if scheme is None:
        raise _op_error("lsh:unknown-scheme", str(name))
    return scheme


def _hash(v: Any) -> bytes:
    try:
        return signals.pdq_from_hex(v)
    except signals.HashFormatError as exc:
        raise _op_error("signals:bad-hash", str(exc)) from exc


def _floats(v: Any) -> list[float] | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != signals.PDQ_BITS:
        raise _op_error("signals:bad-float-vector", "expected 256 numbers")
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        raise _op_error("signals:bad-float-vector", "expected 256 numbers")
    return [float(x) for x in v]


def _signal(v: Any) -> str:
    allowed = pdq_valued_signals()
    if v is None:
        return signals.SignalType.PDQ.value
    if not isinstance(v, str) or v not in allowed:
        raise _op_error("lsh:bad-signal", f"LSH buckets {' and '.join(allowed)} hashes")
    return v


def lsh_table_positions(i: dict[str, Any]) -> dict[str, Any]:
    return {"tables": [list(p) for p in _scheme(i["scheme"]).table_positions]}


def lsh_index_keys(i: dict[str, Any]) -> dict[str, Any]:
    scheme, signal = _scheme(i["scheme"]), _signal(i.get("signal"))
    return {"keys": [k.hex() for k in scheme.index_keys(_hash(i["hash"]), signal=signal)]}


def lsh_probe_keys(i: dict[str, Any]) -> dict[str, Any]:
    scheme = _scheme(i["scheme"])
    budget = i.get("budget")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or budget < 0
    ):
        raise _op_error("lsh:bad-budget", "budget must be a non-negative integer")
    if budget is not None and budget > scheme.probe_budget:
        raise _op_error("lsh:bad-budget", f"budget exceeds {scheme.probe_budget}")
    probes = scheme.probes(
        _hash(i["hash"]), _floats(i.get("float_vector")), budget, signal=_signal(i.get("signal"))
    )
    return {
        "probes": [
            {"table": p.table, "flipped": list(p.flipped), "key": p.key.hex()} for p in probes
        ]
    }


def lsh_exact_key(i: dict[str, Any]) -> dict[str, Any]:
    digest = i["sha256"]
    try:
        raw = bytes.fromhex(digest) if isinstance(digest, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise _op_error("signals:bad-hash", "a SHA-256 value is 64 hex digits")
    return {"key": _scheme(i["scheme"]).exact_key(raw).hex()}


def pdq_bits(i: dict[str, Any]) -> dict[str, Any]:
    """The positions of the 1 bits of a hash given in ThreatExchange hex."""
    bits = signals.pdq_to_bits(_hash(i["hash"]))
    return {"one_bits": [int(p) for p in bits.nonzero()[0]]}


def pdq_from_float(i: dict[str, Any]) -> dict[str, Any]:
    """PDQ's median quantisation of a float vector, and its eight dihedral variants."""
    floats = _floats(i["float_vector"])
    assert floats is not None
    variants = signals.dihedral_float_vectors(floats)
    return {
        "hash": signals.pdq_from_bits(signals.pdq_bits_from_float(floats)).hex(),
        "dihedral": [signals.pdq_from_bits(signals.pdq_bits_from_float(v)).hex() for v in variants],
    }


def pdq_distance(i: dict[str, Any]) -> dict[str, Any]:
    return {"distance": signals.hamming(_hash(i["a"]), _hash(i["b"]))}


OPS: dict[str, Op] = {
    "lsh.table_positions": lsh_table_positions,
    "lsh.index_keys": lsh_index_keys,
    "lsh.probe_keys": lsh_probe_keys,
    "lsh.exact_key": lsh_exact_key,
    "pdq.bits": pdq_bits,
    "pdq.from_float": pdq_from_float,
    "pdq.distance": pdq_distance,
}
