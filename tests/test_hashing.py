"""Media decoding, validation, border removal, query variants, the hash CLI and vPDQ."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from media_samples import textured_image
from media_samples import textured_image as smooth_image
from PIL import Image, ImageOps

from blindmatch.node.cli.main import main as cli_main
from blindmatch.node.media import boxes, hashing
from blindmatch.node.media.hashing import MediaError, decode_image, hash_image, hash_image_bytes
from blindmatch.node.signals.vpdq import hasher
from blindmatch.protocol.signals import hamming, pdq_from_bits


def encode(array: np.ndarray, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_hash_equals_pdqhash_on_the_same_pixels() -> None:
    for fmt in ("PNG", "JPEG", "WEBP", "BMP"):
        data = encode(smooth_image(5, 300, 400), fmt)
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        bits, quality = pdqhash.compute(pixels)
        h = hash_image_bytes(data)
        assert h.pdq.hash32 == pdq_from_bits(bits), fmt
        assert h.pdq.quality == quality
        assert h.pdq.good_quality
        assert len(h.sha256) == 32


def test_grayscale_and_alpha_images_hash_like_their_rgb_pixels() -> None:
    rgb = smooth_image(6, 120, 160)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    h = hash_image_bytes(encode(gray))
    bits, _ = pdqhash.compute(np.repeat(gray[:, :, None], 3, axis=2))
    assert h.pdq.hash32 == pdq_from_bits(bits)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    bits, _ = pdqhash.compute(rgb)
    assert hash_image_bytes(encode(rgba)).pdq.hash32 == pdq_from_bits(bits)


def test_large_pictures_are_downscaled_and_stay_close_to_full_size() -> None:
    big = np.asarray(Image.fromarray(smooth_image(7, 300, 400)).resize((2400, 1800)))
    h = hash_image(Image.fromarray(big))
    assert (h.width, h.height) == (1024, 768)
    small = np.asarray(Image.fromarray(big).resize((1024, 768), Image.Resampling.BOX))
    bits_small, _ = pdqhash.compute(small)
    assert h.pdq.hash32 == pdq_from_bits(bits_small)
    bits_full, _ = pdqhash.compute(big)
    assert hamming(h.pdq.hash32, pdq_from_bits(bits_full)) <= 16


def _variant_distance(query: Image.Image, original: Image.Image) -> int:
    target = hash_image(original).pdq.hash32
    variants = hash_image(query, query_variants=True).variants
    return min(hamming(v.pdq.hash32, target) for v in variants)


def test_rotations_and_mirrors_are_found_exactly() -> None:
    original = Image.fromarray(smooth_image(8, 150, 210))
    plain = hash_image(original).pdq.hash32
    for edit in (
        ImageOps.mirror,
        ImageOps.flip,
        lambda im: im.transpose(Image.Transpose.ROTATE_90),
        lambda im: im.transpose(Image.Transpose.ROTATE_180),
        lambda im: im.transpose(Image.Transpose.ROTATE_270),
        lambda im: im.transpose(Image.Transpose.TRANSPOSE),
    ):
        edited = edit(original)
        assert hamming(hash_image(edited).pdq.hash32, plain) > 31
        assert _variant_distance(edited, original) == 0


def test_padding_and_letterbox_are_removed() -> None:
    original = Image.fromarray(smooth_image(9, 200, 300))
    plain = hash_image(original).pdq.hash32
    letterbox = Image.new("RGB", (300, 280), (0, 0, 0))
    letterbox.paste(original, (0, 40))
    pad = Image.new("RGB", (360, 240), (40, 200, 90))
    pad.paste(original, (30, 20))
    for padded in (letterbox, pad):
        h = hash_image(padded, query_variants=True)
        assert h.border_removed
        assert hamming(h.pdq.hash32, plain) > 31
        assert min(hamming(v.pdq.hash32, plain) for v in h.variants) <= 8
        assert any(v.name.startswith("trimmed/") for v in h.variants)
    assert boxes.find_border_box(np.asarray(original)) == (0, 0, 300, 200)


def test_a_picture_under_a_caption_or_inside_app_chrome_is_found() -> None:
    original = Image.fromarray(smooth_image(10, 180, 240))
    plain = hash_image(original).pdq.hash32
    # A white caption strip with dark text above the picture.
    caption = Image.new("RGB", (240, 230), (255, 255, 255))
    caption.paste(original, (0, 50))
    pixels = np.asarray(caption).copy()
    pixels[15:35, 20:220:3] = 0  # "text": dark strokes over a third of those rows
    caption = Image.fromarray(pixels)
    # A screenshot: a light app background, a header with an avatar, the picture, icons.
    shot = Image.new("RGB", (300, 400), (245, 245, 245))
    shot_pixels = np.asarray(shot).copy()
    shot_pixels[20:60, 20:60] = (200, 90, 140)
    shot_pixels[330:350, 20:300:40] = (30, 30, 30)
    shot = Image.fromarray(shot_pixels)
    shot.paste(original.resize((300, 225)), (0, 90))
    for embedded in (caption, shot):
        h = hash_image(embedded, query_variants=True)
        assert hamming(h.pdq.hash32, plain) > 31
        names = {v.name for v in h.variants}
        assert names & {"content/identity", "framed/identity"}
        assert min(hamming(v.pdq.hash32, plain) for v in h.variants) <= 16
    assert boxes.find_framed_box(np.asarray(original)) == (0, 0, 240, 180)


def test_a_centred_crop_is_found_by_an_uncropped_variant() -> None:
    original = Image.fromarray(smooth_image(12, 300, 400))
    plain = hash_image(original).pdq.hash32
    cropped = original.crop((10, 8, 390, 292))  # 5% off each dimension, centred
    h = hash_image(cropped, query_variants=True)
    direct = hamming(h.pdq.hash32, plain)
    best = min(hamming(v.pdq.hash32, plain) for v in h.variants if v.name.startswith("uncrop/"))
    assert best < direct
    assert best <= 31
    extended = hashing.uncrop(np.asarray(cropped), 0.05)
    assert extended.shape[:2] == (284 + 15, 380 + 20)
    assert np.array_equal(extended[7:-8, 10:-10], np.asarray(cropped))


def test_a_flat_picture_is_not_trimmed_away() -> None:
    flat = np.full((100, 100, 3), 128, np.uint8)
    assert boxes.find_border_box(flat) == (0, 0, 100, 100)
    assert hash_image(Image.fromarray(flat)).pdq.quality < 50


def _png_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(np.zeros((16, 16, 3), np.uint8)))
    # IHDR starts at byte 8: length(4) "IHDR"(4) width(4) height(4) ...; fix its CRC.
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not_an_image"),
        (encode(smooth_image(1, 64, 64), "JPEG")[:300], "corrupt"),
        (encode(np.zeros((1, 1, 3), np.uint8)), "too_small"),
        (_png_claiming(30000, 30000), "decompression_bomb"),
        (encode(smooth_image(1, 32, 32), "PPM"), "unsupported_format"),
    ],
    ids=["zero-size", "not-an-image", "truncated", "1x1", "bomb", "unsupported"],
)
def test_bad_media_gets_a_clear_error(data: bytes, code: str) -> None:
    with pytest.raises(MediaError) as info:
        decode_image(data)
    assert info.value.code == code
    assert str(info.value)


def test_cli_prints_json_lines_and_reports_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pixels = smooth_image(2, 120, 160)
    good = tmp_path / "good.png"
    good.write_bytes(encode(pixels))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    status = cli_main(["hash", str(good), str(empty)])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert status == 1
    pdq_line, sha_line, error_line = lines
    bits, quality = pdqhash.compute(pixels)
    assert pdq_line["signal_type"] == "pdq"
    assert pdq_line["threatexchange_signal_type"] == "pdq"
    assert pdq_line["hex"] == pdq_from_bits(bits).hex()
    assert pdq_line["quality"] == quality
    assert sha_line["signal_type"] == "sha256"
    assert error_line == {"file": str(empty), "error": "empty", "message": error_line["message"]}
    assert cli_main(["hash", "--variants", str(good)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[1]["variant"] == "identity+transpose"
    names = [x.get("variant") for x in lines[1:-1]]
    assert names[-4:] == ["uncrop/2", "uncrop/5", "uncrop/5+flip_h", "uncrop/10"]
    assert len(lines) == 1 + 7 + 4 + 1  # the picture, 7 more rotations/mirrors, 4 uncrops, sha


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 5) -> bool:
    cv2 = pytest.importorskip("cv2")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        return False
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    return path.exists() and path.stat().st_size > 0


def test_vpdq_hashes_a_video_and_matches_itself(tmp_path: Path) -> None:
    if not hasher.vpdq_available():
        with pytest.raises(MediaError) as info:
            hasher.hash_video(tmp_path / "x.mp4")
        assert info.value.code == "video_unsupported"
        pytest.skip("vpdq is not installed")
    from blindmatch.protocol.signal_types.vpdq.frames import vpdq_match

    scenes = [smooth_image(s, 96, 128) for s in (11, 12, 13)]
    frames = [scenes[i // 5] for i in range(15)]  # 3 s at 5 fps, one scene per second
    video = tmp_path / "clip.mp4"
    if not _write_video(video, frames):
        pytest.skip("OpenCV cannot write mp4 here")
    hashed = hasher.hash_video(video)
    assert len(hashed) >= 3
    assert all(len(f.pdq) == 32 and 0 <= f.quality <= 100 for f in hashed)
    assert vpdq_match(hashed, hashed).is_match()
    # Each sampled frame is close to PDQ of its scene's picture.
    for f in hashed[:3]:
        nearest = min(hamming(f.pdq, pdq_from_bits(pdqhash.compute(s)[0])) for s in scenes)
        assert nearest <= 31
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    with pytest.raises(MediaError):
        hasher.hash_video(bad)
    # The CLI prints one vpdq line per frame and a sha256 line; a broken video is an error line.
    assert cli_main(["hash", str(video), str(bad)]) == 1


def test_cli_hashes_videos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not hasher.vpdq_available():
        pytest.skip("vpdq is not installed")
    video = tmp_path / "clip.mp4"
    if not _write_video(video, [smooth_image(s, 96, 128) for s in (21, 21, 22, 22, 23)], fps=2):
        pytest.skip("OpenCV cannot write mp4 here")
    assert cli_main(["hash", str(video)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    frames = [x for x in lines if x["signal_type"] == "vpdq"]
    assert frames and all(len(x["hex"]) == 64 and "frame_number" in x for x in frames)
    assert frames[0]["threatexchange_signal_type"] == "vpdq"
    assert lines[-1]["signal_type"] == "sha256"


def test_a_picture_inside_two_layers_of_chrome_is_found() -> None:
    # A phone screenshot of a picture viewer: a light status bar with "text", then the viewer's
    # dark padding around the picture, then a light navigation bar. Each single-layer finder
    # strips one layer; the nested box peels both.
    original = Image.fromarray(smooth_image(21, 180, 320))
    plain = hash_image(original).pdq.hash32
    shot = np.full((700, 320, 3), 12, dtype=np.uint8)
    shot[:40] = 245
    shot[12:28, 20:300:4] = 20  # the clock and icons
    shot[-50:] = 245
    shot[-35:-15, 60:260:30] = 20
    shot[260:440] = np.asarray(original)
    embedded = Image.fromarray(shot)
    assert boxes.find_nested_box(shot) == (0, 260, 320, 440)
    h = hash_image(embedded, query_variants=True)
    nested = [v for v in h.variants if v.name == "nested/identity"]
    assert len(nested) == 1 and hamming(nested[0].pdq.hash32, plain) <= 8


def test_each_picture_of_a_collage_with_a_weak_seam_is_looked_up() -> None:
    left = smooth_image(31, 240, 200)
    right = smooth_image(32, 240, 200)
    collage = Image.fromarray(np.concatenate([left, right], axis=1))
    buf = io.BytesIO()
    collage.save(buf, format="JPEG", quality=75)  # no gap: the seam is only a JPEG'd step
    jpeg = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    cells = boxes.find_collage_cells(np.asarray(jpeg))
    seams = {x1 for x0, y0, x1, y1 in cells if x0 == 0 and (y0, y1) == (0, 240)}
    assert len(seams) == 1 and abs(seams.pop() - 200) <= 2  # JPEG smears the seam by a pixel
    h = hash_image(jpeg, query_variants=True)
    for part in (left, right):
        plain = hash_image(Image.fromarray(part)).pdq.hash32
        assert hamming(h.pdq.hash32, plain) > 31
        best = min(hamming(v.pdq.hash32, plain) for v in h.variants if v.name.startswith("cell/"))
        assert best <= 31  # within the whole-picture threshold
    # One smooth picture has no seam to cut.
    assert boxes.find_collage_cells(smooth_image(33, 240, 400)) == []


def test_a_flat_band_of_the_picture_itself_is_not_peeled_as_chrome() -> None:
    # Inside the viewer's padding, the picture's own uniform band (a flat sky) on one side looks
    # like one more layer of padding; a viewer centres the picture, so an inner layer is peeled
    # only on two opposite sides alike, and the box stays the picture's.
    picture = textured_image(23, 180, 320)
    picture[:50] = (200, 120, 40)  # its top 50 rows one flat colour
    shot = np.full((700, 320, 3), 12, dtype=np.uint8)
    shot[:40] = 245
    shot[12:28, 20:300:4] = 20
    shot[-50:] = 245
    shot[260:440] = picture
    assert boxes.find_nested_box(shot) == (0, 260, 320, 440)


def test_the_picture_in_a_grid_collage_is_found_when_the_other_seams_are_faint() -> None:
    # A 2x2 collage: the picture in one cell, the other three cut from one other photo, so the
    # seams between them are faint and no line across the whole collage is a seam; the
    # picture's own edges are.
    picture = textured_image(41, 200, 240)
    other = textured_image(42, 400, 480)
    grid = other.copy()
    grid[200:, 240:] = picture
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="JPEG", quality=75)
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    cells = boxes.find_collage_cells(jpeg)
    assert any(
        max(abs(a - b) for a, b in zip(c, (240, 200, 480, 400), strict=True)) <= 2 for c in cells
    )
    plain = hash_image(Image.fromarray(picture)).pdq.hash32
    h = hash_image(Image.fromarray(jpeg), query_variants=True)
    best = min(hamming(v.pdq.hash32, plain) for v in h.variants if v.name.startswith("cell/"))
    assert best <= 31


def test_grid_cells_are_cut_within_a_pixel_of_the_truth_at_full_size() -> None:
    # A 2x2 collage larger than the 512-px copy the seams are found on, JPEG'd so the seams are
    # weak: each cut, scaled up from the copy, lands a pixel off (tens of bits on a cell of a
    # few hundred pixels), and is moved to the strongest step near it in the picture itself,
    # so every picture's cell is its true box.
    w, h = 470, 390  # cells; the collage is 940x780
    pictures = [textured_image(50 + k, h, w) for k in range(4)]
    grid = np.concatenate(
        [np.concatenate(pictures[:2], axis=1), np.concatenate(pictures[2:], axis=1)], axis=0
    )
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="JPEG", quality=75)
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    cells = boxes.find_collage_cells(jpeg)
    for k in range(4):
        x0, y0 = (k % 2) * w, (k // 2) * h
        truth = (x0, y0, x0 + w, y0 + h)
        off = min(max(abs(a - b) for a, b in zip(c, truth, strict=True)) for c in cells)
        assert off == 0, (truth, cells)


def test_a_border_on_one_side_only_is_not_trimmed_before_a_collage_is_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A flat dark side of one of a collage's pictures reads as a border; trimming it would move
    # every grid position the cells are looked for at. The cells are cut from the whole frame on
    # an axis where the border is on one side only, and inside it where it is on both.
    from blindmatch.node.media import hashing as hashing_module

    shapes: list[tuple[int, ...]] = []

    def record(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        shapes.append(rgb.shape[:2])
        return []

    monkeypatch.setattr(hashing_module, "find_collage_cells", record)
    picture = textured_image(61, 240, 400)
    one_side = picture.copy()
    one_side[:, 330:] = 5  # a dark band at the right edge only
    assert boxes.find_border_box(one_side)[2] < 400  # the border scan trims it
    hash_image(Image.fromarray(one_side), query_variants=True)
    both_sides = np.full((240, 440, 3), 5, dtype=np.uint8)
    both_sides[:, 20:420] = picture  # a frame left and right
    hash_image(Image.fromarray(both_sides), query_variants=True)
    assert shapes == [(240, 400), (240, 400)]


def test_a_viewer_s_thin_side_margin_is_peeled() -> None:
    # A viewer leaves 3 pixels of its padding on each side of the picture (thinner than 1% of
    # the screenshot's side): inside the outermost layer, 3 lines of the padding's colour on
    # both sides are peeled.
    picture = textured_image(71, 200, 314)
    shot = np.full((700, 320, 3), 12, dtype=np.uint8)
    shot[:40] = 245
    shot[12:28, 20:300:4] = 20
    shot[-50:] = 245
    shot[250:450, 3:317] = picture
    assert boxes.find_nested_box(shot) == (3, 250, 317, 450)
