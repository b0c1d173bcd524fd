"""The edits that used to get through (issue 17): recall per transform, before and after.

    ./dev bench edits [--photos 20] [--negatives 20] [--seed 17]

On a small random set of corpus photos (bench/corpus.py), every transform of the edit suite
(bench/transforms.py: the issue's new edits and, to show none falls, the common ones) is applied
to each photo and queried against an index of the photos' PDQ hashes, in one run:

* *plaintext PDQ*: the edited copy's own PDQ hash against the index (what HMA does), <= 31;
* *before*: the query variants the pipeline had before this change (rotations/mirrors, border,
  content and frame boxes, centred uncrops), any within 31 of the photo's hash;
* *after*: today's query variants (adds the nested-chrome box, each collage cell and the
  mirrored 5% uncrop);
* *after + banked crops*: as *after*, the holder also banking the photo's corner crops as the
  node does for a picture banked from its media (node/media/hashing.py ``banked_crops``,
  specs/signals-and-lsh.md 3.5);
* the *frontier* of other crop sets a holder could bank (CROP_SETS: fractions x corners), each
  scored on the same copies, with the hashes it banks per photo and its nearest wrong photo.

False positives: every query variant of every negative photo (others from the corpus, as they
are and re-encoded) and of every edited copy against every *other* photo's index entries.
Elements per upload = good-quality query variants x the probes each sends (pdq-lsh-1's budget).
Only the whole-picture signal is measured; the tile signal (pdq-tiles-1) is in derivatives.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench import _edit_classes as edit_classes
from bench import corpus
from bench import transforms as tf
from blindmatch.node.media.crops import (
    BANKED_CENTRED_FRACTIONS,
    BANKED_CROP_CORNERS,
    BANKED_CROP_FRACTIONS,
    banked_crops,
    crop_box,
)
from blindmatch.node.media.hashing import hash_image, pdq_of_pixels
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.signals import PDQ_QUALITY_THRESHOLD

RESULTS = Path(__file__).resolve().parent / "results"
THRESHOLD = 31
NEW_VARIANT_PREFIXES = ("nested/", "cell/", "uncrop/5+flip_h")  # what this change added
CORNERS = ("tl", "tr", "bl", "br")
# Crop sets a holder could bank (fractions, corners; "c" is the centred crop), the node's first.
CROP_SETS: dict[str, tuple[tuple[float, ...], tuple[str, ...]]] = {
    "node": (BANKED_CROP_FRACTIONS, BANKED_CROP_CORNERS),  # and BANKED_CENTRED_FRACTIONS
    "node, corners only": (BANKED_CROP_FRACTIONS, BANKED_CROP_CORNERS),
    # the node's corner crops before 1% was added
    "2-6% by 1, 8-14% by 2": ((0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.12, 0.14), CORNERS),
    "2-14% by 2, 4 corners + centre": ((0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14), (*CORNERS, "c")),
    "2-14% by 2": ((0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14), CORNERS),
    "3, 6, 10, 14%": ((0.03, 0.06, 0.10, 0.14), CORNERS),
    "4, 8, 12%": ((0.04, 0.08, 0.12), CORNERS),
}
COMMON = (
    "jpeg_q50",
    "resize_50",
    "crop_5_centre",
    "crop_5_offset",
    "pad_10",
    "letterbox_20",
    "mirror",
    "rotate_90",
    "caption_strip",
    "screenshot",
)
TRANSFORMS: dict[str, tf.Transform] = {
    **{name: tf.TRANSFORMS[name] for name in COMMON},
    **tf.EDIT_TRANSFORMS,
}


def packed(hash32: bytes) -> np.ndarray:
    return np.frombuffer(hash32, dtype=np.uint8)


def distances(queries: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(q, n) Hamming distances between packed (q, 32) and (n, 32) hashes."""
    if len(queries) == 0 or len(index) == 0:
        return np.zeros((len(queries), len(index)), dtype=np.int32)
    x = np.bitwise_xor(queries[:, None, :], index[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2)


def crop_set(rgb: np.ndarray, fractions: tuple[float, ...], corners: tuple[str, ...]) -> np.ndarray:
    """The photo's crops of one set that pass the quality gate, packed (index side)."""
    h, w = rgb.shape[:2]
    out = []
    for f in fractions:
        for corner in corners:
            left, top, right, bottom = crop_box(w, h, corner, f)
            crop = pdq_of_pixels(rgb[top:bottom, left:right])
            if crop.quality >= PDQ_QUALITY_THRESHOLD:
                out.append(packed(crop.hash32))
    return np.stack(out) if out else np.empty((0, 32), np.uint8)


def query_sets(image: Image.Image) -> dict[str, Any]:
    h = hash_image(image, query_variants=True)
    good = [v for v in h.variants if v.pdq.quality >= PDQ_QUALITY_THRESHOLD]
    before = [v for v in good if not v.name.startswith(NEW_VARIANT_PREFIXES)]
    return {
        "plain": np.stack([packed(h.pdq.hash32)]),
        "before": np.stack([packed(v.pdq.hash32) for v in before])
        if before
        else np.empty((0, 32), np.uint8),
        "after": np.stack([packed(v.pdq.hash32) for v in good])
        if good
        else np.empty((0, 32), np.uint8),
        "n_before": len(before),
        "n_after": len(good),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench edits", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--negatives", type=int, default=20)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--class-photos", type=int, default=12)
    parser.add_argument(
        "--part",
        choices=("all", "recall", "classes"),
        default="all",
        help="run one part, keeping the other part's figures from edits.json",
    )
    parser.add_argument(
        "--transforms",
        default="",
        help="recall part: re-run only these transforms (comma-separated) and the negatives, "
        "keeping the other rows from edits.json, marked as not re-run",
    )
    args = parser.parse_args(argv)
    if args.part == "classes":
        result = json.loads((RESULTS / "edits.json").read_text())
        started = time.time()
        result["classes"] = edit_classes.run(args.class_photos, args.seed)
        result["classes"]["seconds"] = round(time.time() - started)
        return write(result)
    started = time.time()
    load_start = os.getloadavg()[0]
    chosen = [t for t in args.transforms.split(",") if t]
    unknown = set(chosen) - set(TRANSFORMS)
    if unknown:
        parser.error(f"unknown transforms: {', '.join(sorted(unknown))}")
    # A partial run scores the frontier's other crop sets only when a crop row is re-run.
    frontier = not chosen or any("crop" in t for t in chosen)
    items = corpus.build()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(items))
    sources = [items[i] for i in order[: args.photos]]
    negatives = [items[i] for i in order[args.photos : args.photos + args.negatives]]
    donors = [items[i] for i in order[args.photos + args.negatives :]]

    images = [corpus.load_image(s) for s in sources]
    index = np.stack([packed(hash_image(im).pdq.hash32) for im in images])  # (n, 32)
    # What the node banks for a picture banked from its media (its own code path), and the
    # other sets of the frontier.
    node_crops = [
        np.stack([packed(c.pdq.hash32) for c in banked_crops(np.asarray(im))]) for im in images
    ]
    crop_sets = {
        name: [crop_set(np.asarray(im), *spec) for im in images]
        for name, spec in CROP_SETS.items()
        if name != "node" and frontier
    }
    crop_sets = {"node": node_crops, **crop_sets}
    crop_owner = {
        name: np.concatenate([np.full(len(c), i) for i, c in enumerate(sets)])
        for name, sets in crop_sets.items()
    }
    crop_index = {name: np.concatenate(sets) for name, sets in crop_sets.items()}
    print(f"edits: {len(sources)} photos, {len(negatives)} negatives, {len(TRANSFORMS)} transforms")

    columns = ("plain", "before", "after", *(f"crops:{name}" for name in crop_sets))
    per: dict[str, dict[str, list[bool]]] = {}
    elements: dict[str, dict[str, list[int]]] = {}
    false_pos = {c: 0 for c in columns}
    nearest_wrong = {c: 256 for c in columns}

    def score(sets: dict[str, Any], own: int | None) -> dict[str, bool]:
        found = {}
        for col in columns:
            q = sets["after" if col.startswith("crops:") else col]
            d = distances(q, index)
            mine = d[:, own] if own is not None else np.empty(0)
            others = np.delete(d, own, axis=1) if own is not None else d
            hit = bool(mine.size and mine.min() <= THRESHOLD)
            if col.startswith("crops:"):
                name = col.removeprefix("crops:")
                dc = distances(q, crop_index[name])
                if own is not None:
                    hit = hit or bool((dc[:, crop_owner[name] == own] <= THRESHOLD).any())
                    dc = dc[:, crop_owner[name] != own]
                others = np.concatenate([others, dc], axis=1) if others.size else dc
            if others.size:
                nearest_wrong[col] = min(nearest_wrong[col], int(others.min()))
                false_pos[col] += int((others.min(axis=1) <= THRESHOLD).any())
            found[col] = hit
        return found

    for name, transform in TRANSFORMS.items():
        t0 = time.time()
        for i, image in enumerate(images):
            donor = corpus.load_image(donors[(i + len(name)) % len(donors)])
            # Every transform is applied (the rng draws stay those of a full run), only the
            # chosen ones are queried.
            edited = transform(image, rng, donor)
            if chosen and name not in chosen:
                continue
            sets = query_sets(edited)
            for col, hit in score(sets, i).items():
                per.setdefault(name, {}).setdefault(col, []).append(hit)
            e = elements.setdefault(name, {"before": [], "after": []})
            e["before"].append(sets["n_before"] * PDQ_LSH_1.probe_budget)
            e["after"].append(sets["n_after"] * PDQ_LSH_1.probe_budget)
        if name not in per:
            continue
        row = per[name]
        print(
            f"  {name:24s} "
            + " ".join(f"{c[:12]}={np.mean(row[c]):.2f}" for c in columns)
            + f"  ({time.time() - t0:.0f} s)",
            flush=True,
        )
    neg_elements: dict[str, list[int]] = {"before": [], "after": []}
    for item in negatives:
        image = corpus.load_image(item)
        for edited in (image, tf.jpeg(75)(image, rng, image)):
            sets = query_sets(edited)
            score(sets, None)
            neg_elements["before"].append(sets["n_before"] * PDQ_LSH_1.probe_budget)
            neg_elements["after"].append(sets["n_after"] * PDQ_LSH_1.probe_budget)

    result: dict[str, Any] = {
        "photos": len(sources),
        "negatives": len(negatives),
        "negative_queries": 2 * len(negatives),
        "seed": args.seed,
        "threshold": THRESHOLD,
        "probes_per_hash": PDQ_LSH_1.probe_budget,
        "crop_sets": {
            name: {
                "fractions": list(spec[0]),
                "corners": list(spec[1]),
                "banked_hashes_per_photo_mean": 1 + len(crop_index[name]) / len(sources),
                "banked_hashes_per_photo_max": 1
                + len(spec[0]) * len(spec[1])
                + (len(BANKED_CENTRED_FRACTIONS) if name == "node" else 0),
            }
            for name, spec in CROP_SETS.items()
            if name in crop_sets
        },
        "index_tables": PDQ_LSH_1.tables,
        "recall": {n: {c: float(np.mean(v[c])) for c in columns} for n, v in per.items()},
        "elements_median": {
            n: {k: float(np.median(v)) for k, v in e.items()} for n, e in elements.items()
        },
        "elements_median_unedited_photos": {
            k: float(np.median(v)) for k, v in neg_elements.items()
        },
        "elements_mean_unedited_photos": {k: float(np.mean(v)) for k, v in neg_elements.items()},
        "false_positive_queries": false_pos,
        "nearest_wrong_distance": nearest_wrong,
        "seconds": round(time.time() - started),
        "machine": f"{platform.platform()}, {platform.machine()}",
        # 1-minute load average at the start and at the end of the recall part
        "load": f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
    }
    if chosen:
        return write(merge_partial(result, chosen))
    if args.part == "all":
        t0 = time.time()
        result["classes"] = edit_classes.run(args.class_photos, args.seed)
        result["classes"]["seconds"] = round(time.time() - t0)
    elif (RESULTS / "edits.json").exists():
        previous = json.loads((RESULTS / "edits.json").read_text())
        if "classes" in previous:
            result["classes"] = previous["classes"]
    return write(result)


