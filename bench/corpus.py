"""Build the signals evaluation corpus: distinct real photographs from installable packages.

    ./dev bench corpus            # build (or reuse) the cache
    ./dev bench corpus --rebuild  # start over

Sources: Debian wallpaper packages fetched with ``apt-get download`` and unpacked with
``dpkg-deb -x`` (never installed), plus the photographs scikit-image bundles. Large wallpapers
also contribute non-overlapping tiles, each a distinct picture. Every candidate is hashed with PDQ;
it is kept only if its quality is at least 50 and it is far (>= 64 bits, over all 8 dihedral
variants) from everything kept before, so the set holds no near-duplicates of itself.

The cache lives outside git, under ``${XDG_CACHE_HOME:-~/.cache}/blindmatch/corpus``:
``debs/`` (downloaded packages), ``unpacked/``, ``images/NNNN.jpg`` (each at most 800 px on its
long side, JPEG q95) and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image

PACKAGES: tuple[str, ...] = (
    "plasma-workspace-wallpapers",
    "mate-backgrounds",
    "gnome-backgrounds",
    "ukui-wallpapers",
    "lomiri-wallpapers-20.04",
)
SKIMAGE_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "cat",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "eagle",
    "brick",
    "grass",
    "gravel",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
STORED_MAX_SIDE = 800
TILE_SIDE = 1200  # a wallpaper of at least 2 * TILE_SIDE on a side is also cut into tiles
MIN_QUALITY = 50
MIN_DISTINCT_DISTANCE = 64
MANIFEST_VERSION = 2


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "blindmatch" / "corpus"


@dataclass(frozen=True)
class CorpusImage:
    id: str
    file: str
    source: str
    tile: str  # "whole" or "r{row}c{col}/{rows}x{cols}"
    width: int
    height: int
    pdq_hex: str
    quality: int


def fetch_packages(root: Path) -> list[Path]:
    """Download and unpack the wallpaper packages; return their unpacked roots."""
    debs = root / "debs"
    unpacked = root / "unpacked"
    debs.mkdir(parents=True, exist_ok=True)
    unpacked.mkdir(parents=True, exist_ok=True)
    roots: list[Path] = []
    for package in PACKAGES:
        target = unpacked / package
        if not target.is_dir():
            found = sorted(debs.glob(f"{package}_*.deb"))
            if not found:
                result = subprocess.run(
                    ["apt-get", "download", package],
                    cwd=debs,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                found = sorted(debs.glob(f"{package}_*.deb"))
                if not found:
                    print(
                        f"corpus: could not download {package} (run apt-get update?): "
                        f"{result.stderr.strip()[-200:]}",
                        file=sys.stderr,
                    )
                    continue
            tmp = unpacked / (package + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(tmp)], check=True)
            tmp.rename(target)
        roots.append(target)
    return roots


def package_images(package_root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (source name, file) for each picture; for Plasma-style wallpaper folders that ship
    one picture at several resolutions, only the largest (by file name WxH) of each folder."""
    files = sorted(
        p
        for p in package_root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and "screenshot" not in p.name
        and "thumb" not in str(p).lower()
    )
    by_folder: dict[Path, list[Path]] = {}
    for p in files:
        if p.parent.name in {"images", "images_dark"}:
            by_folder.setdefault(p.parent, []).append(p)
        else:
            yield f"{package_root.name}:{p.relative_to(package_root)}", p
    for _folder, members in sorted(by_folder.items()):

        def area(p: Path) -> int:
            try:
                w, h = (int(x) for x in p.stem.split("x"))
            except ValueError:
                return 0
            return w * h

        best = max(members, key=area)
        yield f"{package_root.name}:{best.relative_to(package_root)}", best


def skimage_images() -> Iterator[tuple[str, Image.Image]]:
    try:
        import skimage.data
    except ImportError:
        print("corpus: scikit-image not installed; skipping its photos", file=sys.stderr)
        return
    for name in SKIMAGE_PHOTOS:
        try:
            array = getattr(skimage.data, name)()
        except Exception as exc:  # some need a download we cannot do offline
            print(f"corpus: skimage.data.{name} unavailable ({type(exc).__name__})")
            continue
        array = np.asarray(array)
        if array.dtype != np.uint8:
            array = (255 * (array - array.min()) / max(1e-9, np.ptp(array))).astype(np.uint8)
        yield f"skimage:{name}", Image.fromarray(array).convert("RGB")


