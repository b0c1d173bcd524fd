"""The node's secret keys on disk: its Ed25519 identity, its VOPRF key, and the optional keys
of repeat-uploader signals (specs/uploaders.md): a holder's POPRF ``uploader.key`` and the
federation keeper's VOPRF ``keeper.key``.

Files are created with mode 0600 in a 0700 directory and never logged; a key file that is
readable by others is refused, as ssh does.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from blindmatch.crypto import oprf, signing, sodium
from blindmatch.node.errors import BlindmatchError, NodeError
from blindmatch.protocol.roster import Member, voprf_key_id


class KeyFileError(BlindmatchError, ValueError):
    code = "bad-keys"


@dataclass(frozen=True, repr=False)
class NodeKeys:
    identity: signing.SigningKey
    voprf: oprf.ServerKey
    uploader: oprf.ServerKey | None = None  # stage 1 of uploader signals, for our pictures
    keeper: oprf.ServerKey | None = None  # stage 2, only on the federation's keeper

    @property
    def voprf_key_id(self) -> bytes:
        return voprf_key_id(self.voprf.pk)

    def __repr__(self) -> str:
        return f"NodeKeys(identity={self.identity!r}, voprf={self.voprf!r})"


def check_roster_pins(me: Member, keys: NodeKeys) -> None:
    """Refuse to run under a roster entry that names other keys than the ones on disk."""
    if me.signing_key != keys.identity.public_key:
        raise NodeError("the roster lists another identity key for this node", code="not-allowed")
    if me.voprf_key is not None and me.voprf_key != keys.voprf.pk:
        raise NodeError("the roster pins another VOPRF key for this node", code="not-allowed")
    for name in ("uploader_key", "keeper_key"):  # specs/uploaders.md: pinned like the VOPRF key
        key = getattr(keys, name.removesuffix("_key"))
        if getattr(me, name) is not None and (key is None or getattr(me, name) != key.pk):
            raise NodeError(f"the roster pins another {name} for this node", code="not-allowed")


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.hex().encode() + b"\n")


def _read_secret(path: Path, length: int) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is accessible by group or others; chmod 600 it")
    try:
        data = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a hex key") from exc
    if len(data) != length:
        raise KeyFileError(f"{path}: expected {length} bytes")
    return data


# RFC 9497 DeriveKeyPair's info for a node's VOPRF key. The key is derived from a random seed
# (kept in voprf.seed) rather than drawn as a scalar, so that the faster OPRF backend, which can
# only be built from a seed, can evaluate it (crypto/oprf.py); voprf.key keeps the scalar.
VOPRF_KEY_INFO = b"blindmatch-v1 node voprf key"


def create(keys_dir: Path, uploader: bool = False, keeper: bool = False) -> NodeKeys:
    identity = signing.SigningKey.generate()
    voprf_seed = os.urandom(32)
    voprf = oprf.derive_key_pair(voprf_seed, VOPRF_KEY_INFO, oprf.Mode.VOPRF)
    _write_secret(keys_dir / "identity.key", identity.seed)
    _write_secret(keys_dir / "voprf.key", voprf.sk)
    _write_secret(keys_dir / "voprf.seed", voprf_seed)
    extra = {}
    for name, wanted in (("uploader", uploader), ("keeper", keeper)):
        if wanted:
            key = oprf.generate_key_pair()
            _write_secret(keys_dir / f"{name}.key", key.sk)
            extra[name] = key
    return NodeKeys(identity, voprf, **extra)


def _optional_scalar_key(path: Path) -> oprf.ServerKey | None:
    if not path.exists():
        return None
    sk = _read_secret(path, 32)
    if not sodium.is_canonical_scalar(sk) or sk == bytes(32):
        raise KeyFileError(f"{path.name} is not a valid scalar")
    return oprf.ServerKey(sk, sodium.scalarmult_base(sk))


def load(keys_dir: Path) -> NodeKeys:
    try:
        seed = _read_secret(keys_dir / "identity.key", 32)
        sk = _read_secret(keys_dir / "voprf.key", 32)
    except FileNotFoundError as exc:
        raise KeyFileError(f"missing key file {exc.filename} (run 'blindmatch init')") from exc
    if not sodium.is_canonical_scalar(sk) or sk == bytes(32):
        raise KeyFileError("voprf.key is not a valid scalar")
    voprf = oprf.ServerKey(sk, sodium.scalarmult_base(sk))
    seed_file = keys_dir / "voprf.seed"
    if seed_file.exists():  # keys made before voprf.seed existed have the scalar alone
        derived = oprf.derive_key_pair(_read_secret(seed_file, 32), VOPRF_KEY_INFO, oprf.Mode.VOPRF)
        if derived.sk != sk:
            raise KeyFileError("voprf.seed does not derive voprf.key; restore the pair")
        voprf = derived
    return NodeKeys(
        signing.SigningKey(seed),
        voprf,
        uploader=_optional_scalar_key(keys_dir / "uploader.key"),
        keeper=_optional_scalar_key(keys_dir / "keeper.key"),
    )
