"""Workloads: the hashes nodes bank and the uploads they match, drawn from measured data.

* Hashes come from the evaluation corpus (``source = "corpus"``: the corpus's own PDQ hashes,
  then synthetic ones once they run out) or from the Gaussian model of PDQ's DCT values fitted to
  the corpus (``sim/data/pdq_model.json``, made by ``sim/make_data.py`` from the signals
  evaluation's cache): a draw thresholded at its median has the corpus's bit statistics.
* An edited copy moves its original by a distance drawn from the distances measured for that
  transform in the signals evaluation. *Which* bits flip follows the flip model the LSH scheme's
  probing was fitted to (``protocol/lsh.py``: a bit near PDQ's median flips more often), and the
  upload's float vector keeps those bits near the median, so query-directed multi-probe sees
  realistic uncertainty.
* Everything is a numpy array over all items / uploads of the run (vectorised; one row each).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from threadpoolctl import threadpool_limits

from blindmatch.protocol.lsh import P_FLOOR, P_MAX, P_SCALE, X_SCALE

from .pdq_model import edit_names, model
from .scenario import Scenario

# Upload kinds and item kinds (small ints so that they vectorise).
ORIGINAL, EDITED, POPULAR, UNIQUE = 0, 1, 2, 3
UPLOAD_KINDS = ("original", "edited", "popular", "unique")
NCII, OTHER, POISON = 0, 1, 2
ITEM_KINDS = ("ncii", "other", "poison")


@cache
def _model_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = model()
    return (
        np.asarray(m["mean"], dtype=np.float32),
        np.asarray(m["factor"], dtype=np.float32),
        np.asarray(m["residual_sd"], dtype=np.float32),
    )


def _draw(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k draws of the model (float32) and, per draw, its two middle order statistics."""
    mean, factor, resid = _model_arrays()
    # One BLAS thread: a float32 product's rounding depends on how many threads split it, and a
    # run's numbers must not depend on the machine's core count or the engine (a Dask worker
    # runs one thread) that ran it.
    with threadpool_limits(limits=1, user_api="blas"):
        z = rng.standard_normal((k, factor.shape[1]), dtype=np.float32) @ factor.T
    z += mean
    noise = rng.standard_normal((k, 256), dtype=np.float32)
    noise *= resid
    z += noise
    middle = np.partition(z, (127, 128), axis=1)[:, 127:129]
    return z, middle


def synthetic(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 32) packed hashes and (n, 256) float32 vectors (centred on their median) drawn from
    the fitted Gaussian model; a bit is 1 where the value exceeds the median, as in PDQ."""
    hashes = np.empty((n, 32), dtype=np.uint8)
    floats = np.empty((n, 256), dtype=np.float32)
    for start in range(0, n, 65_536):
        k = min(65_536, n - start)
        z, middle = _draw(rng, k)
        z -= middle.mean(axis=1, keepdims=True)
        floats[start : start + k] = z
        hashes[start : start + k] = np.packbits(z > 0, axis=1)
    return hashes, floats


def synthetic_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Hashes only (no float vectors kept), for banks of millions."""
    out = np.empty((n, 32), dtype=np.uint8)
    for start in range(0, n, 65_536):
        k = min(65_536, n - start)
        z, middle = _draw(rng, k)
        # z > median <=> z >= the upper middle order statistic (values are distinct a.s.)
        out[start : start + k] = np.packbits(z >= middle[:, 1:2], axis=1)
    return out


def corpus_hashes() -> np.ndarray:
    return np.array([np.frombuffer(bytes.fromhex(h), np.uint8) for h in model()["corpus_hashes"]])


def flip_probability(magnitude: np.ndarray) -> np.ndarray:
    """The LSH scheme's fitted flip model: p(x) for x = |v - median| / median |v - median|."""
    typical = np.median(magnitude, axis=-1, keepdims=True)
    x = magnitude / np.where(typical > 0, typical, 1)
    return np.minimum(P_MAX, P_SCALE * np.exp(-x / X_SCALE) + P_FLOOR)


