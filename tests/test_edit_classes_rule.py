"""The clustered-edit rule measured by ``./dev bench edits --part classes``
(bench/_edit_classes.py), on constructed tile-confirmation patterns: what the rule keys on,
not its measured accuracy."""

from __future__ import annotations

from typing import Any

from bench import _edit_classes as ec
from blindmatch.protocol import derivative as dv

SCHEME = dv.PDQ_TILES_1
ALL = set(SCHEME.cells)


def upload(distances: dict[dv.Cell, int], whole: int = 256, default: int = 0) -> dict[str, Any]:
    nearest = {c: distances.get(c, default) for c in SCHEME.cells}
    return {
        "whole": whole,
        "query_cells": dv.cells_mask(SCHEME, ALL),
        "source_cells": dv.cells_mask(SCHEME, ALL),
        "nearest": " ".join(str(nearest[c]) for c in SCHEME.cells),
    }


def test_recompression_pattern_is_a_copy() -> None:
    # every tile moved a little (band 16-31), a few scattered ones beyond T: a copy
    scattered = {dv.Cell(4, 0, 0): 60, dv.Cell(5, 4, 4): 55, dv.Cell(4, 3, 1): 50}
    assert ec.clustered_edit_call(upload(scattered, whole=20, default=20)) == dv.KIND_COPY
    # the same misses on an otherwise untouched picture are still not one region
    assert ec.clustered_edit_call(upload(scattered, whole=4)) == dv.KIND_COPY


def test_local_edit_is_a_derivative() -> None:
    # the top-left quarter changed: seen unconfirmed by both grids, the rest exact
    edited = {c: 120 for c in ALL if c.col / c.grid < 0.5 and c.row / c.grid < 0.5}
    assert ec.clustered_edit_call(upload(edited, whole=40)) == dv.KIND_DERIVATIVE
    # even when the whole picture still matches (a small edit)
    assert ec.clustered_edit_call(upload(edited, whole=12)) == dv.KIND_DERIVATIVE
    # an edit seen by one grid only is not enough
    one_grid = {c: 120 for c in edited if c.grid == 4}
    assert ec.clustered_edit_call(upload(one_grid, whole=12)) == dv.KIND_COPY


def test_unmatched_and_untouched() -> None:
    assert ec.clustered_edit_call(upload({}, default=200)) == dv.KIND_NONE
    assert ec.clustered_edit_call(upload({}, whole=2)) == dv.KIND_COPY
    # the node's call from the same features: a whole-picture match is a copy
    edited = {c: 120 for c in ALL if c.col / c.grid < 0.5 and c.row / c.grid < 0.5}
    assert ec._node_call(upload(edited, whole=12)) == dv.KIND_COPY
    assert ec._node_call(upload(edited, whole=40)) == dv.KIND_DERIVATIVE
