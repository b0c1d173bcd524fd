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
  (specs/derivatives.md 6.5); otherwise the tiles rule;
* *local-edit rule* (measured here, not built into the node): once the upload matches the
  photo (whole picture, or tiles by 6.1), it is a derivative when the unconfirmed regions are
  local and the rest is untouched: at least MIN_UNMATCHED regions of Q u S unconfirmed
  (> 39), two of them side by side in one grid, and at least CLEAN_FRACTION of the regions
  confirmed within CLEAN_BAND bits (a band the holder's default bands release); else a copy.
  A recompression or resize moves every tile a little (few regions that close), a local edit
  leaves most of them exact. Its parameters were picked on other photos (the first TUNED of
  the seed's order); the frontier of nearby values is reported.
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
MIN_UNMATCHED = 2
CLEAN_BAND = 8
CLEAN_FRACTION = 0.2


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


def replace_small(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
    """10% of the picture (a rectangle) replaced by content from an unrelated photo."""
    box = _box(im, rng, 0.10)
    out = im.copy()
    out.paste(donor.resize((box[2] - box[0], box[3] - box[1])), box[:2])
    return out


def reencoded(transform: tf.Transform, quality: int = 85) -> tf.Transform:
    def apply(im: Image.Image, rng: np.random.Generator, donor: Image.Image) -> Image.Image:
        return tf.jpeg(quality)(transform(im, rng, donor), rng, donor)

    return apply


CLASSES: dict[str, tuple[str, tf.Transform]] = {
    "jpeg_q75": ("copy", tf.jpeg(75)),
    "recompress_q40_2/3": ("copy", recompress),
    "resize_50": ("copy", tf.resize(0.5)),
    "crop_5_centre": ("copy", tf.crop(0.05, True)),
    "perspective_4": ("copy", perspective),
    "blur_region_10": ("derivative", blur_region),
    "replace_region_10": ("derivative", replace_small),
    "replace_region_25": ("derivative", tf.replace_region),
    "replace_region_25_q85": ("derivative", reencoded(tf.replace_region)),
    "inpaint_30": ("derivative", inpaint_region),
}
RULES = {
    "tiles": "tiles rule alone",
    "node": "as a node calls it",
    "local": "local-edit rule",
    "cluster": "clustered-edit rule",
    "either": "node's call or clustered-edit",
}
# The bands a querier learns per confirmed tile: the holder's default release_bands (8, 16, 31)
# below the tile threshold, then T = 39 (specs/derivatives.md 5, node/signals/base.py bands).
TILE_BANDS = (8, 16, 31, 39)
# The clustered-edit rule (measured, not built): picked on the first TUNED_CLUSTER photos of the
# seed's order (donors: the next TUNED_CLUSTER), run with ``python -m bench._edit_classes``.
CLUSTER_BAND = 8
CLUSTER_FRACTION = 0.1
TUNED_CLUSTER = 30
# Its scores there: precision, recall (all derivatives), recall of the matched derivatives,
# worst recompression/resize called a derivative.
TUNED_CLUSTER_SCORES = (0.98, 0.90, 0.95, 0.0)
# *Node's call or clustered-edit* there: precision 0.97, recall 0.92 (matched 0.97), worst
# recompression/resize 3% (resize 1 in 30, the node's call's own); worse than the node's call
# on jpeg_q75 (2 in 30) and crop_5_centre (2 against 1).
TUNED_EITHER_SCORES = (0.97, 0.92, 0.97, 0.03)


def _adjacent(cells: set[dv.Cell]) -> bool:
    """Whether two of the cells are side by side in one grid."""
    places = {(c.grid, c.col, c.row) for c in cells}
    return any((g, col + 1, row) in places or (g, col, row + 1) in places for g, col, row in places)


def _across(cells: set[dv.Cell]) -> bool:
    """Whether a cell of one grid and a cell of another grid among ``cells`` overlap (an edit
    seen by both grids in the same place, not two grids' scattered misses)."""

    def box(c: dv.Cell) -> tuple[float, float, float, float]:
        return (c.col / c.grid, c.row / c.grid, (c.col + 1) / c.grid, (c.row + 1) / c.grid)

    for a in cells:
        for b in cells:
            if a.grid < b.grid:
                (al, at, ar, ab), (bl, bt, br, bb) = box(a), box(b)
                if min(ar, br) - max(al, bl) > 1e-9 and min(ab, bb) - max(at, bt) > 1e-9:
                    return True
    return False


def _band(d: int) -> int | None:
    return next((b for b in TILE_BANDS if d <= b), None)


def clustered_edit_call(
    upload: dict[str, Any],
    clean_band: int = CLUSTER_BAND,
    clean_fraction: float = CLUSTER_FRACTION,
    adjacent: bool = True,
    across: bool = True,
    min_unmatched: int = 2,
) -> str:
    """The clustered-edit rule on one upload's stored features, using only what a querier
    learns: per region of Q u S whether its tile was confirmed (<= 39) and in which band, and
    whether the whole picture matched. Once the upload matches (6.1, or the whole picture), a
    derivative when at least ``min_unmatched`` regions are unconfirmed, two of them side by
    side in one grid (``adjacent``) and one of the 4x4 grid overlapping one of the 5x5 grid
    (``across``), and at least ``clean_fraction`` of the regions are confirmed within
    ``clean_band``; else a copy."""
    scheme = dv.PDQ_TILES_1
    query = dv.mask_cells(scheme, upload["query_cells"])
    regions = query | dv.mask_cells(scheme, upload["source_cells"])
    nearest = dict(zip(scheme.cells, map(int, upload["nearest"].split()), strict=True))
    bands = {c: _band(nearest[c]) if c in query else None for c in regions}
    confirmed = {c for c, b in bands.items() if b is not None}
    if upload["whole"] > WHOLE_THRESHOLD and len(confirmed) < scheme.min_regions:
        return dv.KIND_NONE
    if not regions:
        return dv.KIND_COPY  # a whole-picture match the tiles cannot judge (6.2)
    unmatched = regions - confirmed
    clean = sum(b is not None and b <= clean_band for b in bands.values()) / len(regions)
    local = (
        len(unmatched) >= min_unmatched
        and (not adjacent or _adjacent(unmatched))
        and (not across or _across(unmatched))
    )
    return dv.KIND_DERIVATIVE if local and clean >= clean_fraction else dv.KIND_COPY


def _node_call(upload: dict[str, Any]) -> str:
    """The node's call (a whole-picture match is a copy, else 6.1-6.2) from a stored upload."""
    scheme = dv.PDQ_TILES_1
    query = dv.mask_cells(scheme, upload["query_cells"])
    regions = query | dv.mask_cells(scheme, upload["source_cells"])
    nearest = dict(zip(scheme.cells, map(int, upload["nearest"].split()), strict=True))
    confirmed = {c for c in query if nearest[c] <= scheme.threshold}
    if upload["whole"] <= WHOLE_THRESHOLD:
        return dv.KIND_COPY
    if len(confirmed) < scheme.min_regions:
        return dv.KIND_NONE
    copy = len(confirmed) / len(regions) >= scheme.copy_coverage
    return dv.KIND_COPY if copy else dv.KIND_DERIVATIVE


def add_cluster_rule(out: dict[str, Any]) -> dict[str, Any]:
    """The clustered-edit rule's calls, scores and frontier, from a run's stored uploads; and
    *either*: a derivative when the node's call or the clustered-edit rule says so."""
    uploads = out["uploads"]
    kinds = {name: [clustered_edit_call(u) for u in uploads[name]] for name in CLASSES}
    either = {
        name: [
            dv.KIND_DERIVATIVE if dv.KIND_DERIVATIVE in (k, _node_call(u)) else k
            for k, u in zip(kinds[name], uploads[name], strict=True)
        ]
        for name in CLASSES
    }
    for rule, calls in (("cluster", kinds), ("either", either)):
        for name in CLASSES:
            out["per_class"][name][rule] = {
                k: calls[name].count(k) for k in (dv.KIND_COPY, dv.KIND_DERIVATIVE, dv.KIND_NONE)
            }
        out["rules"][rule] = _scores(calls)
    out["cluster_frontier"] = []
    for adjacent, across in ((True, True), (True, False), (False, True)):
        for band in (8, 16):
            for fraction in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3):
                calls = {
                    name: [
                        clustered_edit_call(u, band, fraction, adjacent, across)
                        for u in uploads[name]
                    ]
                    for name in CLASSES
                }
                out["cluster_frontier"].append(
                    {
                        "clean_band": band,
                        "clean_fraction": fraction,
                        "adjacent": adjacent,
                        "across": across,
                    }
                    | _scores(calls)
                )
    return out


def local_edit_call(
    matched: bool,
    distances: dict[dv.Cell, int],
    clean_band: int = CLEAN_BAND,
    clean_fraction: float = CLEAN_FRACTION,
    min_unmatched: int = MIN_UNMATCHED,
) -> str:
    """The local-edit rule on one upload: ``distances`` = each region of Q u S and its closest
    tile of the source in that cell (256 when none)."""
    if not matched or not distances:
        return dv.KIND_COPY if matched else dv.KIND_NONE
    unmatched = {c for c, d in distances.items() if d > dv.PDQ_TILES_1.threshold}
    clean = sum(d <= clean_band for d in distances.values()) / len(distances)
    local = len(unmatched) >= min_unmatched and _adjacent(unmatched)
    return dv.KIND_DERIVATIVE if local and clean >= clean_fraction else dv.KIND_COPY


def _hamming(a: bytes, b: bytes) -> int:
    return int.from_bytes(bytes(x ^ y for x, y in zip(a, b, strict=True)), "big").bit_count()


def judge(
    scheme: dv.DerivativeScheme, source: dict[str, Any], edited: Image.Image
) -> dict[str, Any]:
    whole = hash_image(edited, query_variants=True)
    whole_distance = min(
        (
            _hamming(v.pdq.hash32, source["hash"])
            for v in whole.variants
            if v.pdq.quality >= PDQ_QUALITY_THRESHOLD
        ),
        default=256,
    )
    whole_match = whole_distance <= WHOLE_THRESHOLD
    tiles = query_tiles(edited, scheme)
    nearest = {
        t.cell: min(
            (_hamming(t.pdq.hash32, h) for h in source["by_cell"].get(t.cell, ())), default=256
        )
        for t in tiles
    }
    regions = {c: nearest.get(c, 256) for c in {t.cell for t in tiles} | source["cells"]}
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
    matched = whole_match or tiles_kind != dv.KIND_NONE
    return {
        "tiles": tiles_kind,
        "node": node_kind,
        "local": local_edit_call(matched, regions),
        "features": (matched, {c.label: d for c, d in regions.items()}),
        "upload": {
            "whole": whole_distance,
            "query_cells": dv.cells_mask(scheme, {t.cell for t in tiles}),
            "source_cells": dv.cells_mask(scheme, source["cells"]),
            "nearest": " ".join(str(nearest.get(c, 256)) for c in scheme.cells),
        },
    }


# The local-edit rule's parameters were picked on the first TUNED photos of the seed's order
# (and the next TUNED as donors); the report is measured on photos after those.
TUNED = 40
# The rule's scores on those photos (precision, recall, worst recompression/resize called a
# derivative), measured when its parameters were picked (9 classes: this suite without the
# re-encoded replacement).
TUNED_SCORES = (0.95, 0.91, 0.0)


def run(photos: int, seed: int, start: int = 2 * TUNED) -> dict[str, Any]:
    scheme = dv.PDQ_TILES_1
    items = corpus.build()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))[start:]
    chosen = [items[i] for i in order[:photos]]
    donors = [items[i] for i in order[photos : 2 * photos]]
    calls: dict[str, dict[str, list[str]]] = {}
    features: dict[str, list[tuple[bool, dict[str, int]]]] = {}
    uploads: dict[str, list[dict[str, Any]]] = {}
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
            features.setdefault(name, []).append(verdict.pop("features"))
            uploads.setdefault(name, []).append(verdict.pop("upload"))
            for rule, kind in verdict.items():
                calls.setdefault(name, {}).setdefault(rule, []).append(kind)
    out: dict[str, Any] = {"photos": photos, "seed": seed, "per_class": {}, "rules": {}}
    out["uploads"] = uploads
    for name, (truth, _) in CLASSES.items():
        out["per_class"][name] = {
            "truth": truth,
            **{
                rule: {k: kinds.count(k) for k in (dv.KIND_COPY, dv.KIND_DERIVATIVE, dv.KIND_NONE)}
                for rule, kinds in calls[name].items()
            },
        }
    for rule in ("tiles", "node", "local"):  # the clustered-edit rule: add_cluster_rule
        out["rules"][rule] = _scores({name: calls[name][rule] for name in CLASSES})
    # The frontier around the local-edit rule's parameters, on the same uploads.
    out["frontier"] = []
    for band in (8, 16):
        for fraction in (0.1, 0.2, 0.3, 0.4):
            for least in (1, 2, 3):
                kinds = {
                    name: [
                        local_edit_call(
                            m, {dv.Cell.parse(c): d for c, d in f.items()}, band, fraction, least
                        )
                        for m, f in features[name]
                    ]
                    for name in CLASSES
                }
                out["frontier"].append(
                    {"clean_band": band, "clean_fraction": fraction, "min_unmatched": least}
                    | _scores(kinds)
                )
    return add_cluster_rule(out)


