"""The survivor page's in-browser PDQ against pdqhash on the corpus, in headless Chromium.

    ./dev bench survivor_pdq [--large N] [--limit N]

Three sets, each hashed by the page (Debian's chromium, driven by chromedriver, the page opened
as a saved file so no server is involved) and by ``blindmatch.node.media.hashing`` (Pillow decode,
Pillow BOX downscale above 1024 px, Meta's PDQ through ``pdqhash``):

* ``corpus-png``: every corpus photo (``./dev bench corpus``; JPEG, at most 800 px) decoded by
  Pillow and stored as PNG, so both sides see the same pixels: this measures the PDQ port.
* ``corpus-jpeg``: the same photos as the JPEG files themselves: Chromium's JPEG decoder against
  Pillow's (IDCT and chroma upsampling may round differently).
* ``large-png``: up to N full-size wallpapers the corpus was cut from (up to 5120 px), as PNG:
  these take the downscale path (Pillow's BOX filter emulated in the page).

For ``corpus-png``, ``corpus-jpeg`` and ``large-png`` the page also computes the derivative
signal ``pdq-tiles-1`` (the category "an ordinary photo of me to protect", ``static/tiles.js``)
and its index tiles are compared with ``blindmatch.node.media.tiles.index_tiles`` tile by tile
(``--no-tiles`` skips this).

Without the corpus cache, scikit-image's bundled photos are used instead. Results go to
``bench/results/survivor_pdq.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 50
TILES_READY = (
    "return document.body.getAttribute('data-extras') === 'idle'"
    " && Array.from(document.querySelectorAll('#results li[data-state=\"ok\"]'))"
    ".every(li => li.hasAttribute('data-tiles'))"
)
PAGE_TILES = """return Array.from(document.querySelectorAll('#results li')).map(li => [
    li.getAttribute('data-file'),
    li.hasAttribute('data-tiles') ? JSON.parse(li.getAttribute('data-tiles')) : null,
    Number(li.getAttribute('data-extras-ms') || 0)]);"""


def _bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def corpus_files() -> tuple[list[Path], list[Path], str]:
    """(corpus JPEG files, original large pictures, description of the source)."""
    from bench import corpus

    manifest = corpus.cache_dir() / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        images = [corpus.cache_dir() / item["file"] for item in data["images"]]
        originals: list[Path] = []
        seen: set[str] = set()
        for item in data["images"]:
            source = item["source"]
            if ":" not in source or source in seen or source.startswith("skimage"):
                continue
            seen.add(source)
            package, path = source.split(":", 1)
            original = corpus.cache_dir() / "unpacked" / package / path
            if original.exists():
                originals.append(original)
        return images, originals, f"the signals corpus in {corpus.cache_dir()}"
    return [], [], "scikit-image's bundled photos (no corpus cache; run ./dev bench corpus)"


def skimage_jpegs(workdir: Path) -> list[Path]:

    from bench import corpus

    out = []
    for name, image in corpus.skimage_images():
        path = workdir / f"{name.split(':')[1]}.jpg"
        image.save(path, "JPEG", quality=95)
        out.append(path)
    return out


def as_png(source: Path, target: Path, compress_level: int = 6) -> Path:
    from blindmatch.node.media import hashing

    image = hashing.decode_image(source.read_bytes())
    image.save(target, "PNG", compress_level=compress_level)
    return target


def reencode(jpegs: list[Path], workdir: Path) -> list[Path]:
    """The photos as other JPEG flavours: progressive or baseline, 4:4:4 / 4:2:2 / 4:2:0
    chroma, qualities 60..90 (Pillow's encoder; the decoders differ, not the encoder)."""
    from blindmatch.node.media import hashing

    out = []
    for n, path in enumerate(jpegs):
        image = hashing.decode_image(path.read_bytes())
        target = workdir / f"re-{n:03d}.jpg"
        image.save(
            target,
            "JPEG",
            quality=60 + 10 * (n % 4),
            subsampling=n % 3,
            progressive=bool(n % 2),
        )
        out.append(target)
    return out


def choose_category(driver, category: str | None) -> None:  # type: ignore[no-untyped-def]
    """Select a category on the page (None: none), without triggering anything else."""
    driver.execute_script(
        """for (const r of document.querySelectorAll('input[name="category"]'))
             r.checked = r.value === arguments[0];""",
        category,
    )


def hash_in_browser(driver, files: list[Path], tiles: bool = False) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The page's results per file name; with ``tiles``, also its index tiles (the category
    protected-source is chosen, so the page cuts and hashes them after each batch)."""
    from selenium.webdriver.common.by import By

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from survivor_harness import page_results, pick_files, wait_for

    from blindmatch.node.survivor.routes import MAX_PROTECTED_ITEMS

    out: dict[str, dict[str, Any]] = {}
    choose_category(driver, "protected-source" if tiles else None)
    # The page prepares at most MAX_PROTECTED_ITEMS photos to protect at a time.
    size = min(BATCH, MAX_PROTECTED_ITEMS) if tiles else BATCH
    for start in range(0, len(files), size):
        batch = files[start : start + size]
        began = time.perf_counter()
        pick_files(driver, "files", batch, timeout=1800)
        elapsed = time.perf_counter() - began
        for r in page_results(driver):
            r["seconds"] = elapsed / len(batch)
            out[r["file"]] = r
        if tiles:
            wait_for(driver, TILES_READY, 3600)
            for name, page_tiles, ms in driver.execute_script(PAGE_TILES):
                out[name]["tiles"] = page_tiles
                out[name]["tile_seconds"] = ms / 1000
        driver.find_element(By.ID, "clear").click()
    choose_category(driver, None)
    return out


def compare_tiles(files: list[Path], page: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The page's pdq-tiles-1 index tiles against tile_hashing.index_tiles, tile by tile
    (a tile is identified by its cell and frame)."""
    from blindmatch.node.media import hashing
    from blindmatch.node.media import tiles as tile_hashing

    photos = page_count = python_count = exact = quality_equal = 0
    only_page = only_python = 0
    distances: Counter[int] = Counter()
    seconds = []
    for path in files:
        shown = page.get(path.name) or {}
        if shown.get("tiles") is None:
            continue  # not fingerprinted by the page (counted by the whole-picture check)
        photos += 1
        seconds.append(shown.get("tile_seconds", 0.0))
        reference = {
            (t.cell.label, t.tile.frame): (t.pdq.hex, t.pdq.quality)
            for t in tile_hashing.index_tiles(hashing.decode_image(path.read_bytes()))
        }
        got = {(t["cell"], t["frame"]): (t["hash"], t["quality"]) for t in shown["tiles"]}
        page_count += len(got)
        python_count += len(reference)
        only_page += len(got.keys() - reference.keys())
        only_python += len(reference.keys() - got.keys())
        for key in got.keys() & reference.keys():
            d = _bits(got[key][0], reference[key][0])
            distances[d] += 1
            exact += d == 0
            quality_equal += got[key][1] == reference[key][1]
    both = sum(distances.values())
    return {
        "photos": photos,
        "tiles_page": page_count,
        "tiles_python": python_count,
        "tiles_compared": both,
        "bit_exact": exact,
        "bit_exact_fraction": exact / both if both else 0.0,
        "quality_equal": quality_equal,
        "only_page": only_page,
        "only_python": only_python,
        "distance_histogram": {str(k): v for k, v in sorted(distances.items())},
        "max_distance": max(distances) if distances else 0,
        "seconds_per_image": sum(seconds) / len(seconds) if seconds else 0.0,
    }


