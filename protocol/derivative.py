"""Derivative-robust matching: PDQ hashes of picture regions ("tiles"), signal type ``pdq-tiles-1``.

Normative description: ``specs/derivatives.md``; vectors: ``specs/vectors/derivative.json``;
measurements: ``bench/results/derivatives.md``. Pure: no pixels, no I/O (the pixel work lives in
``blindmatch.node.media.tiles``).

A "nudified" derivative keeps most of the source photo (background, face, hair, framing) and
regenerates a large body region, so its whole-image PDQ hash is far from the source's. Hashes of
the regions it kept are not. In short:

* **Geometry.** A picture is cut into an ``n x n`` grid of cells (``n`` in ``query_grids``); the
  cell ``g{n}c{col}r{row}`` covers columns ``col/n .. (col+1)/n`` and rows ``row/n .. (row+1)/n``
  of a *frame*. A querier cuts its picture as it is (frame = the whole picture). A holder also
  cuts the centred crops of the source by each fraction in ``index_frames``, so a copy cropped
  about its centre by that much still lines up cell for cell.
* **Quality gate.** A tile whose PDQ quality is below ``min_quality`` (flat sky, walls, the smooth
  fill an inpainting leaves) is neither indexed nor queried: such tiles match everything.
* **Buckets.** A tile hash is bucketed exactly like a whole-picture hash under ``pdq-lsh-1``
  (same tables, probes and budget), but its keys carry the signal name ``pdq-tile/<cell>``, so a
  tile can only ever meet tiles of *the same cell*: the layout is in the key, and no position has
  to be released.
* **Confirmation.** Each candidate tile is confirmed by the private threshold test with
  threshold ``threshold`` (39 for ``pdq-tiles-1``). A holder releases, per tile item, an
  opaque ``group`` reference shared by the tiles of one source picture and ``source_cells``,
  the mask of the source's quality cells (never a hash).
* **The rule.** A query picture matches a source when at least ``min_regions`` distinct quality
  cells of the query are confirmed against tiles of that one source group. Coverage = confirmed
  cells / (quality cells of the query and of the source): at or above ``copy_coverage`` a
  near-exact copy, below it a derivative (a region of the source, or of the query, was not found).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from blindmatch.protocol.lsh import PDQ_LSH_1, BitSamplingScheme, Probe
from blindmatch.protocol.matching import Confirmation, PeerExchange, QueryHash

SIGNAL = "pdq-tile"  # the signal name of a tile hash (bucket keys add "/<cell>")
MAX_TILE_THRESHOLD = 64  # the private test allows more; tiles beyond 64 bits are noise
RELEASE_GROUP_BYTES = 8  # the opaque per-source reference a holder releases with each tile
_CELL = re.compile(r"^g([1-9][0-9]?)c([0-9]{1,2})r([0-9]{1,2})$")

KIND_COPY = "copy"
KIND_DERIVATIVE = "derivative"
KIND_NONE = "none"


class DerivativeError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Cell:
    """One cell of an ``grid x grid`` cut of a frame."""

    grid: int
    col: int
    row: int

    def __post_init__(self) -> None:
        if not (1 <= self.grid <= 16 and 0 <= self.col < self.grid and 0 <= self.row < self.grid):
            raise DerivativeError(f"no cell c{self.col}r{self.row} in a {self.grid}x grid")

    @property
    def label(self) -> str:
        return f"g{self.grid}c{self.col}r{self.row}"

    @classmethod
    def parse(cls, label: str) -> Cell:
        m = _CELL.match(label) if isinstance(label, str) else None
        if m is None:
            raise DerivativeError(f"not a cell label: {label!r}")
        cell = cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if cell.label != label:  # one label per cell: no leading zeros
            raise DerivativeError(f"not a canonical cell label: {label!r}")
        return cell


@dataclass(frozen=True)
class Tile:
    """A tile to hash: its cell, the frame it was cut from, and its pixel box."""

    cell: Cell
    frame: int  # index into the scheme's index_frames (0 = the picture as it is)
    box: tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)


def frame_box(width: int, height: int, crop: float) -> tuple[int, int, int, int]:
    """The centred crop removing ``crop`` of each dimension (as a centred crop edit does it:
    ``dx = round(width * crop)``, ``dx // 2`` from the left, the rest from the right)."""
    if not 0.0 <= crop < 0.5:
        raise DerivativeError("crop fraction must be in [0, 0.5)")
    dx, dy = round(width * crop), round(height * crop)
    return (dx // 2, dy // 2, width - (dx - dx // 2), height - (dy - dy // 2))


def cell_box(frame: tuple[int, int, int, int], cell: Cell) -> tuple[int, int, int, int]:
    """Integer pixel box of ``cell`` in ``frame``: ``left + (col * frame_width) // grid`` etc."""
    left, top, right, bottom = frame
    fw, fh = right - left, bottom - top
    n = cell.grid
    return (
        left + (cell.col * fw) // n,
        top + (cell.row * fh) // n,
        left + ((cell.col + 1) * fw) // n,
        top + ((cell.row + 1) * fh) // n,
    )


class CellScheme(BitSamplingScheme):
    """``pdq-lsh-1``'s tables and probing with the key's signal name set to ``pdq-tile/<cell>``."""

    signal_name: str

    def __init__(self, base: BitSamplingScheme, signal_name: str) -> None:
        super().__init__(
            name=base.name,
            signal_type=base.signal_type,
            tables=base.tables,
            bits_per_table=base.bits_per_table,
            probe_budget=base.probe_budget,
            candidate_bits=base.candidate_bits,
            max_flips=base.max_flips,
            cost_model=base.cost_model,
        )
        object.__setattr__(self, "signal_name", signal_name)

    @cached_property
    def _key_prefix(self) -> bytes:
        tag = self.tag
        signal = self.signal_name.encode("ascii")
        return bytes([len(tag)]) + tag + bytes([len(signal)]) + signal


@dataclass(frozen=True)
class DerivativeScheme:
    """The versioned parameters of a tile signal."""

    name: str
    query_grids: tuple[int, ...]  # grids a querier cuts its picture into
    index_frames: tuple[float, ...]  # centred crop fractions a holder also cuts (0.0 first)
    min_quality: int  # tiles of lower PDQ quality are neither indexed nor queried
    threshold: int  # the private threshold test's T for a tile
    min_regions: int  # k: distinct cells confirmed against one source
    copy_coverage: float  # coverage at or above which a match is a near-exact copy
    lsh: BitSamplingScheme = PDQ_LSH_1
    # Probes a querier sends per tile hash unless told otherwise (at most lsh.probe_budget). A
    # querier-side setting: the holder's index does not depend on it.
    query_probes: int = 64
    _schemes: dict[str, CellScheme] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.index_frames or self.index_frames[0] != 0.0:
            raise DerivativeError("index_frames must start with 0.0 (the picture as it is)")
        if not 0 < self.threshold <= MAX_TILE_THRESHOLD:
            raise DerivativeError(f"tile threshold must be in 1..{MAX_TILE_THRESHOLD}")
        if self.min_regions < 2:
            raise DerivativeError("min_regions must be at least 2")
        if not 1 <= self.query_probes <= self.lsh.probe_budget:
            raise DerivativeError(f"query_probes must be in 1..{self.lsh.probe_budget}")

    @property
    def cells(self) -> list[Cell]:
        return [Cell(n, c, r) for n in self.query_grids for r in range(n) for c in range(n)]

    def query_tiles(self, width: int, height: int) -> list[Tile]:
        """What a querier hashes: every cell of every query grid, over the whole picture."""
        frame = (0, 0, width, height)
        return [Tile(cell, 0, cell_box(frame, cell)) for cell in self.cells]

    def index_tiles(self, width: int, height: int) -> list[Tile]:
        """What a holder hashes: every cell over each centred crop frame, frame by frame."""
        out = []
        for fi, crop in enumerate(self.index_frames):
            frame = frame_box(width, height, crop)
            out += [Tile(cell, fi, cell_box(frame, cell)) for cell in self.cells]
        return out

    def signal_name(self, cell: Cell) -> str:
        return f"{SIGNAL}/{cell.label}"

    def cell_scheme(self, cell: Cell) -> CellScheme:
        name = self.signal_name(cell)
        if name not in self._schemes:
            self._schemes[name] = CellScheme(self.lsh, name)
        return self._schemes[name]

    def index_keys(self, cell: Cell, hash32: bytes) -> list[bytes]:
        return self.cell_scheme(cell).index_keys(hash32)

    def probes(
        self,
        cell: Cell,
        hash32: bytes,
        float_vector: Sequence[float] | None = None,
        budget: int | None = None,
    ) -> list[Probe]:
        return self.cell_scheme(cell).probes(hash32, float_vector, budget)

    def probe_keys(
        self,
        cell: Cell,
        hash32: bytes,
        float_vector: Sequence[float] | None = None,
        budget: int | None = None,
    ) -> list[bytes]:
        return [p.key for p in self.probes(cell, hash32, float_vector, budget)]

    def gate(self, quality: int) -> bool:
        return quality >= self.min_quality


# The chosen signal (bench/results/derivatives.md gives the frontier behind each value).
PDQ_TILES_1 = DerivativeScheme(
    name="pdq-tiles-1",
    query_grids=(4, 5),
    index_frames=(0.0, 0.05, 0.10),
    min_quality=30,
    threshold=39,
    min_regions=2,
    copy_coverage=0.8,
)
DERIVATIVE_SCHEMES: dict[str, DerivativeScheme] = {PDQ_TILES_1.name: PDQ_TILES_1}


# --- the rule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileConfirmation:
    """One confirmed tile: the query cell it was asked for and the source group it hit."""

    cell: Cell
    group: bytes


@dataclass(frozen=True)
class DerivativeVerdict:
    """What the querier concludes about one query picture against one source group."""

    kind: str  # "copy", "derivative" or "none"
    group: bytes | None
    matched_cells: tuple[str, ...]  # quality cells confirmed against the group
    unmatched_cells: tuple[str, ...]  # quality cells not confirmed
    gated_cells: (
        int  # regions: quality cells of the query and of the source (coverage's denominator)
    )
    coverage: float
    whole_match: bool

    def as_result(self) -> dict[str, Any]:
        """The fields a match result carries (specs/derivatives.md, section 6)."""
        return {
            "signal": "pdq-tiles-1",
            "kind": self.kind,
            "matched_regions": list(self.matched_cells),
            "unmatched_regions": list(self.unmatched_cells),
            "regions": self.gated_cells,
            "coverage": round(self.coverage, 3),
            "whole_image_match": self.whole_match,
        }


def cells_mask(scheme: DerivativeScheme, cells: Iterable[Cell]) -> int:
    """The bitmask of ``cells`` over ``scheme.cells`` (bit i set: ``scheme.cells[i]``)."""
    order = {c: i for i, c in enumerate(scheme.cells)}
    mask = 0
    for c in cells:
        mask |= 1 << order[c]
    return mask


def mask_cells(scheme: DerivativeScheme, mask: int) -> set[Cell]:
    if not isinstance(mask, int) or mask < 0 or mask >> len(scheme.cells):
        raise DerivativeError("source_cells is not a mask of this scheme's cells")
    return {c for i, c in enumerate(scheme.cells) if mask >> i & 1}


def classify(
    scheme: DerivativeScheme,
    quality_cells: Iterable[Cell],
    confirmations: Iterable[TileConfirmation],
    whole_match: bool = False,
    source_cells: Mapping[bytes, Iterable[Cell]] | None = None,
) -> list[DerivativeVerdict]:
    """Apply the rule to what a querier confirmed for one query picture.

    ``quality_cells``: the cells of the query picture that passed the quality gate (only those
    were queried); ``confirmations``: the confirmed tiles, each with the source group the holder
    released; ``whole_match``: whether the whole-picture PDQ hash of the same picture was
    confirmed (<= 31) against the same holder; ``source_cells``: per group, the source's quality
    cells (frame 0) as its holder released them.

    A group *matches* when at least ``min_regions`` distinct quality cells are confirmed against
    it. Its *regions* are the query's quality cells together with the source's quality cells;
    coverage = confirmed cells / regions. The match is a ``copy`` when coverage >=
    ``copy_coverage``, else a ``derivative``: some region the source has, or the query has, was
    not found. Returns one verdict per matching group, most confirmed cells first; when none
    matches but ``whole_match`` holds, one ``copy`` verdict with group None (a whole-picture
    match the tiles cannot judge).
    """
    gated = set(quality_cells)
    by_group: dict[bytes, set[Cell]] = {}
    for c in confirmations:
        if c.cell in gated:
            by_group.setdefault(c.group, set()).add(c.cell)
    verdicts = []
    for group, cells in by_group.items():
        if len(cells) < scheme.min_regions:
            continue
        regions = gated | set((source_cells or {}).get(group, ()))
        coverage = len(cells) / len(regions)
        kind = KIND_COPY if coverage >= scheme.copy_coverage else KIND_DERIVATIVE
        verdicts.append(
            DerivativeVerdict(
                kind=kind,
                group=group,
                matched_cells=tuple(c.label for c in sorted(cells)),
                unmatched_cells=tuple(c.label for c in sorted(regions - cells)),
                gated_cells=len(regions),
                coverage=coverage,
                whole_match=whole_match,
            )
        )
    verdicts.sort(key=lambda v: (-len(v.matched_cells), v.group or b""))
    if not verdicts and whole_match:
        verdicts.append(
            DerivativeVerdict(
                kind=KIND_COPY,
                group=None,
                matched_cells=(),
                unmatched_cells=tuple(c.label for c in sorted(gated)),
                gated_cells=len(gated),
                coverage=0.0,
                whole_match=True,
            )
        )
    return verdicts


# --- the exchange: one batch, each query tile under its own cell's keys ------------------------


def is_cell_variant(variant: str) -> bool:
    """Whether a query hash's variant names a tile cell (else it is a whole-picture variant)."""
    return isinstance(variant, str) and _CELL.match(variant) is not None


def _cells_for_copy(scheme: DerivativeScheme, regions: int) -> int:
    """The fewest confirmed cells that :func:`classify` calls a copy among ``regions``
    (computed with its own comparison, so that float rounding cannot set them apart)."""
    n = max(0, math.floor(scheme.copy_coverage * regions) - 1)
    while n < regions and n / regions < scheme.copy_coverage:
        n += 1
    return n


def staged_round(ex: PeerExchange, scheme: DerivativeScheme) -> list[tuple[int, int]]:
    """Only the threshold queries the rule needs (specs/derivatives.md 6.5), as ``(query
    index, how many of its unasked candidates)``: first every whole-picture query hash with
    candidates; no tile at all once a whole-picture match names a protected source (the upload
    is its copy, 6.2); then tiles a few at a time, the hashes with the most candidates first,
    until one group's verdict is settled or no group can reach ``min_regions`` any more. Every
    query hash is asked its best candidate first and the rest only in a later round, showing
    the tokens of what it confirmed (the holder answers that item's other candidates ``same``,
    protocol 8.5); a tile hash that confirmed its cell is asked its rest last. Each query hash
    asked costs the holder a verification of 256 bit proofs (once: it keeps verified queries),
    each candidate answered a threshold answer."""

    def take(qi: int) -> tuple[int, int]:
        rest = len(ex.unasked(qi))
        # an older holder shows no 'same' (protocol 8.5): a hash asked is asked whole
        first = ex.first_round if qi not in ex.asked and not ex.legacy_holder else None
        return (qi, min(rest, first) if first else rest)

    open_ = [qi for qi in sorted(ex.candidates) if ex.unasked(qi)]
    if any(
        not is_cell_variant(c.variant)
        and c.release.get("provenance") == "protected-source"
        and isinstance(c.release.get("group"), bytes)
        for c in ex.confirmed
    ):
        return []
    whole = [qi for qi in open_ if not is_cell_variant(ex.queries[qi].variant)]
    if whole:
        return [take(qi) for qi in whole]
    tiles = [qi for qi in open_ if is_cell_variant(ex.queries[qi].variant)]
    quality = {Cell.parse(q.variant) for q in ex.queries if is_cell_variant(q.variant)}
    open_cells = {Cell.parse(ex.queries[qi].variant) for qi in tiles}
    by_group: dict[bytes, set[Cell]] = {}
    for t in tile_confirmations(ex.confirmed):
        by_group.setdefault(t.group, set()).add(t.cell)
    sources = source_cells(scheme, ex.confirmed)
    best = max((len(cells) for cells in by_group.values()), default=0)
    if best + len(tiles) < scheme.min_regions:
        return []  # no group can match any more
    size = scheme.min_regions - best
    for group, cells in by_group.items():
        if len(cells) < scheme.min_regions:
            continue
        for_copy = _cells_for_copy(scheme, len(quality | sources.get(group, set())))
        if len(cells) >= for_copy or len(cells) + len(open_cells - cells) < for_copy:
            return []  # a copy, or a derivative whatever the other tiles would say
        size = max(size, for_copy - len(cells))  # a copy needs every one of them
    # A tile hash with many candidates is likely a true match (it hits in many tables).
    confirmed_at = {c.query_index for c in ex.confirmed}
    fresh = sorted(
        (qi for qi in tiles if qi not in ex.asked), key=lambda q: (-len(ex.candidates[q]), q)
    )
    retry = [qi for qi in tiles if qi in ex.asked and qi not in confirmed_at]
    done = [qi for qi in tiles if qi in ex.asked and qi in confirmed_at]
    return [take(qi) for qi in (fresh + retry + done)[: max(1, size)]]


class TilePeerExchange(PeerExchange):
    """:class:`PeerExchange` for a picture's whole-picture hashes *and* its tile hashes in one
    batch (one round trip per peer): a query hash whose ``variant`` is a cell label is probed
    under that cell's keys, any other under the plain scheme's (``scheme`` must be a
    :class:`DerivativeScheme`; its ``lsh`` is the whole-picture scheme)."""

    def probe_keys(self, query: QueryHash) -> list[bytes]:
        if is_cell_variant(query.variant):
            cell = Cell.parse(query.variant)
            budget = self.scheme.query_probes if self.probe_budget is None else self.probe_budget
            return self.scheme.probe_keys(cell, query.hash, query.float_vector, budget)
        return self.scheme.lsh.probe_keys(query.hash, query.float_vector, self.probe_budget)

    def next_round(self) -> list[tuple[int, int]]:
        return staged_round(self, self.scheme)

    def tile_confirmations(self) -> list[TileConfirmation]:
        return tile_confirmations(self.confirmed)

    def source_cells(self) -> dict[bytes, set[Cell]]:
        """Per group, the source's quality cells as released (``source_cells`` mask)."""
        return source_cells(self.scheme, self.confirmed)


def tile_confirmations(confirmed: Iterable[Confirmation]) -> list[TileConfirmation]:
    """The confirmed tiles among an exchange's confirmations, each with its released group."""
    out = []
    for c in confirmed:
        group = c.release.get("group")
        if not is_cell_variant(c.variant):
            continue
        if isinstance(group, bytes) and len(group) == RELEASE_GROUP_BYTES:
            out.append(TileConfirmation(Cell.parse(c.variant), group))
    return out


def source_cells(
    scheme: DerivativeScheme, confirmed: Iterable[Confirmation]
) -> dict[bytes, set[Cell]]:
    """Per group, the source's quality cells as released (``source_cells`` mask)."""
    out: dict[bytes, set[Cell]] = {}
    for c in confirmed:
        group, mask = c.release.get("group"), c.release.get("source_cells")
        if isinstance(group, bytes) and isinstance(mask, int):
            try:
                out.setdefault(group, set()).update(mask_cells(scheme, mask))
            except DerivativeError:
                continue
    return out


def release_for_tile(
    group: bytes, source_cells: int, provenance: str = "protected-source"
) -> Mapping[str, Any]:
    """What a holder releases with a tile item it answers for: the signal, the provenance class,
    the opaque group of its source picture and the mask of the source's quality cells (never a
    hash, a position beyond the cell the querier asked for, or a frame)."""
    if len(group) != RELEASE_GROUP_BYTES:
        raise DerivativeError(f"a group reference is {RELEASE_GROUP_BYTES} bytes")
    return {
        "signal": SIGNAL,
        "provenance": provenance,
        "group": group,
        "source_cells": source_cells,
    }
