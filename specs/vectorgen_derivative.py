"""Vectors for specs/derivatives.md: the tile geometry of pdq-tiles-1 (query and index tiles),
tile bucket keys (index and multi-probe, under the cell's signal name), the source-cells mask and
the copy/derivative rule. Conformance format {"id", "op", "input", "expected"}; fixed seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blindmatch.protocol import derivative_ops  # noqa: F401  (registers the ops)
from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.derivative import DERIVATIVE_SCHEMES
from blindmatch.protocol.signals import pdq_bits_from_float, pdq_from_bits


def _float_vector(seed: int) -> list[float]:
    rng = np.random.default_rng([20261124, seed])
    scale = np.repeat(np.linspace(80, 8, 16), 16)
    v = np.round(rng.standard_normal(256) * scale * 1024) / 1024
    return [float(x) for x in v]


def _hex_of(floats: list[float]) -> str:
    return pdq_from_bits(pdq_bits_from_float(floats)).hex()


def cases(name: str) -> list[dict[str, Any]]:
    out = []
    for w, h in ((800, 500), (333, 1001), (8, 8)):
        for role in ("query", "index"):
            out.append(
                _case(
                    f"tiles-{role}-{w}x{h}",
                    "derivative.tiles",
                    {"scheme": name, "width": w, "height": h, "role": role},
                )
            )
    out.append(
        _case(
            "tiles-bad-role",
            "derivative.tiles",
            {"scheme": name, "width": 64, "height": 64, "role": "both"},
        )
    )
    floats = _float_vector(0)
    h = _hex_of(floats)
    for cell in ("g4c0r0", "g4c3r2"):
        out.append(
            _case(
                f"index-keys-{cell}",
                "derivative.index_keys",
                {"scheme": name, "cell": cell, "hash": h},
            )
        )
    out.append(
        _case(
            "probe-keys-g4c1r1",
            "derivative.probe_keys",
            {"scheme": name, "cell": "g4c1r1", "hash": h, "float_vector": floats, "budget": None},
        )
    )
    out.append(
        _case(
            "probe-keys-no-float",
            "derivative.probe_keys",
            {"scheme": name, "cell": "g4c1r1", "hash": h, "float_vector": None, "budget": 8},
        )
    )
    out.append(
        _case("bad-cell", "derivative.index_keys", {"scheme": name, "cell": "g4c4r0", "hash": h})
    )
    out.append(
        # A label is canonical (no leading zeros): "g4c01r0" names no cell.
        _case(
            "non-canonical-cell",
            "derivative.index_keys",
            {"scheme": name, "cell": "g4c01r0", "hash": h},
        )
    )
    out.append(
        _case(
            "cell-of-another-grid",
            "derivative.index_keys",
            {"scheme": name, "cell": "g3c0r0", "hash": h},
        )
    )
    out.append(
        _case(
            "unknown-scheme",
            "derivative.index_keys",
            {"scheme": "pdq-tiles-0", "cell": "g4c0r0", "hash": h},
        )
    )
    all_cells = [f"g4c{c}r{r}" for r in range(4) for c in range(4)]
    out.append(
        _case(
            "mask",
            "derivative.cells_mask",
            {"scheme": name, "cells": ["g4c0r0", "g4c3r0", "g4c3r3"]},
        )
    )
    g1, g2 = "11" * 8, "22" * 8
    top_and_sides = [c for c in all_cells if c.endswith(("r0", "r1")) or c[3] in "03"]
    rule = [
        (
            "copy",
            all_cells,
            [{"cell": c, "group": g1} for c in all_cells[:15]],
            True,
            {g1: (1 << 16) - 1},
        ),
        (
            "derivative",
            all_cells,
            [{"cell": c, "group": g1} for c in top_and_sides],
            False,
            {g1: (1 << 16) - 1},
        ),
        # regenerated cells went flat (gated out of the query) but the source had texture there
        (
            "derivative-gated",
            top_and_sides,
            [{"cell": c, "group": g1} for c in top_and_sides],
            False,
            {g1: (1 << 16) - 1},
        ),
        (
            "scattered",
            all_cells,
            [{"cell": all_cells[0], "group": g1}, {"cell": all_cells[5], "group": g2}],
            False,
            {},
        ),
        ("whole-only", all_cells[:1], [], True, {}),
        (
            "k-cells",
            all_cells,
            [{"cell": "g4c0r0", "group": g2}, {"cell": "g4c3r0", "group": g2}],
            False,
            {},
        ),
    ]
    for label, quality, confs, whole, masks in rule:
        out.append(
            _case(
                f"classify-{label}",
                "derivative.classify",
                {
                    "scheme": name,
                    "quality_cells": quality,
                    "confirmations": confs,
                    "whole_match": whole,
                    "source_cells": masks,
                },
            )
        )
    out.append(
        _case(
            "classify-bad-group",
            "derivative.classify",
            {
                "scheme": name,
                "quality_cells": all_cells,
                "confirmations": [{"cell": "g4c0r0", "group": "11"}],
                "whole_match": False,
                "source_cells": {},
            },
        )
    )
    return out


def generate() -> dict[str, object]:
    all_cases = []
    for name in sorted(DERIVATIVE_SCHEMES):
        all_cases += [{**c, "id": f"{name}/{c['id']}"} for c in cases(name)]
    return {
        "derivative.json": {
            "name": "Derivative-robust tile signal",
            "spec": "specs/derivatives.md",
            "version": 1,
            "cases": all_cases,
        }
    }
