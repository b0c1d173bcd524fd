"""RFC 9497 OPRF, VOPRF and POPRF, ciphersuite ristretto255-SHA512.

Modes OPRF (0x00), VOPRF (0x01) and POPRF (0x02, the partially-oblivious mode whose public
``info`` tweaks the key: repeat-uploader signals bound to one picture, specs/uploaders.md).
BlindEvaluate is batched: in VOPRF and POPRF modes one DLEQ proof covers the whole batch
(RFC 9497 section 2.2.1, ComputeCompositesFast on the server side).

Randomness (blinds, proof nonces) may be passed in so that tests can reproduce the RFC's vectors;
otherwise it comes from libsodium's CSPRNG. Nothing here performs I/O.

Backends. libsodium is the reference for everything. A VOPRF key derived from a seed (RFC 9497
DeriveKeyPair) may also be evaluated by the ``voprf`` wheel (Rust, the ``voprf`` crate on
curve25519-dalek), about 1.6x faster per element on the holder's hot path (bench/results/
crypto.md), when it is installed and :func:`use_backend` has not turned it off: server-side
``BlindEvaluate`` with a fresh proof nonce and ``Evaluate``. Its outputs are the same group
elements and bytes (checked against every RFC 9497 vector it can take and differentially in
tests/test_oprf_backends.py); its proofs are checked by our verifier in those tests. Clients,
verification, fixed nonces and keys given as a bare scalar always use libsodium. The wheel
can only be built from a seed, so a node key stored as a scalar alone stays on libsodium.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from blindmatch.crypto import sodium
from blindmatch.crypto.hashing import (
    PrefixedXmd,
    hash_to_group,
    hash_to_scalar,
    i2osp,
    length_prefixed,
)

SUITE_ID = b"ristretto255-SHA512"
PROOF_BYTES = 2 * sodium.SCALAR_BYTES
OUTPUT_BYTES = 64
MAX_INPUT_BYTES = 65535  # inputs are length-prefixed with two bytes


class Mode(IntEnum):
    OPRF = 0x00
    VOPRF = 0x01
    POPRF = 0x02


class OprfError(ValueError):
    """Base class for every OPRF failure; the message says what was wrong."""


class DeserializeError(OprfError):
    pass


class InvalidInputError(OprfError):
    pass


class VerifyError(OprfError):
    pass


class DeriveKeyPairError(OprfError):
    pass


def context_string(mode: Mode) -> bytes:
    return b"OPRFV1-" + i2osp(int(mode), 1) + b"-" + SUITE_ID


@dataclass(frozen=True)
class Suite:
    """The DSTs of one mode; computed once."""

    mode: Mode

    @property
    def context(self) -> bytes:
        return context_string(self.mode)

    @property
    def group_dst(self) -> bytes:
        return b"HashToGroup-" + self.context

    @property
    def scalar_dst(self) -> bytes:
        return b"HashToScalar-" + self.context

    def hash_to_group(self, msg: bytes) -> bytes:
        return hash_to_group(msg, self.group_dst)

    def hash_to_scalar(self, msg: bytes, dst: bytes | None = None) -> bytes:
        return hash_to_scalar(msg, self.scalar_dst if dst is None else dst)


OPRF_SUITE = Suite(Mode.OPRF)
VOPRF_SUITE = Suite(Mode.VOPRF)
POPRF_SUITE = Suite(Mode.POPRF)


def _suite(mode: Mode) -> Suite:
    if mode == Mode.POPRF:
        raise InvalidInputError("POPRF has its own functions (poprf_*): it needs the info")
    return OPRF_SUITE if mode == Mode.OPRF else VOPRF_SUITE


def deserialize_element(data: bytes, what: str = "element") -> bytes:
    """RFC 9497 DeserializeElement: canonical encoding, not the identity."""
    if not isinstance(data, bytes | bytearray) or len(data) != sodium.POINT_BYTES:
        raise DeserializeError(f"{what}: expected {sodium.POINT_BYTES} bytes")
    data = bytes(data)
    if data == sodium.IDENTITY:
        raise DeserializeError(f"{what}: the identity element is not allowed")
    if not sodium.is_valid_point(data):
        raise DeserializeError(f"{what}: not a canonical ristretto255 encoding")
    return data


def deserialize_scalar(data: bytes, what: str = "scalar") -> bytes:
    if not isinstance(data, bytes | bytearray) or len(data) != sodium.SCALAR_BYTES:
        raise DeserializeError(f"{what}: expected {sodium.SCALAR_BYTES} bytes")
    if not sodium.is_canonical_scalar(bytes(data)):
        raise DeserializeError(f"{what}: scalar is not reduced modulo the group order")
    return bytes(data)


def _check_input(data: bytes) -> None:
    if not isinstance(data, bytes):
        raise InvalidInputError("OPRF input must be bytes")
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInputError("OPRF input longer than 65535 bytes")


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ServerKey:
    """An OPRF/VOPRF private key and its public key. ``repr`` never shows the secret.

    ``seed`` and ``info`` are set when the key came from :func:`derive_key_pair` in VOPRF mode:
    they let a faster backend rebuild the same key (it cannot be given the scalar)."""

    sk: bytes
    pk: bytes
    seed: bytes | None = field(default=None, compare=False)
    info: bytes = field(default=b"", compare=False)

    def __repr__(self) -> str:
        return f"ServerKey(pk={self.pk.hex()[:16]}…)"


try:  # the optional Rust backend (pip install voprf); absent: libsodium does everything
    from voprf import ristretto as _rust
except ImportError:  # pragma: no cover - depends on the environment
    _rust = None  # type: ignore[assignment]
_use_rust = _rust is not None
_evaluators: dict[tuple[bytes, bytes], Any] = {}


def use_backend(name: str) -> None:
    """``"voprf"`` (the default when the wheel is installed) or ``"libsodium"``."""
    global _use_rust
    if name not in ("voprf", "libsodium"):
        raise ValueError("backend is 'voprf' or 'libsodium'")
    if name == "voprf" and _rust is None:
        raise ValueError("the voprf wheel is not installed")
    _use_rust = name == "voprf"


def backend(key: ServerKey) -> str:
    """The backend that evaluates ``key``: 'voprf' or 'libsodium'."""
    return "voprf" if _use_rust and key.seed is not None else "libsodium"


def _evaluator(key: ServerKey) -> Any:
    assert key.seed is not None and _rust is not None
    found = _evaluators.get((key.seed, key.info))
    if found is None:
        found = _rust.Evaluator.from_seed(key.seed, key.info)
        if found.public_key.serialize() != key.pk:  # never evaluate under another key
            raise DeriveKeyPairError("the voprf backend derived another key from the seed")
        if len(_evaluators) >= 16:
            _evaluators.clear()
        _evaluators[(key.seed, key.info)] = found
    return found


def derive_key_pair(seed: bytes, info: bytes, mode: Mode) -> ServerKey:
    """RFC 9497 section 3.2.1 DeriveKeyPair."""
    if len(seed) != 32:
        raise DeriveKeyPairError("seed must be 32 bytes")
    derive_input = seed + i2osp(len(info), 2) + info
    dst = b"DeriveKeyPair" + context_string(mode)
    for counter in range(256):
        sk = hash_to_scalar(derive_input + i2osp(counter, 1), dst)
        if sk != bytes(32):
            pk = sodium.scalarmult_base(sk)
            if mode == Mode.VOPRF:
                return ServerKey(sk=sk, pk=pk, seed=bytes(seed), info=bytes(info))
            return ServerKey(sk=sk, pk=pk)
    raise DeriveKeyPairError("no non-zero scalar in 256 attempts")


def generate_key_pair() -> ServerKey:
    sk = sodium.scalar_random()
    return ServerKey(sk=sk, pk=sodium.scalarmult_base(sk))


def public_key_from_bytes(data: bytes) -> bytes:
    return deserialize_element(data, "public key")


# --- client ---------------------------------------------------------------------------------


def blind(
    inputs: Sequence[bytes], mode: Mode, blinds: Sequence[bytes] | None = None
) -> tuple[list[bytes], list[bytes]]:
    """Blind a batch of inputs. Returns (blinds, blinded elements)."""
    suite = _suite(mode)
    if blinds is not None and len(blinds) != len(inputs):
        raise InvalidInputError("one blind per input")
    elements = []
    for data in inputs:
        _check_input(data)
        element = suite.hash_to_group(data)
        if element == sodium.IDENTITY:
            raise InvalidInputError("input hashes to the identity element")
        elements.append(element)
    if not inputs:
        return [], []
    if blinds is None:
        out_blinds = _split(sodium.scalar_random_many(len(inputs)))
    else:
        out_blinds = [deserialize_scalar(r, "blind") for r in blinds]
    return out_blinds, _split(sodium.scalarmult_many(b"".join(out_blinds), b"".join(elements)))


def _finalize_hash(data: bytes, unblinded: bytes) -> bytes:
    return hashlib.sha512(length_prefixed(data, unblinded) + b"Finalize").digest()


def finalize(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    evaluated: Sequence[bytes],
    mode: Mode,
    blinded: Sequence[bytes] | None = None,
    proof: bytes | None = None,
    server_public_key: bytes | None = None,
) -> list[bytes]:
    """Finalize a batch: verify the batch proof (VOPRF) and unblind; one 64-byte output each."""
    n = len(inputs)
    if not (len(blinds) == len(evaluated) == n):
        raise InvalidInputError("inputs, blinds and evaluated elements differ in number")
    evaluated = [deserialize_element(e, "evaluated element") for e in evaluated]
    if mode == Mode.VOPRF:
        if blinded is None or proof is None or server_public_key is None:
            raise InvalidInputError("VOPRF finalize needs the blinded elements, proof and key")
        if len(blinded) != n:
            raise InvalidInputError("blinded elements differ in number from the inputs")
        verify_proof(
            sodium.GENERATOR,
            deserialize_element(server_public_key, "public key"),
            list(blinded),
            evaluated,
            proof,
            _suite(mode),
        )
    if not inputs:
        return []
    inverses = b"".join(sodium.scalar_invert(r) for r in blinds)
    unblinded = _split(sodium.scalarmult_many(inverses, b"".join(evaluated)))
    return [_finalize_hash(data, u) for data, u in zip(inputs, unblinded, strict=True)]


# --- server ---------------------------------------------------------------------------------


def blind_evaluate(
    key: ServerKey,
    blinded: Sequence[bytes],
    mode: Mode,
    proof_nonce: bytes | None = None,
) -> tuple[list[bytes], bytes | None]:
    """Evaluate a batch of blinded elements; in VOPRF mode also return one batch DLEQ proof.

    Every blinded element is validated (canonical, not the identity) before any work is done,
    so a bad batch is refused whole.
    """
    if not blinded:
        raise InvalidInputError("empty batch")
    if mode == Mode.VOPRF and proof_nonce is None and backend(key) == "voprf":
        return _blind_evaluate_rust(key, blinded)
    elements = [deserialize_element(b, f"blinded element {i}") for i, b in enumerate(blinded)]
    evaluated = _split(sodium.scalarmult_many(key.sk, b"".join(elements)))
    if mode == Mode.OPRF:
        return evaluated, None
    proof = generate_proof(
        key.sk, sodium.GENERATOR, key.pk, elements, evaluated, _suite(mode), proof_nonce
    )
    return evaluated, proof


def _blind_evaluate_rust(key: ServerKey, blinded: Sequence[bytes]) -> tuple[list[bytes], bytes]:
    """BlindEvaluate through the wheel. Its decoding refuses exactly what
    :func:`deserialize_element` refuses (tests/test_oprf_backends.py checks it), so elements are
    decoded once, by the wheel; a refusal is re-decoded here for the same error message."""
    if len(blinded) > MAX_INPUT_BYTES:
        raise InvalidInputError("batch of more than 65535 elements")
    decode = _rust.BlindedInput.deserialize
    try:
        if all(type(b) is bytes and len(b) == sodium.POINT_BYTES for b in blinded):
            inputs = list(map(decode, blinded))  # the common case: msgpack gives bytes
        else:
            inputs = [
                decode(bytes(b))
                for b in blinded
                if isinstance(b, bytes | bytearray) and len(b) == sodium.POINT_BYTES
            ]
    except ValueError:
        inputs = []
    if len(inputs) != len(blinded):
        for i, b in enumerate(blinded):
            deserialize_element(b, f"blinded element {i}")
        raise DeserializeError("blinded element: refused by the voprf backend")
    wire = _evaluator(key).evaluate_batch(inputs).serialize()
    # proof (c || s), then the evaluated elements in order
    return _split(wire[PROOF_BYTES:]), wire[:PROOF_BYTES]


def evaluate(key: ServerKey, data: bytes, mode: Mode) -> bytes:
    """RFC 9497 Evaluate: the server's unblinded PRF output for its own input."""
    _check_input(data)
    if mode == Mode.VOPRF and backend(key) == "voprf":
        return bytes(_evaluator(key).evaluate_known_input(data))
    element = _suite(mode).hash_to_group(data)
    if element == sodium.IDENTITY:
        raise InvalidInputError("input hashes to the identity element")
    return _finalize_hash(data, sodium.scalarmult(key.sk, element))


