"""Vectors for specs/signals-and-lsh.md section 1.6 (``learned-lsh-1``): a model's embedding as a
256-bit random-hyperplane code, its bucket keys under the model's bucket signal, and the
threshold. Embeddings are small multiples of 1/8 (exact in binary floating point, so every
projection's sign is exact); fixed seeds. Conformance format {"id", "op", "input", "expected"}.
"""

from __future__ import annotations

import hashlib
from typing import Any

from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.signal_types import learned  # noqa: F401  (registers the ops)


def _digest(label: str) -> str:
    return hashlib.sha256(b"blindmatch vectors learned model " + label.encode()).hexdigest()


def _embedding(seed: int, dim: int) -> list[float]:
    stream = hashlib.shake_256(b"blindmatch vectors learned embedding %d" % seed).digest(dim)
    return [(b - 128) / 8 for b in stream]


def cases() -> list[dict[str, Any]]:
    a, b = _digest("a"), _digest("b")
    e64 = _embedding(1, 64)
    near = list(e64)
    for j in range(0, 64, 9):
        near[j] += 2.0  # a small change: a few bits move
    out = [
        _case("code-dim-64", "learned.code", {"model_digest": a, "embedding": e64}),
        _case("code-dim-8", "learned.code", {"model_digest": a, "embedding": _embedding(2, 8)}),
        _case("code-dim-512", "learned.code", {"model_digest": a, "embedding": _embedding(3, 512)}),
        # The same embedding under another model: another code and disjoint buckets.
        _case("code-other-model", "learned.code", {"model_digest": b, "embedding": e64}),
        # A projection of exactly zero is a 0 bit.
        _case("code-ties", "learned.code", {"model_digest": a, "embedding": [1.0, 1.0]}),
        _case("code-no-probes", "learned.code", {"model_digest": a, "embedding": e64, "budget": 0}),
        _case("code-zero", "learned.code", {"model_digest": a, "embedding": [0.0] * 16}),
        _case("code-empty", "learned.code", {"model_digest": a, "embedding": []}),
        _case("code-too-long", "learned.code", {"model_digest": a, "embedding": [1.0] * 4097}),
        _case("code-not-numbers", "learned.code", {"model_digest": a, "embedding": ["1"]}),
        _case("code-budget", "learned.code", {"model_digest": a, "embedding": e64, "budget": 65}),
        _case("code-short-digest", "learned.code", {"model_digest": a[:62], "embedding": e64}),
        _case(
            "distance-near",
            "learned.distance",
            {"model_digest": a, "embedding": e64, "other": near},
        ),
        _case(
            "distance-unrelated",
            "learned.distance",
            {"model_digest": a, "embedding": e64, "other": _embedding(4, 64)},
        ),
        _case(
            "distance-dims-differ",
            "learned.distance",
            {"model_digest": a, "embedding": e64, "other": _embedding(5, 32)},
        ),
    ]
    return out


def generate() -> dict[str, object]:
    return {
        "learned.json": {
            "name": "learned-lsh-1: a learned embedding as a 256-bit code and its buckets",
            "spec": "specs/signals-and-lsh.md#16-learned-lsh-1",
            "version": 1,
            "cases": [{**c, "id": f"learned/{c['id']}"} for c in cases()],
        }
    }
