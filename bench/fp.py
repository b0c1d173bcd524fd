"""False positives at a 1M-hash bank: PDQ, the tiles and the learned code on a large negative set.

    ./dev bench fp                    # bench/results/fp.md and fp.json
    ./dev bench fp --skin 300 --out /tmp/x   # a smaller run
    ./dev bench fp --render           # rewrite the .md from the .json

Pictures (every one a distinct picture; pairs cut from one file are never counted as negatives):

* ``corpus``: bench/corpus.py (Debian wallpapers and tiles of them, scikit-image photos) and the
  demo photographs of the Debian package ``kphotoalbum`` that show no people;
* ``people``: photographs of people: the ``kphotoalbum`` demo photos with people (GPL-2+, from
  the package's debian/copyright), Grace Hopper (matplotlib's sample data; a U.S. Navy photo,
  public domain) and scikit-image's astronaut (Eileen Collins, NASA, public domain);
* ``*-crop``: the four quadrants of each of those (non-overlapping, so distinct pictures);
* ``skin``: generated skin-dominated pictures (bench/_skin.py), deterministic from their seed.

Each picture is hashed as a holder banks it (PDQ, quality >= 50; its tiles over the three index
frames; its learned code) and as a querier looks it up (PDQ of the 8 rotations/mirrors and the 4
uncrop variants, quality >= 50; its query tiles; its code). Every query is compared with every
banked picture of another source, and the whole distance distribution is kept:

* PDQ: per (query hash, banked hash) pair, and per (upload, banked hash): the nearest of the
  upload's variants;
* tiles: per (upload, banked picture): the rule fires when >= 2 quality cells are each within
  39 bits of a tile of the same cell, i.e. when the 2nd-nearest cell is within 39;
* learned: per (upload, banked code).

The lower tail is fitted (log-linear fit of the empirical CDF over its lowest 15 distances with
at least 10 pairs, weighted by pair counts) and extrapolated to the threshold; the bound is the
95th percentile over a bootstrap of query pictures. The false-positive rate per upload at a bank
of B hashes is 1 - (1 - p)^(B x V), V the hashes an upload looks up for that signal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from bench import _skin
from bench import corpus as corpus_mod

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 17
BANK = 1_000_000
PDQ_T = 31
TILE_T = 39
LEARNED_T = 31
UNCROPS = (0.02, 0.05, 0.10)
# The node's query hashes per upload as bench/results/edits.md measured them (elements / 64
# probes): median 896 / 64 = 14, mean 1128 / 64 = 17.6 on unedited photos.
EDITS_MEAN_QUERY_HASHES = 1128 / 64
FIT_MIN_PAIRS = 10
FIT_WINDOW = 15
BOOTSTRAPS = 200
CACHE_VERSION = 1  # bump when the hashing or the picture sets change
INVALID = 256  # distance bin for pairs that are not counted (same source, gated out)

KPA_PACKAGE = "kphotoalbum"
KPA_DIR = "usr/share/kphotoalbum/demo"
# The demo photos that show people (looked at one by one); the others are scenery, pets, a logo.
KPA_PEOPLE = {
    "anne_helene", "bar55", "bar55_2", "cold_water", "grand_canyon_1", "grand_canyon_2",
    "jesper", "jesper_2", "new_wave_1", "new_wave_2", "pool", "pool_2", "qt-logo", "wayne",
}  # fmt: skip
LICENCES = {
    "kphotoalbum": "Debian package kphotoalbum 5.9.1-1 (bookworm), usr/share/kphotoalbum/demo:"
    " its debian/copyright gives no separate terms for the demo photos, so they come under the"
    " package's GPL-2+ (copyright Jesper K. Pedersen and the KPhotoAlbum authors)",
    "matplotlib": "matplotlib's sample data, grace_hopper.jpg (a U.S. Navy photograph, public"
    " domain)",
    "skimage": "scikit-image's bundled data (BSD-3 package): astronaut (NASA, public domain),"
    " coffee, chelsea, eagle and retina (CC0), rocket and hubble_deep_field (public domain),"
    " the others as their skimage.data docstrings state",
    "debian-wallpapers": "the Debian wallpaper packages of bench/corpus.py (terms in each"
    " package's debian/copyright: GPL, LGPL, CC-BY-SA)",
    "generated": "bench/_skin.py, drawn here from a seed (no third-party content)",
}


@dataclass
class Picture:
    id: str
    set: str  # corpus, corpus-crop, people, people-crop, skin
    source: str  # pictures of one source are never each other's negatives
    kind: str  # skin composition, or ""
    image: Image.Image | None = None


def _kpa_photos() -> Iterator[tuple[str, Image.Image]]:
    root = corpus_mod.cache_dir()
    debs, unpacked = root / "debs", root / "unpacked" / KPA_PACKAGE
    if not unpacked.is_dir():
        debs.mkdir(parents=True, exist_ok=True)
        found = sorted(debs.glob(f"{KPA_PACKAGE}_*.deb"))
        if not found:
            subprocess.run(["apt-get", "download", KPA_PACKAGE], cwd=debs, capture_output=True,
                           check=False)  # fmt: skip
            found = sorted(debs.glob(f"{KPA_PACKAGE}_*.deb"))
        if not found:
            print(f"fp: could not download {KPA_PACKAGE}; no kphotoalbum photos", file=sys.stderr)
            return
        tmp = unpacked.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(tmp)], check=True)
        tmp.rename(unpacked)
    for path in sorted((unpacked / KPA_DIR).glob("*.jpg")):
        with Image.open(path) as im:
            yield path.stem, ImageOps.exif_transpose(im).convert("RGB")


def design(source: str) -> str:
    """The design a source belongs to: a wallpaper's light and dark renderings (GNOME's
    ``name-l`` / ``name-d``, Plasma's ``images`` / ``images_dark``) are one picture recoloured,
    not each other's negatives."""
    source = re.sub(r"-[ld](\.\w+)$", r"\1", source)
    return source.replace("/images_dark/", "/images/")


