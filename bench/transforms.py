"""The edit suite the signals evaluation applies to every corpus image.

Each transform maps (image, rng, donor) to an edited copy; ``donor`` is an unrelated corpus
picture used where an edit pastes foreign content (the replaced-region stand-in for an AI edit).
All randomness comes from the ``rng`` passed in, so a run is reproducible from its seed.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

Transform = Callable[[Image.Image, np.random.Generator, Image.Image], Image.Image]


def jpeg(quality: int) -> Transform:
    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert("RGB")

    return apply


def resize(scale: float) -> Transform:
    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        size = (max(8, round(im.width * scale)), max(8, round(im.height * scale)))
        return im.resize(size, Image.Resampling.BILINEAR)

    return apply


def crop(fraction: float, centred: bool) -> Transform:
    """Remove ``fraction`` of each dimension: split evenly (centred) or all from one corner."""

    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        dx, dy = round(im.width * fraction), round(im.height * fraction)
        if centred:
            box = (dx // 2, dy // 2, im.width - (dx - dx // 2), im.height - (dy - dy // 2))
        else:
            left, top = int(rng.integers(0, 2)) * dx, int(rng.integers(0, 2)) * dy
            box = (left, top, im.width - dx + left, im.height - dy + top)
        return im.crop(box)

    return apply


def pad(fraction: float, letterbox: bool) -> Transform:
    """Letterbox (bars above and below, black) or pad all round (a random solid colour)."""

    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        if letterbox:
            bar = round(im.height * fraction / 2)
            out = Image.new("RGB", (im.width, im.height + 2 * bar), (0, 0, 0))
            out.paste(im, (0, bar))
            return out
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        bx, by = round(im.width * fraction / 2), round(im.height * fraction / 2)
        out = Image.new("RGB", (im.width + 2 * bx, im.height + 2 * by), colour)
        out.paste(im, (bx, by))
        return out

    return apply


def mirror(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    return ImageOps.mirror(im)


def rotate_right_angle(degrees: int) -> Transform:
    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        method = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180}[degrees]
        return im.transpose(method)

    return apply


def rotate_small(degrees: float) -> Transform:
    """A slight tilt, keeping the frame (black corners), as a careless re-photograph gives."""

    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        return im.rotate(degrees, resample=Image.Resampling.BILINEAR, expand=False)

    return apply


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def caption_strip(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """A meme-style white strip with black text added above the picture (15% of its height)."""
    strip = max(12, round(im.height * 0.15))
    out = Image.new("RGB", (im.width, im.height + strip), (255, 255, 255))
    out.paste(im, (0, strip))
    draw = ImageDraw.Draw(out)
    words = ["when", "the", "group", "chat", "sees", "this", "lol", "omg", "look", "who"]
    text = " ".join(rng.choice(words, size=5))
    draw.text((strip // 4, strip // 4), text, fill=(0, 0, 0), font=_font(max(8, strip // 2)))
    return out


def sticker(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """An emoji-like sticker (a yellow smiley, ~12% of the area) at a random spot."""
    out = im.copy()
    side = round(min(im.size) * 0.35)
    x = int(rng.integers(0, max(1, im.width - side)))
    y = int(rng.integers(0, max(1, im.height - side)))
    draw = ImageDraw.Draw(out)
    draw.ellipse((x, y, x + side, y + side), fill=(255, 204, 0), outline=(120, 80, 0), width=3)
    e = side // 6
    draw.ellipse((x + 2 * e - e // 2, y + 2 * e, x + 2 * e + e // 2, y + 3 * e), fill=(0, 0, 0))
    draw.ellipse((x + 4 * e - e // 2, y + 2 * e, x + 4 * e + e // 2, y + 3 * e), fill=(0, 0, 0))
    draw.arc(
        (x + e, y + 2 * e, x + 5 * e, y + 5 * e), 20, 160, fill=(0, 0, 0), width=max(2, e // 3)
    )
    return out


def brightness(factor: float) -> Transform:
    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        return ImageEnhance.Brightness(im).enhance(factor)

    return apply


def contrast(factor: float) -> Transform:
    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        return ImageEnhance.Contrast(im).enhance(factor)

    return apply


def gamma(value: float) -> Transform:
    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        table = [round(255 * (i / 255) ** value) for i in range(256)] * 3
        return im.point(table)

    return apply


def grayscale(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    return ImageOps.grayscale(im).convert("RGB")


def screenshot(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """The picture as a phone screenshot of a social app: status bar, header with avatar and
    name, action bar and the start of a comment, on a white or dark theme (1080 wide)."""
    dark = bool(rng.integers(0, 2))
    bg, fg, muted = (
        ((16, 16, 16), (235, 235, 235), (120, 120, 120))
        if dark
        else ((255, 255, 255), (20, 20, 20), (150, 150, 150))
    )
    width = 1080
    shown_h = round(im.height * width / im.width)
    status, header, actions, comment = 70, 150, 130, 260
    out = Image.new("RGB", (width, status + header + shown_h + actions + comment), bg)
    draw = ImageDraw.Draw(out)
    draw.text((40, 20), "9:41", fill=fg, font=_font(36))
    draw.rectangle((940, 25, 1030, 50), outline=fg, width=3)
    draw.ellipse((40, status + 30, 130, status + 120), fill=(200, 90, 140))
    draw.text((160, status + 50), "some.account", fill=fg, font=_font(40))
    out.paste(im.resize((width, shown_h), Image.Resampling.BILINEAR), (0, status + header))
    y = status + header + shown_h + 30
    for i in range(4):
        draw.ellipse((40 + i * 110, y, 110 + i * 110, y + 70), outline=fg, width=5)
    draw.text((40, y + actions), "liked by others and 1,234 more", fill=fg, font=_font(34))
    draw.text((40, y + actions + 60), "View all 56 comments", fill=muted, font=_font(34))
    return out


def replace_region(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """25% of the picture (a half-width, half-height rectangle at a random position) replaced by
    content from an unrelated photo: a stand-in for an AI edit of part of the picture."""
    out = im.copy()
    w, h = im.width // 2, im.height // 2
    x = int(rng.integers(0, im.width - w + 1))
    y = int(rng.integers(0, im.height - h + 1))
    patch = donor.resize((w, h), Image.Resampling.BILINEAR)
    out.paste(patch, (x, y))
    return out


TRANSFORMS: dict[str, Transform] = {
    "jpeg_q30": jpeg(30),
    "jpeg_q50": jpeg(50),
    "jpeg_q75": jpeg(75),
    "resize_25": resize(0.25),
    "resize_50": resize(0.50),
    "crop_2_centre": crop(0.02, True),
    "crop_5_centre": crop(0.05, True),
    "crop_10_centre": crop(0.10, True),
    "crop_2_offset": crop(0.02, False),
    "crop_5_offset": crop(0.05, False),
    "crop_10_offset": crop(0.10, False),
    "pad_10": pad(0.10, False),
    "pad_20": pad(0.20, False),
    "letterbox_10": pad(0.10, True),
    "letterbox_20": pad(0.20, True),
    "mirror": mirror,
    "rotate_90": rotate_right_angle(90),
    "rotate_180": rotate_right_angle(180),
    "rotate_3": rotate_small(3.0),
    "rotate_5": rotate_small(5.0),
    "caption_strip": caption_strip,
    "sticker": sticker,
    "brightness_130": brightness(1.3),
    "contrast_70": contrast(0.7),
    "gamma_150": gamma(1.5),
    "grayscale": grayscale,
    "screenshot": screenshot,
    "replace_region_25": replace_region,
}


# --- edits that hide the picture inside another picture, or crop it off-centre (issue 17) -------


def _reencode(im: Image.Image, quality: int = 85) -> Image.Image:
    return jpeg(quality)(im, np.random.default_rng(0), im)


def screenshot_nested(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """A phone screenshot of a picture viewer: a status bar (light, with the time and icons),
    then the viewer's dark padding around the picture fitted to a 1080x2340 screen, then a
    navigation bar; JPEG q80. Two layers of chrome: the outer one is text on a plain colour,
    the inner one solid padding of another colour."""
    width, height = 1080, 2340
    status, nav = 90, 150
    bar = (250, 250, 250) if rng.integers(0, 2) else (40, 40, 48)
    text = (20, 20, 20) if bar[0] > 128 else (230, 230, 230)
    pad = tuple(int(c) for c in rng.integers(0, 24, 3))
    out = Image.new("RGB", (width, height), pad)
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, 0, width, status), fill=bar)
    draw.text((40, 24), "9:41", fill=text, font=_font(40))
    draw.rectangle((930, 30, 1030, 60), outline=text, width=3)
    for i in range(3):
        draw.rectangle((780 + i * 40, 55 - i * 10, 800 + i * 40, 60), fill=text)
    draw.rectangle((0, height - nav, width, height), fill=bar)
    for x in (240, 540, 840):
        draw.ellipse((x - 25, height - nav + 50, x + 25, height - nav + 100), outline=text, width=4)
    margin = int(rng.integers(0, 60))  # some viewers leave a side margin too
    box_w, box_h = width - 2 * margin, height - status - nav - 2 * margin
    scale = min(box_w / im.width, box_h / im.height)
    shown = im.resize(
        (round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR
    )
    x = (width - shown.width) // 2
    y = status + margin + (box_h - shown.height) // 2
    out.paste(shown, (x, y))
    return _reencode(out, 80)


def collage(cells: int) -> Transform:
    """The picture as one cell of a collage of 2, 3 or 4 pictures with no gap between them (a
    weak seam), the others cut from an unrelated photo; JPEG q75. 2: side by side; 3: three in a
    row; 4: a 2x2 grid. Every cell has the picture's aspect ratio, so the picture is whole."""
    cols, rows = {2: (2, 1), 3: (3, 1), 4: (2, 2)}[cells]

    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        cw = 600 if cols == 2 else 420
        ch = round(cw * im.height / im.width)
        out = Image.new("RGB", (cw * cols, ch * rows))
        target = int(rng.integers(0, cells))
        for i in range(cells):
            if i == target:
                piece = im
            else:  # a different region of the donor for each other cell
                s = 0.5 + 0.5 * float(rng.random())
                w, h = round(donor.width * s), round(donor.height * s)
                x = int(rng.integers(0, donor.width - w + 1))
                y = int(rng.integers(0, donor.height - h + 1))
                piece = donor.crop((x, y, x + w, y + h))
                if i % 2:
                    piece = ImageOps.mirror(piece)
            out.paste(
                piece.resize((cw, ch), Image.Resampling.BILINEAR),
                ((i % cols) * cw, (i // cols) * ch),
            )
        return _reencode(out, 75)

    return apply


def corner_crop(fraction: float, mirrored: bool = False, rotation: int = 0) -> Transform:
    """Remove ``fraction`` of each dimension from one random corner, optionally after a mirror
    or a right-angle rotation; JPEG q85 (the way a re-shared copy is cropped and re-encoded)."""
    cut = crop(fraction, centred=False)

    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        if mirrored:
            im = ImageOps.mirror(im)
        if rotation:
            im = rotate_right_angle(rotation)(im, rng, donor)
        return _reencode(cut(im, rng, donor))

    return apply


def mirror_crop(fraction: float) -> Transform:
    """Mirrored, then cropped by ``fraction`` about the centre; JPEG q85."""
    cut = crop(fraction, centred=True)

    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        return _reencode(cut(ImageOps.mirror(im), rng, donor))

    return apply


EDIT_TRANSFORMS: dict[str, Transform] = {
    "screenshot_nested": screenshot_nested,
    "collage_2": collage(2),
    "collage_3": collage(3),
    "collage_4": collage(4),
    "corner_crop_1": corner_crop(0.01),
    "corner_crop_2": corner_crop(0.02),
    "corner_crop_3": corner_crop(0.03),
    "corner_crop_5": corner_crop(0.05),
    "corner_crop_7": corner_crop(0.07),
    "corner_crop_10": corner_crop(0.10),
    "corner_crop_12": corner_crop(0.12),
    "corner_crop_15": corner_crop(0.15),
    "mirror_corner_crop_3": corner_crop(0.03, mirrored=True),
    "mirror_corner_crop_5": corner_crop(0.05, mirrored=True),
    "mirror_corner_crop_10": corner_crop(0.10, mirrored=True),
    "rotate_90_corner_crop_5": corner_crop(0.05, rotation=90),
    "mirror_crop_3": mirror_crop(0.03),
    "mirror_crop_5": mirror_crop(0.05),
}