def edit(
    rng: np.random.Generator, hashes: np.ndarray, distances: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Edited copies of ``hashes`` (n, 32) at exactly ``distances`` (n,), with float vectors.

    Flipped bits are drawn without replacement, weighted by the fitted flip probability of a
    fresh magnitude profile (Gumbel top-k), so uncertain bits flip first, as in real edits.
    """
    n = len(hashes)
    bits = np.unpackbits(hashes, axis=1).astype(bool)
    _, profile = synthetic(rng, n)
    magnitude = np.abs(profile)
    p = flip_probability(magnitude)
    keys = np.log(p) + rng.gumbel(size=p.shape)
    rank = np.argsort(np.argsort(-keys, axis=1, kind="stable"), axis=1, kind="stable")
    flip = rank < np.asarray(distances)[:, None]
    out_bits = bits ^ flip
    # Flipped bits sit just across the median: small magnitude on the new side.
    floats = np.where(out_bits, 1.0, -1.0) * magnitude
    return np.packbits(out_bits, axis=1), floats.astype(np.float32)


@dataclass
class Workload:
    """All items banked during the run and all uploads, as aligned arrays."""

    node_names: list[str]
    # items
    item_hash: np.ndarray  # (N, 32) uint8
    item_holder: np.ndarray  # (N,) int32
    item_kind: np.ndarray  # (N,) int8: NCII / OTHER / POISON
    item_content: np.ndarray  # (N,) int64: content id (NCII pool id, popular id, or -1)
    item_added: np.ndarray  # (N,) float64 seconds
    item_removed: np.ndarray  # (N,) float64 seconds (inf: never withdrawn)
    # uploads, sorted by time
    up_time: np.ndarray
    up_node: np.ndarray  # querier index
    up_kind: np.ndarray  # ORIGINAL / EDITED / POPULAR / UNIQUE
    up_content: np.ndarray  # NCII content id for ORIGINAL/EDITED, popular id for POPULAR
    up_edit: np.ndarray  # transform index for EDITED, -1 otherwise
    up_hash: np.ndarray  # (U, 32)
    up_float: np.ndarray  # (U, 256) float32
    edit_list: list[str]


def build(s: Scenario, rng: np.random.Generator) -> Workload:
    names = s.node_names()
    groups = [g for g in s.nodes for _ in range(g.count)]
    w = s.workload
    horizon = s.days * 86_400.0
    holders = [i for i, g in enumerate(groups) if g.bank_size > 0]
    hubs = [i for i, g in enumerate(groups) if g.role == "hub"]

    # --- NCII content in circulation: banked at start by holders, or submitted to hubs later.
    initial_ncii = {i: round(groups[i].bank_size * w.circulating_share) for i in holders}
    submitted = {i: int(rng.poisson(w.submissions_per_day * s.days)) for i in hubs}
    pool = max(1, round(sum(initial_ncii.values()) / 1.5) + sum(submitted.values()))
    if w.source == "corpus":
        corpus = corpus_hashes()
        take = min(pool, len(corpus))
        pool_hash = np.concatenate(
            [corpus[rng.permutation(len(corpus))[:take]], synthetic_hashes(rng, pool - take)]
        )
    else:
        pool_hash = synthetic_hashes(rng, pool)
    popular_hash = synthetic_hashes(rng, w.popular_pool)

    holder_l, kind_l, content_l, added_l = [], [], [], []
    next_new = pool - sum(submitted.values())  # later submissions get the last pool ids
    for i in holders:
        n_ncii = initial_ncii[i]
        ids = rng.choice(next_new, size=min(n_ncii, next_new), replace=False)
        holder_l.append(np.full(len(ids), i))
        kind_l.append(np.full(len(ids), NCII))
        content_l.append(ids)
        added_l.append(np.zeros(len(ids)))
        n_other = groups[i].bank_size - len(ids)
        holder_l.append(np.full(n_other, i))
        kind_l.append(np.full(n_other, OTHER))
        content_l.append(np.full(n_other, -1))
        added_l.append(np.zeros(n_other))
    sub_id = next_new
    for i in hubs:
        k = submitted[i]
        holder_l.append(np.full(k, i))
        kind_l.append(np.full(k, NCII))
        content_l.append(np.arange(sub_id, sub_id + k))
        added_l.append(np.sort(rng.uniform(0, horizon, k)))
        sub_id += k
    poison_n = 0
    if s.adversaries.poisoner:
        poison_n = min(s.adversaries.poison_hashes, w.popular_pool)
        holder_l.append(np.full(poison_n, names.index(s.adversaries.poisoner)))
        kind_l.append(np.full(poison_n, POISON))
        content_l.append(np.arange(poison_n))  # the most popular images (Zipf rank order)
        added_l.append(np.zeros(poison_n))
    item_holder = np.concatenate(holder_l).astype(np.int32)
    item_kind = np.concatenate(kind_l).astype(np.int8)
    item_content = np.concatenate(content_l).astype(np.int64)
    item_added = np.concatenate(added_l).astype(np.float64)
    n_items = len(item_holder)
    item_hash = np.empty((n_items, 32), dtype=np.uint8)
    is_ncii = item_kind == NCII
    item_hash[is_ncii] = pool_hash[item_content[is_ncii]]
    is_other = item_kind == OTHER
    item_hash[is_other] = synthetic_hashes(rng, int(is_other.sum()))
    is_poison = item_kind == POISON
    item_hash[is_poison] = popular_hash[item_content[is_poison]]
    # Withdrawals: a survivor takes back a hub's NCII item at a uniform time after it was added.
    item_removed = np.full(n_items, np.inf)
    for i in hubs:
        mine = np.flatnonzero((item_holder == i) & is_ncii)
        k = min(len(mine), int(rng.poisson(w.withdrawals_per_day * s.days)))
        gone = rng.choice(mine, size=k, replace=False)
        item_removed[gone] = item_added[gone] + rng.uniform(0, 1, k) * (horizon - item_added[gone])

    # --- uploads
    t_l, n_l = [], []
    for i, g in enumerate(groups):
        k = int(rng.poisson(g.uploads_per_day * s.days))
        t_l.append(rng.uniform(0, horizon, k))
        n_l.append(np.full(k, i))
    up_time = np.concatenate(t_l) if t_l else np.zeros(0)
    up_node = np.concatenate(n_l).astype(np.int32) if n_l else np.zeros(0, np.int32)
    order = np.argsort(up_time, kind="stable")
    up_time, up_node = up_time[order], up_node[order]
    u = len(up_time)
    r = rng.uniform(size=u)
    up_kind = np.where(
        r < w.original_share,
        ORIGINAL,
        np.where(r < w.original_share + w.edited_share, EDITED, UNIQUE),
    ).astype(np.int8)
    unrelated = up_kind == UNIQUE
    up_kind[unrelated & (rng.uniform(size=u) < w.popular_share)] = POPULAR
    up_content = np.full(u, -1, dtype=np.int64)
    ncii_up = up_kind <= EDITED
    up_content[ncii_up] = rng.integers(0, pool, int(ncii_up.sum()))
    pop = up_kind == POPULAR
    zipf = 1.0 / np.arange(1, w.popular_pool + 1) ** w.zipf_s
    up_content[pop] = rng.choice(w.popular_pool, size=int(pop.sum()), p=zipf / zipf.sum())

    edit_list = edit_names()
    mix = w.edit_mix or dict.fromkeys(edit_list, 1.0)
    weights = np.array([mix.get(e, 0.0) for e in edit_list])
    up_edit = np.full(u, -1, dtype=np.int16)
    ed = up_kind == EDITED
    up_edit[ed] = rng.choice(len(edit_list), size=int(ed.sum()), p=weights / weights.sum())
    # distance of each upload from its source hash
    dist = np.zeros(u, dtype=np.int64)
    measured = model()["edit_distances"]
    for e, name in enumerate(edit_list):
        sel = up_edit == e
        dist[sel] = rng.choice(np.asarray(measured[name]), size=int(sel.sum()))
    jpeg = np.asarray(measured["jpeg_q75"])  # a popular image is re-encoded on every share
    dist[pop] = rng.choice(jpeg, size=int(pop.sum()))
    source = np.empty((u, 32), dtype=np.uint8)
    source[ncii_up] = pool_hash[up_content[ncii_up]]
    source[pop] = popular_hash[up_content[pop]]
    uniq = up_kind == UNIQUE
    source[uniq] = synthetic_hashes(rng, int(uniq.sum()))
    up_hash = np.empty_like(source)
    up_float = np.empty((u, 256), dtype=np.float32)
    for start in range(0, u, 65_536):
        sl = slice(start, start + 65_536)
        up_hash[sl], up_float[sl] = edit(rng, source[sl], dist[sl])
    return Workload(
        node_names=names,
        item_hash=item_hash,
        item_holder=item_holder,
        item_kind=item_kind,
        item_content=item_content,
        item_added=item_added,
        item_removed=item_removed,
        up_time=up_time,
        up_node=up_node,
        up_kind=up_kind,
        up_content=up_content,
        up_edit=up_edit,
        up_hash=up_hash,
        up_float=up_float,
        edit_list=edit_list,
    )