# --- DLEQ proofs (RFC 9497 section 2.2) -----------------------------------------------------


def _split(rows: bytes) -> list[bytes]:
    return [rows[o : o + 32] for o in range(0, len(rows), 32)]


def _composite_weights(b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], suite: Suite) -> bytes:
    """The d_i of ComputeComposites, concatenated. Every transcript starts with the seed, so
    that head is hashed once."""
    seed_dst = b"Seed-" + suite.context
    seed = hashlib.sha512(length_prefixed(b, seed_dst)).digest()
    xmd = PrefixedXmd(i2osp(len(seed), 2) + seed, suite.scalar_dst)
    wides = [
        xmd.expand64(i2osp(i, 2) + length_prefixed(c, d) + b"Composite")
        for i, (c, d) in enumerate(zip(cs, ds, strict=True))
    ]
    return sodium.scalar_reduce_many(b"".join(wides))


def _weighted_sum(weights: bytes, elements: Sequence[bytes]) -> bytes:
    # Summed pairwise, one batch call per level: the same element as a running sum.
    terms = _split(sodium.scalarmult_many(weights, b"".join(elements)))
    while len(terms) > 1:
        half = len(terms) // 2
        summed = sodium.point_add_many(
            b"".join(terms[0 : 2 * half : 2]), b"".join(terms[1 : 2 * half : 2])
        )
        terms = _split(summed) + terms[2 * half :]
    return terms[0]


