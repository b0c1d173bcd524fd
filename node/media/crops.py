"""Off-centre crops a holder banks with a picture (specs/signals-and-lsh.md 3.5)."""

from __future__ import annotations

import numpy as np

from blindmatch.node.media.hashing import MIN_SIDE, QueryVariant, pdq_of_pixels

# Off-centre crops, banked by the holder (specs/signals-and-lsh.md 3.5). A copy cut down from one
# corner (a re-share trimmed at two edges) is far from the picture's hash at 3% already, and the
# query-side uncrops, which pad evenly, only help within about 1% of a centred crop. A holder
# that banks the corner crops of its picture meets such a copy with the copy's own query hashes
# (its mirrors and rotations included: the mirror of a corner crop is the opposite corner's crop
# of the mirrored picture), at the price of more index entries per picture and no extra query
# hash per upload. A banked crop finds copies within about 1% of its fraction (measured: a 12%
# corner crop against crops of 10% and 14% is found 1 time in 4), so the fractions are 1% apart
# up to 6% (where the issue asks for 0.95) and 2% apart up to 14% (0.80 asked up to 10%): the
# frontier is in bench/results/edits.md.
BANKED_CROP_FRACTIONS = (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.12, 0.14)
# The corner each crop keeps: top-left, top-right, bottom-left, bottom-right.
BANKED_CROP_CORNERS = ("tl", "tr", "bl", "br")


def crop_box(width: int, height: int, corner: str, fraction: float) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box keeping ``corner`` when ``fraction`` of each dimension
    is cut off the two opposite edges (``c``: split evenly about the centre, as 2.1 of
    derivatives.md)."""
    dx, dy = round(width * fraction), round(height * fraction)
    if corner == "c":
        left, top = dx // 2, dy // 2
    else:
        left = 0 if corner[1] == "l" else dx
        top = 0 if corner[0] == "t" else dy
    return (left, top, left + width - dx, top + height - dy)


def crop_name(corner: str, fraction: float) -> str:
    return f"crop/{corner}/{round(fraction * 100)}"


def banked_crops(rgb: np.ndarray) -> list[QueryVariant]:
    """The off-centre crops a holder banks with a picture (``crop/<corner>/<percent>``), those
    of indexable quality only."""
    height, width = rgb.shape[:2]
    out = []
    for fraction in BANKED_CROP_FRACTIONS:
        for corner in BANKED_CROP_CORNERS:
            left, top, right, bottom = crop_box(width, height, corner, fraction)
            if min(right - left, bottom - top) < MIN_SIDE:
                continue
            h = pdq_of_pixels(rgb[top:bottom, left:right])
            if h.good_quality:
                out.append(QueryVariant(crop_name(corner, fraction), h))
    return out
