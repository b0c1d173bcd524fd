"""Media in, hashes out: decoding, validation, border removal, PDQ / vPDQ / SHA-256.

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

from blindmatch.node.errors import CodedError
from blindmatch.protocol.signals import (
    DIHEDRAL_NAMES,
    PDQ_QUALITY_THRESHOLD,
    VpdqFrame,
    dihedral_float_vectors,
    pdq_bits_from_float,
    pdq_from_hex,
)

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 40_000_000  # 40 megapixels; larger claims are refused before decoding
MIN_SIDE = 8  # PDQ's 64x64 intermediate needs a few real pixels; 1x1..7x7 yield quality 0
# Pictures longer than this on a side are downscaled (area filter, aspect kept) before PDQ, as
# Meta's pdq-photo-hasher does at 512x512. We measured (bench/results/signals.md) that 512x512
# moves the hash ~9 bits from full-size hashing on average, which would cost recall against
# hashes others computed at full size (python-threatexchange and HMA hash at full size), so we
# only shrink very large pictures, where PDQ's own filters dominate the cost.
DOWNSCALE_SIDE = 1024
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".flv", ".wmv"})

# Border removal: a line (row or column) at an edge is padding when at least
# BORDER_LINE_FRACTION of its pixels lie within BORDER_TOLERANCE (per channel) of the colour of
# the outermost line. A border thinner than BORDER_MIN_FRACTION of the side is left alone (it is
# more often a natural dark edge than padding), and at most BORDER_MAX_FRACTION of a side is
# removed from one edge, so a nearly flat picture is never trimmed away.
BORDER_TOLERANCE = 24
BORDER_LINE_FRACTION = 0.98
BORDER_MIN_FRACTION = 0.01
BORDER_MAX_FRACTION = 0.45


class MediaError(CodedError, ValueError):
    """Media that cannot be hashed: ``MediaError(code, sentence)``; answers 400."""

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
        raise MediaError("unreadable", f"cannot read {p.name}: {exc.strerror}") from None
    if not p.is_file():
        raise MediaError("unreadable", f"{p.name} is not a regular file")
    if size == 0:
        raise MediaError("empty", f"{p.name} is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise MediaError("too_large", f"{p.name} is larger than {MAX_FILE_BYTES} bytes")
    return p.read_bytes()


def decode_image(data: bytes) -> Image.Image:
    """Decode and validate image bytes into an RGB Pillow image."""
    if not data:
        raise MediaError("empty", "no data (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise MediaError("too_large", f"larger than {MAX_FILE_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise MediaError("unsupported_format", f"unsupported image format {fmt}")
            width, height = image.size
            # Refuse before decoding: a small file can claim an enormous canvas.
            if width * height > MAX_PIXELS:
                raise MediaError(
                    "decompression_bomb",
                    f"{width}x{height} exceeds the {MAX_PIXELS}-pixel limit",
                )
            if min(width, height) < MIN_SIDE:
                raise MediaError(
                    "too_small", f"{width}x{height} is smaller than {MIN_SIDE}x{MIN_SIDE}"
                )
            image.load()
            return image.convert("RGB")
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise MediaError("not_an_image", "not a recognised image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError("decompression_bomb", "image exceeds the pixel limit") from None
    except Exception as exc:
        # Pillow reports truncated and corrupt streams as OSError / SyntaxError, but a crafted
        # file reaches other paths too: a TIFF whose strip offset is a byte string raises
        # TypeError, an oversized one OverflowError (tests/data/fuzz/media/ keeps such files).
        # Whatever the decoder raises on these bytes, the file is what is wrong.
        raise MediaError("corrupt", f"cannot decode image: {type(exc).__name__}") from None


def downscale(image: Image.Image) -> Image.Image:
    """Shrink a picture longer than DOWNSCALE_SIDE to that length (aspect kept, area filter)."""
    longest = max(image.size)
    if longest <= DOWNSCALE_SIDE:
        return image
    scale = DOWNSCALE_SIDE / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def find_border_box(
    rgb: np.ndarray, line_fraction: float = BORDER_LINE_FRACTION
) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box left after removing solid padding from each edge."""
    height, width = rgb.shape[:2]

    def border_depth(lines: np.ndarray, side: int) -> int:
        # lines: (n, m, 3) uint8, ordered from the edge inwards. Scanned in chunks so the common
        # case (no border) costs one chunk.
        limit = int(side * BORDER_MAX_FRACTION)
        minimum = max(2, int(side * BORDER_MIN_FRACTION))
        if limit < minimum:
            return 0
        reference = np.median(lines[0], axis=0)
        depth, chunk = 0, minimum
        while depth < limit:
            block = lines[depth : min(limit, depth + chunk)].astype(np.int16)
            close = np.abs(block - reference).max(axis=2) <= BORDER_TOLERANCE
            uniform = close.mean(axis=1) >= line_fraction
            if not uniform.all():
                depth += int(np.argmin(uniform))
                break
            depth += len(block)
            chunk = 64
        if depth >= limit:
            return -1  # uniform as far as we look: a flat picture, not a padded one
        return depth if depth >= minimum else 0

    columns = rgb.transpose(1, 0, 2)
    top = border_depth(rgb, height)
    bottom = border_depth(rgb[::-1], height)
    left = border_depth(columns, width)
    right = border_depth(columns[::-1], width)
    if min(top, bottom, left, right) < 0:
        return (0, 0, width, height)
    if top + bottom >= height - MIN_SIDE or left + right >= width - MIN_SIDE:
        return (0, 0, width, height)
    return (left, top, width - right, height - bottom)


