"""The node's secret keys on disk: its Ed25519 identity, its VOPRF key, and the optional keys
of repeat-uploader signals (specs/uploaders.md): a holder's POPRF ``uploader.key`` and the
federation keeper's VOPRF ``keeper.key``.

Files are created with mode 0600 in a 0700 directory and never logged; a key file that is
readable by others is refused, as ssh does.

A VOPRF key has a lifetime (spec 8.2, 8.4): near its cap the node makes a successor
(``voprf.next.key``/``.seed``) and publishes its index under it; once the roster names the
successor it becomes ``voprf.key`` and the old key ``voprf.retired.key``, answered during the
overlap window and then erased.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
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
    successor: oprf.ServerKey | None = None  # made near the cap, not yet named by the roster
    retired: oprf.ServerKey | None = None  # replaced in the roster, answered in the overlap

    @property
    def voprf_key_id(self) -> bytes:
        return voprf_key_id(self.voprf.pk)

    def roster_voprf_keys(self) -> set[bytes]:
        """The public keys a roster may name as ours: the current key, or the successor."""
        return {k.pk for k in (self.voprf, self.successor) if k is not None}

    def voprf_keys(self) -> dict[bytes, oprf.ServerKey]:
        """Every VOPRF key this node holds, by key id (current, successor, retired)."""
        keys = [k for k in (self.voprf, self.successor, self.retired) if k is not None]
        return {voprf_key_id(k.pk): k for k in keys}

    def __repr__(self) -> str:
        return f"NodeKeys(identity={self.identity!r}, voprf={self.voprf!r})"


def check_roster_pins(me: Member, keys: NodeKeys) -> None:
    """Refuse to run under a roster entry that names other keys than the ones on disk."""
    if me.signing_key != keys.identity.public_key:
        raise NodeError("the roster lists another identity key for this node", code="not-allowed")
    # our successor key may be named (a rotation, spec 8.4): the node then promotes it
    if me.voprf_key is not None and me.voprf_key not in keys.roster_voprf_keys():
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


def _voprf_pair(keys_dir: Path, stem: str) -> oprf.ServerKey:
    """``{stem}.key`` (the scalar) and, if present, ``{stem}.seed`` that derives it."""
    sk = _read_secret(keys_dir / f"{stem}.key", 32)
    if not sodium.is_canonical_scalar(sk) or sk == bytes(32):
        raise KeyFileError(f"{stem}.key is not a valid scalar")
    key = oprf.ServerKey(sk, sodium.scalarmult_base(sk))
    seed_file = keys_dir / f"{stem}.seed"
    if seed_file.exists():  # keys made before voprf.seed existed have the scalar alone
        derived = oprf.derive_key_pair(_read_secret(seed_file, 32), VOPRF_KEY_INFO, oprf.Mode.VOPRF)
        if derived.sk != sk:
            raise KeyFileError(f"{stem}.seed does not derive {stem}.key; restore the pair")
        key = derived
    return key


def _finish_promotion(keys_dir: Path) -> None:
    """A promotion cut short (a crash between its renames) is completed: the current key was
    moved to retired, the successor not yet to current."""
    if (keys_dir / "voprf.key").exists() or not (keys_dir / "voprf.next.key").exists():
        return
    if (keys_dir / "voprf.retired.key").exists() and not (keys_dir / "voprf.retired.seed").exists():
        _move_pair(keys_dir, "voprf", "voprf.retired")  # the old seed, if it stayed behind
    _move_pair(keys_dir, "voprf.next", "voprf")


def load(keys_dir: Path) -> NodeKeys:
    _finish_promotion(keys_dir)
    try:
        seed = _read_secret(keys_dir / "identity.key", 32)
        voprf = _voprf_pair(keys_dir, "voprf")
    except FileNotFoundError as exc:
        raise KeyFileError(f"missing key file {exc.filename} (run 'blindmatch init')") from exc
    optional = {
        name: _voprf_pair(keys_dir, stem) if (keys_dir / f"{stem}.key").exists() else None
        for name, stem in (("successor", "voprf.next"), ("retired", "voprf.retired"))
    }
    return NodeKeys(
        signing.SigningKey(seed),
        voprf,
        uploader=_optional_scalar_key(keys_dir / "uploader.key"),
        keeper=_optional_scalar_key(keys_dir / "keeper.key"),
        **optional,
    )


# --- rotation (spec 8.4) -------------------------------------------------------------------


def make_successor(keys_dir: Path, keys: NodeKeys) -> NodeKeys:
    """A new VOPRF key stored as ``voprf.next.key`` (the node publishes its index under it;
    governance puts its public key in the roster). Idempotent, also across the processes of a
    node sharing its home: a successor already on disk is the one."""
    if keys.successor is not None:
        return keys
    seed = os.urandom(32)
    successor = oprf.derive_key_pair(seed, VOPRF_KEY_INFO, oprf.Mode.VOPRF)
    try:
        # the seed first: a crash between the two leaves no .key, so no half successor loads
        _write_secret(keys_dir / "voprf.next.seed", seed)
        _write_secret(keys_dir / "voprf.next.key", successor.sk)
    except FileExistsError:  # another process of this node made one first: use it
        return replace(keys, successor=_voprf_pair(keys_dir, "voprf.next"))
    return replace(keys, successor=successor)


def voprf_on_disk(
    keys_dir: Path,
) -> tuple[oprf.ServerKey, oprf.ServerKey | None, oprf.ServerKey | None]:
    """(current, successor, retired) as the files hold them now: another process of the node
    may have rotated. Completes nothing (a promotion under way elsewhere is left to it)."""

    def optional(stem: str) -> oprf.ServerKey | None:
        return _voprf_pair(keys_dir, stem) if (keys_dir / f"{stem}.key").exists() else None

    return _voprf_pair(keys_dir, "voprf"), optional("voprf.next"), optional("voprf.retired")


def _move_pair(keys_dir: Path, src: str, dst: str) -> None:
    # the scalar first: :func:`_finish_promotion` recognises a move cut short by it
    for ext in (".key", ".seed"):
        if (keys_dir / f"{src}{ext}").exists():
            os.replace(keys_dir / f"{src}{ext}", keys_dir / f"{dst}{ext}")


def _erase_pair(keys_dir: Path, stem: str) -> None:
    """Overwrite, then unlink (best effort against the file's blocks lingering)."""
    for ext in (".key", ".seed"):
        path = keys_dir / f"{stem}{ext}"
        if path.exists():
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.write(bytes(size))
                f.flush()
                os.fsync(f.fileno())
            path.unlink()


def promote_successor(keys_dir: Path, keys: NodeKeys) -> NodeKeys:
    """The roster names the successor: it becomes the key and the key the retired one (a
    retired key of an earlier rotation still here is erased first)."""
    if keys.successor is None:
        raise KeyFileError("no successor VOPRF key to promote")
    current, _, retired = voprf_on_disk(keys_dir)
    if current == keys.successor:  # another process of this node promoted it already
        return replace(keys, voprf=current, successor=None, retired=retired)
    _erase_pair(keys_dir, "voprf.retired")
    _move_pair(keys_dir, "voprf", "voprf.retired")
    _move_pair(keys_dir, "voprf.next", "voprf")
    return replace(keys, voprf=keys.successor, successor=None, retired=keys.voprf)


def erase_retired(keys_dir: Path, keys: NodeKeys) -> NodeKeys:
    """After the overlap window: the retired key's secret is erased (spec 8.4)."""
    _erase_pair(keys_dir, "voprf.retired")
    return replace(keys, retired=None)