def compare(name: str, files: list[Path], driver, tiles: bool = False) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from blindmatch.node.media import hashing

    page = hash_in_browser(driver, files, tiles)
    exact = quality_equal = 0
    distances: Counter[int] = Counter()
    failures = []
    seconds = []
    sizes = []
    for path in files:
        reference = hashing.hash_image_bytes(path.read_bytes())
        shown = page.get(path.name)
        sizes.append(max(reference.width, reference.height))
        if not shown or not shown.get("hash"):
            failures.append({"file": path.name, "page": shown and shown.get("code")})
            continue
        seconds.append(shown["seconds"])
        d = _bits(shown["hash"], reference.pdq.hex)
        distances[d] += 1
        exact += d == 0
        quality_equal += int(shown["quality"]) == reference.pdq.quality
    n = len(files)
    hashed = n - len(failures)
    row_tiles = compare_tiles(files, page) if tiles else None
    return {
        "tiles": row_tiles,
        "set": name,
        "images": n,
        "hashed": hashed,
        "bit_exact": exact,
        "bit_exact_fraction": exact / hashed if hashed else 0.0,
        "quality_equal": quality_equal,
        "distance_histogram": {str(k): v for k, v in sorted(distances.items())},
        "max_distance": max(distances) if distances else 0,
        "within_2_bits": sum(v for k, v in distances.items() if k <= 2),
        "failures": failures,
        "seconds_per_image": sum(seconds) / len(seconds) if seconds else 0.0,
        "largest_side": max(sizes) if sizes else 0,
    }


