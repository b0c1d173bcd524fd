"""Media in, hashes out: decoding, validation, border removal, PDQ / SHA-256.

PDQ itself is Meta's reference implementation through the ``pdqhash`` binding; this module only
prepares pixels for it. Every way media can be bad (not an image, truncated, empty, too small, a
decompression bomb, an unsupported format) raises :class:`MediaError` with a stable ``code`` and a
message that names no pixel or hash values.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image, UnidentifiedImageError

from blindmatch.node.errors import BlindmatchError
from blindmatch.node.media.boxes import (
    MIN_SIDE,
    find_border_box,
    find_collage_cells,
    find_content_box,
    find_framed_box,
    find_nested_box,
)
from blindmatch.protocol.signals import (
    DIHEDRAL_NAMES,
    PDQ_QUALITY_THRESHOLD,
    dihedral_float_vectors,
    pdq_bits_from_float,
)

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 40_000_000  # 40 megapixels; larger claims are refused before decoding
# Pictures longer than this on a side are downscaled (area filter, aspect kept) before PDQ, as
# Meta's pdq-photo-hasher does at 512x512. We measured (bench/results/signals.md) that 512x512
# moves the hash ~9 bits from full-size hashing on average, which would cost recall against
# hashes others computed at full size (python-threatexchange and HMA hash at full size), so we
# only shrink very large pictures, where PDQ's own filters dominate the cost.
DOWNSCALE_SIDE = 1024
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".flv", ".wmv"})


class MediaError(BlindmatchError, ValueError):
    """Media that cannot be hashed: ``MediaError(sentence, code=...)``; answers 400."""

    status_hint = 400


@dataclass(frozen=True)
class PdqHash:
    hash32: bytes
    quality: int
    float_vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    dihedral: tuple[bytes, ...] | None = field(default=None, repr=False)

    @property
    def hex(self) -> str:
        return self.hash32.hex()

    @property
    def good_quality(self) -> bool:
        return self.quality >= PDQ_QUALITY_THRESHOLD


@dataclass(frozen=True)
class QueryVariant:
    name: str  # e.g. "flip_h+transpose" or "trimmed/identity"
    pdq: PdqHash


# The eight query variants: four flips done on the pixels, each also transposed in the DCT
# domain. PDQ's reference downsampling filter is not mirror-symmetric, so a mirror computed from
# the DCT (what compute_dihedral does) lands a mean 9 bits (rotate180: 14) away from hashing the
# mirrored pixels, while transposing in the DCT domain is exact; this mix is exact for all eight
# and costs four PDQ computations instead of eight.
_PIXEL_FLIPS: tuple[tuple[str, bool, bool], ...] = (
    ("identity", False, False),
    ("flip_h", False, True),  # mirror left-right
    ("flip_v", True, False),  # upside down
    ("rotate180", True, True),
)
_TRANSPOSE_INDEX = DIHEDRAL_NAMES.index("flip_plus1")  # the pure transpose of the DCT block


def pdq_query_variants(rgb: np.ndarray, prefix: str = "") -> list[QueryVariant]:
    """PDQ of the picture under all eight rotations/mirrors, each with its float vector."""
    out: list[QueryVariant] = []
    for name, flip_rows, flip_cols in _PIXEL_FLIPS:
        view = rgb[::-1] if flip_rows else rgb
        view = view[:, ::-1] if flip_cols else view
        h = pdq_of_pixels(view)
        assert h.dihedral is not None and h.float_vector is not None
        transposed_float = dihedral_float_vectors(h.float_vector)[_TRANSPOSE_INDEX]
        out.append(QueryVariant(prefix + name, h))
        out.append(
            QueryVariant(
                prefix + name + "+transpose",
                PdqHash(h.dihedral[_TRANSPOSE_INDEX], h.quality, transposed_float),
            )
        )
    return out


@dataclass(frozen=True)
class ImageHashes:
    """Everything the pipeline derives from one picture."""

    sha256: bytes
    width: int
    height: int
    pdq: PdqHash  # pdqhash of the decoded pixels (downscaled if huge): what a holder indexes
    # (left, top, right, bottom) left after border removal; looked for only with query variants
    border_box: tuple[int, int, int, int]
    variants: tuple[QueryVariant, ...] = ()  # what a querier looks up (empty unless asked for)

    @property
    def border_removed(self) -> bool:
        return self.border_box != (0, 0, self.width, self.height)


def read_media(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise MediaError(f"cannot read {p.name}: {exc.strerror}", code="unreadable") from None
    if not p.is_file():
        raise MediaError(f"{p.name} is not a regular file", code="unreadable")
    if size == 0:
        raise MediaError(f"{p.name} is empty (0 bytes)", code="empty")
    if size > MAX_FILE_BYTES:
        raise MediaError(f"{p.name} is larger than {MAX_FILE_BYTES} bytes", code="too_large")
    return p.read_bytes()


def decode_image(data: bytes) -> Image.Image:
    """Decode and validate image bytes into an RGB Pillow image."""
    if not data:
        raise MediaError("no data (0 bytes)", code="empty")
    if len(data) > MAX_FILE_BYTES:
        raise MediaError(f"larger than {MAX_FILE_BYTES} bytes", code="too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise MediaError(f"unsupported image format {fmt}", code="unsupported_format")
            width, height = image.size
            # Refuse before decoding: a small file can claim an enormous canvas.
            if width * height > MAX_PIXELS:
                raise MediaError(
                    f"{width}x{height} exceeds the {MAX_PIXELS}-pixel limit",
                    code="decompression_bomb",
                )
            if min(width, height) < MIN_SIDE:
                raise MediaError(
                    f"{width}x{height} is smaller than {MIN_SIDE}x{MIN_SIDE}", code="too_small"
                )
            image.load()
            return image.convert("RGB")
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise MediaError("not a recognised image", code="not_an_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError("image exceeds the pixel limit", code="decompression_bomb") from None
    except Exception as exc:
        # Pillow reports truncated and corrupt streams as OSError / SyntaxError, but a crafted
        # file reaches other paths too: a TIFF whose strip offset is a byte string raises
        # TypeError, an oversized one OverflowError (tests/data/fuzz/media/ keeps such files).
        # Whatever the decoder raises on these bytes, the file is what is wrong.
        raise MediaError(f"cannot decode image: {type(exc).__name__}", code="corrupt") from None


def downscale(image: Image.Image) -> Image.Image:
    """Shrink a picture longer than DOWNSCALE_SIDE to that length (aspect kept, area filter)."""
    longest = max(image.size)
    if longest <= DOWNSCALE_SIDE:
        return image
    scale = DOWNSCALE_SIDE / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


# Uncrop: a copy cut down by a centred crop (as platforms do to fit an aspect ratio) misses the
# original's outer band, which shifts PDQ's low frequencies. Extending the copy's edge pixels
# outwards by the fraction a crop of f would have removed brings it back close: measured on the
# corpus, a 5% centred crop goes from median distance 49 to 14.
UNCROP_FRACTIONS = (0.02, 0.05, 0.10)
# Of those, the one also looked up mirrored (one more query hash per upload, for mirror + crop).
UNCROP_MIRRORED = 0.05


def uncrop(rgb: np.ndarray, fraction: float) -> np.ndarray:
    """The picture with its edge pixels extended so that it would be ``fraction`` larger."""
    height, width = rgb.shape[:2]
    pad_h = round(height * fraction / (1 - fraction))
    pad_w = round(width * fraction / (1 - fraction))
    widths = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    return np.pad(rgb, widths, mode="edge")


def pdq_of_pixels(rgb: np.ndarray) -> PdqHash:
    """PDQ of an (h, w, 3) uint8 array, bit for bit as ``pdqhash.compute`` gives it.

    One call to the reference implementation (``compute_float``) yields the 256 DCT values and
    the quality; the hash is their median threshold, exactly as the reference quantises, and the
    eight dihedral hashes follow from permuting and re-signing the same values
    (:func:`~blindmatch.protocol.signals.dihedral_float_vectors`). The tests check all of this
    against ``pdqhash.compute`` and ``pdqhash.compute_dihedral``.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    vector, quality = pdqhash.compute_float(rgb)
    vector = np.asarray(vector, dtype=np.float64)
    variants = tuple(
        np.packbits(pdq_bits_from_float(v)).tobytes() for v in dihedral_float_vectors(vector)
    )
    return PdqHash(variants[0], int(quality), vector, variants)