def _mul(k: bytes, p: bytes) -> bytes:
    # The fixed-base table is ~3x faster; the result is the same group element.
    return sodium.scalarmult_base(k) if p == sodium.GENERATOR else sodium.scalarmult(k, p)


def _challenge(b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, suite: Suite) -> bytes:
    return suite.hash_to_scalar(length_prefixed(b, m, z, t2, t3) + b"Challenge")


def generate_proof(
    k: bytes,
    a: bytes,
    b: bytes,
    cs: Sequence[bytes],
    ds: Sequence[bytes],
    suite: Suite,
    nonce: bytes | None = None,
) -> bytes:
    weights = _composite_weights(b, cs, ds, suite)
    m = _weighted_sum(weights, cs)
    z = sodium.scalarmult(k, m)  # ComputeCompositesFast: the server knows k
    r = sodium.scalar_random() if nonce is None else deserialize_scalar(nonce, "proof nonce")
    t2 = _mul(r, a)
    t3 = sodium.scalarmult(r, m)
    c = _challenge(b, m, z, t2, t3, suite)
    s = sodium.scalar_sub(r, sodium.scalar_mul(c, k))
    return c + s


def verify_proof(
    a: bytes,
    b: bytes,
    cs: Sequence[bytes],
    ds: Sequence[bytes],
    proof: bytes,
    suite: Suite,
) -> None:
    if not isinstance(proof, bytes) or len(proof) != PROOF_BYTES:
        raise VerifyError(f"proof must be {PROOF_BYTES} bytes")
    if len(cs) != len(ds) or not cs:
        raise VerifyError("proof covers a batch of a different size")
    c = deserialize_scalar(proof[:32], "proof challenge")
    s = deserialize_scalar(proof[32:], "proof response")
    weights = _composite_weights(b, cs, ds, suite)
    m = _weighted_sum(weights, cs)
    z = _weighted_sum(weights, ds)
    try:
        t2 = sodium.point_add(_mul(s, a), sodium.scalarmult(c, b))
        t3 = sodium.point_add(sodium.scalarmult(s, m), sodium.scalarmult(c, z))
    except sodium.GroupError as exc:
        raise VerifyError("proof does not verify") from exc
    if not sodium.ct_equal(_challenge(b, m, z, t2, t3, suite), c):
        raise VerifyError("proof does not verify")


