"""The uploaded picture as a reviewer sees it: blurred and in grayscale (on the server, so
the original pixels never reach the browser) until the reviewer reveals it."""

from __future__ import annotations

import io

from blindmatch.node.errors import BlindmatchError

MAX_PIXELS = 60_000_000


BLUR_FRACTION = 0.12  # Gaussian radius as a fraction of the picture's short side


class MediaUnavailable(BlindmatchError):
    code = "media-unavailable"


def render_media(data: bytes, blurred: bool) -> bytes:
    """The upload as a JPEG: blurred and grayscale, or the original pixels (re-encoded, so no
    metadata such as location travels, and at most 1600 pixels on the long side)."""
    from PIL import Image, ImageFilter, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise MediaUnavailable("the picture is too large to show")
            im.draft("RGB", (1600, 1600))
            pic = ImageOps.exif_transpose(im)
            pic.thumbnail((1600, 1600))
            if blurred:
                pic = pic.convert("L")
                pic.thumbnail((640, 640))
                radius = max(3.0, BLUR_FRACTION * min(pic.size))
                pic = pic.filter(ImageFilter.GaussianBlur(radius))
                quality = 70
            else:
                pic = pic.convert("RGB")
                quality = 90
            out = io.BytesIO()
            pic.save(out, "JPEG", quality=quality)
            return out.getvalue()
    except MediaUnavailable:
        raise
    except Exception as exc:  # a crafted file reaches more than OSError/ValueError in Pillow
        raise MediaUnavailable("the stored media is not a picture the console can show") from exc
