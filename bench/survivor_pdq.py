"""The survivor page's in-browser PDQ against pdqhash on the corpus, in headless Chromium.

    ./dev bench survivor_pdq [--large N] [--limit N]

Three sets, each hashed by the page (Debian's chromium, driven by chromedriver, the page opened
as a saved file so no server is involved) and by ``blindmatch.node.hashing`` (Pillow decode,
Pillow BOX downscale above 1024 px, Meta's PDQ through ``pdqhash``):

* ``corpus-png``: every corpus photo (``./dev bench corpus``; JPEG, at most 800 px) decoded by
  Pillow and stored as PNG, so both sides see the same pixels: this measures the PDQ port.
* ``corpus-jpeg``: the same photos as the JPEG files themselves: Chromium's JPEG decoder against
  Pillow's (IDCT and chroma upsampling may round differently).
* ``large-png``: up to N full-size wallpapers the corpus was cut from (up to 5120 px), as PNG:
  these take the downscale path (Pillow's BOX filter emulated in the page).

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
    from blindmatch.node import hashing

    image = hashing.decode_image(source.read_bytes())
    image.save(target, "PNG", compress_level=compress_level)
    return target


def reencode(jpegs: list[Path], workdir: Path) -> list[Path]:
    """The photos as other JPEG flavours: progressive or baseline, 4:4:4 / 4:2:2 / 4:2:0
    chroma, qualities 60..90 (Pillow's encoder; the decoders differ, not the encoder)."""
    from blindmatch.node import hashing

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


def hash_in_browser(driver, files: list[Path]) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from survivor_harness import page_results, pick_files

    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(files), BATCH):
        batch = files[start : start + BATCH]
        began = time.perf_counter()
        pick_files(driver, "files", batch, timeout=1800)
        elapsed = time.perf_counter() - began
        for r in page_results(driver):
            r["seconds"] = elapsed / len(batch)
            out[r["file"]] = r
        driver.find_element(By.ID, "clear").click()
    return out


def compare(name: str, files: list[Path], driver) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from blindmatch.node import hashing

    page = hash_in_browser(driver, files)
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
    return {
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
        "`blindmatch.node.hashing` (Pillow decode, Pillow BOX downscale above 1024 px, "
        "Meta's PDQ through `pdqhash`), and compares the 256-bit hashes and the quality scores.",
        "",
        f"Source: {meta['source']}. Browser: {meta['browser']}. Python: {meta['python']}, "
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
                rows = [compare("corpus-png", pngs, driver), compare("corpus-jpeg", jpegs, driver)]
                rows.append(compare("reencoded-jpeg", reencoded, driver))
                if large:
                    rows.append(compare("large-png", large, driver))
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
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "survivor_pdq.json").write_text(json.dumps({"meta": meta, "sets": rows}, indent=1))
    text = report(rows, meta)
    (RESULTS / "survivor_pdq.md").write_text(text)
    print(text)
    return 0