# Content box: a picture shown inside other material (a caption strip above it, app chrome
# around it in a screenshot). The same scan as border removal, but a line counts as chrome when
# only CHROME_LINE_FRACTION of its pixels match the edge colour: plain background with text or
# icons on it.
CHROME_LINE_FRACTION = 0.6


def find_content_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of a picture embedded among plain chrome, or the
    whole frame when there is none."""
    return find_border_box(rgb, line_fraction=CHROME_LINE_FRACTION)


# Framed box: a picture pasted into a larger canvas leaves sharp straight edges across the whole
# width (or height). An edge row is one where at least FRAME_EDGE_FRACTION of the columns change
# by more than FRAME_EDGE_STEP grey levels from the row before; the strongest edge in the outer
# FRAME_SEARCH_FRACTION of each side is taken as the picture's boundary.
FRAME_EDGE_FRACTION = 0.7
FRAME_EDGE_STEP = 20
FRAME_SEARCH_FRACTION = 0.45


def _frame_edges(luma: np.ndarray) -> tuple[int, int]:
    n = luma.shape[0]
    steps = (np.abs(np.diff(luma, axis=0)) > FRAME_EDGE_STEP).mean(axis=1)  # steps[i]: i|i+1
    reach = int(n * FRAME_SEARCH_FRACTION)
    start, stop = 0, n
    if reach >= 1:
        head = steps[:reach]
        if head.size and head.max() >= FRAME_EDGE_FRACTION:
            start = int(np.argmax(head)) + 1
        tail = steps[n - 1 - reach :]
        if tail.size and tail.max() >= FRAME_EDGE_FRACTION:
            stop = n - 1 - reach + int(np.argmax(tail)) + 1
    return start, stop


def find_framed_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box inside full-width / full-height straight edges, or the
    whole frame when there are none."""
    height, width = rgb.shape[:2]
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    top, bottom = _frame_edges(luma)
    left, right = _frame_edges(luma[top:bottom].T)
    if min(bottom - top, right - left) < max(MIN_SIDE, 0.3 * min(height, width)):
        return (0, 0, width, height)
    return (left, top, right, bottom)


# Uncrop: a copy cut down by a centred crop (as platforms do to fit an aspect ratio) misses the
# original's outer band, which shifts PDQ's low frequencies. Extending the copy's edge pixels
# outwards by the fraction a crop of f would have removed brings it back close: measured on the
# corpus, a 5% centred crop goes from median distance 49 to 14.
UNCROP_FRACTIONS = (0.02, 0.05, 0.10)


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
    that content box (``content/identity``, ``framed/identity``); and three "uncropped"
    versions for copies cut down by a centred crop (``uncrop/2``, ``uncrop/5``, ``uncrop/10``).
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
        for fraction in UNCROP_FRACTIONS:
            extended = pdq_of_pixels(uncrop(rgb, fraction))
            variants.append(QueryVariant(f"uncrop/{round(fraction * 100)}", extended))
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


def vpdq_available() -> bool:
    try:
        import vpdq  # noqa: F401
    except ImportError:
        return False
    return True


def hash_video(path: str | os.PathLike[str], *, seconds_per_hash: float = 1.0) -> list[VpdqFrame]:
    """vPDQ through Meta's binding: one PDQ hash (with quality) per sampled frame."""
    try:
        import vpdq
    except ImportError:
        raise MediaError(
            "video_unsupported",
            "video hashing needs the vpdq package: pip install 'blindmatch[video]'",
        ) from None
    p = Path(path)
    read_media(p)  # existence, size and emptiness checks
    try:
        features = vpdq.computeHash(str(p), seconds_per_hash=seconds_per_hash)
    except Exception as exc:  # the binding raises plain exceptions for undecodable input
        raise MediaError("corrupt", f"cannot decode video: {type(exc).__name__}") from None
    if not features:
        raise MediaError("corrupt", "no decodable video frames")
    return [
        VpdqFrame(
            frame_number=int(f.frame_number),
            pdq=pdq_from_hex(str(f.hex)),
            quality=int(f.quality),
            timestamp=float(f.timestamp),
        )
        for f in features
    ]


def dihedral_names() -> Sequence[str]:
    return DIHEDRAL_NAMES
