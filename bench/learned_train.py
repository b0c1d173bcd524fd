"""Train the project's own small copy-detection embedding on CPU with numpy, export it to ONNX.

    ./dev bench learned --train          # writes node/signals/learned/model.onnx (+ MODEL.json)

The model (specs/signals-and-lsh.md 1.6.1): a picture resized to 32 x 32 RGB, standardised
per picture (its mean subtracted, divided by its standard deviation: brightness and contrast
edits cancel), then a two-layer MLP (3072 -> 256 ReLU -> 64) applied to the 8 rotations and
mirrors of the input with the hidden activations summed before the second layer, so the
embedding is the same for every rotation and mirror of a picture. Trained with a symmetric
InfoNCE loss (temperature 0.1) between two edited views of each training picture, the edits
drawn from the bench's own transforms (bench/transforms.py). Forward and backward passes are
written out here; Adam. Only the corpus's training pictures are used (:func:`split`); the
evaluation (bench/learned.py) uses only the others.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench import corpus as corpus_mod
from bench import transforms as tf
from blindmatch.node.signals.learned import model as model_mod

SIZE = 32
HIDDEN = 256
DIM = 64
TEMPERATURE = 0.1
SEED = 20261207
STEPS = 400
BATCH = 96
VIEWS = 12  # edited views per training picture
LR = 2e-3
EVAL_FRACTION = 0.4
WORK_SIDE = 320  # pictures are shrunk to this long side before editing (speed)

# The edits views are drawn from (the evaluation's transforms; the held-out pictures differ).
AUGMENT = {
    **tf.TRANSFORMS,
    **{k: v for k, v in tf.EDIT_TRANSFORMS.items() if not k.startswith("collage")},
}


def split(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """(training, held-out) corpus pictures: held out when the first byte of SHA-256 of the
    picture's id is below 0.4 * 256 (stable as the corpus grows)."""
    train, held = [], []
    for item in items:
        h = hashlib.sha256(b"blindmatch/learned/split/" + item.id.encode()).digest()[0]
        (held if h < int(EVAL_FRACTION * 256) else train).append(item)
    return train, held


