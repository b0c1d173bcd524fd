"""Generate the survivor-page test pictures (committed; run again to check they are unchanged).

    python tests/data/survivor/make_images.py          # (re)write the PNGs here
    python tests/data/survivor/make_images.py --check  # exit 1 if a committed file differs

Photo-like structure (smooth shading, edges, texture at several scales) without noise, so the
PNGs stay small. Sizes cover: plain small pictures, a greyscale and a palette PNG, and two
pictures longer than 1024 px that the hashing pipeline shrinks first (one wide: Pillow resizes
horizontally first; one tall: Pillow 13 resizes vertically first).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent


def scene(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y /= max(width, height)
    x /= max(width, height)
    img = np.zeros((height, width, 3))
    for c in range(3):
        img[..., c] = 0.4 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0, 6)))
        img[..., c] += 0.4 * np.cos(2 * np.pi * (rng.uniform(0.5, 2) * y + rng.uniform(0, 6)))
    for _ in range(6):  # discs and bars with hard edges, like objects in a photo
        cx, cy, r = rng.uniform(0, x.max()), rng.uniform(0, y.max()), rng.uniform(0.03, 0.2)
        shade = rng.uniform(-1, 1, 3)
        if rng.random() < 0.5:
            mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        else:
            mask = (np.abs(x - cx) < r) & (np.abs(y - cy) < r / 3)
        img[mask] += shade
    fx, fy = rng.uniform(8, 20, 2)  # a fine texture
    img += 0.15 * (np.sin(2 * np.pi * fx * x) * np.sin(2 * np.pi * fy * y))[..., None]
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).round().astype(np.uint8)


def pictures() -> dict[str, Image.Image]:
    return {
        "portrait.png": Image.fromarray(scene(1, 180, 240)),
        "landscape.png": Image.fromarray(scene(2, 256, 160)),
        "grey.png": Image.fromarray(scene(3, 160, 160)).convert("L"),
        "palette.png": Image.fromarray(scene(4, 200, 150)).quantize(64),
        "wide-downscaled.png": Image.fromarray(scene(5, 1300, 90)),
        "tall-downscaled.png": Image.fromarray(scene(6, 70, 1100)),
        "small.png": Image.fromarray(scene(7, 24, 18)),
    }


def encode(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    bad = 0
    for name, image in pictures().items():
        data = encode(image)
        path = HERE / name
        if check:
            if not path.exists() or path.read_bytes() != data:
                print(f"{name}: differs from the generator")
                bad += 1
        else:
            path.write_bytes(data)
            print(f"{name}: {image.size[0]}x{image.size[1]} {image.mode}, {len(data)} bytes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