def report(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Survivor page: in-browser PDQ against pdqhash",
        "",
        "`./dev bench survivor_pdq` hashes each picture in headless Chromium with the survivor "
        "page (`node/survivor/static/pdq.js`, the page opened as a saved file) and with "
        "`blindmatch.node.media.hashing` (Pillow decode, Pillow BOX downscale above 1024 px, "
        "Meta's PDQ through `pdqhash`), and compares the 256-bit hashes and the quality scores.",
        "",
        f"Source: {meta['source']}"
        + (f" (first {meta['limit']} photos only)" if meta.get("limit") else "")
        + f". Browser: {meta['browser']}. Python: {meta['python']}, "
        f"Pillow {meta['pillow']}, pdqhash {meta['pdqhash']}. Run {meta['date']}.",
        "",
        "| set | pictures | hashed | bit-exact | fraction | quality equal | <= 2 bits |"
        " max distance | distances of the rest | s / picture (browser) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        rest = {k: v for k, v in r["distance_histogram"].items() if k != "0"}
        rest_text = ", ".join(f"{k} bits: {v}" for k, v in rest.items()) or "none"
        lines.append(
            f"| {r['set']} | {r['images']} | {r['hashed']} | {r['bit_exact']} | "
            f"{100 * r['bit_exact_fraction']:.1f}% | {r['quality_equal']} | {r['within_2_bits']} | "
            f"{r['max_distance']} | {rest_text} | {r['seconds_per_image']:.3f} |"
        )
    tiled = [r for r in rows if r.get("tiles")]
    if tiled:
        lines += [
            "",
            "## The derivative signal `pdq-tiles-1` (index tiles of a protected photo)",
            "",
            "With the category *an ordinary photo of me that I want to protect* chosen, the page "
            "also cuts each photo into the index tiles of `pdq-tiles-1` (`static/tiles.js`: the "
            "picture and its centred 5% and 10% crops, each cut 4x4 and 5x5, 123 tiles, from the "
            "same downscaled pixels as whole-picture PDQ) and hashes each with the same PDQ "
            "port; tiles with a side under 8 px are skipped and tiles of quality under 30 left "
            "out. Compared tile by tile (cell and frame) with "
            "`blindmatch.node.media.tiles.index_tiles` on the Pillow-decoded picture.",
            "",
            "| set | photos | tiles (page) | tiles (Python) | compared | bit-exact | fraction |"
            " quality equal | only page | only Python | max distance | distances of the rest |"
            " s / photo for tiles (browser) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in tiled:
            t = r["tiles"]
            rest = {k: v for k, v in t["distance_histogram"].items() if k != "0"}
            rest_text = ", ".join(f"{k} bits: {v}" for k, v in rest.items()) or "none"
            lines.append(
                f"| {r['set']} | {t['photos']} | {t['tiles_page']} | {t['tiles_python']} | "
                f"{t['tiles_compared']} | {t['bit_exact']} | "
                f"{100 * t['bit_exact_fraction']:.1f}% | {t['quality_equal']} | "
                f"{t['only_page']} | {t['only_python']} | {t['max_distance']} | {rest_text} | "
                f"{t['seconds_per_image']:.3f} |"
            )
        lines += [
            "",
            "*photos* counts the pictures the page accepts (whole-picture quality at least 50); "
            "a picture it refuses is not cut into tiles (one wallpaper of quality 30 in "
            "large-png). The tile time is per photo in the page, from reading the file again to "
            "the last tile (decode, downscale, 123 PDQ hashes), on the main thread with a pause "
            "every ~40 ms so the page stays responsive.",
        ]
    lines += [
        "",
        "What the sets measure:",
        "",
        "- **corpus-png**: the corpus photos decoded by Pillow and stored losslessly, so both "
        "sides see identical pixels; any difference would be in the PDQ port itself (luma, "
        "Jarosz box filters, decimation, DCT, median, quality in emulated 32-bit float).",
        "- **corpus-jpeg**: the JPEG files as they are. Chromium's and Pillow's JPEG decoders "
        "are both libjpeg-turbo builds but may differ in IDCT method and chroma upsampling; a "
        "difference here is a decoder difference, not a hashing one.",
        "- **reencoded-jpeg**: the first 120 photos re-encoded as progressive and baseline "
        "JPEGs with 4:4:4, 4:2:2 and 4:2:0 chroma at qualities 60..90: other decoder paths.",
        "- **large-png**: full-size wallpapers (longest side above 1024 px), which both sides "
        "first shrink with Pillow 13's BOX resampling (8-bit fixed point, pass order as in "
        "Pillow 13) before PDQ.",
        "- **original-jpeg** / **original-webp**: the wallpapers' original files as shipped by "
        "their packages (other encoders; large, so also the downscale path).",
        "",
        "Handled by the page and covered by `tests/test_survivor_page.py` rather than here: "
        "EXIF orientation (Chromium turns JPEG and PNG pictures upright, Pillow does not; the "
        "page turns the pixels back), PNGs with transparency or 16-bit samples (decoded by the "
        "page itself with Pillow's conversion rules, since a canvas premultiplies alpha).",
        "",
        "Known gaps: transparency in GIF and WebP pictures (canvas premultiplication; the page "
        "warns), CMYK JPEGs, TIFF (not decodable in a browser; the page says so), a hub running "
        "Pillow older than 13 (pictures taller than wide that need shrinking were resized "
        "horizontally first there), and browsers other than Chromium (not measured).",
        "",
    ]
    for r in rows:
        if r["failures"]:
            lines.append(f"{r['set']}: not hashed by the page: {r['failures'][:10]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench survivor_pdq", description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=40, help="full-size originals to include")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N corpus photos")
    parser.add_argument("--no-tiles", action="store_true", help="skip the pdq-tiles-1 comparison")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from survivor_harness import browser_missing, start_browser, temp_profile, wait_for

    missing = browser_missing()
    if missing:
        print(f"bench survivor_pdq: {missing}", file=sys.stderr)
        return 2
    import pdqhash
    import PIL

    from blindmatch.node.survivor.routes import STATIC_FILES, _static

    jpegs, originals, source = corpus_files()
    with tempfile.TemporaryDirectory(prefix="bm-survivor-bench-") as tmp:
        work = Path(tmp)
        if not jpegs:
            jpegs = skimage_jpegs(work)
        if args.limit:
            jpegs = jpegs[: args.limit]
        site = work / "site"
        site.mkdir()
        for name in STATIC_FILES:
            (site / name).write_bytes(_static(name))
        pngs = [as_png(p, work / f"c-{p.stem}.png") for p in jpegs]
        large = []
        for n, original in enumerate(originals[: args.large]):
            large.append(as_png(original, work / f"large-{n:03d}.png", compress_level=1))
        reencoded = reencode(jpegs[:120], work)
        by_suffix: dict[str, list[Path]] = {}
        for n, original in enumerate(originals):
            suffix = original.suffix.lower().replace(".jpeg", ".jpg")
            if len(by_suffix.setdefault(suffix, [])) < args.large:
                # Copied under a unique name (the page lists pictures by file name).
                copy = work / f"orig-{n:03d}{suffix}"
                copy.write_bytes(original.read_bytes())
                by_suffix[suffix].append(copy)
        with temp_profile() as profile:
            driver = start_browser(profile)
            try:
                driver.get((site / "index.html").as_uri())
                wait_for(driver, "return document.body.getAttribute('data-ready') === '1'")
                browser = driver.capabilities.get("browserVersion", "?")
                tiles = not args.no_tiles
                rows = [
                    compare("corpus-png", pngs, driver, tiles),
                    compare("corpus-jpeg", jpegs, driver, tiles),
                ]
                rows.append(compare("reencoded-jpeg", reencoded, driver))
                if large:
                    rows.append(compare("large-png", large, driver, tiles))
                for suffix, name in ((".jpg", "original-jpeg"), (".webp", "original-webp")):
                    if by_suffix.get(suffix):
                        rows.append(compare(name, by_suffix[suffix], driver))
            finally:
                driver.quit()
    meta = {
        "source": source,
        "browser": f"Chromium {browser} (headless)",
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "pdqhash": getattr(pdqhash, "__version__", "?"),
        "date": time.strftime("%Y-%m-%d"),
        "limit": args.limit,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "survivor_pdq.json").write_text(json.dumps({"meta": meta, "sets": rows}, indent=1))
    text = report(rows, meta)
    (RESULTS / "survivor_pdq.md").write_text(text)
    print(text)
    return 0