def _quadrants(image: Image.Image) -> list[Image.Image]:
    w, h = image.size
    return [image.crop((c * w // 2, r * h // 2, (c + 1) * w // 2, (r + 1) * h // 2))
            for r in range(2) for c in range(2)]  # fmt: skip


def pictures(n_skin: int) -> list[Picture]:
    out: list[Picture] = []

    def add(set_name: str, source: str, image: Image.Image, kind: str = "") -> None:
        out.append(Picture(f"{set_name}:{source}:{len(out)}", set_name, source, kind, image))
        for q, crop in enumerate(_quadrants(image)):
            out.append(Picture(f"{set_name}-crop:{source}:q{q}", f"{set_name}-crop", source,
                               kind, crop))  # fmt: skip

    for item in corpus_mod.build():
        people = item.source == "skimage:astronaut"
        add("people" if people else "corpus", item.source, corpus_mod.load_image(item))
    for name, image in _kpa_photos():
        add("people" if name in KPA_PEOPLE else "corpus", f"kphotoalbum:{name}", image)
    try:
        from matplotlib import cbook

        with Image.open(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))) as im:
            add("people", "matplotlib:grace_hopper", im.convert("RGB"))
    except Exception as exc:  # matplotlib absent: the set is one picture smaller
        print(f"fp: no grace_hopper ({type(exc).__name__})", file=sys.stderr)
    for seed in range(n_skin):
        kind, image = _skin.generate(seed)
        out.append(Picture(f"skin:{seed}", "skin", f"skin:{seed}", kind, image))
    return out


# --- hashing ------------------------------------------------------------------------------------


def _u64(hashes: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(hashes), dtype=np.uint64).reshape(-1, 4)


ZERO = bytes(32)