def _scores(calls: dict[str, list[str]]) -> dict[str, Any]:
    called = truth_d = matched_d = tp = 0
    for name, (truth, _) in CLASSES.items():
        kinds = calls[name]
        d = kinds.count(dv.KIND_DERIVATIVE)
        called += d
        if truth == "derivative":
            truth_d += len(kinds)
            matched_d += len(kinds) - kinds.count(dv.KIND_NONE)
            tp += d
    copy_as_d = [
        calls[n].count(dv.KIND_DERIVATIVE) / len(calls[n])
        for n in ("recompress_q40_2/3", "resize_50")
    ]
    return {
        "derivative_precision": tp / called if called else None,
        "derivative_recall": tp / truth_d if truth_d else None,
        "derivative_recall_matched": tp / matched_d if matched_d else None,
        "recompress_resize_called_derivative": max(copy_as_d),
    }


def report(r: dict[str, Any]) -> list[str]:
    per_class = r["per_class"]
    n_truth = {
        t: sum(1 for c in per_class.values() if c["truth"] == t) for t in ("copy", "derivative")
    }
    lines = [
        "## The copy/derivative call as a classifier",
        "",
        f"n = {r['photos']} corpus photos per class (seed {r['seed']}; {r.get('seconds', '?')} s), "
        f"each edited once per class ({n_truth['copy']} copy classes, {n_truth['derivative']} "
        f"derivative classes: {r['photos'] * n_truth['copy']} copies and "
        f"{r['photos'] * n_truth['derivative']} derivatives) and "
        "judged against its own photo, brute force (tiles within the scheme's T = 39, whole "
        "picture within 31). *Tiles rule alone*: specs/derivatives.md 6.1-6.2 "
        "(`protocol/derivative.py` classify); *as a node calls it*: a whole-picture match makes "
        "the upload a copy and no tile is asked (6.5), else the tiles rule; *local-edit rule* "
        "(**measured, not built**): once the upload matches the photo (whole picture, or tiles "
        f"by 6.1), a derivative when at least {MIN_UNMATCHED} regions of Q u S are unconfirmed "
        f"(> 39), two of them side by side in one grid, and at least {CLEAN_FRACTION:.0%} of "
        f"the regions are confirmed within {CLEAN_BAND} bits; else a copy (picked on the first "
        f"{2 * TUNED} photos of seed 17's order, n = {TUNED} per class, and their donors); "
        "*clustered-edit rule* (**measured, not built**): the same, but the unconfirmed regions "
        "must also be seen by both grids in one place (a 4x4 cell and a 5x5 cell that overlap, "
        "both unconfirmed: a real edit removes the same area from both grids, a recompression's "
        "misses are scattered), and at least "
        f"{CLUSTER_FRACTION:.0%} of the regions confirmed in band <= {CLUSTER_BAND} (the bands "
        "a querier learns with the holder's default release_bands: 8, 16, 31, 39); picked on "
        f"the first {TUNED_CLUSTER} photos of seed 17's order (n = {TUNED_CLUSTER} per class, "
        f"donors the next {TUNED_CLUSTER}). The photos below come after all of those (disjoint "
        "from both tuning sets). *Node's call or clustered-edit*: a derivative when either "
        "says so (measured, not built). Cells: copy / derivative / none. "
        "`_q85`: the edit re-encoded at JPEG q85.",
        "",
        "| edit | truth | " + " | ".join(RULES.values()) + " |",
        "|---|---|" + "---|" * len(RULES),
    ]
    for name, c in per_class.items():
        cells = [
            f"{c[rule]['copy']} / {c[rule]['derivative']} / {c[rule]['none']}"
            if rule in c
            else "n/a"
            for rule in RULES
        ]
        lines.append(f"| {name} | {c['truth']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| rule | derivative precision | derivative recall | recall of matched derivatives "
        "| recompression/resize called derivative (worst) |",
        "|---|---:|---:|---:|---:|",
    ]
    for rule, label in RULES.items():
        if rule in r["rules"]:
            lines.append(f"| {label} | " + _score_cells(r["rules"][rule], True) + " |")
    unmatched = sum(c["node"]["none"] for c in per_class.values() if c["truth"] == "derivative")
    ceiling = 1 - unmatched / (r["photos"] * n_truth["derivative"])
    lines += [
        "",
        "Recall counts every derivative query (also those not matched at all, the *none* "
        "cells: an inpainting or a replacement that left fewer than 2 regions and no whole "
        "picture); *recall of matched derivatives* leaves those out. No copy/derivative rule "
        "can call an upload that matched nothing, so the *none* cells bound every rule's recall: "
        f"here at {ceiling:.2f}. "
        "Targets: precision >= 0.95, recall >= 0.90, recompression/resize called derivative "
        "<= 2%.",
        "",
    ]

    def worse(rule: str) -> str:
        names = [
            name
            for name, c in per_class.items()
            if rule in c
            and (
                c[rule]["derivative"] > c["node"]["derivative"]
                if c["truth"] == "copy"
                else c[rule]["derivative"] < c["node"]["derivative"]
            )
        ]
        return ", ".join(names) if names else "no class"

    lines += [
        "**Reading.** No point of the measured rules meets the targets on these photos (the "
        "frontier below). The derivatives that matched nothing cap every rule's recall at "
        f"{ceiling:.2f} (a matching problem, not a classifying one)"
        + (
            ", below 0.90 already. "
            if ceiling < 0.90
            else f": to reach 0.90 a rule would have to call {0.90 / ceiling:.0%} of the matched "
            "derivatives, and the 10% regional blur (whole picture still within 31, most tiles "
            "exact) is where every rule falls short. "
        )
        + "The closest point (the clustered-edit "
        "rule) keeps recompression and resize at 0% and precision >= 0.95 and raises recall "
        "over the node's call, but it is worse than the node's call on "
        + worse("cluster")
        + "; *node's call or clustered-edit* is worse on "
        + worse("either")
        + " (derivatives called per class above), so neither is **built**: the node's rule is "
        "unchanged. Building either would also change 6.5: a whole-picture match would no "
        "longer end the exchange (the node asks no tile after one), because 10% regional edits "
        "keep the whole picture within 31 (blur_region_10) and only the tiles' bands tell them "
        "apart, so every tile with candidates would be asked (up to 41 tile verifications at "
        "the hub where a copy now costs one). *Labels*: the mild "
        "perspective change is labelled a copy (the same content, nothing replaced, as a photo "
        "of a screen); whether it is a derivative is a policy question, but it hardly bears on "
        "these figures, since its tiles and whole picture almost never match (the *none* "
        "cells) and recall of perspective is the recall issue's concern. The copies the "
        "tile rules call derivatives are single re-encodes and crops (jpeg_q75, crop_5_centre; "
        "in the tuning photos, a re-encode that left the whole picture within 8 but pushed "
        "many tiles beyond 39, a side-by-side cluster among them).",
        "",
    ]
    p, rc, worst = TUNED_SCORES
    lines += [
        f"On the {TUNED} photos per class it was picked on, the local-edit rule scored precision "
        f"{p:.2f}, recall {rc:.2f}, recompression/resize called derivative {worst:.0%}.",
    ]
    p, rc, rcm, worst = TUNED_CLUSTER_SCORES
    lines += [
        f"On the {TUNED_CLUSTER} photos per class it was picked on, the clustered-edit rule "
        f"scored precision {p:.2f}, recall {rc:.2f} (matched derivatives {rcm:.2f}), "
        f"recompression/resize called derivative {worst:.0%}; *node's call or clustered-edit* "
        "scored {:.2f}, {:.2f} (matched {:.2f}), {:.0%}, worse than the node's call on jpeg_q75 "
        "and crop_5_centre there. The table above is on other photos.".format(*TUNED_EITHER_SCORES),
        "",
    ]
    if r.get("cluster_frontier"):
        lines += [
            "Frontier of the clustered-edit rule on the same uploads (the unconfirmed-region "
            "conditions, the clean band and the least fraction of regions confirmed in it; the "
            f"rule above is both / {CLUSTER_BAND} / {CLUSTER_FRACTION:.0%}):",
            "",
            "| unconfirmed regions | clean band | clean fraction | precision | recall "
            "| recall of matched | recompression/resize called derivative |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for f in r["cluster_frontier"]:
            where = (
                "side by side + both grids"
                if f["adjacent"] and f["across"]
                else ("side by side" if f["adjacent"] else "both grids")
            )
            if f["clean_band"] == 16 and not (f["adjacent"] and f["across"]):
                continue  # in edits.json
            lines.append(
                f"| {where} | {f['clean_band']} | {f['clean_fraction']:.0%} | "
                + _score_cells(f, True)
                + " |"
            )
        lines += ["", "(Band 16 with one condition only: edits.json.)", ""]
    if r.get("frontier"):
        lines += [
            "Frontier of the local-edit rule on the same uploads (clean band, least clean "
            "fraction, at least 2 unconfirmed regions side by side; the rule above is 8 / 20%; "
            "1 or 3 least unconfirmed regions are in edits.json):",
            "",
            "| clean band | clean fraction | unconfirmed regions | precision | recall "
            "| recompression/resize called derivative |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for f in r["frontier"]:
            if f["min_unmatched"] != MIN_UNMATCHED:
                continue
            lines.append(
                f"| {f['clean_band']} | {f['clean_fraction']:.0%} | {f['min_unmatched']} | "
                + _score_cells(f)
                + " |"
            )
        lines.append("")
    return lines


def _score_cells(m: dict[str, Any], matched: bool = False) -> str:
    def fmt(key: str) -> str:
        return "n/a" if m.get(key) is None else f"{m[key]:.2f}"

    cells = [fmt("derivative_precision"), fmt("derivative_recall")]
    if matched:
        cells.append(fmt("derivative_recall_matched"))
    return " | ".join(cells) + f" | {m['recompress_resize_called_derivative']:.1%}"


def main(argv: list[str] | None = None) -> None:
    """Tuning run: the first TUNED_CLUSTER photos of the seed's order (never the report's)."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    photos = int(args[0]) if args else TUNED_CLUSTER
    r = run(photos, 17, start=0)
    print(json.dumps({"rules": r["rules"], "per_class": r["per_class"]}, indent=1))


if __name__ == "__main__":
    main()
