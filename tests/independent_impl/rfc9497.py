"""RFC 9497 (OPRF and VOPRF modes, ristretto255-SHA512), with hash-to-scalar and hash-to-group
from RFC 9380 5.3.1 (expand_message_xmd with SHA-512) and RFC 9496 4.3.4. Written from the
RFCs and specs/protocol.md chapter 4."""

from __future__ import annotations

import hashlib

import group as g

SUITE = b"ristretto255-SHA512"


class InputError(ValueError):
    """oprf-input"""


class VerifyError(ValueError):
    """oprf-verify"""


def i2osp(n: int, k: int) -> bytes:
    return n.to_bytes(k, "big")


def lp(*parts: bytes) -> bytes:
    return b"".join(i2osp(len(p), 2) + p for p in parts)


def expand_message_xmd(msg: bytes, dst: bytes, length: int = 64) -> bytes:
    """RFC 9380 5.3.1 with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    ell = -(-length // 64)
    dst_prime = dst + i2osp(len(dst), 1)
    b0 = hashlib.sha512(bytes(128) + msg + i2osp(length, 2) + b"\x00" + dst_prime).digest()
    out, prev = b"", b""
    for i in range(1, ell + 1):
        mix = b0 if i == 1 else bytes(x ^ y for x, y in zip(b0, prev, strict=True))
        prev = hashlib.sha512(mix + i2osp(i, 1) + dst_prime).digest()
        out += prev
    return out[:length]


def hash_to_scalar(msg: bytes, dst: bytes) -> bytes:
    return g.scalar_reduce64(expand_message_xmd(msg, dst, 64))


def hash_to_group(msg: bytes, dst: bytes) -> bytes:
    return g.from_uniform(expand_message_xmd(msg, dst, 64))


def context(mode: int) -> bytes:
    return b"OPRFV1-" + i2osp(mode, 1) + b"-" + SUITE


def derive_key_pair(seed: bytes, info: bytes, mode: int) -> tuple[bytes, bytes]:
    if len(seed) != 32:
        raise InputError("seed is 32 bytes")
    if len(info) > 65535:
        raise InputError("info too long")
    derive_input = seed + lp(info)
    for counter in range(256):
        sk = hash_to_scalar(derive_input + i2osp(counter, 1), b"DeriveKeyPair" + context(mode))
        if sk != bytes(32):
            return sk, g.mul_base(sk)
    raise InputError("DeriveKeyPairError")


def _input_element(x: bytes, mode: int) -> bytes:
    if len(x) > 65535:
        raise InputError("input longer than 65535 bytes")
    p = hash_to_group(x, b"HashToGroup-" + context(mode))
    if p == g.IDENTITY:
        raise InputError("input maps to the identity")
    return p


def blind(inputs: list[bytes], blinds: list[bytes], mode: int) -> list[bytes]:
    if len(inputs) != len(blinds):
        raise InputError("one blind per input")
    return [
        g.mul(g.check_scalar(r), _input_element(x, mode))
        for x, r in zip(inputs, blinds, strict=True)
    ]


def _composites(mode: int, b: bytes, cs: list[bytes], ds: list[bytes], k: bytes | None):
    ctx = context(mode)
    seed = hashlib.sha512(lp(b, b"Seed-" + ctx)).digest()
    m = z = None
    for i, (c, d) in enumerate(zip(cs, ds, strict=True)):
        di = hash_to_scalar(
            lp(seed) + i2osp(i, 2) + lp(c, d) + b"Composite", b"HashToScalar-" + ctx
        )
        mc = g.mul(di, c)
        m = mc if m is None else g.add(m, mc)
        if k is None:
            zd = g.mul(di, d)
            z = zd if z is None else g.add(z, zd)
    assert m is not None
    return m, (g.mul(k, m) if k is not None else z)


def _challenge(mode: int, b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes) -> bytes:
    return hash_to_scalar(lp(b, m, z, t2, t3) + b"Challenge", b"HashToScalar-" + context(mode))


def blind_evaluate(
    sk: bytes, blinded: list[bytes], mode: int, nonce: bytes | None
) -> tuple[list[bytes], bytes | None]:
    g.check_scalar(sk)
    if sk == bytes(32):
        raise g.DecodeError("zero key")
    if not blinded:
        raise InputError("empty batch")
    blinded = [g.check_point(p) for p in blinded]
    evaluated = [g.mul(sk, p) for p in blinded]
    if mode == 0:
        return evaluated, None
    assert nonce is not None
    r = g.check_scalar(nonce)
    pk = g.mul_base(sk)
    m, z = _composites(mode, pk, blinded, evaluated, sk)
    t2, t3 = g.mul_base(r), g.mul(r, m)
    c = _challenge(mode, pk, m, z, t2, t3)
    s = g.scalar_sub(r, g.scalar_mul(c, sk))
    return evaluated, c + s


def verify_proof(pk: bytes, blinded: list[bytes], evaluated: list[bytes], proof: bytes) -> None:
    if len(proof) != 64:
        raise VerifyError("proof is 64 bytes")
    c, s = g.check_scalar(proof[:32]), g.check_scalar(proof[32:])
    m, z = _composites(1, pk, blinded, evaluated, None)
    t2 = g.add(g.mul_base(s), g.mul(c, pk))
    t3 = g.add(g.mul(s, m), g.mul(c, z))
    if _challenge(1, pk, m, z, t2, t3) != c:
        raise VerifyError("proof does not verify")


def _finalize_one(x: bytes, unblinded: bytes) -> bytes:
    return hashlib.sha512(lp(x, unblinded) + b"Finalize").digest()


def finalize(
    inputs: list[bytes],
    blinds: list[bytes],
    evaluated: list[bytes],
    mode: int,
    blinded: list[bytes] | None = None,
    proof: bytes | None = None,
    pk: bytes | None = None,
) -> list[bytes]:
    if not (len(inputs) == len(blinds) == len(evaluated)):
        raise InputError("inputs, blinds and evaluated elements differ in number")
    evaluated = [g.check_point(e) for e in evaluated]
    blinds = [g.check_scalar(b) for b in blinds]
    if mode == 1:
        assert blinded is not None and proof is not None and pk is not None
        if len(blinded) != len(inputs):
            raise InputError("blinded elements differ in number")
        g.check_point(pk)
        blinded = [g.check_point(b) for b in blinded]
        verify_proof(pk, blinded, evaluated, proof)
    for x in inputs:
        if len(x) > 65535:
            raise InputError("input longer than 65535 bytes")
    return [
        _finalize_one(x, g.mul(g.scalar_invert(r), e))
        for x, r, e in zip(inputs, blinds, evaluated, strict=True)
    ]


def evaluate(sk: bytes, x: bytes, mode: int) -> bytes:
    """The server's unblinded evaluation (RFC 9497 3.3.1 Evaluate)."""
    return _finalize_one(x, g.mul(sk, _input_element(x, mode)))