def merge_partial(new: dict[str, Any], chosen: list[str]) -> dict[str, Any]:
    """The previous edits.json with the re-run rows, the negatives' figures and this run's
    false positives replaced; the other rows kept and named as not re-run."""
    result: dict[str, Any] = json.loads((RESULTS / "edits.json").read_text())
    for name in chosen:
        kept = result["recall"].get(name, {})
        result["recall"][name] = {**kept, **new["recall"][name]}
        result["elements_median"][name] = new["elements_median"][name]
    for key in ("elements_median_unedited_photos", "elements_mean_unedited_photos"):
        result[key] = new[key]
    result["partial_run"] = {
        "transforms": chosen,
        "not_rerun": [n for n in result["recall"] if n not in chosen],
        "false_positive_queries": new["false_positive_queries"],
        "nearest_wrong_distance": new["nearest_wrong_distance"],
        "seconds": new["seconds"],
        "load": new["load"],
        "previous_seconds": result["seconds"],
        "previous_load": result.get("load", ""),
    }
    return result


def write(result: dict[str, Any]) -> int:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "edits.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "edits.md").write_text(report(result))
    print(f"edits: wrote {RESULTS / 'edits.md'}")
    return 0


def report(r: dict[str, Any]) -> str:
    new = set(tf.EDIT_TRANSFORMS)
    node = r["crop_sets"]["node"]
    node_set = (
        f"{', '.join(f'{round(f * 100)}%' for f in node['fractions'])} from each of the "
        f"{len(node['corners'])} corners, and centred crops of "
        f"{', '.join(f'{round(f * 100)}%' for f in BANKED_CENTRED_FRACTIONS)}"
    )
    lines = [
        "# Edits that used to get through: recall per transform, before and after",
        "",
        f"Generated by `./dev bench edits` (bench/edits.py) in {r['seconds']} s; figures in "
        f"[edits.json](edits.json). Machine: {r['machine']}, 2 shared CPUs"
        f"{', load average ' + r['load'] if r.get('load') else ''}. Seed {r['seed']}.",
        "",
        f"n = {r['photos']} corpus photos (bench/corpus.py: Debian wallpapers and scikit-image "
        "photos; no people), each edited by every transform once; index = the photos' PDQ "
        f"hashes. A copy is found when a query hash is within {r['threshold']} bits of its own "
        "photo's hash (brute force; the blinded LSH can only find fewer). All columns are "
        "measured on the same edited copies in the same run. Whole-picture signal only (the tile "
        "signal is measured in derivatives.md).",
        "",
        "- *plaintext PDQ*: the copy's own hash, as HMA would compare it;",
        "- *before*: the query variants the pipeline had before the nested, collage and mirrored "
        "uncrop variants;",
        "- *after*: today's query variants (adds `nested/identity`, the box left after peeling "
        "nested chrome layer by layer, `cell/N`, each picture of a collage, and "
        "`uncrop/5+flip_h`, the 5% uncrop mirrored);",
        "- *after + banked crops*: as *after*, against a holder that banked the photo from its "
        f"media, i.e. also its corner crops as the node banks them ({node_set}: at most "
        f"{node['banked_hashes_per_photo_max']} banked hashes per photo instead of 1, mean "
        f"{node['banked_hashes_per_photo_mean']:.1f} after the quality gate; "
        "specs/signals-and-lsh.md 3.5). The upload sends the same elements as *after*.",
        "",
        "| transform | new | plaintext PDQ | before | after | after + banked crops "
        "| elements before | elements after |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rec in r["recall"].items():
        e = r["elements_median"][name]
        lines.append(
            f"| {name} | {'yes' if name in new else ''} | {rec['plain']:.2f} "
            f"| {rec['before']:.2f} | {rec['after']:.2f} | {rec['crops:node']:.2f} "
            f"| {e['before']:.0f} | {e['after']:.0f} |"
        )
    partial = r.get("partial_run")
    if partial:
        pfp, pnw = partial["false_positive_queries"], partial["nearest_wrong_distance"]
        lines += [
            "",
            f"**Partial re-run.** Only {', '.join(partial['transforms'])} and the negatives "
            f"were re-run on today's code (`--part recall --transforms ...`, {partial['seconds']} "
            f"s, load average {partial['load']}; every transform was still applied so the "
            "random draws are a full run's). **Not re-run** (figures from the previous full run, "
            f"{partial['previous_seconds']} s, load {partial['previous_load']}; a change to the "
            "query pipeline since may move them): "
            f"{', '.join(partial['not_rerun'])}. Each row's columns come from one run. False "
            f"positives in the re-run (its edited copies and the negatives): plaintext "
            f"{pfp['plain']}, before {pfp['before']}, after {pfp['after']}, after + banked crops "
            f"{pfp['crops:node']}; nearest wrong photo {pnw['plain']}, {pnw['before']}, "
            f"{pnw['after']}, {pnw['crops:node']} bits. The elements per upload below are from "
            "the re-run; the false positives and the frontier after them are the previous full "
            "run's.",
        ]
    ue, um = r["elements_median_unedited_photos"], r["elements_mean_unedited_photos"]
    fp, nw = r["false_positive_queries"], r["nearest_wrong_distance"]
    tables = r["index_tables"]
    lines += [
        "",
        "Elements = OPRF elements the upload sends (good-quality query hashes x "
        f"{r['probes_per_hash']} probes), median over the copies of that transform. Banked "
        "crops add none: they are on the holder's side.",
        "",
        f"**Elements per upload** on unedited photos (the common upload; {r['negative_queries']} "
        f"queries): median {ue['before']:.0f} before, {ue['after']:.0f} after (mean "
        f"{um['before']:.0f} before, {um['after']:.0f} after), with or without banked crops.",
        "",
        f"**False positives**: queries (edited copies against the other photos, and "
        f"{r['negative_queries']} negative queries: {r['negatives']} other corpus photos as they "
        "are and re-encoded at JPEG q75, against every photo and every banked crop) with any "
        f"variant within {r['threshold']} of a wrong photo: plaintext {fp['plain']}, before "
        f"{fp['before']}, after {fp['after']}, after + banked crops {fp['crops:node']}. Nearest "
        f"wrong photo: {nw['plain']}, {nw['before']}, {nw['after']}, {nw['crops:node']} bits. "
        "No false-positive rate at a 1M-hash bank is estimated from this run (the negative set "
        "is far too small for it).",
        "",
        "## Which crops to bank: the frontier",
        "",
        "Each column is a set of crops a holder could bank per photo (fractions x corners; "
        "*centre* is the centred crop), scored on the same copies and query hashes as above. "
        f"*Hashes* = banked hashes per photo (the photo and its crops, mean after the quality "
        f"gate); *entries* = index entries per photo ({tables} per hash). Every banked hash also "
        "meets a querier's probes by chance like any hash (signals-and-lsh.md 5.7): spurious "
        "candidates, each costing the holder one threshold answer, grow with *hashes*.",
        "",
    ]
    names = list(r["crop_sets"])
    lines.append("| transform | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    shown = [n for n in r["recall"] if "crop" in n]
    for name in shown:
        rec = r["recall"][name]
        lines.append(f"| {name} | " + " | ".join(f"{rec['crops:' + n]:.2f}" for n in names) + " |")
    sets = r["crop_sets"]
    lines.append(
        "| *hashes per photo* | "
        + " | ".join(f"{sets[n]['banked_hashes_per_photo_mean']:.1f}" for n in names)
        + " |"
    )
    lines.append(
        "| *index entries per photo* | "
        + " | ".join(f"{sets[n]['banked_hashes_per_photo_mean'] * tables:.0f}" for n in names)
        + " |"
    )
    lines.append(
        "| *nearest wrong photo (bits)* | "
        + " | ".join(str(nw["crops:" + n]) for n in names)
        + " |"
    )
    lines.append(
        "| *false-positive queries* | " + " | ".join(str(fp["crops:" + n]) for n in names) + " |"
    )
    lines.append("")
    if "classes" in r:
        lines += edit_classes.report(r["classes"])
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