def hash_image(
    image: Image.Image,
    *,
    sha256: bytes = b"",
    query_variants: bool = False,
    remove_border: bool = True,
) -> ImageHashes:
    """Hash a decoded picture.

    Always: the standard PDQ hash (indexable, equal to what HMA computes on the same pixels).
    With ``query_variants``: the eight rotations/mirrors of the picture and, when it has a
    border, the eight of the picture without it (names prefixed ``trimmed/``), so padded,
    letterboxed, mirrored and rotated copies find the original; and when the picture seems
    embedded among plain chrome (a caption strip, a screenshot's app interface), the hash of
    that content box (``content/identity``, ``framed/identity``), of the box left after peeling
    nested layers of chrome (``nested/identity``) and of each picture of a collage
    (``cell/0`` ...); and three "uncropped"
    versions for copies cut down by a centred crop (``uncrop/2``, ``uncrop/5``, ``uncrop/10``),
    and the 5% one mirrored (``uncrop/5+flip_h``).
    """
    small = downscale(image if image.mode == "RGB" else image.convert("RGB"))
    rgb = np.asarray(small, dtype=np.uint8)
    height, width = rgb.shape[:2]
    full_box = (0, 0, width, height)
    # Borders only matter to a querier: a holder indexes the picture as it is.
    box = find_border_box(rgb) if remove_border and query_variants else full_box
    variants: list[QueryVariant] = []
    if query_variants:
        variants = pdq_query_variants(rgb)
        pdq = variants[0].pdq
        if box != full_box:
            left, top, right, bottom = box
            variants += pdq_query_variants(rgb[top:bottom, left:right], prefix="trimmed/")
        if remove_border:
            seen = {full_box, box}
            for prefix, finder in (("content", find_content_box), ("framed", find_framed_box)):
                content = finder(rgb)
                if content in seen:
                    continue
                seen.add(content)
                left, top, right, bottom = content
                crop = pdq_of_pixels(rgb[top:bottom, left:right])
                variants.append(QueryVariant(f"{prefix}/identity", crop))
            nested = find_nested_box(rgb)
            if nested not in seen:
                seen.add(nested)
                left, top, right, bottom = nested
                crop = pdq_of_pixels(rgb[top:bottom, left:right])
                variants.append(QueryVariant("nested/identity", crop))
            # Each picture of a collage is looked up on its own. The cells are cut from the
            # picture without its solid border only: the looser finders take a collage's seam
            # for the edge of a frame. A border on one side only is more often a flat side of
            # one of the collage's pictures (a sky, a dark corner) than padding around the
            # collage, and trimming it would move every seam: the border is trimmed only on an
            # axis where it is on both sides.
            left, top, right, bottom = box
            if not (left and width - right):
                left, right = 0, width
            if not (top and height - bottom):
                top, bottom = 0, height
            for i, (cl, ct, cr, cb) in enumerate(find_collage_cells(rgb[top:bottom, left:right])):
                cell = pdq_of_pixels(rgb[top + ct : top + cb, left + cl : left + cr])
                variants.append(QueryVariant(f"cell/{i}", cell))
        for fraction in UNCROP_FRACTIONS:
            extended_rgb = uncrop(rgb, fraction)
            extended = pdq_of_pixels(extended_rgb)
            variants.append(QueryVariant(f"uncrop/{round(fraction * 100)}", extended))
            if fraction == UNCROP_MIRRORED:
                # A mirrored copy cropped a little: the mirror of the uncropped picture, hashed
                # from the flipped pixels (a mirror taken in the DCT domain is ~9 bits off).
                mirrored = pdq_of_pixels(extended_rgb[:, ::-1])
                variants.append(QueryVariant(f"uncrop/{round(fraction * 100)}+flip_h", mirrored))
    else:
        pdq = pdq_of_pixels(rgb)
    return ImageHashes(sha256, width, height, pdq, box, tuple(variants))


def hash_image_bytes(data: bytes, *, query_variants: bool = False) -> ImageHashes:
    image = decode_image(data)
    return hash_image(image, sha256=hashlib.sha256(data).digest(), query_variants=query_variants)


def sha256_file(path: str | os.PathLike[str]) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def dihedral_names() -> Sequence[str]:
    return DIHEDRAL_NAMES
