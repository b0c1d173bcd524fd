"""Tile hashes of a picture for the derivative-robust signal ``pdq-tiles-1``.

The geometry, the quality gate and the rule are in :mod:`blindmatch.protocol.derivative`; this
module only does the pixel work: decode and downscale exactly as
:mod:`blindmatch.node.media.hashing` does for whole-picture PDQ, cut the tiles, and hash each
with the reference implementation
(``pdq_of_pixels``, i.e. ``pdqhash.compute`` on the cut pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from blindmatch.node.banks.validation import PDQ_QUALITY_THRESHOLD, SourceTile
from blindmatch.node.media.hashing import (
    PdqHash,
    decode_image,
    downscale,
    hash_image,
    pdq_of_pixels,
)
from blindmatch.protocol.derivative import PDQ_TILES_1, Cell, DerivativeScheme, Tile
from blindmatch.protocol.matching import QueryHash


@dataclass(frozen=True)
class TileHash:
    tile: Tile
    pdq: PdqHash

    @property
    def cell(self) -> Cell:
        return self.tile.cell


def _rgb(picture: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(picture, np.ndarray):
        if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
            raise ValueError("expected an (h, w, 3) uint8 array")
        return picture
    small = downscale(picture if picture.mode == "RGB" else picture.convert("RGB"))
    return np.asarray(small, dtype=np.uint8)


def hash_tiles(
    picture: Image.Image | np.ndarray,
    tiles: list[Tile],
    scheme: DerivativeScheme = PDQ_TILES_1,
    *,
    gated: bool = True,
) -> list[TileHash]:
    """PDQ of each tile's pixels; with ``gated``, tiles under the quality gate are left out.

    A Pillow image is downscaled as for whole-picture hashing (long side <= 1024); an array is
    taken as the pixels to cut (already downscaled).
    """
    rgb = _rgb(picture)
    out = []
    for tile in tiles:
        left, top, right, bottom = tile.box
        if right - left < 8 or bottom - top < 8:
            continue  # too small for PDQ to mean anything
        h = pdq_of_pixels(rgb[top:bottom, left:right])
        if gated and not scheme.gate(h.quality):
            continue
        out.append(TileHash(tile, h))
    return out


def query_tiles(
    picture: Image.Image | np.ndarray, scheme: DerivativeScheme = PDQ_TILES_1, *, gated: bool = True
) -> list[TileHash]:
    """The tile hashes a querier looks up (the picture as it is, every query cell)."""
    rgb = _rgb(picture)
    return hash_tiles(rgb, scheme.query_tiles(rgb.shape[1], rgb.shape[0]), scheme, gated=gated)


def index_tiles(
    picture: Image.Image | np.ndarray, scheme: DerivativeScheme = PDQ_TILES_1, *, gated: bool = True
) -> list[TileHash]:
    """The tile hashes a holder indexes for a protected source picture (every frame)."""
    rgb = _rgb(picture)
    return hash_tiles(rgb, scheme.index_tiles(rgb.shape[1], rgb.shape[0]), scheme, gated=gated)


def query_tiles_bytes(data: bytes, scheme: DerivativeScheme = PDQ_TILES_1) -> list[TileHash]:
    return query_tiles(decode_image(data), scheme)


def index_tiles_bytes(data: bytes, scheme: DerivativeScheme = PDQ_TILES_1) -> list[TileHash]:
    return index_tiles(decode_image(data), scheme)


def picture_queries(
    data: bytes, *, tiles: bool = True, scheme: DerivativeScheme = PDQ_TILES_1
) -> list[QueryHash]:
    """Everything a querier looks up for one picture: the whole-picture query variants of
    good quality (rotations, mirrors, border/crop variants) and, with ``tiles``, the gated
    tile hashes of the picture, each tile under its cell label as ``variant``."""
    image = decode_image(data)
    whole = hash_image(image, query_variants=True)
    queries = [
        QueryHash(v.pdq.hash32, v.pdq.float_vector, v.name)
        for v in whole.variants
        if v.pdq.quality >= PDQ_QUALITY_THRESHOLD
    ]
    if tiles:
        queries += [
            QueryHash(t.pdq.hash32, t.pdq.float_vector, t.cell.label)
            for t in query_tiles(image, scheme)
        ]
    return queries


def protected_source(
    data: bytes, scheme: DerivativeScheme = PDQ_TILES_1
) -> tuple[PdqHash, list[SourceTile]]:
    """What a holder banks for a protected source photo: its whole-picture PDQ hash and its
    gated index tiles (every frame), as :class:`SourceTile` values for
    ``BankService.add_protected_source``."""
    image = decode_image(data)
    whole = hash_image(image)
    return whole.pdq, [
        SourceTile(t.cell.label, t.tile.frame, t.pdq.hash32, t.pdq.quality)
        for t in index_tiles(image, scheme)
    ]
