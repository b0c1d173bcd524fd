"""The batched libsodium wrappers and the prefixed hash agree with the one-at-a-time ones."""

from __future__ import annotations

import os

import pytest

from blindmatch.crypto import sodium
from blindmatch.crypto.hashing import PrefixedXmd, expand_message_xmd


def rows(data: bytes, width: int = 32) -> list[bytes]:
    return [data[o : o + width] for o in range(0, len(data), width)]


XS = sodium.scalar_random_many(7)
YS = sodium.scalar_random_many(7)
PS = sodium.scalarmult_base_many(XS)
QS = sodium.scalarmult_base_many(YS)


def test_random_scalars_are_canonical_non_zero_and_distinct() -> None:
    drawn = rows(sodium.scalar_random_many(300))
    assert len(drawn) == 300 == len(set(drawn))
    assert all(sodium.is_canonical_scalar(s) and s != bytes(32) for s in drawn)


@pytest.mark.parametrize(
    ("many", "one"),
    [
        (sodium.scalar_mul_many, sodium.scalar_mul),
        (sodium.scalar_add_many, sodium.scalar_add),
        (sodium.scalar_sub_many, sodium.scalar_sub),
    ],
)
def test_scalar_batches_match_single_calls_and_broadcast_one_row(many, one) -> None:  # type: ignore[no-untyped-def]
    assert rows(many(XS, YS)) == [one(x, y) for x, y in zip(rows(XS), rows(YS), strict=True)]
    assert rows(many(XS, YS[:32])) == [one(x, YS[:32]) for x in rows(XS)]
    assert rows(many(XS[:32], YS)) == [one(XS[:32], y) for y in rows(YS)]


def test_group_batches_match_single_calls() -> None:
    assert rows(PS) == [sodium.scalarmult_base(x) for x in rows(XS)]
    pairs = list(zip(rows(PS), rows(QS), strict=True))
    assert rows(sodium.point_add_many(PS, QS)) == [sodium.point_add(p, q) for p, q in pairs]
    assert rows(sodium.point_sub_many(PS, QS)) == [sodium.point_sub(p, q) for p, q in pairs]
    assert rows(sodium.scalarmult_many(YS, PS)) == [
        sodium.scalarmult(y, p) for y, p in zip(rows(YS), rows(PS), strict=True)
    ]
    assert rows(sodium.scalarmult_many(YS[:32], PS)) == [
        sodium.scalarmult(YS[:32], p) for p in rows(PS)
    ]
    wide = os.urandom(64 * 5)
    assert rows(sodium.scalar_reduce_many(wide)) == [
        sodium.scalar_reduce(w) for w in rows(wide, 64)
    ]


def test_group_batches_name_the_failing_row() -> None:
    with pytest.raises(sodium.GroupError, match="row 3"):
        sodium.scalarmult_base_many(XS[:96] + bytes(32) + XS[96:])
    with pytest.raises(sodium.GroupError, match="row 2"):
        sodium.scalarmult_many(YS[:96], PS[:64] + sodium.IDENTITY)
    with pytest.raises(sodium.GroupError, match="row 1"):
        sodium.point_add_many(PS[:64], QS[:32] + b"\xff" * 32)


def test_batches_refuse_operands_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="same number of rows"):
        sodium.scalar_mul_many(XS, YS[:64])
    with pytest.raises(ValueError, match="32-byte rows"):
        sodium.scalarmult_base_many(XS[:40])


def test_prefixed_xmd_is_expand_message_xmd() -> None:
    dst = b"blindmatch-test prefixed xmd"
    for plen, mlen in [(0, 0), (1, 300), (127, 1), (128, 128), (200, 57)]:
        prefix, msg = os.urandom(plen), os.urandom(mlen)
        xmd = PrefixedXmd(prefix, dst)
        assert xmd.expand64(msg) == expand_message_xmd(prefix + msg, dst, 64)
        assert xmd.expand64(msg) == xmd.expand64(msg)  # the kept state is copied, not consumed
