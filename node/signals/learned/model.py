"""An image-embedding model for the ``learned-lsh-1`` signal, run through onnxruntime.

A model is an ONNX file. Its ``metadata_props`` say how to feed it (specs/signals-and-lsh.md
1.6.1): ``blindmatch.input_size`` (the square side the picture is resized to),
``blindmatch.mean`` and ``blindmatch.std`` (three comma-separated numbers each: per RGB channel,
on values scaled to 0..1), and optionally ``blindmatch.input`` / ``blindmatch.output`` (tensor
names; default the first of each). The model takes a float32 ``(1, 3, size, size)`` tensor and
returns an embedding of shape ``(1, dim)`` or ``(dim,)``. An operator-supplied export (such as a
self-supervised copy-detection descriptor) needs only these properties added; the project's
own model (``model.onnx`` beside this module, made by ``./dev bench learned --train``) carries
them. The model is known by the SHA-256 of its file, which is bound into its codes' buckets.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from blindmatch.node.errors import BlindmatchError

MODEL_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = MODEL_DIR / "model.onnx"
MAX_MODEL_BYTES = 512 << 20
MAX_INPUT_SIZE = 1024


class ModelError(BlindmatchError):
    code = "bad-model"
    status_hint = 400


@dataclass(frozen=True)
class Descriptor:
    """How a model is fed (from its metadata)."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_name: str | None = None
    output_name: str | None = None


def _triple(text: str, what: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ModelError(f"model metadata {what}: three numbers") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ModelError(f"model metadata {what}: three numbers")
    return values[0], values[1], values[2]


def descriptor_of(meta: dict[str, str]) -> Descriptor:
    try:
        size = int(meta["blindmatch.input_size"])
    except (KeyError, ValueError):
        raise ModelError("model metadata blindmatch.input_size: an integer is required") from None
    if not 8 <= size <= MAX_INPUT_SIZE:
        raise ModelError(f"model metadata blindmatch.input_size: 8..{MAX_INPUT_SIZE}")
    std = _triple(meta.get("blindmatch.std", "1,1,1"), "blindmatch.std")
    if any(s <= 0 for s in std):
        raise ModelError("model metadata blindmatch.std: positive numbers")
    return Descriptor(
        size,
        _triple(meta.get("blindmatch.mean", "0,0,0"), "blindmatch.mean"),
        std,
        meta.get("blindmatch.input"),
        meta.get("blindmatch.output"),
    )


def prepare(image: Image.Image, desc: Descriptor) -> np.ndarray:
    """The model's input for a picture: RGB, resized (bilinear) to size x size, scaled to 0..1,
    standardised per channel; float32 (3, size, size)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    small = rgb.resize((desc.input_size, desc.input_size), Image.Resampling.BILINEAR)
    scaled = np.asarray(small, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(desc.mean, dtype=np.float32)
    x = (scaled - mean) / np.asarray(desc.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


class EmbeddingModel:
    """One loaded model: its digest, its descriptor and an onnxruntime session."""

    def __init__(self, data: bytes) -> None:
        if len(data) > MAX_MODEL_BYTES:
            raise ModelError("model file too large")
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - the "learned" extra is not installed
            raise ModelError("the learned signal needs onnxruntime (the 'learned' extra)") from None
        self.digest = hashlib.sha256(data).digest()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise ModelError(f"not a usable ONNX model ({type(exc).__name__})") from None
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        self.descriptor = descriptor_of(meta)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        self._input = self.descriptor.input_name or inputs[0].name
        self._output = self.descriptor.output_name or outputs[0].name
        self._lock = threading.Lock()
        probe = self.embed_prepared(np.zeros((1, 3, self.size, self.size), np.float32))
        self.dim = int(probe.shape[1])

    @property
    def size(self) -> int:
        return self.descriptor.input_size

    def embed_prepared(self, batch: np.ndarray) -> np.ndarray:
        """Embeddings (n, dim) float64 of prepared inputs (n, 3, size, size)."""
        with self._lock:
            out: Any = self._session.run([self._output], {self._input: batch})[0]
        out = np.asarray(out, dtype=np.float64)
        if out.ndim == 1:
            out = out[None, :]
        out = out.reshape(batch.shape[0], -1)
        if not np.isfinite(out).all():
            raise ModelError("the model returned a non-finite embedding")
        return out

    def embed(self, image: Image.Image) -> np.ndarray:
        """The embedding (dim,) of one picture."""
        return self.embed_prepared(prepare(image, self.descriptor)[None])[0]

    def embed_bytes(self, data: bytes) -> np.ndarray:
        from blindmatch.node.media.hashing import decode_image

        return self.embed(decode_image(data))


@cache
def load(path: str | None = None) -> EmbeddingModel:
    """The model at ``path`` (default: the project's own), loaded once per process."""
    file = Path(path) if path else DEFAULT_MODEL
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the model file {file.name}: {exc.strerror}") from None
    return EmbeddingModel(data)


def load_bytes(data: bytes) -> EmbeddingModel:
    return EmbeddingModel(io.BytesIO(data).getvalue())
