"""Vectors for specs/signals-and-lsh.md: PDQ bit order and hex form, the median quantisation and
dihedral variants of a float vector, and the bucket keys of each LSH scheme (index keys and
multi-probe keys). Every case is in the conformance format {"id", "op", "input", "expected"}.
Float vectors and hashes come from fixed seeds.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from blindmatch.protocol import lsh_ops  # noqa: F401  (registers the ops)
from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.signals import pdq_bits_from_float, pdq_from_bits


def _float_vector(seed: int) -> list[float]:
    # Shaped like PDQ's DCT output (a few large low-frequency values), rounded to 1/1024 so
    # the decimal text in JSON is exact.
    rng = np.random.default_rng([20261123, seed])
    scale = np.repeat(np.linspace(80, 8, 16), 16)
    v = np.round(rng.standard_normal(256) * scale * 1024) / 1024
    return [float(x) for x in v]


def _hex_of(floats: list[float]) -> str:
    return pdq_from_bits(pdq_bits_from_float(floats)).hex()


def signal_cases() -> list[dict[str, Any]]:
    one_bit = ["80" + "00" * 31, "00" * 31 + "01", "0102040810204080" * 4]
    cases = [_case(f"bits-{n}", "pdq.bits", {"hash": h}) for n, h in enumerate(one_bit)]
    cases.append(_case("bits-uppercase-hex", "pdq.bits", {"hash": "F" * 64}))
    cases.append(_case("bits-bad-length", "pdq.bits", {"hash": "0" * 62}))
    cases.append(_case("bits-bad-digit", "pdq.bits", {"hash": "z" * 64}))
    for n in range(2):
        cases.append(_case(f"from-float-{n}", "pdq.from_float", {"float_vector": _float_vector(n)}))
    cases.append(
        _case("from-float-short", "pdq.from_float", {"float_vector": _float_vector(0)[:255]})
    )
    a, b = _hex_of(_float_vector(0)), _hex_of(_float_vector(1))
    cases.append(_case("distance", "pdq.distance", {"a": a, "b": b}))
    return cases


def lsh_cases(scheme_name: str) -> list[dict[str, Any]]:
    scheme = SCHEMES[scheme_name]
    cases = [_case("tables", "lsh.table_positions", {"scheme": scheme_name})]
    for n in range(3):
        floats = _float_vector(10 + n)
        h = _hex_of(floats)
        cases.append(_case(f"index-{n}", "lsh.index_keys", {"scheme": scheme_name, "hash": h}))
        cases.append(
            _case(
                f"probe-{n}",
                "lsh.probe_keys",
                {"scheme": scheme_name, "hash": h, "float_vector": floats, "budget": None},
            )
        )
    floats = _float_vector(20)
    h = _hex_of(floats)
    small = scheme.tables + 5
    cases.append(
        _case(
            "probe-budget-small",
            "lsh.probe_keys",
            {"scheme": scheme_name, "hash": h, "float_vector": floats, "budget": small},
        )
    )
    cases.append(
        _case(
            "probe-no-float-vector",
            "lsh.probe_keys",
            {"scheme": scheme_name, "hash": h, "float_vector": None, "budget": None},
        )
    )
    # Ties: costs repeat, so the (cost, table, positions) tie-break decides the order.
    ties = [float((i % 4) - 1.5) for i in range(256)]
    cases.append(
        _case(
            "probe-ties",
            "lsh.probe_keys",
            {"scheme": scheme_name, "hash": _hex_of(ties), "float_vector": ties, "budget": None},
        )
    )
    cases.append(
        _case(
            "probe-budget-too-large",
            "lsh.probe_keys",
            {"scheme": scheme_name, "hash": h, "float_vector": floats, "budget": 10_000},
        )
    )
    cases.append(_case("unknown-scheme", "lsh.index_keys", {"scheme": "pdq-lsh-0", "hash": h}))
    frame = {"scheme": scheme_name, "hash": h, "signal": "vpdq"}
    cases.append(_case("index-vpdq-frame", "lsh.index_keys", frame))
    cases.append(
        _case("probe-vpdq-frame", "lsh.probe_keys", {**frame, "float_vector": floats, "budget": 8})
    )
    cases.append(_case("index-bad-signal", "lsh.index_keys", {**frame, "signal": "sha256"}))
    digest = hashlib.sha256(b"blindmatch exact-copy example").hexdigest()
    cases.append(_case("exact-key", "lsh.exact_key", {"scheme": scheme_name, "sha256": digest}))
    return cases


def generate() -> dict[str, object]:
    cases = signal_cases()
    for name in sorted(SCHEMES):
        cases += [{**c, "id": f"{name}/{c['id']}"} for c in lsh_cases(name)]
    return {
        "lsh.json": {
            "name": "PDQ signals and LSH bucket keys",
            "spec": "specs/signals-and-lsh.md",
            "version": 1,
            "cases": cases,
        }
    }
