"""The copy/derivative call measured as a classifier (issue 17 item 3).

Run by ``./dev bench edits`` (``--part classes`` alone); results in bench/results/edits.md/.json.

Labelled edits of a few corpus photos: *copies* (recompression at JPEG q40 and 2/3 size,
resize to 50%, a 5% centred crop, a mild perspective change) and *derivatives* (a 10% region
blurred, 25% of the picture replaced by other content, 30% inpainted with OpenCV Telea). Each
is judged against its own photo, brute force, in two ways:

* *tiles rule alone*: :func:`blindmatch.protocol.derivative.classify` (specs/derivatives.md
  6.1-6.2) on the tiles confirmed within the scheme's threshold;
* *as a node calls it*: a whole-picture match (any query variant within 31 of the photo's
  hash) names the photo, so the upload is its copy and no tile is asked
  (specs/derivatives.md 6.5); otherwise the tiles rule.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFilter

from bench import corpus
from bench import transforms as tf
from blindmatch.node.media.hashing import hash_image
from blindmatch.node.media.tiles import index_tiles, query_tiles
from blindmatch.protocol import derivative as dv
from blindmatch.protocol.signals import PDQ_QUALITY_THRESHOLD

WHOLE_THRESHOLD = 31


def recompress(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    small = im.resize(
        (round(im.width * 2 / 3), round(im.height * 2 / 3)), Image.Resampling.BILINEAR
    )
    return tf.jpeg(40)(small, rng, donor)


def perspective(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """A mild keystone: the top edge pulled in by 4% on each side, as a photo of a screen."""
    w, h = im.size
    d = 0.04 * w
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[d, 0], [w - d, 0], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(np.asarray(im), m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return tf.jpeg(85)(Image.fromarray(out), rng, donor)


def _box(im: Image.Image, rng: np.random.Generator, area: float) -> tuple[int, int, int, int]:
    side = np.sqrt(area)
    w, h = round(im.width * side), round(im.height * side)
    x = int(rng.integers(0, im.width - w + 1))
    y = int(rng.integers(0, im.height - h + 1))
    return (x, y, x + w, y + h)


def blur_region(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """10% of the picture (a rectangle) blurred away, as a censoring or retouching edit."""
    box = _box(im, rng, 0.10)
    out = im.copy()
    out.paste(im.crop(box).filter(ImageFilter.GaussianBlur(12)), box[:2])
    return out


def inpaint_region(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """30% of the picture (a centred body-like ellipse reaching the bottom) inpainted."""
    rgb = np.asarray(im)
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cx = w // 2 + int(rng.integers(-w // 10, w // 10 + 1))
    cv2.ellipse(mask, (cx, int(h * 0.62)), (int(w * 0.27), int(h * 0.5)), 0, 0, 360, 255, -1)
    return Image.fromarray(cv2.inpaint(rgb, mask, 5, cv2.INPAINT_TELEA))


CLASSES: dict[str, tuple[str, tf.Transform]] = {
    "recompress_q40_2/3": ("copy", recompress),
    "resize_50": ("copy", tf.resize(0.5)),
    "crop_5_centre": ("copy", tf.crop(0.05, True)),
    "perspective_4": ("copy", perspective),
    "blur_region_10": ("derivative", blur_region),
    "replace_region_25": ("derivative", tf.replace_region),
    "inpaint_30": ("derivative", inpaint_region),
}


def _hamming(a: bytes, b: bytes) -> int:
    return int.from_bytes(bytes(x ^ y for x, y in zip(a, b, strict=True)), "big").bit_count()


def judge(
    scheme: dv.DerivativeScheme, source: dict[str, Any], edited: Image.Image
) -> dict[str, str]:
    whole = hash_image(edited, query_variants=True)
    whole_match = any(
        _hamming(v.pdq.hash32, source["hash"]) <= WHOLE_THRESHOLD
        for v in whole.variants
        if v.pdq.quality >= PDQ_QUALITY_THRESHOLD
    )
    tiles = query_tiles(edited, scheme)
    confirmations = [
        dv.TileConfirmation(t.cell, source["group"])
        for t in tiles
        if any(
            _hamming(t.pdq.hash32, h) <= scheme.threshold for h in source["by_cell"].get(t.cell, ())
        )
    ]
    verdicts = dv.classify(
        scheme,
        {t.cell for t in tiles},
        confirmations,
        whole_match,
        {source["group"]: source["cells"]},
    )
    tiles_kind = next((v.kind for v in verdicts if v.group == source["group"]), dv.KIND_NONE)
    if tiles_kind == dv.KIND_NONE and whole_match:
        tiles_kind = dv.KIND_COPY
    node_kind = dv.KIND_COPY if whole_match else tiles_kind
    return {"tiles": tiles_kind, "node": node_kind}


def run(photos: int, seed: int) -> dict[str, Any]:
    scheme = dv.PDQ_TILES_1
    items = corpus.build()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    chosen = [items[i] for i in order[:photos]]
    donors = [items[i] for i in order[photos : 2 * photos]]
    calls: dict[str, dict[str, list[str]]] = {}
    for n, (item, donor_item) in enumerate(zip(chosen, donors, strict=True)):
        image = corpus.load_image(item)
        donor = corpus.load_image(donor_item)
        banked = index_tiles(image, scheme)
        by_cell: dict[dv.Cell, list[bytes]] = {}
        for t in banked:
            by_cell.setdefault(t.cell, []).append(t.pdq.hash32)
        source = {
            "hash": hash_image(image).pdq.hash32,
            "group": n.to_bytes(dv.RELEASE_GROUP_BYTES, "big"),
            "by_cell": by_cell,
            "cells": {t.cell for t in banked if t.tile.frame == 0},
        }
        for name, (_, transform) in CLASSES.items():
            verdict = judge(scheme, source, transform(image, rng, donor))
            for rule, kind in verdict.items():
                calls.setdefault(name, {}).setdefault(rule, []).append(kind)
    out: dict[str, Any] = {"photos": photos, "seed": seed, "per_class": {}, "rules": {}}
    for name, (truth, _) in CLASSES.items():
        out["per_class"][name] = {
            "truth": truth,
            **{
                rule: {k: kinds.count(k) for k in (dv.KIND_COPY, dv.KIND_DERIVATIVE, dv.KIND_NONE)}
                for rule, kinds in calls[name].items()
            },
        }
    for rule in ("tiles", "node"):
        called = truth_d = tp = 0
        for name, (truth, _) in CLASSES.items():
            kinds = calls[name][rule]
            d = kinds.count(dv.KIND_DERIVATIVE)
            called += d
            if truth == "derivative":
                truth_d += len(kinds)
                tp += d
        copy_as_d = [
            calls[n][rule].count(dv.KIND_DERIVATIVE) / len(calls[n][rule])
            for n in ("recompress_q40_2/3", "resize_50")
        ]
        out["rules"][rule] = {
            "derivative_precision": tp / called if called else None,
            "derivative_recall": tp / truth_d if truth_d else None,
            "recompress_resize_called_derivative": max(copy_as_d),
        }
    return out


def report(r: dict[str, Any]) -> list[str]:
    lines = [
        "## The copy/derivative call as a classifier",
        "",
        f"n = {r['photos']} corpus photos (seed {r['seed']}), each edited once per class and "
        "judged against its own photo, brute force (tiles within the scheme's T = 39, whole "
        "picture within 31). *Tiles rule alone*: specs/derivatives.md 6.1-6.2 "
        "(`protocol/derivative.py` classify); *as a node calls it*: a whole-picture match makes "
        "the upload a copy and no tile is asked (6.5), else the tiles rule. Cells: copy / "
        "derivative / none.",
        "",
        "| edit | truth | tiles rule alone | as a node calls it |",
        "|---|---|---|---|",
    ]
    for name, c in r["per_class"].items():
        t, nd = c["tiles"], c["node"]
        lines.append(
            f"| {name} | {c['truth']} | {t['copy']} / {t['derivative']} / {t['none']} "
            f"| {nd['copy']} / {nd['derivative']} / {nd['none']} |"
        )
    lines += [
        "",
        "| rule | derivative precision | derivative recall | recompression/resize "
        "called derivative (worst) |",
        "|---|---:|---:|---:|",
    ]
    for rule, label in (("tiles", "tiles rule alone"), ("node", "as a node calls it")):
        m = r["rules"][rule]
        p = "n/a" if m["derivative_precision"] is None else f"{m['derivative_precision']:.2f}"
        rc = "n/a" if m["derivative_recall"] is None else f"{m['derivative_recall']:.2f}"
        lines.append(f"| {label} | {p} | {rc} | {m['recompress_resize_called_derivative']:.0%} |")
    lines += [
        "",
        "Recall counts every derivative query (also those not matched at all). Targets: "
        "precision >= 0.95, recall >= 0.90, recompression/resize called derivative <= 2%.",
        "",
    ]
    return lines
