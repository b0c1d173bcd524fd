"""Generated skin-dominated pictures: the worst case for a perceptual hash's false positives.

Real intimate imagery is never used. Instead each picture is drawn procedurally, deterministic
from its seed: large smooth regions in skin tones (Fitzpatrick-like palettes I-VI, jittered),
shaded as lit ellipsoids, soft gradients, little texture, on plain or softly graded backgrounds,
in three compositions:

* ``portrait``: head, neck and shoulders (a torso), hair, faint features, against a backdrop;
* ``closeup``: skin fills most of the frame, a few overlapping body-like curves and creases;
* ``body``: a torso and limbs lying on a sheet with soft folds.

Smooth, low-texture pictures have little energy in PDQ's low-frequency DCT coefficients beyond
their coarse layout, so two unrelated ones with a similar layout are where PDQ distances are
shortest: this set measures that tail. Pictures are small (at most 512 px on a side), sensor
noise is light, and each is JPEG-encoded once as an upload would be.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

# Base skin tones (sRGB), roughly Fitzpatrick I..VI, and hair colours.
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (246, 222, 204),
    (234, 198, 170),
    (214, 170, 138),
    (184, 134, 100),
    (132, 90, 64),
    (88, 58, 42),
)
HAIR: tuple[tuple[int, int, int], ...] = (
    (30, 22, 18),
    (70, 48, 30),
    (120, 84, 50),
    (196, 160, 110),
    (150, 60, 30),
    (110, 110, 110),
)
KINDS = ("portrait", "closeup", "body")
SIZES = ((512, 384), (384, 512), (512, 512), (512, 288), (408, 512))


def _ellipsoid(
    canvas: np.ndarray,
    colour: np.ndarray,
    centre: tuple[float, float],
    radii: tuple[float, float],
    angle: float,
    light: np.ndarray,
    rng: np.random.Generator,
    soft: float = 2.0,
) -> None:
    """Paint a lit ellipsoid (Lambert shading plus ambient) over ``canvas`` in place."""
    h, w = canvas.shape[:2]
    cx, cy = centre
    rx, ry = radii
    # Only the ellipse's bounding box is touched.
    reach = max(rx, ry) + 2
    x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
    y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / rx
    v = (-(xx - cx) * s + (yy - cy) * c) / ry
    r2 = u * u + v * v
    # Soft edge: alpha falls from 1 to 0 over ``soft`` pixels at the rim.
    rim = (1 - np.sqrt(r2)) * min(rx, ry) / soft
    alpha = np.clip(rim, 0, 1)[..., None]
    if not alpha.any():
        return
    canvas = canvas[y0:y1, x0:x1]
    z = np.sqrt(np.clip(1 - r2, 0, 1))
    # The normal in picture axes (u, v rotated back), then Lambert with the light direction.
    nx, ny = u * c - v * s, u * s + v * c
    shade = np.clip(nx * light[0] + ny * light[1] + z * light[2], 0, 1)
    ambient = rng.uniform(0.45, 0.65)
    gain = (ambient + (1 - ambient) * shade)[..., None]
    # A faint warm tint in the shadows (subsurface look) and a little highlight.
    paint = colour[None, None, :] * gain + 18 * (shade[..., None] ** 12)
    canvas[:] = canvas * (1 - alpha) + np.clip(paint, 0, 255) * alpha


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A plain or softly graded backdrop: low saturation, any lightness."""
    base = rng.uniform(20, 235)
    tint = rng.normal(0, 12, 3)
    a = np.clip(base + tint, 0, 255).astype(np.float32)
    b = np.clip(a + rng.normal(0, 35, 3), 0, 255).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1) / 2
    t = np.clip(t, 0, 1)[..., None]
    return a * (1 - t) + b * t


def _skin(rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(len(SKIN_TONES)))
    tone = np.array(SKIN_TONES[k], np.float32)
    if k + 1 < len(SKIN_TONES) and rng.random() < 0.5:  # between two palette steps
        tone = tone + rng.random() * (np.array(SKIN_TONES[k + 1], np.float32) - tone)
    return np.clip(tone * rng.uniform(0.92, 1.08) + rng.normal(0, 4, 3), 0, 255)


def _light(rng: np.random.Generator) -> np.ndarray:
    v = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, 0.2), rng.uniform(0.5, 1.0)])
    return (v / np.linalg.norm(v)).astype(np.float32)