def hash_all(pics: list[Picture], tile_ids: set[int]) -> dict[str, Any]:
    """Per picture: the banked PDQ hash, 12 query hashes, the learned code, and (for the tile
    subset) query tiles per cell and index tiles per cell and frame; each with validity."""
    from blindmatch.node.media import hashing
    from blindmatch.node.media import tiles as tile_hashing
    from blindmatch.node.signals.learned import model as model_mod
    from blindmatch.protocol import derivative as dv
    from blindmatch.protocol.signal_types import learned
    from blindmatch.protocol.signals import PDQ_QUALITY_THRESHOLD

    model = model_mod.load()
    scheme = dv.PDQ_TILES_1
    cells = scheme.cells
    cell_index = {c: i for i, c in enumerate(cells)}
    frames = len(scheme.index_frames)
    n = len(pics)
    bank = np.zeros((n, 4), np.uint64)
    bank_q = np.zeros(n, np.int16)
    query = np.zeros((n, 12, 4), np.uint64)
    query_q = np.zeros((n, 12), np.int16)
    codes = np.zeros((n, 4), np.uint64)
    skin = np.zeros(n, np.float32)
    tids = sorted(tile_ids)
    tq = np.zeros((len(tids), len(cells), 4), np.uint64)
    tq_ok = np.zeros((len(tids), len(cells)), bool)
    ti = np.zeros((len(tids), len(cells), frames, 4), np.uint64)
    ti_ok = np.zeros((len(tids), len(cells), frames), bool)
    t_row = {pid: r for r, pid in enumerate(tids)}
    t0 = time.monotonic()
    for k, p in enumerate(pics):
        assert p.image is not None
        rgb = np.asarray(hashing.downscale(p.image), dtype=np.uint8)
        base = hashing.pdq_of_pixels(rgb)
        bank[k] = _u64([base.hash32])[0]
        bank_q[k] = base.quality
        assert base.dihedral is not None
        hashes = list(base.dihedral)
        quals = [base.quality] * 8
        for f in UNCROPS:
            ext = hashing.uncrop(rgb, f)
            h = hashing.pdq_of_pixels(ext)
            hashes.append(h.hash32)
            quals.append(h.quality)
            if f == 0.05:
                m = hashing.pdq_of_pixels(ext[:, ::-1])
                hashes.append(m.hash32)
                quals.append(m.quality)
        query[k] = _u64(hashes)
        query_q[k] = quals
        codes[k] = _u64([learned.query_hash(model.embed(p.image), model.digest).hash])[0]
        skin[k] = _skin.skin_fraction(p.image)
        if k in t_row:
            r = t_row[k]
            for t in tile_hashing.query_tiles(rgb, scheme):
                c = cell_index[t.cell]
                tq[r, c] = _u64([t.pdq.hash32])[0]
                tq_ok[r, c] = True
            for t in tile_hashing.index_tiles(rgb, scheme):
                c = cell_index[t.cell]
                ti[r, c, t.tile.frame] = _u64([t.pdq.hash32])[0]
                ti_ok[r, c, t.tile.frame] = True
        if k % 500 == 0:
            print(f"fp: hashed {k}/{n} ({time.monotonic() - t0:.0f} s)", flush=True)
    return {
        "bank": bank,
        "bank_ok": bank_q >= PDQ_QUALITY_THRESHOLD,
        "bank_quality": bank_q,
        "query": query,
        "query_ok": query_q >= PDQ_QUALITY_THRESHOLD,
        "codes": codes,
        "skin_fraction": skin,
        "tile_ids": np.asarray(tids, np.int64),
        "tq": tq,
        "tq_ok": tq_ok,
        "ti": ti,
        "ti_ok": ti_ok,
        "hash_seconds": time.monotonic() - t0,
    }


def node_variant_counts(pics: list[Picture], every: int) -> list[int]:
    """Good-quality query hashes the node's own pipeline makes per upload (all its variants),
    on every ``every``-th picture (the full variant search is slow)."""
    from blindmatch.node.media import hashing
    from blindmatch.protocol.signals import PDQ_QUALITY_THRESHOLD

    out = []
    for p in pics[::every]:
        assert p.image is not None
        whole = hashing.hash_image(p.image, query_variants=True)
        out.append(sum(v.pdq.quality >= PDQ_QUALITY_THRESHOLD for v in whole.variants))
    return out


# --- distances ---------------------------------------------------------------------------------


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances of (..., 4) uint64 hashes: a (m, 4) x b (n, 4) -> (m, n) uint16."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.uint16)


