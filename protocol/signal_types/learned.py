"""``learned-lsh-1``: a picture's learned embedding as a 256-bit random-hyperplane code
(specs/signals-and-lsh.md 1.6).

An image-embedding model (an ONNX file, known by the SHA-256 of its bytes: the *model digest*)
maps a picture to an embedding ``e`` of ``dim`` floats. The code's bit ``i`` is 1 when the
projection of ``e`` on hyperplane ``i`` is positive. The hyperplanes are the rows of a
256 x dim matrix of +1/-1 entries read from SHAKE-256("blindmatch/learned-lsh-1/planes" ||
model digest || u32be(dim)), one bit per entry, row after row, most significant bit of each byte
first; a 1 bit is +1. For such (Rademacher) hyperplanes, as for Gaussian ones,
P[bit i differs] ~= theta / pi for embeddings at angle theta, so the Hamming distance of two codes
estimates 256 * theta / pi.

Codes ride the blinded LSH buckets and the private threshold test as PDQ hashes do: bit-sampling
scheme ``learned-lsh-1`` keys a code under the bucket signal ``learned-lsh-1/<model digest in
hex>``, so codes of different models never share a bucket and are never compared. The query's
variant label names the model the same way (``learned/<model digest in hex>``). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from blindmatch.protocol.conformance_support import OpError
from blindmatch.protocol.lsh import BitSamplingScheme, register_pdq_valued_signal
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.signal_types.base import Exchange, SignalTypeEntry, register
from blindmatch.protocol.signals import PDQ_BYTES, HashFormatError, SignalType

NAME = "learned-lsh-1"
CODE_BITS = 256
MODEL_DIGEST_BYTES = 32
MAX_DIM = 4096
PLANES_LABEL = b"blindmatch/learned-lsh-1/planes"
VARIANT_PREFIX = "learned/"
_VARIANT = re.compile(r"learned/([0-9a-f]{64})")

# The private threshold test's T for two codes of the project's model: PDQ's 31, so that a
# learned item's answers carry the default band list and its index entries hide among a batch's
# decoys like a picture's (specs/protocol.md 8.7); chosen on the corpus's training pictures
# (bench/results/learned.md): no training negative within T + 2.
THRESHOLD = 31

# Bit sampling over the code, pdq-lsh-1's construction with its own tag: 24 tables (a picture's
# count, as the decoys have) of 24 bits (learned codes' copies spread over more bits than PDQ's).
LEARNED_LSH_1 = BitSamplingScheme(
    name=NAME,
    signal_type=SignalType.PDQ,  # never used: every key names its model's bucket signal
    tables=24,
    bits_per_table=24,
    probe_budget=64,
    candidate_bits=10,
    max_flips=3,
    cost_model="logodds",
)


class LearnedCodeError(HashFormatError):
    pass


def check_model_digest(digest: object) -> bytes:
    if not isinstance(digest, bytes | bytearray) or len(digest) != MODEL_DIGEST_BYTES:
        raise LearnedCodeError("a model digest is the 32-byte SHA-256 of the model file")
    return bytes(digest)


def bucket_signal(model_digest: bytes) -> str:
    """The bucket signal name a model's codes are keyed under (registered on first use)."""
    return register_pdq_valued_signal(NAME + "/" + check_model_digest(model_digest).hex())


def variant(model_digest: bytes) -> str:
    """The query variant label of a code made with this model."""
    return VARIANT_PREFIX + check_model_digest(model_digest).hex()


def model_of_variant(label: str) -> bytes:
    m = _VARIANT.fullmatch(label) if isinstance(label, str) else None
    if m is None:
        raise LearnedCodeError("not a learned-lsh-1 variant label")
    return bytes.fromhex(m.group(1))


def is_learned_variant(label: str) -> bool:
    return isinstance(label, str) and _VARIANT.fullmatch(label) is not None


@lru_cache(maxsize=8)
def hyperplanes(model_digest: bytes, dim: int) -> np.ndarray:
    """The 256 x dim matrix of +1/-1 entries (int8) for a model's embeddings of ``dim``."""
    check_model_digest(model_digest)
    if not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise LearnedCodeError(f"an embedding has 1..{MAX_DIM} elements")
    seed = PLANES_LABEL + bytes(model_digest) + dim.to_bytes(4, "big")
    stream = hashlib.shake_256(seed).digest(math.ceil(CODE_BITS * dim / 8))
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8))[: CODE_BITS * dim]
    planes = bits.astype(np.int8) * 2 - 1
    planes.setflags(write=False)
    return planes.reshape(CODE_BITS, dim)


def projections(embedding: Sequence[float] | np.ndarray, model_digest: bytes) -> np.ndarray:
    """The 256 projections of an embedding, divided by its Euclidean norm (float64)."""
    e = np.asarray(embedding, dtype=np.float64)
    if e.ndim != 1 or not 1 <= e.shape[0] <= MAX_DIM:
        raise LearnedCodeError(f"an embedding is a vector of 1..{MAX_DIM} elements")
    if not np.isfinite(e).all():
        raise LearnedCodeError("an embedding has finite elements")
    norm = float(np.sqrt(np.dot(e, e)))
    if norm == 0.0:
        raise LearnedCodeError("a zero embedding has no direction")
    planes = hyperplanes(bytes(model_digest), int(e.shape[0]))
    return (planes.astype(np.float64) @ e) / norm