# --- POPRF (RFC 9497 section 3.3.3) ---------------------------------------------------------
#
# The public ``info`` tweaks the key: t = skS + HashToScalar("Info" || LP(info)), and the server
# evaluates with t^-1. Client and server both know ``info``; the client verifies the batch proof
# against the tweaked key T = t*G = HashToScalar(...)*G + pkS, which it computes from the pinned
# pkS, so one pinned key serves every info value and an answer cannot be given under another.

MAX_INFO_BYTES = 65535


def _info_scalar(info: bytes) -> bytes:
    if not isinstance(info, bytes) or len(info) > MAX_INFO_BYTES:
        raise InvalidInputError("POPRF info must be bytes of at most 65535")
    return POPRF_SUITE.hash_to_scalar(b"Info" + i2osp(len(info), 2) + info)


def poprf_tweaked_key(server_public_key: bytes, info: bytes) -> bytes:
    """The client's view of the per-info key: HashToScalar(framedInfo)*G + pkS."""
    pk = deserialize_element(server_public_key, "public key")
    tweaked = sodium.point_add(sodium.scalarmult_base(_info_scalar(info)), pk)
    if tweaked == sodium.IDENTITY:
        raise InvalidInputError("the info cancels the public key")
    return tweaked


def poprf_blind(
    inputs: Sequence[bytes],
    info: bytes,
    server_public_key: bytes,
    blinds: Sequence[bytes] | None = None,
) -> tuple[list[bytes], list[bytes], bytes]:
    """Blind a batch for one info. Returns (blinds, blinded elements, tweaked key)."""
    tweaked = poprf_tweaked_key(server_public_key, info)
    if blinds is not None and len(blinds) != len(inputs):
        raise InvalidInputError("one blind per input")
    elements = []
    for data in inputs:
        _check_input(data)
        element = POPRF_SUITE.hash_to_group(data)
        if element == sodium.IDENTITY:
            raise InvalidInputError("input hashes to the identity element")
        elements.append(element)
    if not inputs:
        return [], [], tweaked
    if blinds is None:
        out_blinds = _split(sodium.scalar_random_many(len(inputs)))
    else:
        out_blinds = [deserialize_scalar(r, "blind") for r in blinds]
    blinded = _split(sodium.scalarmult_many(b"".join(out_blinds), b"".join(elements)))
    return out_blinds, blinded, tweaked