class Tally:
    """Per query picture, the histogram of its distances to every counted banked picture (bin
    256: not counted), and the nearest pairs."""

    def __init__(self, n: int) -> None:
        self.rows = np.zeros((n, INVALID + 1), np.int64)
        self.nearest: list[tuple[int, int, int]] = []  # (distance, query picture, banked)

    def add(self, rows: np.ndarray, d: np.ndarray) -> None:
        """``rows``: the query pictures of ``d``'s rows; ``d``: (m, n) with INVALID marks."""
        m = d.shape[0]
        idx = (np.arange(m)[:, None] * (INVALID + 1) + d).ravel()
        self.rows[rows] += np.bincount(idx, minlength=m * (INVALID + 1)).reshape(m, -1)
        j = d.argmin(axis=1)
        mins = d[np.arange(m), j]
        for r, jj, dd in zip(rows, j, mins, strict=True):
            if dd < INVALID:
                self.nearest.append((int(dd), int(r), int(jj)))

    def top(self, k: int = 10) -> list[tuple[int, int, int]]:
        seen, out = set(), []
        for d, a, b in sorted(self.nearest):
            key = (min(a, b), max(a, b))
            if key in seen:
                continue
            seen.add(key)
            out.append((d, a, b))
            if len(out) == k:
                break
        return out