def candidates(source: str, image: Image.Image) -> Iterator[tuple[str, Image.Image]]:
    """The whole picture and, for large ones, a grid of non-overlapping tiles."""
    yield "whole", image
    cols, rows = image.width // TILE_SIDE, image.height // TILE_SIDE
    if cols * rows < 2:
        return
    tw, th = image.width // cols, image.height // rows
    for r in range(rows):
        for c in range(cols):
            box = (c * tw, r * th, (c + 1) * tw, (r + 1) * th)
            yield f"r{r}c{c}/{rows}x{cols}", image.crop(box)


def shrink(image: Image.Image, max_side: int = STORED_MAX_SIDE) -> Image.Image:
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def pdq_bits_to_int(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.astype(np.uint8)).tobytes(), "big")


def build(rebuild: bool = False) -> list[CorpusImage]:
    root = cache_dir()
    manifest_path = root / "manifest.json"
    if manifest_path.exists() and not rebuild:
        data = json.loads(manifest_path.read_text())
        if data.get("version") == MANIFEST_VERSION:
            return [CorpusImage(**item) for item in data["images"]]
    images_dir = root / "images"
    shutil.rmtree(images_dir, ignore_errors=True)
    images_dir.mkdir(parents=True)
    Image.MAX_IMAGE_PIXELS = 50_000_000  # the wallpapers are large but trusted

    def sources() -> Iterator[tuple[str, Image.Image]]:
        for package_root in fetch_packages(root):
            for source, path in package_images(package_root):
                try:
                    with Image.open(path) as im:
                        yield source, im.convert("RGB")
                except Exception as exc:
                    print(f"corpus: skip {source}: {type(exc).__name__}", file=sys.stderr)
        yield from skimage_images()

    kept: list[CorpusImage] = []
    kept_dihedral: list[np.ndarray] = []  # (8, 256) bool per kept image
    rejected_quality = rejected_duplicate = 0
    for source, image in sources():
        for tile, region in candidates(source, image):
            small = shrink(region)
            rgb = np.asarray(small, dtype=np.uint8)
            variants, quality = pdqhash.compute_dihedral(rgb)
            if quality < MIN_QUALITY:
                rejected_quality += 1
                continue
            dihedral = np.asarray(variants, dtype=bool)
            if kept_dihedral:
                stack = np.stack(kept_dihedral)  # (n, 8, 256)
                nearest = (stack != dihedral[0]).sum(axis=2).min()
                if nearest < MIN_DISTINCT_DISTANCE:
                    rejected_duplicate += 1
                    continue
            ident = f"{len(kept):04d}"
            file = f"images/{ident}.jpg"
            small.save(root / file, quality=95)
            kept.append(
                CorpusImage(
                    id=ident,
                    file=file,
                    source=source,
                    tile=tile,
                    width=small.width,
                    height=small.height,
                    pdq_hex=f"{pdq_bits_to_int(dihedral[0]):064x}",
                    quality=int(quality),
                )
            )
            kept_dihedral.append(dihedral)
    manifest = {
        "version": MANIFEST_VERSION,
        "packages": list(PACKAGES),
        "rejected_low_quality": rejected_quality,
        "rejected_near_duplicate": rejected_duplicate,
        "images": [asdict(c) for c in kept],
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return kept


def load_image(item: CorpusImage) -> Image.Image:
    with Image.open(cache_dir() / item.file) as im:
        return im.convert("RGB")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the image set")
    args = parser.parse_args(argv)
    items = build(rebuild=args.rebuild)
    whole = sum(1 for i in items if i.tile == "whole")
    print(
        f"corpus: {len(items)} distinct images ({whole} whole photos, {len(items) - whole} tiles) "
        f"in {cache_dir()}"
    )
    return 0
