"""Ed25519 signatures (PyNaCl), with domain separation per use."""

from __future__ import annotations

from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32


class SignatureError(ValueError):
    pass


@dataclass(frozen=True, repr=False)
class SigningKey:
    """An Ed25519 key pair. ``repr`` never shows the seed."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise ValueError("Ed25519 seed must be 32 bytes")

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def public_key(self) -> bytes:
        return bytes(nacl.signing.SigningKey(self.seed).verify_key)

    def sign(self, domain: bytes, message: bytes) -> bytes:
        return nacl.signing.SigningKey(self.seed).sign(_framed(domain, message)).signature

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_key.hex()[:16]}…)"


def _framed(domain: bytes, message: bytes) -> bytes:
    # A distinct, length-framed prefix per use, so a signature can never be replayed as another.
    return len(domain).to_bytes(1, "big") + domain + message


def verify(public_key: bytes, domain: bytes, message: bytes, signature: bytes) -> None:
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise SignatureError("Ed25519 public key must be 32 bytes")
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError("Ed25519 signature must be 64 bytes")
    try:
        nacl.signing.VerifyKey(public_key).verify(_framed(domain, message), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise SignatureError("bad signature") from exc