def _blocked(groups: np.ndarray, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
    cols_groups = groups if cols is None else groups[cols]
    return np.asarray(groups[rows][:, None] == cols_groups[None, :])


def pdq_tallies(h: dict[str, Any], groups: np.ndarray, chunk: int = 48) -> tuple[Tally, Tally]:
    """PDQ per (query hash, banked hash) and per (upload, banked hash)."""
    n = len(groups)
    per_hash, per_upload = Tally(n), Tally(n)
    bank, bank_ok = h["bank"], h["bank_ok"]
    for s in range(0, n, chunk):
        rows = np.arange(s, min(n, s + chunk))
        q = h["query"][rows].reshape(-1, 4)
        d = _dist(q, bank).reshape(len(rows), 12, n)
        bad = _blocked(groups, rows)[:, None, :] | ~bank_ok[None, None, :]
        bad = bad | ~h["query_ok"][rows][:, :, None]
        d[bad] = INVALID
        # Per hash: the rows' 12 variants each a query hash of the same picture.
        m = len(rows)
        idx = (np.repeat(np.arange(m), 12)[:, None] * (INVALID + 1) + d.reshape(m * 12, n)).ravel()
        per_hash.rows[rows] += np.bincount(idx, minlength=m * (INVALID + 1)).reshape(m, -1)
        per_upload.add(rows, d.min(axis=1))
    per_hash.nearest = per_upload.nearest
    return per_hash, per_upload


def code_tally(
    codes: np.ndarray, groups: np.ndarray, ok: np.ndarray | None = None, chunk: int = 512
) -> Tally:
    """The learned code per (upload, banked code); with ``ok``, only pictures it marks count
    on either side (a gate)."""
    n = len(groups)
    t = Tally(n)
    for s in range(0, n, chunk):
        rows = np.arange(s, min(n, s + chunk))
        d = _dist(codes[rows], codes)
        d[_blocked(groups, rows)] = INVALID
        if ok is not None:
            d[~ok[rows]] = INVALID
            d[:, ~ok] = INVALID
        t.add(rows, d)
    return t


def tile_tally(h: dict[str, Any], groups: np.ndarray, chunk: int = 64) -> tuple[Tally, Tally]:
    """Tiles per (upload, banked picture): 2nd-nearest cell (the rule's statistic) and nearest."""
    ids = h["tile_ids"]
    m = len(ids)
    tq, tq_ok, ti, ti_ok = h["tq"], h["tq_ok"], h["ti"], h["ti_ok"]
    cells, frames = ti.shape[1], ti.shape[2]
    second, first = Tally(m), Tally(m)
    g = groups[ids]
    for s in range(0, m, chunk):
        rows = np.arange(s, min(m, s + chunk))
        per_cell = np.full((cells, len(rows), m), INVALID, np.uint16)
        for c in range(cells):
            for f in range(frames):
                d = _dist(tq[rows, c], ti[:, c, f])
                d[~tq_ok[rows, c][:, None] | ~ti_ok[:, c, f][None, :]] = INVALID
                np.minimum(per_cell[c], d, out=per_cell[c])
        part = np.partition(per_cell, 1, axis=0)
        blocked = np.asarray(g[rows][:, None] == g[None, :])
        d2, d1 = part[1], part[0]
        d2[blocked] = INVALID
        d1[blocked] = INVALID
        second.add(rows, d2)
        first.add(rows, d1)
    return second, first


def recheck_tiles(pics: list[Picture], pairs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Run the node's own tile code (node/media/tiles.py) and rule (protocol/derivative.py
    classify) on pairs the bench found within the rule, for generated pictures (made again
    from their seed); other pictures are reported unchecked."""
    from blindmatch.node.media import tiles as tile_hashing
    from blindmatch.protocol import derivative as dv

    scheme = dv.PDQ_TILES_1
    out = []
    for qi, bi in pairs:
        q, b = pics[qi], pics[bi]
        row: dict[str, Any] = {"query": q.id, "banked": b.id}
        if q.set != "skin" or b.set != "skin":
            row["checked"] = False
            out.append(row)
            continue
        query = _skin.generate(int(q.id.split(":")[1]))[1]
        banked = _skin.generate(int(b.id.split(":")[1]))[1]
        index = tile_hashing.index_tiles(banked, scheme)
        queried = tile_hashing.query_tiles(query, scheme)
        confirmed = []
        for t in queried:
            near = [
                int(np.bitwise_count(_u64([t.pdq.hash32]) ^ _u64([u.pdq.hash32])).sum())
                for u in index
                if u.cell == t.cell
            ]
            if near and min(near) <= scheme.threshold:
                confirmed.append(dv.TileConfirmation(t.cell, b"source"))
        source = [u.cell for u in index if u.tile.frame == 0]
        verdicts = dv.classify(
            scheme, [t.cell for t in queried], confirmed, False, {b"source": source}
        )
        row["checked"] = True
        row["verdicts"] = [
            {"kind": v.kind, "cells": list(v.matched_cells), "coverage": round(v.coverage, 3)}
            for v in verdicts
        ]
        out.append(row)
    return out


# --- the tail fit -------------------------------------------------------------------------------


def fit_tail(rows: np.ndarray, threshold: int, rng: np.random.Generator) -> dict[str, Any]:
    """Fit log F(d) = a + b d over the lowest FIT_WINDOW distances of the empirical CDF that
    have at least FIT_MIN_PAIRS pairs at or below them; extrapolate to ``threshold``; the bound
    is the 95th percentile over BOOTSTRAPS resamplings of the query pictures (rows)."""
    rows = rows[:, :INVALID]
    hist = rows.sum(axis=0)

    def one(hist: np.ndarray) -> tuple[float, float, float, int]:
        n = hist.sum()
        cum = np.cumsum(hist)
        start = int(np.argmax(cum >= FIT_MIN_PAIRS))
        ds = np.arange(start, min(INVALID, start + FIT_WINDOW))
        y = np.log(cum[ds] / n)
        b, a = np.polyfit(ds, y, 1, w=np.sqrt(cum[ds]))
        p = float(np.exp(a + b * threshold)) if threshold < start else float(cum[threshold] / n)
        return p, float(a), float(b), start

    n = int(hist.sum())
    if n == 0:
        return {"pairs": 0}
    p, a, b, start = one(hist)
    boots = []
    counted = np.flatnonzero(rows.sum(axis=1))
    for _ in range(BOOTSTRAPS):
        pick = rng.choice(counted, len(counted))
        boots.append(one(rows[pick].sum(axis=0))[0])
    cum = np.cumsum(hist)
    d = np.arange(INVALID)
    mean = float((hist * d).sum() / n)
    sd = float(np.sqrt((hist * (d - mean) ** 2).sum() / n))
    return {
        "pairs": n,
        "within_threshold": int(cum[threshold]),
        "nearest": int(np.argmax(hist > 0)),
        "mean": round(mean, 1),
        "sd": round(sd, 1),
        "percentiles": {q: int(np.searchsorted(cum, q / 100 * n)) for q in (0.001, 0.01, 0.1, 1)},
        "fit_from": start,
        "fit_to": start + FIT_WINDOW - 1,
        "slope_per_bit": round(b, 4),
        "intercept": round(a, 4),
        "p": p,
        "p_upper95": float(np.percentile(boots, 95)),
        "zero_count_bound": 3 / n,
        "fit_extrapolates": threshold < start,
    }


def fp_at_bank(p: float, lookups: float, bank: int = BANK) -> float:
    """1 - (1 - p)^(bank x lookups), stable for tiny p."""
    return float(-np.expm1(bank * lookups * np.log1p(-min(p, 1 - 1e-16))))


# --- the run -----------------------------------------------------------------------------------


def evaluate(
    n_skin: int, tile_skin: int, tile_every: int, variant_every: int, rehash: bool = False
) -> dict[str, Any]:
    t_start = time.monotonic()
    load0 = os.getloadavg()[0]
    rng = np.random.default_rng(SEED)
    cache = (
        corpus_mod.cache_dir().parent
        / "fp"
        / (f"hashes-v{CACHE_VERSION}-{n_skin}-{tile_skin}-{tile_every}-{variant_every}.npz")
    )
    if cache.exists() and not rehash:
        with np.load(cache) as z:
            h = {k: z[k] for k in z.files if k != "meta"}
            meta = json.loads(str(z["meta"]))
        pics = [Picture(**m) for m in meta["pictures"]]
        counts, counts_skin = meta["counts"], meta["counts_skin"]
        h["hash_seconds"] = float(meta["hash_seconds"])
        prepare_seconds = float(meta.get("prepare_seconds", float("nan")))
        from_cache = True
        print(f"fp: {len(pics)} pictures' hashes from {cache}", flush=True)
    else:
        pics = pictures(n_skin)
        # Tiles on a subset: every real whole picture and people crop, every tile_every-th
        # corpus crop, and the first tile_skin generated pictures.
        tile_ids = {
            i for i, p in enumerate(pics)
            if p.set in ("corpus", "people", "people-crop")
            or (p.set == "corpus-crop" and i % tile_every == 0)
            or (p.set == "skin" and int(p.id.split(":")[1]) < tile_skin)
        }  # fmt: skip
        print(f"fp: {len(pics)} pictures ({len(tile_ids)} with tiles); hashing ...", flush=True)
        h = hash_all(pics, tile_ids)
        print(f"fp: node variant counts on every {variant_every}th picture ...", flush=True)
        counts = node_variant_counts(pics, variant_every)
        counts_skin = node_variant_counts([p for p in pics if p.set == "skin"], variant_every // 2)
        for p in pics:
            p.image = None
        meta = {
            "pictures": [{"id": p.id, "set": p.set, "source": p.source, "kind": p.kind}
                         for p in pics],
            "counts": counts,
            "counts_skin": counts_skin,
            "hash_seconds": h["hash_seconds"],
            "prepare_seconds": time.monotonic() - t_start,
        }  # fmt: skip
        prepare_seconds = meta["prepare_seconds"]
        from_cache = False
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: v for k, v in h.items() if isinstance(v, np.ndarray)}
        payload: dict[str, Any] = {"meta": np.array(json.dumps(meta)), **arrays}
        np.savez(cache, **payload)
    sets = np.array([p.set for p in pics])
    groups = np.unique([design(p.source) for p in pics], return_inverse=True)[1]
    v_measured = float(np.mean(counts))
    v = max(v_measured, EDITS_MEAN_QUERY_HASHES)
    print("fp: distances ...", flush=True)
    t_d = time.monotonic()
    pdq_hash, pdq_upload = pdq_tallies(h, groups)
    codes = code_tally(h["codes"], groups)
    codes_gated = code_tally(h["codes"], groups, h["bank_ok"])
    tile_second, tile_first = tile_tally(h, groups)
    dist_seconds = time.monotonic() - t_d

    def describe(i: int) -> dict[str, Any]:
        p = pics[i]
        return {"id": p.id, "set": p.set, "kind": p.kind,
                "skin_fraction": round(float(h["skin_fraction"][i]), 2)}  # fmt: skip

    def nearest(t: Tally, index: np.ndarray | None = None) -> list[dict[str, Any]]:
        out = []
        for d, a, b in t.top(8):
            ia, ib = (a, b) if index is None else (int(index[a]), int(index[b]))
            out.append({"distance": d, "query": describe(ia), "banked": describe(ib)})
        return out

    def by_subset(t: Tally, q_sets: np.ndarray, threshold: int, lookups: float) -> dict[str, Any]:
        out = {}
        for name in ("all", "skin", "people", "real"):
            if name == "all":
                rows = t.rows
            elif name == "skin":
                rows = t.rows[q_sets == "skin"]
            elif name == "people":
                rows = t.rows[np.char.startswith(q_sets, "people")]
            else:
                rows = t.rows[q_sets != "skin"]
            f = fit_tail(rows, threshold, rng)
            if f.get("pairs"):
                f["fp_per_upload_at_1M"] = fp_at_bank(f["p"], lookups)
                f["fp_per_upload_at_1M_upper95"] = fp_at_bank(f["p_upper95"], lookups)
                f["expected_per_upload_at_1M"] = BANK * lookups * f["p"]
            out[name] = f
        return out

    tile_sets = sets[h["tile_ids"]]

    def within_kinds(t: Tally, threshold: int, index: np.ndarray | None = None) -> dict[str, Any]:
        """The pairs within T by the sets of the two pictures, and how many of them have a
        picture under PDQ's quality gate (< 50)."""
        kinds: dict[str, int] = {}
        low = 0
        for d, a, b in t.nearest:
            if d > threshold:
                continue
            ia, ib = (a, b) if index is None else (int(index[a]), int(index[b]))
            key = " x ".join(sorted((pics[ia].set, pics[ib].set)))
            kinds[key] = kinds.get(key, 0) + 1
            low += not (h["bank_ok"][ia] and h["bank_ok"][ib])
        return {"uploads_with_one": sum(kinds.values()), "by_sets": kinds,
                "with_a_low_quality_picture": low}  # fmt: skip

    # Skin against skin only (the worst case: a bank and a stream of smooth skin pictures).
    skin_idx = np.flatnonzero(sets == "skin")
    sk = skin_idx
    sub = {k: h[k][sk] for k in ("bank", "bank_ok", "query", "query_ok")}
    skin_pdq_hash, skin_pdq_upload = pdq_tallies(sub, groups[sk])
    skin_codes = code_tally(h["codes"][sk], groups[sk])
    skin_codes_gated = code_tally(h["codes"][sk], groups[sk], h["bank_ok"][sk])
    ts = np.flatnonzero(tile_sets == "skin")
    sub_t = {"tile_ids": ts, "tq": h["tq"][ts], "tq_ok": h["tq_ok"][ts], "ti": h["ti"][ts],
             "ti_ok": h["ti_ok"][ts]}  # fmt: skip
    skin_tiles, _ = tile_tally(sub_t, groups[h["tile_ids"]])

    def fitted(t: Tally, threshold: int, lookups: float) -> dict[str, Any]:
        f = fit_tail(t.rows, threshold, rng)
        if f.get("pairs"):
            f["fp_per_upload_at_1M"] = fp_at_bank(f["p"], lookups)
            f["fp_per_upload_at_1M_upper95"] = fp_at_bank(f["p_upper95"], lookups)
            f["expected_per_upload_at_1M"] = BANK * lookups * f["p"]
        return f

    per_set = {s: int((sets == s).sum()) for s in sorted(set(sets))}
    gated = {s: round(float(1 - h["bank_ok"][sets == s].mean()), 3) for s in per_set}
    kinds = {k: sum(1 for p in pics if p.kind == k) for k in _skin.KINDS}
    return {
        "pictures": len(pics),
        "sets": per_set,
        "skin_kinds": kinds,
        "skin_fraction_median": {
            s: round(float(np.median(h["skin_fraction"][sets == s])), 2) for s in per_set
        },
        "pdq_gated_share": gated,
        "tile_pictures": len(h["tile_ids"]),
        "tile_sets": {s: int((tile_sets == s).sum()) for s in sorted(set(tile_sets))},
        "lookups": {
            "pdq_query_hashes_measured_mean": round(v_measured, 1),
            "pdq_query_hashes_measured_n": len(counts),
            "pdq_query_hashes_skin_mean": round(float(np.mean(counts_skin)), 1),
            "pdq_query_hashes_edits_mean": round(EDITS_MEAN_QUERY_HASHES, 1),
            "pdq_query_hashes_used": round(v, 1),
            "pdq_query_hashes_bench": 12,
        },
        "pdq_per_hash": by_subset(pdq_hash, sets, PDQ_T, v),
        "pdq_per_upload": by_subset(pdq_upload, sets, PDQ_T, v / 12),
        "tiles": by_subset(tile_second, tile_sets, TILE_T, 1.0),
        "tiles_nearest_cell": by_subset(tile_first, tile_sets, TILE_T, 1.0),
        "learned": by_subset(codes, sets, LEARNED_T, 1.0),
        "learned_pdq_gated": by_subset(codes_gated, sets, LEARNED_T, 1.0),
        "within": {
            "learned": within_kinds(codes, LEARNED_T),
            "learned_pdq_gated": within_kinds(codes_gated, LEARNED_T),
            "tiles": within_kinds(tile_second, TILE_T, h["tile_ids"]),
        },
        "tiles_rechecked": recheck_tiles(
            pics,
            [
                (int(h["tile_ids"][a]), int(h["tile_ids"][b]))
                for d, a, b in tile_second.top(50)
                if d <= TILE_T
            ],
        ),
        "skin_x_skin": {
            "pdq_per_hash": fitted(skin_pdq_hash, PDQ_T, v),
            "pdq_per_upload": fitted(skin_pdq_upload, PDQ_T, v / 12),
            "tiles": fitted(skin_tiles, TILE_T, 1.0),
            "learned": fitted(skin_codes, LEARNED_T, 1.0),
            "learned_pdq_gated": fitted(skin_codes_gated, LEARNED_T, 1.0),
        },
        "nearest": {
            "pdq": nearest(pdq_upload),
            "tiles": nearest(tile_second, h["tile_ids"]),
            "learned": nearest(codes),
            "learned_pdq_gated": nearest(codes_gated),
        },
        "licences": LICENCES,
        "run": {
            "seconds": round(time.monotonic() - t_start, 1),
            "hash_seconds": round(h["hash_seconds"], 1),
            "prepare_seconds": round(prepare_seconds, 1),
            "hashes_from_cache": from_cache,
            "distance_seconds": round(dist_seconds, 1),
            "load_start": round(load0, 1),
            "load_end": round(os.getloadavg()[0], 1),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "seed": SEED,
            "skin_pictures": n_skin,
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench fp", description=__doc__.splitlines()[0])
    parser.add_argument("--skin", type=int, default=1500, help="generated skin pictures")
    parser.add_argument("--tile-skin", type=int, default=500, help="of which with tiles")
    parser.add_argument("--tile-every", type=int, default=4, help="corpus crops with tiles")
    parser.add_argument("--variant-every", type=int, default=100, help="node variant sample")
    parser.add_argument("--rehash", action="store_true", help="ignore the cached hashes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args(argv)
    from bench import _fp_report

    if args.render:
        result = json.loads((args.out / "fp.json").read_text())
        result["licences"] = LICENCES  # not a measurement: the current wording
        (args.out / "fp.json").write_text(json.dumps(result, indent=1) + "\n")
    else:
        result = evaluate(
            args.skin, args.tile_skin, args.tile_every, args.variant_every, args.rehash
        )
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fp.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "fp.md").write_text(_fp_report.report(result))
    print(_fp_report.report(result))
    return 0