def _portrait(canvas: np.ndarray, rng: np.random.Generator) -> None:
    h, w = canvas.shape[:2]
    skin, light = _skin(rng), _light(rng)
    cx = w * rng.uniform(0.35, 0.65)
    head_r = min(h, w) * rng.uniform(0.2, 0.34)
    cy = h * rng.uniform(0.28, 0.45)
    # Shoulders / torso, then neck, then hair behind and over the head, then the head.
    cloth = rng.random() < 0.35
    torso_colour = (
        np.clip(rng.uniform(20, 230) + rng.normal(0, 25, 3), 0, 255) if cloth else skin * 0.97
    )
    _ellipsoid(canvas, torso_colour, (cx + rng.normal(0, w * 0.03), cy + head_r * 3.2),
               (head_r * rng.uniform(2.2, 3.2), head_r * 2.0), rng.normal(0, 0.08), light,
               rng, soft=4)  # fmt: skip
    _ellipsoid(canvas, skin * 0.9, (cx, cy + head_r * 1.25), (head_r * 0.45, head_r * 0.9),
               0.0, light, rng)  # fmt: skip
    hair = np.array(HAIR[int(rng.integers(len(HAIR)))], np.float32)
    if rng.random() < 0.85:
        _ellipsoid(canvas, hair, (cx, cy - head_r * 0.15),
                   (head_r * rng.uniform(1.05, 1.35), head_r * rng.uniform(1.1, 1.6)),
                   rng.normal(0, 0.1), light, rng, soft=5)  # fmt: skip
    tilt = rng.normal(0, 0.12)
    _ellipsoid(canvas, skin, (cx, cy + head_r * 0.1), (head_r * 0.82, head_r * 1.05), tilt,
               light, rng)  # fmt: skip
    # Faint features: eyes, mouth (darker / redder soft ellipses).
    for side in (-1, 1):
        _ellipsoid(canvas, skin * 0.55, (cx + side * head_r * 0.32, cy - head_r * 0.05),
                   (head_r * 0.13, head_r * 0.06), tilt, light, rng)  # fmt: skip
    lips = skin * np.array([1.0, 0.72, 0.72], np.float32)
    _ellipsoid(canvas, lips, (cx, cy + head_r * 0.55), (head_r * 0.25, head_r * 0.08), tilt,
               light, rng)  # fmt: skip


def _closeup(canvas: np.ndarray, rng: np.random.Generator) -> None:
    h, w = canvas.shape[:2]
    skin, light = _skin(rng), _light(rng)
    canvas[:] = canvas * 0.3 + skin * 0.7 * rng.uniform(0.6, 0.9)  # skin-lit surroundings
    for _ in range(int(rng.integers(2, 6))):
        tone = np.clip(skin * rng.uniform(0.9, 1.06), 0, 255)
        _ellipsoid(canvas, tone, (w * rng.uniform(0, 1), h * rng.uniform(0, 1)),
                   (w * rng.uniform(0.25, 0.7), h * rng.uniform(0.2, 0.6)),
                   rng.uniform(0, np.pi), light, rng, soft=8)  # fmt: skip
    # A crease or two: long thin darker ellipses.
    for _ in range(int(rng.integers(0, 3))):
        _ellipsoid(canvas, skin * 0.7, (w * rng.uniform(0.2, 0.8), h * rng.uniform(0.2, 0.8)),
                   (w * rng.uniform(0.15, 0.4), rng.uniform(2, 5)), rng.uniform(0, np.pi),
                   light, rng, soft=3)  # fmt: skip


def _body(canvas: np.ndarray, rng: np.random.Generator) -> None:
    h, w = canvas.shape[:2]
    skin, light = _skin(rng), _light(rng)
    # A sheet with soft folds (low-frequency sinusoids).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    folds = np.zeros((h, w), np.float32)
    for _ in range(3):
        f = rng.uniform(1, 4) * 2 * np.pi
        a = rng.uniform(0, np.pi)
        folds += np.sin(f * (np.cos(a) * xx / w + np.sin(a) * yy / h) + rng.uniform(0, 6))
    sheet = np.clip(rng.uniform(60, 245) + rng.normal(0, 10, 3), 0, 255).astype(np.float32)
    canvas[:] = sheet * (1 + 0.06 * folds[..., None])
    angle = rng.uniform(-0.6, 0.6) + (np.pi / 2 if rng.random() < 0.3 else 0)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
    length = min(h, w) * rng.uniform(0.45, 0.75)
    c, s = np.cos(angle), np.sin(angle)
    parts = [  # (along, across, half-length, half-width, relative angle)
        (0.0, 0.0, 1.0, 0.42, 0.0),  # torso
        (1.35, 0.0, 0.32, 0.27, 0.0),  # head
        (-1.2, -0.22, 0.75, 0.17, rng.normal(0, 0.25)),  # legs
        (-1.2, 0.22, 0.75, 0.17, rng.normal(0, 0.25)),
        (0.3, -0.55, 0.6, 0.1, rng.normal(0, 0.5)),  # arms
        (0.3, 0.55, 0.6, 0.1, rng.normal(0, 0.5)),
    ]
    for along, across, hl, hw, rel in parts:
        px = cx + length * (along * c - across * s)
        py = cy + length * (along * s + across * c)
        _ellipsoid(canvas, np.clip(skin * rng.uniform(0.95, 1.04), 0, 255), (px, py),
                   (length * hl, length * hw), angle + rel, light, rng, soft=3)  # fmt: skip


def generate(seed: int) -> tuple[str, Image.Image]:
    """One skin-dominated picture from ``seed``: (composition kind, JPEG-decoded picture)."""
    rng = np.random.default_rng([0x5C1, seed])
    kind = KINDS[int(rng.integers(len(KINDS)))]
    w, h = SIZES[int(rng.integers(len(SIZES)))]
    canvas = _background(h, w, rng)
    {"portrait": _portrait, "closeup": _closeup, "body": _body}[kind](canvas, rng)
    canvas += rng.normal(0, rng.uniform(0.5, 3.0), canvas.shape)  # light sensor noise
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=int(rng.integers(70, 95)))
    buf.seek(0)
    with Image.open(buf) as im:
        return kind, im.convert("RGB")


def skin_fraction(image: Image.Image) -> float:
    """Share of pixels in a simple YCbCr skin box (Cb 77-127, Cr 133-173): a check that a
    picture is skin-dominated, for the report."""
    ycc = np.asarray(image.convert("YCbCr"), dtype=np.int16)
    cb, cr = ycc[..., 1], ycc[..., 2]
    return float(((cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173)).mean())