def _tweak(key: ServerKey, info: bytes) -> bytes:
    t = sodium.scalar_add(key.sk, _info_scalar(info))
    if t == bytes(sodium.SCALAR_BYTES):
        raise InvalidInputError("the info cancels the key (t = 0)")
    return t


def poprf_blind_evaluate(
    key: ServerKey, blinded: Sequence[bytes], info: bytes, proof_nonce: bytes | None = None
) -> tuple[list[bytes], bytes]:
    """Evaluate a batch under one info: t^-1 * B for each, with one DLEQ proof (over
    C = evaluated, D = blinded, as the RFC orders them) against T = t*G."""
    if not blinded:
        raise InvalidInputError("empty batch")
    elements = [deserialize_element(b, f"blinded element {i}") for i, b in enumerate(blinded)]
    t = _tweak(key, info)
    inverse = sodium.scalar_invert(t)
    evaluated = _split(sodium.scalarmult_many(inverse * len(elements), b"".join(elements)))
    proof = generate_proof(
        t, sodium.GENERATOR, sodium.scalarmult_base(t), evaluated, elements, POPRF_SUITE,
        proof_nonce,
    )  # fmt: skip
    return evaluated, proof


def _poprf_finalize_hash(data: bytes, info: bytes, element: bytes) -> bytes:
    return hashlib.sha512(length_prefixed(data, info, element) + b"Finalize").digest()


def poprf_finalize(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    evaluated: Sequence[bytes],
    blinded: Sequence[bytes],
    proof: bytes,
    info: bytes,
    tweaked_key: bytes,
) -> list[bytes]:
    """Verify the batch proof against the tweaked key and unblind; one 64-byte output each."""
    n = len(inputs)
    if not (len(blinds) == len(evaluated) == len(blinded) == n):
        raise InvalidInputError("inputs, blinds, blinded and evaluated elements differ in number")
    evaluated = [deserialize_element(e, "evaluated element") for e in evaluated]
    verify_proof(
        sodium.GENERATOR,
        deserialize_element(tweaked_key, "tweaked key"),
        evaluated,
        list(blinded),
        proof,
        POPRF_SUITE,
    )
    inverses = b"".join(sodium.scalar_invert(r) for r in blinds)
    unblinded = _split(sodium.scalarmult_many(inverses, b"".join(evaluated)))
    return [_poprf_finalize_hash(d, info, u) for d, u in zip(inputs, unblinded, strict=True)]


def poprf_evaluate(key: ServerKey, data: bytes, info: bytes) -> bytes:
    """RFC 9497 POPRF Evaluate: the server's own unblinded output for (input, info)."""
    _check_input(data)
    element = POPRF_SUITE.hash_to_group(data)
    if element == sodium.IDENTITY:
        raise InvalidInputError("input hashes to the identity element")
    issued = sodium.scalarmult(sodium.scalar_invert(_tweak(key, info)), element)
    return _poprf_finalize_hash(data, info, issued)
