"""A node's VOPRF key comes from a seed (so the faster OPRF backend can evaluate it), keys made
before that still load, and evaluation requests answered in worker processes are the same
answers, refusals included."""

from __future__ import annotations

import asyncio
import os

import pytest

from blindmatch.crypto import oprf, sodium
from blindmatch.node import keys
from blindmatch.node.federation import oprf_workers
from blindmatch.protocol import matching
from blindmatch.protocol.roster import voprf_key_id


def test_a_new_key_is_derived_from_its_seed_and_loads_the_same(tmp_path) -> None:
    made = keys.create(tmp_path)
    loaded = keys.load(tmp_path)
    assert loaded.voprf == made.voprf and loaded.voprf.seed == made.voprf.seed is not None
    assert oprf.derive_key_pair(made.voprf.seed, keys.VOPRF_KEY_INFO, oprf.Mode.VOPRF) == made.voprf
    assert oct((tmp_path / "voprf.seed").stat().st_mode & 0o777) == "0o600"


def test_a_key_made_before_seeds_loads_as_a_scalar(tmp_path) -> None:
    made = keys.create(tmp_path)
    (tmp_path / "voprf.seed").unlink()
    loaded = keys.load(tmp_path)
    assert loaded.voprf == made.voprf and loaded.voprf.seed is None
    assert oprf.backend(loaded.voprf) == "libsodium"


def test_a_seed_that_does_not_derive_the_stored_scalar_is_refused(tmp_path) -> None:
    keys.create(tmp_path)
    seed_file = tmp_path / "voprf.seed"
    seed_file.chmod(0o600)
    seed_file.write_text(os.urandom(32).hex() + "\n")
    with pytest.raises(keys.KeyFileError, match="does not derive"):
        keys.load(tmp_path)


def test_a_rotation_moves_the_key_files_and_erases_the_retired_key(tmp_path) -> None:
    """Spec 8.4 on disk: successor, promotion, erasure; each state loads back as it was."""
    d = tmp_path / "keys"
    first = keys.create(d)
    made = keys.make_successor(d, first)
    assert made.successor is not None and made.successor.seed is not None
    assert keys.make_successor(d, made) is made  # one successor at a time
    assert keys.load(d).successor == made.successor
    promoted = keys.promote_successor(d, made)
    assert promoted.voprf == made.successor and promoted.retired == first.voprf
    loaded = keys.load(d)
    assert (loaded.voprf, loaded.retired, loaded.successor) == (made.successor, first.voprf, None)
    assert loaded.voprf.seed is not None  # the fast backend still applies after a rotation
    erased = keys.erase_retired(d, promoted)
    assert erased.retired is None and keys.load(d).retired is None
    assert sorted(p.name for p in d.iterdir() if p.name.startswith("voprf")) == [
        "voprf.key",
        "voprf.seed",
    ]


def test_a_promotion_cut_short_by_a_crash_is_completed_at_load(tmp_path) -> None:
    d = tmp_path / "keys"
    first = keys.create(d)
    made = keys.make_successor(d, first)
    os.replace(d / "voprf.key", d / "voprf.retired.key")  # the crash: the first rename only
    loaded = keys.load(d)
    assert loaded.voprf == made.successor and loaded.retired == first.voprf
    assert loaded.successor is None and loaded.retired is not None
    assert loaded.retired.seed is not None


def test_an_evaluation_answered_in_a_worker_process_is_the_same_answer() -> None:
    key = oprf.derive_key_pair(os.urandom(32), keys.VOPRF_KEY_INFO, oprf.Mode.VOPRF)
    key_id = voprf_key_id(key.pk)
    _, blinded = oprf.blind([os.urandom(20) for _ in range(600)], oprf.Mode.VOPRF)
    body = {"key_id": key_id, "elements": blinded}

    async def both() -> tuple[dict, dict]:
        there = await oprf_workers.run(matching.answer_evaluate, key, key_id, body)
        here = await asyncio.to_thread(matching.answer_evaluate, key, key_id, body)
        return there, here

    there, here = asyncio.run(both())
    assert there["elements"] == here["elements"]
    oprf.verify_proof(
        sodium.GENERATOR, key.pk, blinded, there["elements"], there["proof"], oprf.VOPRF_SUITE
    )
    # A refusal crosses the process boundary with its code.
    bad = {"key_id": key_id, "elements": [*blinded[:3], sodium.IDENTITY]}
    with pytest.raises(matching.ExchangeError) as refused:
        asyncio.run(oprf_workers.run(matching.answer_evaluate, key, key_id, bad))
    assert refused.value.code == "bad-body" and "identity" in str(refused.value)