def code_of(embedding: Sequence[float] | np.ndarray, model_digest: bytes) -> bytes:
    """The 32-byte code: bit i (most significant first) is 1 iff projection i is > 0."""
    return np.packbits(projections(embedding, model_digest) > 0).tobytes()


def query_hash(embedding: Sequence[float] | np.ndarray, model_digest: bytes) -> QueryHash:
    """A picture's learned query: its code, its projections as the float vector that ranks
    probes, and the model's variant label."""
    p = projections(embedding, model_digest)
    return QueryHash(np.packbits(p > 0).tobytes(), p.astype(np.float32), variant(model_digest))


def index_keys(code: bytes, model_digest: bytes) -> list[bytes]:
    """The bucket keys a holder indexes for a code made with this model."""
    return LEARNED_LSH_1.index_keys(code, signal=bucket_signal(model_digest))


def probe_keys(
    code: bytes,
    float_vector: Sequence[float] | np.ndarray | None,
    model_digest: bytes,
    budget: int | None = None,
) -> list[bytes]:
    return LEARNED_LSH_1.probe_keys(code, float_vector, budget, signal=bucket_signal(model_digest))


def bit_error(cosine: float) -> float:
    """P[a code bit differs] for embeddings at this cosine similarity: theta / pi."""
    return math.acos(max(-1.0, min(1.0, cosine))) / math.pi


# --- conformance operations (specs/protocol.md 9; byte strings as lower-case hex) -----------


def _op_inputs(i: dict[str, Any]) -> tuple[bytes, np.ndarray]:
    try:
        digest = check_model_digest(bytes.fromhex(i["model_digest"]))
    except (KeyError, TypeError, ValueError):
        raise OpError("learned:bad-model-digest", "model_digest: 32 bytes in hex") from None
    e = i.get("embedding")
    if not isinstance(e, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in e
    ):
        raise OpError("learned:bad-embedding", "embedding: a list of numbers")
    return digest, np.asarray(e, dtype=np.float64)


def learned_code(i: dict[str, Any]) -> dict[str, Any]:
    """A model's embedding as its code, the holder's bucket keys for it and a querier's first
    probe keys (budget ``budget``, default 8)."""
    digest, e = _op_inputs(i)
    budget = i.get("budget", 8)
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise OpError("learned:bad-embedding", "budget: an integer")
    if not 0 <= budget <= LEARNED_LSH_1.probe_budget:
        raise OpError("learned:bad-embedding", f"budget: 0..{LEARNED_LSH_1.probe_budget}")
    try:
        q = query_hash(e, digest)
    except LearnedCodeError as exc:
        raise OpError("learned:bad-embedding", str(exc)) from None
    return {
        "code": q.hash.hex(),
        "variant": q.variant,
        "base_keys": [k.hex() for k in index_keys(q.hash, digest)],
        "probe_keys": [k.hex() for k in probe_keys(q.hash, q.float_vector, digest, budget)],
    }


def learned_distance(i: dict[str, Any]) -> dict[str, Any]:
    """The Hamming distance of two embeddings' codes under one model, and whether it is within
    the threshold."""
    digest, a = _op_inputs(i)
    _, b = _op_inputs({"model_digest": i["model_digest"], "embedding": i.get("other")})
    if a.shape != b.shape:
        raise OpError("learned:bad-embedding", "one model's embeddings have one dimension")
    try:
        d = int(np.unpackbits(np.frombuffer(
            bytes(x ^ y for x, y in zip(code_of(a, digest), code_of(b, digest), strict=True)),
            dtype=np.uint8,
        )).sum())  # fmt: skip
    except LearnedCodeError as exc:
        raise OpError("learned:bad-embedding", str(exc)) from None
    return {"distance": d, "match": d <= THRESHOLD}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "learned.code": learned_code,
    "learned.distance": learned_distance,
}


def _probe(query: QueryHash, budget: int | None) -> list[bytes]:
    return probe_keys(query.hash, query.float_vector, model_of_variant(query.variant), budget)


LEARNED = register(
    SignalTypeEntry(
        name=NAME,
        hash_bytes=PDQ_BYTES,
        exchange=Exchange.PICTURE,
        lsh=LEARNED_LSH_1.name,
        bucket_signal=NAME + "/<model digest>",
        distance_threshold=THRESHOLD,
        match_rule=(
            f"the picture's code within {THRESHOLD} bits of the item's, both made by the same "
            "model (its digest is in every bucket key)"
        ),
        release_fields={},
        release_signal=NAME,
        spec="specs/signals-and-lsh.md#16-learned-lsh-1",
        vectors=("learned.json",),
        bank_item=True,
        perceptual=True,
        owns_variant=is_learned_variant,
        probe_keys=_probe,
        # The learned signal is served by choice (specs/protocol.md 9.3): optional.
        conformance_ops=OPS,
        conformance_errors={
            "learned:bad-embedding": "an embedding or code input the learned signal refuses (11)",
            "learned:bad-model-digest": "a model digest that is not 32 bytes (chapter 11)",
        },
    )
)
