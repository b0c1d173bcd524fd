"""The VOPRF key's lifetime (spec 8.2): counted, rotated at 7/8 of the cap, refused past it."""

from __future__ import annotations

import pytest

from blindmatch.protocol.key_lifetime import LIFETIME_CAP, KeyExhausted, KeyLifetime


def test_the_default_cap_is_the_spec_figure_and_rotation_starts_at_seven_eighths() -> None:
    life = KeyLifetime()
    assert life.cap == LIFETIME_CAP == 2**44
    assert life.rotate_at == 7 * 2**41
    assert not life.needs_successor(life.rotate_at - 1) and life.needs_successor(life.rotate_at)


def test_admission_counts_and_refuses_a_batch_that_would_pass_the_cap_whole() -> None:
    life = KeyLifetime(cap=1000)
    assert life.admit(0, 600) == 600
    assert life.admit(600, 400) == 1000
    with pytest.raises(KeyExhausted):
        life.admit(600, 401)
    with pytest.raises(KeyExhausted):
        life.admit(1000, 1)
    with pytest.raises(ValueError):
        KeyLifetime(cap=0)
