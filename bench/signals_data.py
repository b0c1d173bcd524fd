"""Hash the evaluation corpus and its edited copies once; cache the result as one .npz file.

Used by ``bench/signals.py``; run on its own as ``./dev bench signals_data`` to (re)build the cache.
Split: the first ``INDEX_FRACTION`` of the distinct corpus images (in a seeded shuffle) are the
pictures a holder has indexed; the rest are the negative set (never indexed). Every picture of
both groups is edited by every transform, so each transform has its own positive queries (edits
of indexed pictures) and negative queries (edits of unrelated pictures).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench import corpus
from bench.transforms import TRANSFORMS
from blindmatch.node.media.hashing import hash_image

SEED = 20261123
INDEX_FRACTION = 0.65
CACHE_VERSION = 7


def cache_path(items: list[corpus.CorpusImage]) -> Path:
    key = hashlib.sha256(
        repr((CACHE_VERSION, SEED, sorted(TRANSFORMS), [i.pdq_hex for i in items])).encode()
    ).hexdigest()[:16]
    return corpus.cache_dir() / f"signals-{key}.npz"


def _padded(a: np.ndarray, width: int) -> np.ndarray:
    """``a`` with zero rows (False) appended up to ``width`` variants."""
    return np.concatenate([a, np.zeros((width - len(a), *a.shape[1:]), dtype=a.dtype)])


# One worker's corpus: every picture loaded once per process (edits paste in donor pictures).
_IMAGES: list | None = None


def _load_corpus(items: list[corpus.CorpusImage]) -> None:
    global _IMAGES
    _IMAGES = [corpus.load_image(it) for it in items]


def _hash_picture(i: int) -> tuple[np.ndarray, int, list[tuple[np.ndarray, int]]]:
    """Picture ``i``'s float vector and quality, and per transform (in TRANSFORMS order) the
    float vectors of every variant the query pipeline makes of its edited copy, with the
    copy's quality. Its own seeded draws: the same result in any process, in any order."""
    images = _IMAGES
    assert images is not None
    image = images[i]
    h = hash_image(image)
    assert h.pdq.float_vector is not None
    item_rng = np.random.default_rng([SEED, i])
    copies = []
    for name in TRANSFORMS:
        donor = images[int(item_rng.integers(0, len(images) - 1) + 1 + i) % len(images)]
        edited = TRANSFORMS[name](image, item_rng, donor)
        e = hash_image(edited, query_variants=True)
        # as many variants as the query pipeline makes of this copy (padded in collect)
        floats = np.zeros((len(e.variants), 256), dtype=np.float32)
        for v, variant in enumerate(e.variants):
            assert variant.pdq.float_vector is not None
            floats[v] = variant.pdq.float_vector
        copies.append((floats, e.pdq.quality))
    return h.pdq.float_vector.astype(np.float32), h.pdq.quality, copies


def collect(
    items: list[corpus.CorpusImage], *, verbose: bool = True, workers: int | None = None
) -> dict[str, np.ndarray]:
    """The cached hashes, or hash the corpus in ``workers`` processes (default: every core;
    about 80 CPU-minutes in all, so one process alone needs that long in wall time)."""
    path = cache_path(items)
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(items))
    n_index = round(len(items) * INDEX_FRACTION)
    is_indexed = np.zeros(len(items), dtype=bool)
    is_indexed[order[:n_index]] = True

    names = list(TRANSFORMS)
    orig_float, orig_quality = [], []
    q_image, q_transform, q_float, q_mask, q_quality = [], [], [], [], []
    started = time.time()
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, initializer=_load_corpus, initargs=(items,)) as pool:
        # pictures differ in cost several-fold: one at a time keeps the workers evenly busy
        for i, (of, oq, copies) in enumerate(pool.map(_hash_picture, range(len(items)))):
            orig_float.append(of)
            orig_quality.append(oq)
            for t, (floats, quality) in enumerate(copies):
                q_image.append(i)
                q_transform.append(t)
                q_float.append(floats)
                q_mask.append(np.ones(len(floats), dtype=bool))
                q_quality.append(quality)
            if verbose and (i + 1) % 20 == 0:
                print(
                    f"signals_data: {i + 1}/{len(items)} pictures, {time.time() - started:.0f} s"
                    f" ({workers} processes)",
                    file=sys.stderr,
                )
    width = max(len(m) for m in q_mask)
    data = {
        "is_indexed": is_indexed,
        "transform_names": np.array(names),
        "orig_float": np.stack(orig_float),
        "orig_quality": np.array(orig_quality),
        "q_image": np.array(q_image),
        "q_transform": np.array(q_transform),
        "q_float": np.stack([_padded(f, width) for f in q_float]),
        "q_mask": np.stack([_padded(m, width) for m in q_mask]),
        "q_quality": np.array(q_quality),
    }
    np.savez_compressed(path, **data)
    return data


def donor_index(items: list[corpus.CorpusImage], image: int, transform: int) -> int:
    """Which corpus picture the edit ``transform`` of picture ``image`` took its pasted content
    from: replays that picture's random draws (the edits themselves are cheap)."""
    picture = corpus.load_image(items[image])
    item_rng = np.random.default_rng([SEED, image])
    names = list(TRANSFORMS)
    donor = -1
    for t, name in enumerate(names[: transform + 1]):
        donor = int(item_rng.integers(0, len(items) - 1) + 1 + image) % len(items)
        if t < transform:
            TRANSFORMS[name](picture, item_rng, picture)  # draws depend on sizes only
    return donor


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench signals_data")
    parser.parse_args(argv)
    items = corpus.build()
    data = collect(items)
    print(f"signals_data: {len(data['q_image'])} edited copies of {len(items)} pictures")
    return 0
