"""The evaluation's own machinery on tiny inputs: the edit suite and the synthetic bit model
(the corpus itself is never downloaded by the tests)."""

from __future__ import annotations

import numpy as np
import pytest
from media_samples import textured_image
from PIL import Image

bench_transforms = pytest.importorskip("bench.transforms")
bench_signals = pytest.importorskip("bench.signals")


def test_every_transform_yields_an_rgb_picture() -> None:
    image = Image.fromarray(textured_image(1, 120, 160))
    donor = Image.fromarray(textured_image(2, 120, 160))
    assert len(bench_transforms.TRANSFORMS) >= 28
    for name, edit in bench_transforms.TRANSFORMS.items():
        out = edit(image, np.random.default_rng(0), donor)
        assert out.mode == "RGB", name
        assert min(out.size) >= 8, name
    pad = bench_transforms.TRANSFORMS["letterbox_20"](image, np.random.default_rng(0), donor)
    assert pad.size == (160, 120 + 2 * 12)
    crop = bench_transforms.TRANSFORMS["crop_10_centre"](image, np.random.default_rng(0), donor)
    assert crop.size == (144, 108)
    mirrored = bench_transforms.TRANSFORMS["mirror"](image, np.random.default_rng(0), donor)
    assert np.array_equal(np.asarray(mirrored), np.asarray(image)[:, ::-1])


def test_synthetic_hashes_follow_the_fitted_bit_statistics() -> None:
    rng = np.random.default_rng(3)
    # "Pictures" whose DCT values share a strong common component on the first 64 bits.
    common = rng.standard_normal(256) * np.r_[np.full(64, 3.0), np.full(192, 0.2)]
    floats = common + rng.standard_normal((400, 256))
    mean, cov = bench_signals.fit_bit_model(floats)
    hashes = bench_signals.synthetic_hashes(mean, cov, 2000, seed=1)
    bits = np.unpackbits(hashes, axis=1).mean(axis=0)
    real = bench_signals.bits_from_floats(floats).mean(axis=0)
    assert np.abs(bits - real).mean() < 0.05
    # Biased bits stay biased (a uniform model would put every frequency at 0.5).
    assert np.abs(bits[:64] - 0.5).mean() > 0.2
