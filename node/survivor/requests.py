"""What the survivor page accepts: the categories, the limits of a request, and the parsers
that turn a submit or withdraw body into checked values (or a :class:`SurvivorError` naming the
place and the rule). No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from blindmatch.node.banks.validation import PDQ_QUALITY_THRESHOLD
from blindmatch.node.errors import BlindmatchError
from blindmatch.protocol import signal_types
from blindmatch.protocol.derivative import PDQ_TILES_1, Cell, DerivativeError

PROTECTED_CATEGORY = "protected-source"
# The categories a survivor may choose (wire name -> what the page says).
CATEGORIES: dict[str, str] = {
    "ncii": "A real intimate photo of me, shared or at risk of being shared without my consent",
    "ncii-synthetic": "A fake or edited intimate image of me (for example made with AI)",
    PROTECTED_CATEGORY: (
        "An ordinary photo of me that I want to protect from being edited into a fake"
    ),
}
MAX_ITEMS = 100
MAX_BODY_BYTES = 64 * 1024  # 100 hashes are ~10 KB of JSON
# Protected sources: the derivative signal whose tiles a photo carries, and the caps.
TILE_SCHEME = PDQ_TILES_1
MAX_TILES = len(TILE_SCHEME.index_tiles(1024, 1024))  # 41 cells x 3 frames = 123
MAX_PROTECTED_ITEMS = 20
# 20 photos x 123 tiles x ~95 bytes of JSON is ~235 KB; twice that leaves room for whitespace.
MAX_PROTECTED_BODY_BYTES = 512 * 1024
_TILE_FIELDS = frozenset({"cell", "frame", "hash", "quality"})
_TILE_CELLS = frozenset(TILE_SCHEME.cells)
MIN_SECRET_HEX, MAX_SECRET_HEX = 32, 512
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


class SurvivorError(BlindmatchError):
    """A request the page refuses: ``SurvivorError(sentence, code=...)``."""


def _only_keys(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise SurvivorError(f"unknown field(s): {', '.join(unknown[:5])}", code="bad-request")


@dataclass(frozen=True)
class SubmittedTile:
    """One tile of a protected photo, as validated (``SourceTile`` of the bank API)."""

    cell: str
    frame: int
    hash: bytes
    quality: int


@dataclass(frozen=True)
class Submitted:
    """One submitted photo: its whole-picture PDQ hash and quality, and (protected-source
    only) its index tiles."""

    hash: bytes
    quality: int
    tiles: tuple[SubmittedTile, ...] = ()


def _quality(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= 100


def parse_tiles(tiles: Any, where: str) -> tuple[SubmittedTile, ...]:
    """Validate the ``tiles`` of one protected photo (``where`` names it in errors)."""
    if not isinstance(tiles, list):
        raise SurvivorError(f"{where}.tiles must be a list", code="bad-tiles")
    if len(tiles) > MAX_TILES:
        raise SurvivorError(
            f"{where}.tiles has {len(tiles)} entries; a photo has at most {MAX_TILES}"
            f" ({TILE_SCHEME.name}: {len(TILE_SCHEME.cells)} cells x"
            f" {len(TILE_SCHEME.index_frames)} frames)",
            code="too-many-tiles",
        )
    out: list[SubmittedTile] = []
    seen: set[tuple[str, int]] = set()
    frames = len(TILE_SCHEME.index_frames)
    for n, tile in enumerate(tiles):
        at = f"{where}.tiles[{n}]"
        if not isinstance(tile, dict):
            raise SurvivorError(f"{at} must be an object", code="bad-tile")
        if set(tile) != _TILE_FIELDS:
            raise SurvivorError(
                f"{at} must have exactly the fields cell, frame, hash, quality", code="bad-tile"
            )
        label = tile["cell"]
        try:
            cell = Cell.parse(label)
        except DerivativeError:
            cell = None
        # Only the canonical label (Cell.parse also reads leading zeros, e.g. "g4c01r0").
        if cell is None or cell not in _TILE_CELLS or cell.label != label:
            raise SurvivorError(
                f"{at}.cell must be a cell of {TILE_SCHEME.name} (g4c0r0 .. g5c4r4)",
                code="bad-tile-cell",
            )
        frame = tile["frame"]
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < frames:
            raise SurvivorError(f"{at}.frame must be 0..{frames - 1}", code="bad-tile-frame")
        value = tile["hash"]
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise SurvivorError(f"{at}.hash must be 64 hex characters", code="bad-tile-hash")
        quality = tile["quality"]
        if not _quality(quality):
            raise SurvivorError(f"{at}.quality must be 0..100", code="bad-tile-quality")
        if not TILE_SCHEME.gate(quality):
            raise SurvivorError(
                f"{at} is too plain to be used (quality {quality} < {TILE_SCHEME.min_quality});"
                " leave such tiles out",
                code="low-quality-tile",
            )
        key = (cell.label, frame)
        if key in seen:
            raise SurvivorError(
                f"{at} repeats cell {cell.label} of frame {frame}", code="duplicate-tile"
            )
        seen.add(key)
        out.append(SubmittedTile(cell.label, frame, bytes.fromhex(value), quality))
    return tuple(out)


def parse_submission(body: dict[str, Any]) -> tuple[list[Submitted], str]:
    """Validate a submit request: ([Submitted], category). Duplicate hashes are merged (the
    first one's tiles are kept)."""
    _only_keys(body, {"hashes", "category", "consent"})
    if body.get("consent") is not True:
        raise SurvivorError(
            "consent must be true: nothing is kept without it", code="consent-required"
        )
    category = body.get("category")
    if not isinstance(category, str) or category not in CATEGORIES:
        raise SurvivorError(
            f"category must be one of: {', '.join(sorted(CATEGORIES))}", code="bad-category"
        )
    protected = category == PROTECTED_CATEGORY
    hashes = body.get("hashes")
    if not isinstance(hashes, list) or not hashes:
        raise SurvivorError("hashes must be a non-empty list", code="bad-hashes")
    if len(hashes) > MAX_ITEMS:
        raise SurvivorError(f"at most {MAX_ITEMS} hashes in one submission", code="too-many")
    if protected and len(hashes) > MAX_PROTECTED_ITEMS:
        raise SurvivorError(
            f"at most {MAX_PROTECTED_ITEMS} photos to protect in one submission",
            code="too-many",
        )
    allowed = {"signal_type", "hash", "quality"} | ({"tiles"} if protected else set())
    seen: dict[bytes, Submitted] = {}
    for n, entry in enumerate(hashes):
        if not isinstance(entry, dict):
            raise SurvivorError(f"hashes[{n}] must be an object", code="bad-hashes")
        if "tiles" in entry and not protected:
            raise SurvivorError(
                f"hashes[{n}].tiles is only accepted with category {PROTECTED_CATEGORY}",
                code="tiles-not-allowed",
            )
        extra = set(entry) - allowed
        if extra:
            raise SurvivorError(f"hashes[{n}] has unknown fields", code="bad-hashes")
        if entry.get("signal_type") != signal_types.PDQ.name:
            raise SurvivorError(f"hashes[{n}].signal_type must be 'pdq'", code="bad-signal")
        value = entry.get("hash")
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise SurvivorError(f"hashes[{n}].hash must be 64 hex characters", code="bad-hash")
        quality = entry.get("quality")
        if not _quality(quality) or not isinstance(quality, int):
            raise SurvivorError(f"hashes[{n}].quality must be 0..100", code="bad-quality")
        if quality < PDQ_QUALITY_THRESHOLD:
            raise SurvivorError(
                f"hashes[{n}] comes from a picture too plain to fingerprint reliably"
                f" (quality {quality} < {PDQ_QUALITY_THRESHOLD})",
                code="low-quality",
                status_hint=400,  # this surface has always answered 400 here
            )
        if protected and "tiles" not in entry:
            raise SurvivorError(
                f"hashes[{n}].tiles is required with category {PROTECTED_CATEGORY}"
                " (an empty list when no part of the photo is detailed enough)",
                code="tiles-required",
            )
        tiles = parse_tiles(entry["tiles"], f"hashes[{n}]") if protected else ()
        seen.setdefault(bytes.fromhex(value), Submitted(bytes.fromhex(value), quality, tiles))
    return list(seen.values()), category


def parse_withdrawal(body: dict[str, Any]) -> tuple[list[bytes], bytes]:
    _only_keys(body, {"items", "secret"})
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise SurvivorError("items must be a non-empty list", code="bad-items")
    if len(items) > MAX_ITEMS:
        raise SurvivorError(f"at most {MAX_ITEMS} items in one withdrawal", code="too-many")
    refs: list[bytes] = []
    for n, ref in enumerate(items):
        if not isinstance(ref, str) or not _HEX32.fullmatch(ref):
            raise SurvivorError(
                f"items[{n}] must be 32 lower-case hex characters", code="bad-items"
            )
        if bytes.fromhex(ref) not in refs:
            refs.append(bytes.fromhex(ref))
    secret = body.get("secret")
    if (
        not isinstance(secret, str)
        or not MIN_SECRET_HEX <= len(secret) <= MAX_SECRET_HEX
        or not _HEX.fullmatch(secret)
    ):
        raise SurvivorError(
            "secret must be the lower-case hex code from your receipt", code="bad-secret"
        )
    return refs, bytes.fromhex(secret)