def dihedral(x: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations/mirrors of (n, 3, s, s), in the ONNX graph's order."""
    flips = [x, x[:, :, :, ::-1], x[:, :, ::-1, :], x[:, :, ::-1, ::-1]]
    return flips + [f.transpose(0, 1, 3, 2) for f in flips]


def standardise(x: np.ndarray) -> np.ndarray:
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    c = x - m
    return c / np.sqrt((c * c).mean(axis=(1, 2, 3), keepdims=True) + 1e-6)


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    xs = standardise(x.astype(np.float32))
    n = xs.shape[0]
    views = [np.ascontiguousarray(v).reshape(n, -1) for v in dihedral(xs)]
    pre = [v @ params["w1"] + params["b1"] for v in views]
    s = sum(np.maximum(p, 0) for p in pre)
    e = s @ params["w2"] + params["b2"]
    return e, {"views": views, "pre": pre, "s": s}


def info_nce(e1: np.ndarray, e2: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Symmetric InfoNCE of paired embeddings; (loss, dL/de1, dL/de2)."""

    def norm(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.sqrt((e * e).sum(axis=1, keepdims=True)) + 1e-8
        return e / r, r

    z1, r1 = norm(e1)
    z2, r2 = norm(e2)
    logits = z1 @ z2.T / TEMPERATURE
    n = logits.shape[0]

    def ce(lg: np.ndarray) -> tuple[float, np.ndarray]:
        lg = lg - lg.max(axis=1, keepdims=True)
        p = np.exp(lg)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), np.arange(n)] + 1e-12).mean()
        g = p.copy()
        g[np.arange(n), np.arange(n)] -= 1
        return float(loss), g / n

    la, ga = ce(logits)
    lb, gb = ce(logits.T)
    g = (ga + gb.T) / 2 / TEMPERATURE  # dL/dlogits * 1/T
    dz1 = g @ z2
    dz2 = g.T @ z1

    def back(z: np.ndarray, r: np.ndarray, dz: np.ndarray) -> np.ndarray:
        return (dz - z * (z * dz).sum(axis=1, keepdims=True)) / r

    return (la + lb) / 2, back(z1, r1, dz1), back(z2, r2, dz2)


def backward(
    params: dict[str, np.ndarray], cache: dict[str, Any], de: np.ndarray
) -> dict[str, np.ndarray]:
    grads = {"w2": cache["s"].T @ de, "b2": de.sum(axis=0)}
    ds = de @ params["w2"].T
    gw1 = np.zeros_like(params["w1"])
    gb1 = np.zeros_like(params["b1"])
    for v, p in zip(cache["views"], cache["pre"], strict=True):
        dh = ds * (p > 0)
        gw1 += v.T @ dh
        gb1 += dh.sum(axis=0)
    grads["w1"], grads["b1"] = gw1, gb1
    return grads


def make_views(pictures: list[Image.Image], rng: np.random.Generator) -> np.ndarray:
    """(pictures, VIEWS, 3, SIZE, SIZE): view 0 the picture itself, then random edits."""
    names = sorted(AUGMENT)
    desc = model_mod.Descriptor(SIZE, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    out = np.zeros((len(pictures), VIEWS, 3, SIZE, SIZE), np.float32)
    for i, pic in enumerate(pictures):
        out[i, 0] = model_mod.prepare(pic, desc)
        for v in range(1, VIEWS):
            donor = pictures[int(rng.integers(len(pictures)))]
            edited = AUGMENT[names[int(rng.integers(len(names)))]](pic, rng, donor)
            if rng.random() < 0.3:
                edited = tf.jpeg(int(rng.integers(30, 90)))(edited, rng, donor)
            out[i, v] = model_mod.prepare(edited, desc)
    return out


def train(
    views: np.ndarray, steps: int = STEPS, seed: int = SEED, log: bool = True
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_in = 3 * SIZE * SIZE
    params = {
        "w1": (rng.standard_normal((n_in, HIDDEN)) * np.sqrt(2 / n_in)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": (rng.standard_normal((HIDDEN, DIM)) * np.sqrt(1 / (8 * HIDDEN))).astype(np.float32),
        "b2": np.zeros(DIM, np.float32),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    s2 = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps, wd = 0.9, 0.999, 1e-8, 1e-4
    t0 = time.monotonic()
    n_pic = views.shape[0]
    for step in range(1, steps + 1):
        idx = rng.choice(n_pic, size=min(BATCH, n_pic), replace=False)
        pair = np.array([rng.choice(VIEWS, size=2, replace=False) for _ in idx])
        x = np.concatenate([views[idx, pair[:, 0]], views[idx, pair[:, 1]]])
        e, cache = forward(params, x)
        half = len(idx)
        loss, d1, d2 = info_nce(e[:half], e[half:])
        grads = backward(params, cache, np.concatenate([d1, d2]).astype(np.float32))
        lr = LR * min(1.0, step / 30) * 0.5 * (1 + np.cos(np.pi * step / steps))
        for k in params:
            g = grads[k] + wd * params[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            s2[k] = b2 * s2[k] + (1 - b2) * g * g
            mh = m[k] / (1 - b1**step)
            vh = s2[k] / (1 - b2**step)
            params[k] = (params[k] - lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        if log and (step % 50 == 0 or step == 1):
            print(f"  step {step}/{steps}: loss {loss:.3f} ({time.monotonic() - t0:.0f} s)")
    return params


def to_onnx(params: dict[str, np.ndarray], meta: dict[str, str]) -> bytes:
    """The trained model as ONNX (opset 13): per-picture standardisation, the 8 rotations and
    mirrors, the MLP with the hidden layer summed over them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # The weights are stored in half precision (the file stays under 2 MB) and cast back.
    nodes: list[Any] = [
        helper.make_node("Cast", [f"{k}_16"], [k], to=TensorProto.FLOAT) for k in ("w1", "w2")
    ]
    inits = [
        numpy_helper.from_array(v.astype(np.float16), f"{k}_16")
        if k in ("w1", "w2")
        else numpy_helper.from_array(v, k)
        for k, v in params.items()
    ]

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    const("eps", np.array(1e-6, np.float32))
    const("flat", np.array([0, -1], np.int64))
    const("s_start", np.array([-1], np.int64))
    const("s_end", np.array([-(2**62)], np.int64))
    const("s_step", np.array([-1], np.int64))
    const("ax_w", np.array([3], np.int64))
    const("ax_h", np.array([2], np.int64))
    const("ax_hw", np.array([2, 3], np.int64))
    const("s_start2", np.array([-1, -1], np.int64))
    const("s_end2", np.array([-(2**62), -(2**62)], np.int64))
    const("s_step2", np.array([-1, -1], np.int64))
    n = helper.make_node
    nodes += [
        n("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=1),
        n("Sub", ["image", "mean"], ["c"]),
        n("Mul", ["c", "c"], ["c2"]),
        n("ReduceMean", ["c2"], ["var"], axes=[1, 2, 3], keepdims=1),
        n("Add", ["var", "eps"], ["var_e"]),
        n("Sqrt", ["var_e"], ["sd"]),
        n("Div", ["c", "sd"], ["x0"]),
        n("Slice", ["x0", "s_start", "s_end", "ax_w", "s_step"], ["x1"]),
        n("Slice", ["x0", "s_start", "s_end", "ax_h", "s_step"], ["x2"]),
        n("Slice", ["x0", "s_start2", "s_end2", "ax_hw", "s_step2"], ["x3"]),
    ]
    for i in range(4):
        nodes.append(n("Transpose", [f"x{i}"], [f"x{i + 4}"], perm=[0, 1, 3, 2]))
    for i in range(8):
        nodes += [
            n("Reshape", [f"x{i}", "flat"], [f"f{i}"]),
            n("MatMul", [f"f{i}", "w1"], [f"m{i}"]),
            n("Add", [f"m{i}", "b1"], [f"a{i}"]),
            n("Relu", [f"a{i}"], [f"h{i}"]),
        ]
    nodes += [
        n("Sum", [f"h{i}" for i in range(8)], ["s"]),
        n("MatMul", ["s", "w2"], ["o"]),
        n("Add", ["o", "b2"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "blindmatch-learned",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", DIM])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="blindmatch bench/learned_train.py",
    )
    model.ir_version = 8
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def load_pictures(items: list[Any]) -> list[Image.Image]:
    out = []
    for item in items:
        im = corpus_mod.load_image(item)
        im.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
        out.append(im)
    return out


def main(
    out_dir: Path = model_mod.MODEL_DIR, steps: int = STEPS, seed: int = SEED
) -> dict[str, Any]:
    """Train on the corpus's training pictures and write model.onnx and MODEL.json."""
    t0 = time.monotonic()
    items = corpus_mod.build()
    training, held = split(items)
    print(f"learned: {len(training)} training pictures, {len(held)} held out")
    rng = np.random.default_rng(seed)
    views = make_views(load_pictures(training), rng)
    t_views = time.monotonic() - t0
    print(f"learned: {VIEWS} views each made in {t_views:.0f} s; training {steps} steps")
    params = train(views, steps, seed)
    meta = {
        "blindmatch.input_size": str(SIZE),
        "blindmatch.mean": "0,0,0",
        "blindmatch.std": "1,1,1",
        "blindmatch.input": "image",
        "blindmatch.output": "embedding",
        "blindmatch.trained": f"bench/learned_train.py seed={seed} steps={steps}",
    }
    data = to_onnx(params, meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(data)
    record = {
        "file": "model.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "command": "./dev bench learned --train",
        "seed": seed,
        "steps": steps,
        "batch": BATCH,
        "views_per_picture": VIEWS,
        "training_pictures": [i.id for i in training],
        "architecture": f"{SIZE}x{SIZE} RGB standardised, dihedral-summed MLP "
        f"{3 * SIZE * SIZE}->{HIDDEN} ReLU ->{DIM}, InfoNCE t={TEMPERATURE}",
        "train_seconds": round(time.monotonic() - t0, 1),
        "reproducible": "the same command and seed give a model of the same quality; its bytes"
        " (so its digest) may differ with the machine's BLAS",
    }
    (out_dir / "MODEL.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"learned: wrote model.onnx ({len(data)} bytes, sha256 {record['sha256'][:16]}...)")
    return record
