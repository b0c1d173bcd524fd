"""The learned signal (learned-lsh-1) beside PDQ and the tiles, on every transform.

    ./dev bench learned --train     # train the project's model (bench/learned_train.py)
    ./dev bench learned             # evaluate: bench/results/learned.md and learned.json
    ./dev bench learned --pictures 24 --out /tmp/x   # a smaller run

The corpus (bench/corpus.py) is split by a hash of each picture's id into training pictures
(the model and the threshold are chosen on them) and held-out pictures (everything reported is
measured on them only). For each held-out picture and each transform (bench/transforms.py, the
signals evaluation's edits and a selection of the edit suite's), in the same run:

* learned: the node's model through onnxruntime (node/signals/learned/model.py), the code of
  the edited copy against the original's (<= T), and whether a probe key of the copy is one of
  the original's index keys (found through LSH);
* PDQ: the node's query variants of the copy (node/media/hashing.py, quality >= 50) against the
  original's hash, <= 31, in plaintext;
* tiles: the copy's query tiles against the original's index tiles (node/media/tiles.py), the
  derivative rule (protocol/derivative.py classify) in plaintext.

False positives: each edited copy and each original against every *other* held-out original
(one cut from another file: tiles of one wallpaper are often one repeating pattern, reported
apart), for all three signals. Costs: the model's time per upload, and the OPRF elements
(probe keys) and index entries the learned signal adds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench import corpus as corpus_mod
from bench import transforms as tf
from blindmatch.protocol.signals import PDQ_MATCH_THRESHOLD

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 17
EVAL_TRANSFORMS: dict[str, tf.Transform] = {
    **tf.TRANSFORMS,
    **{
        k: tf.EDIT_TRANSFORMS[k]
        for k in (
            "corner_crop_5",
            "corner_crop_10",
            "mirror_corner_crop_5",
            "mirror_crop_5",
            "rotate_90_corner_crop_5",
            "screenshot_nested",
            "collage_2",
        )
    },
}
TRAIN_VIEWS = 6  # edited views per training picture for choosing the threshold
MARGIN = 2  # bits kept between T and the nearest training negative


def _popcount(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances of packed uint8 rows: (n, 32) x (m, 32) -> (n, m)."""
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2)


