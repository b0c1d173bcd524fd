"""The private Hamming-threshold test of specs/protocol.md chapter 5 (exponential ElGamal over
ristretto255 with CDS OR-proofs), with the vectors' deterministic randomness of 9.7."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import group as g
from rfc9497 import hash_to_scalar, i2osp, lp

BIT_DST = b"blindmatch-v1 threshold bit-proof ristretto255-SHA512"
VECTOR_DST = b"blindmatch-v1 test-vector scalars"
QUERY_LEN = 32 + 16 + 256 * (64 + 128)


class Invalid(ValueError):
    """threshold-invalid"""


def vector_scalars(seed: bytes) -> Callable[[], bytes]:
    k = 0

    def draw() -> bytes:
        nonlocal k
        while True:
            s = hash_to_scalar(seed + i2osp(k, 4), VECTOR_DST)
            k += 1
            if s != bytes(32):
                return s

    return draw


def _bit(h: bytes, i: int) -> int:
    return (h[i // 8] >> (7 - i % 8)) & 1


def _challenge(h: bytes, qid: bytes, i: int, a: bytes, b: bytes, ts: list[bytes]) -> bytes:
    return hash_to_scalar(lp(h, qid, i2osp(i, 2), a, b, *ts), BIT_DST)


def encrypt(sk: bytes, x: bytes, qid: bytes, draw: Callable[[], bytes]) -> bytes:
    if len(x) != 32 or len(qid) != 16:
        raise Invalid("hash is 32 bytes, query id 16")
    h = g.mul_base(g.check_scalar(sk))
    out = [h, qid]
    for i in range(256):
        m = _bit(x, i)
        r = draw()
        a = g.mul_base(r)
        b = g.add(g.GENERATOR, g.mul(r, h)) if m else g.mul(r, h)
        j = 1 - m
        cj, zj, w = draw(), draw(), draw()
        b_minus = [b, g.sub(b, g.GENERATOR)]
        t1, t2 = [b""] * 2, [b""] * 2
        t1[j] = g.sub(g.mul_base(zj), g.mul(cj, a))
        t2[j] = g.sub(g.mul(zj, h), g.mul(cj, b_minus[j]))
        t1[m], t2[m] = g.mul_base(w), g.mul(w, h)
        c = _challenge(h, qid, i, a, b, [t1[0], t2[0], t1[1], t2[1]])
        cm = g.scalar_sub(c, cj)
        zm = g.scalar_add(w, g.scalar_mul(cm, r))
        cs, zs = [b""] * 2, [b""] * 2
        cs[j], zs[j], cs[m], zs[m] = cj, zj, cm, zm
        out += [a, b, cs[0] + cs[1] + zs[0] + zs[1]]
    return b"".join(out)


def verify(query: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Section 5.4: refuse a wrong length, an invalid point, an unreduced scalar or a bad proof."""
    if len(query) != QUERY_LEN:
        raise Invalid("query length")
    h, qid = query[:32], query[32:48]
    if not g.is_valid_point(h):
        raise Invalid("querier key is not a valid point")
    cts = []
    for i in range(256):
        off = 48 + i * 192
        a, b, proof = query[off : off + 32], query[off + 32 : off + 64], query[off + 64 : off + 192]
        if not (g.is_valid_point(a) and g.is_valid_point(b)):
            raise Invalid(f"bit {i}: invalid point")
        parts = [proof[k : k + 32] for k in range(0, 128, 32)]
        if any(int.from_bytes(p, "little") >= g.L for p in parts):
            raise Invalid(f"bit {i}: unreduced scalar")
        c0, c1, z0, z1 = parts
        ts = []
        for bit, (c, z) in enumerate(((c0, z0), (c1, z1))):
            target = b if bit == 0 else g.sub(b, g.GENERATOR)
            ts += [g.sub(g.mul_base(z), g.mul(c, a)), g.sub(g.mul(z, h), g.mul(c, target))]
        if g.scalar_add(c0, c1) != _challenge(h, qid, i, a, b, ts):
            raise Invalid(f"bit {i}: proof does not verify")
        cts.append((a, b))
    return h, cts


def respond(query: bytes, y: bytes, bands: list[int], draw: Callable[[], bytes]) -> bytes:
    h, cts = verify(query)
    if len(y) != 32:
        raise Invalid("holder hash is 32 bytes")
    if (
        not bands
        or len(bands) > 255
        or any(not isinstance(b, int) or isinstance(b, bool) for b in bands)
        or any(x >= y2 for x, y2 in itertools.pairwise(bands))
        or bands[0] < 0
        or bands[-1] > 128
    ):
        raise Invalid("bands are strictly increasing integers in 0..128")
    a_d = b_d = g.IDENTITY
    for i, (a, b) in enumerate(cts):
        op = g.sub if _bit(y, i) else g.add
        a_d, b_d = op(a_d, a), op(b_d, b)
    w = sum(bin(v).count("1") for v in y)
    b_d = g.add(b_d, g.mul_base(g.scalar(w)))
    out = [i2osp(len(bands), 1), bytes(bands)]
    for t in range(bands[-1] + 1):
        rho, sigma = draw(), draw()
        shifted = g.sub(b_d, g.mul_base(g.scalar(t)))
        out.append(g.add(g.mul(rho, a_d), g.mul_base(sigma)))
        out.append(g.add(g.mul(rho, shifted), g.mul(sigma, h)))
    return b"".join(out)


def decide(sk: bytes, response: bytes) -> tuple[bool, int | None]:
    g.check_scalar(sk)
    if len(response) < 2:
        raise Invalid("response too short")
    k = response[0]
    bands = list(response[1 : 1 + k])
    if k == 0 or len(bands) != k or any(x >= y for x, y in itertools.pairwise(bands)):
        raise Invalid("bands")
    if bands[-1] > 128:
        raise Invalid("bands above 128")
    body = response[1 + k :]
    if len(body) != 64 * (bands[-1] + 1):
        raise Invalid("ciphertext count")
    band = None
    lower = -1
    t = 0
    for b_j in bands:
        for _ in range(b_j - lower):
            a, b = body[64 * t : 64 * t + 32], body[64 * t + 32 : 64 * t + 64]
            if not (g.is_valid_point(a) and g.is_valid_point(b)):
                raise Invalid("invalid point in response")
            if g.mul(sk, a) == b and band is None:
                band = b_j
            t += 1
        lower = b_j
    return band is not None, band
