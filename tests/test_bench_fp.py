"""The false-positive bench's pieces: generated pictures, the tail fit, the tallies."""

from __future__ import annotations

import math

import numpy as np

from bench import _skin, fp


def test_generated_pictures_are_deterministic_and_skin_dominated() -> None:
    kind_a, a = _skin.generate(3)
    kind_b, b = _skin.generate(3)
    assert kind_a == kind_b and a.size == b.size
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(_skin.generate(4)[1].resize(a.size)))
    fractions = [_skin.skin_fraction(_skin.generate(s)[1]) for s in range(12)]
    assert float(np.median(fractions)) > 0.3


def test_light_and_dark_renderings_are_one_source() -> None:
    assert fp.design("g:usr/share/backgrounds/gnome/grid-d.webp") == fp.design(
        "g:usr/share/backgrounds/gnome/grid-l.webp"
    )
    assert fp.design("p:W/Kay/contents/images_dark/1.png") == "p:W/Kay/contents/images/1.png"
    assert fp.design("kphotoalbum:bar55_2") != fp.design("kphotoalbum:bar55")


def _binomial_cdf(t: int, n: int = 256) -> float:
    return sum(math.comb(n, k) for k in range(t + 1)) / 2**n


def test_tail_fit_of_random_bits_overstates_the_exact_tail() -> None:
    """On distances of independent random bits (binomial, log-concave), the log-linear fit
    extrapolated below the data is above the exact value (conservative) but not absurdly."""
    rng = np.random.default_rng(1)
    d = rng.binomial(256, 0.5, size=(200, 20_000))
    rows = np.zeros((200, fp.INVALID + 1), np.int64)
    for i in range(200):
        rows[i] = np.bincount(d[i], minlength=fp.INVALID + 1)
    f = fp.fit_tail(rows, 80, rng)
    assert f["within_threshold"] == 0 and f["fit_extrapolates"]
    exact = _binomial_cdf(80)
    assert exact < f["p"] < 1e4 * exact
    assert f["p_upper95"] >= f["p"]


def test_tallies_count_pairs_and_skip_one_source() -> None:
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 2**63, size=(4, 4), dtype=np.uint64)
    codes[1] = codes[0]
    codes[1, 0] ^= np.uint64(0b111)  # 3 bits from picture 0
    codes[3] = codes[2]  # identical, but one source with picture 2
    groups = np.array([0, 1, 2, 2])
    t = fp.code_tally(codes, groups)
    assert t.rows[:, : fp.INVALID].sum() == 4 * 3 - 2  # ordered pairs less the one source
    assert t.rows[0, 3] == 1 and t.rows[1, 3] == 1
    assert t.top(1)[0][0] == 3
    assert math.isclose(fp.fp_at_bank(1e-12, 10.0), 1e-5, rel_tol=1e-4)
