"""Deterministic test pictures: sums of sinusoids at several scales (PDQ quality >= 80)."""

from __future__ import annotations

import numpy as np


def textured_image(seed: int, height: int = 96, width: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        acc = np.zeros((height, width))
        for freq in (1, 2, 3, 5, 8):
            a, b, phase = rng.uniform(-1, 1, 3)
            acc += np.sin(2 * np.pi * freq * (a * x + b * y) + 6 * phase) / freq**0.5
        channels.append(acc)
    img = np.stack(channels, axis=2)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)
