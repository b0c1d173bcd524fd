"""``pdq-tiles-1``: a protected source photo's tile hashes (specs/derivatives.md); the scheme
itself is :mod:`blindmatch.protocol.derivative`."""

from __future__ import annotations

from blindmatch.protocol import derivative
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import PeerExchange, QueryHash
from blindmatch.protocol.signal_types.base import (
    GROUP,
    SOURCE_CELLS,
    Exchange,
    SignalTypeEntry,
    register,
)
from blindmatch.protocol.signals import PDQ_BYTES


def _is_tile_variant(variant: str) -> bool:
    if not derivative.is_cell_variant(variant):
        return False
    try:
        derivative.Cell.parse(variant)
    except derivative.DerivativeError:
        return False
    return True


def _tile_probe(query: QueryHash, budget: int | None) -> list[bytes]:
    cell = derivative.Cell.parse(query.variant)
    scheme = derivative.PDQ_TILES_1
    budget = scheme.query_probes if budget is None else budget
    return scheme.probe_keys(cell, query.hash, query.float_vector, budget)


def _staged_round(exchange: PeerExchange) -> list[tuple[int, int]]:
    # A picture with tiles asks only what the derivative rule needs (derivatives.md 6.5).
    return derivative.staged_round(exchange, derivative.PDQ_TILES_1)


PDQ_TILES = register(
    SignalTypeEntry(
        name=derivative.PDQ_TILES_1.name,
        hash_bytes=PDQ_BYTES,
        exchange=Exchange.TILES,
        lsh=PDQ_LSH_1.name,
        bucket_signal=derivative.SIGNAL + "/<cell>",
        distance_threshold=derivative.PDQ_TILES_1.threshold,
        match_rule=(
            f">= {derivative.PDQ_TILES_1.min_regions} distinct quality cells confirmed against "
            "one source group; coverage decides copy or derivative"
        ),
        release_fields={"group": GROUP, "source_cells": SOURCE_CELLS},
        release_signal=derivative.SIGNAL,
        spec="specs/derivatives.md",
        vectors=("derivative.json",),
        bank_item=False,  # derived from a protected source's photo, never imported alone
        perceptual=True,
        owns_variant=_is_tile_variant,
        probe_keys=_tile_probe,
        next_round=_staged_round,
    )
)