def _bytes_of(im: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _same_source(items: list[Any]) -> np.ndarray:
    """(n, n) bool: the two pictures are tiles cut from one wallpaper file (the diagonal too).
    Such tiles are often one repeating pattern, copies of each other to the eye: they are not
    counted as negatives (they are reported apart)."""
    src = np.array([i.source for i in items])
    return np.asarray(src[:, None] == src[None, :])


class Learned:
    def __init__(self) -> None:
        from blindmatch.node.signals.learned import model as model_mod
        from blindmatch.protocol.signal_types import learned

        self.model = model_mod.load()
        self.model_bytes = model_mod.DEFAULT_MODEL.stat().st_size
        self.learned = learned
        self.times: list[float] = []

    def query(self, im: Image.Image) -> Any:
        t0 = time.perf_counter()
        e = self.model.embed(im)
        q = self.learned.query_hash(e, self.model.digest)
        self.times.append(time.perf_counter() - t0)
        return q


def choose_threshold(training: list[Any], lm: Learned, rng: np.random.Generator) -> dict[str, Any]:
    """T from the training pictures: the largest T with no training negative within T + MARGIN
    bits; the recall of training copies at that T."""
    pics = [corpus_mod.load_image(i) for i in training]
    names = sorted(EVAL_TRANSFORMS)
    orig = np.stack([np.frombuffer(lm.query(p).hash, np.uint8) for p in pics])
    same = _same_source(training)
    pos, neg_edit = [], []
    for i, p in enumerate(pics):
        for _ in range(TRAIN_VIEWS):
            # An edit that pastes foreign content (a collage, a replaced region) contains its
            # donor: the donor is no negative of it.
            k = int(rng.integers(len(pics) - 1))
            k += k >= i
            edited = EVAL_TRANSFORMS[names[int(rng.integers(len(names)))]](p, rng, pics[k])
            c = np.frombuffer(lm.query(edited).hash, np.uint8)[None]
            d = _popcount(c, orig)[0]
            pos.append(int(d[i]))
            d[same[i]] = 999
            d[k] = 999
            neg_edit.append(int(d.min()))
    dd = _popcount(orig, orig)
    iu = np.triu_indices(len(pics), 1)
    neg_pairs = dd[iu][~same[iu]]
    nearest_negative = int(min(neg_pairs.min(), min(neg_edit)))
    # At most PDQ's threshold: answers with the default band list hide among decoys (8.7).
    t = min(PDQ_MATCH_THRESHOLD, nearest_negative - MARGIN - 1)
    return {
        "pictures": len(pics),
        "copies": len(pos),
        "nearest_negative": nearest_negative,
        "chosen_T": t,
        "recall_at_T": float(np.mean(np.asarray(pos) <= t)),
        "positive_median": float(np.median(pos)),
        "positive_p90": float(np.percentile(pos, 90)),
        "negative_pairs_median": float(np.median(neg_pairs)),
        "negative_pairs_p01": float(np.percentile(neg_pairs, 1)),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench learned")
    parser.add_argument("--train", action="store_true", help="train the model, then stop")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--pictures", type=int, default=48, help="held-out pictures evaluated")
    parser.add_argument("--no-tiles", action="store_true", help="skip the tiles (faster)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args(argv)
    if args.train:
        from bench import learned_train

        if args.steps is not None:
            learned_train.main(steps=args.steps)
        else:
            learned_train.main()
        return 0
    if args.render:
        result = json.loads((args.out / "learned.json").read_text())
        (args.out / "learned.md").write_text(report(result))
        return 0
    result = evaluate(args.pictures, tiles=not args.no_tiles)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learned.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "learned.md").write_text(report(result))
    print(report(result))
    return 0


def evaluate(n_pictures: int, tiles: bool = True) -> dict[str, Any]:
    from bench.learned_train import split
    from blindmatch.node.media import hashing
    from blindmatch.node.media import tiles as tile_hashing
    from blindmatch.protocol import derivative as dv
    from blindmatch.protocol.signal_types import learned
    from blindmatch.protocol.signals import PDQ_QUALITY_THRESHOLD

    t_start = time.monotonic()
    load0 = os.getloadavg()[0]
    rng = np.random.default_rng(SEED)
    items = corpus_mod.build()
    training, held = split(items)
    lm = Learned()
    T = learned.THRESHOLD
    print(f"learned: threshold on {len(training)} training pictures ...", flush=True)
    chosen = choose_threshold(training, lm, rng)
    print(f"learned: {chosen}", flush=True)
    held = held[:n_pictures]
    pics = [corpus_mod.load_image(i) for i in held]
    # Foreign content pasted by an edit comes from training pictures, never from a held-out
    # one: every other held-out original is a true negative of every edited copy.
    donors = [corpus_mod.load_image(i) for i in training[:16]]
    n = len(pics)
    digest = lm.model.digest
    # Originals: learned code and index keys, PDQ, index tiles.
    lm.times.clear()
    o_codes = np.stack([np.frombuffer(lm.query(p).hash, np.uint8) for p in pics])
    o_keys = [set(learned.index_keys(bytes(c), digest)) for c in o_codes]
    o_pdq = np.stack([np.frombuffer(hashing.hash_image(p).pdq.hash32, np.uint8) for p in pics])
    scheme = dv.PDQ_TILES_1
    o_tiles: list[dict[str, np.ndarray]] = []
    o_cells: list[list[Any]] = []
    if tiles:
        for p in pics:
            by_cell: dict[str, list[bytes]] = {}
            for t in tile_hashing.index_tiles(p, scheme):
                by_cell.setdefault(t.cell.label, []).append(t.pdq.hash32)
            o_tiles.append({c: np.frombuffer(b"".join(v), np.uint8).reshape(-1, 32)
                            for c, v in by_cell.items()})  # fmt: skip
            o_cells.append([dv.Cell.parse(c) for c in by_cell])
    # Per cell: every original's index tiles stacked, with their owners (one popcount per
    # query tile).
    stack: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for label in {c for t in o_tiles for c in t}:
        parts = [(j, t[label]) for j, t in enumerate(o_tiles) if label in t]
        stack[label] = (
            np.concatenate([h for _, h in parts]),
            np.concatenate([np.full(len(h), j) for j, h in parts]),
        )
    same = _same_source(held)
    dd = _popcount(o_codes, o_codes)
    iu = np.triu_indices(n, 1)
    independent = ~same[iu]
    orig_pairs_learned = dd[iu][independent]
    dp = _popcount(o_pdq, o_pdq)[iu][independent]
    same_source_pairs = int((~independent).sum())
    same_source_within = {"learned": int((dd[iu][~independent] <= T).sum())}
    print(f"learned: {n} held-out originals hashed; editing ...", flush=True)

    rows: dict[str, dict[str, Any]] = {}
    neg_learned_min = int(orig_pairs_learned.min())
    fp = {"learned": int((orig_pairs_learned <= T).sum()),
          "pdq": int((dp <= PDQ_MATCH_THRESHOLD).sum()), "tiles": 0}  # fmt: skip
    neg_pairs = len(orig_pairs_learned)
    negatives_counted = 0
    bucket_hits: list[int] = []  # per upload: other originals sharing a probed bucket
    probes_per_upload: list[int] = []
    pdq_variants: list[int] = []
    tile_queries: list[int] = []
    for name, transform in EVAL_TRANSFORMS.items():
        r = {"n": 0, "learned": 0, "learned_lsh": 0, "pdq": 0, "tiles": 0, "any": 0,
             "learned_only": 0, "learned_d": []}  # fmt: skip
        for i, p in enumerate(pics):
            edited = transform(p, rng, donors[int(rng.integers(len(donors)))])
            # learned
            q = lm.query(edited)
            c = np.frombuffer(q.hash, np.uint8)[None]
            d = _popcount(c, o_codes)[0]
            probes = learned.probe_keys(q.hash, q.float_vector, digest)
            probes_per_upload.append(len(probes))
            pset = set(probes)
            hit_learned = bool(d[i] <= T)
            hit_lsh = hit_learned and bool(pset & o_keys[i])
            bucket_hits.append(sum(1 for j in range(n) if j != i and pset & o_keys[j]))
            negative = ~same[i]  # every other held-out original from another file
            others = d[negative]
            neg_learned_min = min(neg_learned_min, int(others.min()))
            fp["learned"] += int((others <= T).sum())
            negatives_counted += int(negative.sum())
            # PDQ (plaintext, the node's query variants)
            whole = hashing.hash_image(edited, query_variants=True)
            vs = [v.pdq.hash32 for v in whole.variants if v.pdq.quality >= PDQ_QUALITY_THRESHOLD]
            pdq_variants.append(len(vs))
            hit_pdq = False
            if vs:
                vq = np.stack([np.frombuffer(h, np.uint8) for h in vs])
                dpq = _popcount(vq, o_pdq).min(axis=0)
                hit_pdq = bool(dpq[i] <= PDQ_MATCH_THRESHOLD)
                fp["pdq"] += int((dpq[negative] <= PDQ_MATCH_THRESHOLD).sum())
            # tiles (plaintext rule)
            hit_tiles = False
            if tiles:
                qt = tile_hashing.query_tiles(edited, scheme)
                tile_queries.append(len(qt))
                quality_cells = [t.cell for t in qt]
                confs_of: dict[int, list[Any]] = {}
                for t in qt:
                    if t.cell.label not in stack:
                        continue
                    hashes, owners = stack[t.cell.label]
                    dt = _popcount(np.frombuffer(t.pdq.hash32, np.uint8)[None], hashes)[0]
                    for j in sorted({int(o) for o in owners[dt <= scheme.threshold]}):
                        confs_of.setdefault(j, []).append(
                            dv.TileConfirmation(t.cell, j.to_bytes(8, "big"))
                        )
                for j, confs in confs_of.items():
                    if len(confs) < scheme.min_regions:
                        continue
                    verdicts = dv.classify(
                        scheme, quality_cells, confs, False, {j.to_bytes(8, "big"): o_cells[j]}
                    )
                    if verdicts:
                        if j == i:
                            hit_tiles = True
                        elif negative[j]:
                            fp["tiles"] += 1
            r["n"] += 1
            r["learned"] += hit_learned
            r["learned_lsh"] += hit_lsh
            r["pdq"] += hit_pdq
            r["tiles"] += hit_tiles
            r["any"] += hit_learned or hit_pdq or hit_tiles
            r["learned_only"] += hit_learned and not (hit_pdq or hit_tiles)
            r["learned_d"].append(int(d[i]))
        r["learned_median_distance"] = float(np.median(r.pop("learned_d")))
        rows[name] = r
        print(f"  {name}: {r}", flush=True)
    neg_pairs += negatives_counted
    total = {k: sum(r[k] for r in rows.values()) for k in
             ("n", "learned", "learned_lsh", "pdq", "tiles", "any", "learned_only")}  # fmt: skip
    return {
        "model": {
            "sha256": digest.hex(),
            "dim": lm.model.dim,
            "input_size": lm.model.size,
            "bytes": lm.model_bytes,
        },
        "threshold": T,
        "threshold_choice": chosen,
        "lsh": {
            "scheme": learned.LEARNED_LSH_1.name,
            "tables": learned.LEARNED_LSH_1.tables,
            "bits_per_table": learned.LEARNED_LSH_1.bits_per_table,
            "probe_budget": learned.LEARNED_LSH_1.probe_budget,
        },
        "held_out_pictures": n,
        "training_pictures": len(training),
        "transforms": rows,
        "total": total,
        "false_positives": fp,
        "negative_pairs": neg_pairs,
        "nearest_learned_negative": neg_learned_min,
        "same_source_pairs": same_source_pairs,
        "same_source_within_T": same_source_within,
        "originals_learned_pair_median": float(np.median(orig_pairs_learned)),
        "cost": {
            "model_ms_median": 1000 * statistics.median(lm.times),
            "model_ms_p90": 1000 * float(np.percentile(lm.times, 90)),
            "probe_keys_per_upload_median": statistics.median(probes_per_upload),
            "index_entries_per_item": learned.LEARNED_LSH_1.tables,
            "chance_bucket_hits_per_upload_mean": float(np.mean(bucket_hits)),
            "holder_items": n - 1,
            "pdq_query_variants_median": statistics.median(pdq_variants),
            "tile_queries_median": statistics.median(tile_queries) if tile_queries else None,
        },
        "run": {
            "seconds": round(time.monotonic() - t_start, 1),
            "load_start": round(load0, 1),
            "load_end": round(os.getloadavg()[0], 1),
            "python": platform.python_version(),
            "seed": SEED,
        },
    }


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


def report(r: dict[str, Any]) -> str:
    t = r["threshold"]
    c = r["cost"]
    ch = r["threshold_choice"]
    lines = [
        "# The learned signal beside PDQ and the tiles",
        "",
        "`./dev bench learned` (bench/learned.py); the model: `./dev bench learned --train`"
        " (bench/learned_train.py, node/signals/learned/MODEL.json). Signal: `learned-lsh-1`"
        " (specs/signals-and-lsh.md 1.6).",
        "",
        f"Model sha256 `{r['model']['sha256'][:16]}...`, embedding dim {r['model']['dim']},"
        f" input {r['model']['input_size']} px. {r['training_pictures']} training pictures"
        f" (model and threshold), **{r['held_out_pictures']} held-out pictures** (everything"
        " below), each under every transform, in one run: the learned code (the node's model"
        " through onnxruntime), PDQ with the node's query variants (plaintext, <= 31), and the"
        " tiles' derivative rule (plaintext, pdq-tiles-1).",
        "",
        "## Threshold",
        "",
        f"T = **{t}** bits (bit error {t / 256:.3f}; cosine {np.cos(np.pi * t / 256):.3f})."
        f" Chosen on the training pictures ({ch['pictures']} originals, {ch['copies']} edited"
        f" copies): the nearest training negative is {ch['nearest_negative']} bits; T is the"
        f" largest value keeping {MARGIN} bits of margin, at most PDQ's 31 (so that a learned"
        " item's answers carry the default band list and hide among decoys, spec 8.7):"
        f" {ch['chosen_T']}; training copies"
        f" within it: {100 * ch['recall_at_T']:.1f}% (median distance"
        f" {ch['positive_median']:.0f}, p90 {ch['positive_p90']:.0f}); distinct training"
        f" pictures: median {ch['negative_pairs_median']:.0f}, 1st percentile"
        f" {ch['negative_pairs_p01']:.0f}.",
        "",
        "## False positives (held out)",
        "",
        f"{r['negative_pairs']:,} negative pairs (every edited copy and every original against"
        " every other held-out original):",
        "",
        "| signal | false positives |",
        "|---|---|",
        f"| learned (<= {t}) | **{r['false_positives']['learned']}** (nearest negative:"
        f" {r['nearest_learned_negative']} bits; distinct originals' median"
        f" {r['originals_learned_pair_median']:.0f}) |",
        f"| PDQ (<= 31, query variants) | {r['false_positives']['pdq']} |",
        f"| tiles (derivative rule) | {r['false_positives']['tiles']} |",
        "",
        "Pictures cut as tiles from one wallpaper file are not counted as each other's"
        " negatives: many such wallpapers are one repeating pattern, so their tiles are copies"
        " of each other to the eye (and to a copy-detection model) though far apart in PDQ."
        f" Held out there are {r['same_source_pairs']} such pairs of originals;"
        f" {r['same_source_within_T']['learned']} are within T of each other.",
        "",
        "## Recall per transform (held out)",
        "",
        "learned: code within T; learned via LSH: and a probe key of the copy is one of the"
        " original's index keys (what the private path finds); learned only: found by the"
        " learned code and by neither PDQ nor the tiles.",
        "",
        "| transform | n | PDQ | tiles | learned | learned via LSH | any | learned only |"
        " median learned distance |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["transforms"].items():
        n = row["n"]
        lines.append(
            f"| {name} | {n} | {_pct(row['pdq'], n)} | {_pct(row['tiles'], n)} |"
            f" {_pct(row['learned'], n)} | {_pct(row['learned_lsh'], n)} | {_pct(row['any'], n)}"
            f" | {_pct(row['learned_only'], n)} | {row['learned_median_distance']:.0f} |"
        )
    tot = r["total"]
    n = tot["n"]
    lines += [
        f"| **all** | {n} | {_pct(tot['pdq'], n)} | {_pct(tot['tiles'], n)} |"
        f" {_pct(tot['learned'], n)} | {_pct(tot['learned_lsh'], n)} | {_pct(tot['any'], n)} |"
        f" {_pct(tot['learned_only'], n)} | |",
        "",
        "## Cost per upload",
        "",
        f"- model (decode excluded, resize + onnxruntime + code): median"
        f" {c['model_ms_median']:.1f} ms, p90 {c['model_ms_p90']:.1f} ms;",
        f"- OPRF elements the learned signal adds: {c['probe_keys_per_upload_median']:.0f}"
        f" probe keys per upload (one code; PDQ's query variants: median"
        f" {c['pdq_query_variants_median']:.0f} hashes x up to 64 probes, tiles: median"
        f" {c['tile_queries_median']} tile hashes);",
        f"- index entries per banked learned item: {c['index_entries_per_item']};",
        f"- chance bucket hits (candidates for the private threshold test) per upload against"
        f" a holder of {c['holder_items']} unrelated codes: mean"
        f" {c['chance_bucket_hits_per_upload_mean']:.3f}, i.e."
        f" {c['chance_bucket_hits_per_upload_mean'] / c['holder_items']:.1e} per held code;"
        " extrapolated to a holder of 1M codes, about"
        f" {1e6 * c['chance_bucket_hits_per_upload_mean'] / c['holder_items']:,.0f} candidates"
        " per upload, each a private threshold test (256 bit proofs for the holder to verify)"
        " that fails: unrelated pictures' codes are correlated (a median distance of"
        f" {r['originals_learned_pair_median']:.0f}, but a long near tail), so 24-bit keys meet"
        " them far more often than the 2^-24 of random codes. Measured on few held codes (a"
        " rough figure); longer keys or a second-stage filter would cut it at some recall.",
        "",
        f"Run: {r['run']['seconds']:.0f} s, load {r['run']['load_start']} ->"
        f" {r['run']['load_end']} (2 shared cores), Python {r['run']['python']}, seed"
        f" {r['run']['seed']}.",
        "",
    ]
    return "\n".join(lines)
