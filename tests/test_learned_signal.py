"""The learned signal, learned-lsh-1 (specs/signals-and-lsh.md 1.6): codes from embeddings,
the project's model through onnxruntime, and a match across two real nodes on loopback with no
code, embedding or bucket key on the wire, the case naming the learned signal."""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from federation_uploads import upload_media
from PIL import Image

from blindmatch.node.banks.validation import BankValidationError
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.signals import SignalValueError, adapter
from blindmatch.protocol import signal_types
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.signal_types import learned
from blindmatch.protocol.signals import HashFormatError

ort = pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")

from blindmatch.node.signals.learned import model as model_mod  # noqa: E402

DIGEST_A = hashlib.sha256(b"model a").digest()
DIGEST_B = hashlib.sha256(b"model b").digest()


def _jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- codes -------------------------------------------------------------------------------


def test_hyperplanes_are_the_spec_stated_shake_stream() -> None:
    planes = learned.hyperplanes(DIGEST_A, 16)
    assert planes.shape == (256, 16) and set(np.unique(planes)) == {-1, 1}
    seed = b"blindmatch/learned-lsh-1/planes" + DIGEST_A + (16).to_bytes(4, "big")
    first = hashlib.shake_256(seed).digest(2)  # row 0's 16 entries, most significant first
    assert [1 if b == "1" else -1 for b in f"{first[0]:08b}{first[1]:08b}"] == list(planes[0])
    assert not np.array_equal(planes, learned.hyperplanes(DIGEST_B, 16))


def test_code_bit_error_follows_the_angle() -> None:
    rng = np.random.default_rng(3)
    for cosine in (0.95, 0.88, 0.5):
        dists = []
        for _ in range(40):
            a = rng.standard_normal(64)
            u = rng.standard_normal(64)
            u -= a * (u @ a) / (a @ a)
            b = cosine * a / np.linalg.norm(a) + math.sqrt(1 - cosine**2) * u / np.linalg.norm(u)
            ca, cb = learned.code_of(a, DIGEST_A), learned.code_of(b, DIGEST_A)
            dists.append(sum(bin(x ^ y).count("1") for x, y in zip(ca, cb, strict=True)))
        expected = 256 * learned.bit_error(cosine)
        assert abs(np.mean(dists) - expected) < 0.15 * expected + 2, (cosine, np.mean(dists))


def test_models_never_share_buckets_and_bad_input_is_refused() -> None:
    code = learned.code_of(np.arange(8.0) - 3.5, DIGEST_A)
    keys_a, keys_b = learned.index_keys(code, DIGEST_A), learned.index_keys(code, DIGEST_B)
    assert len(keys_a) == learned.LEARNED_LSH_1.tables and not set(keys_a) & set(keys_b)
    q = QueryHash(code, None, learned.variant(DIGEST_A))
    assert signal_types.for_variant(q.variant) is signal_types.LEARNED
    assert signal_types.probe_keys(q)[: len(keys_a)] == keys_a
    with pytest.raises(HashFormatError):
        signal_types.probe_keys(QueryHash(code[:31], None, q.variant))  # wrong-size code
    with pytest.raises(HashFormatError):
        learned.code_of([0.0, 0.0], DIGEST_A)
    with pytest.raises(HashFormatError):
        learned.code_of([1.0, float("nan")], DIGEST_A)
    with pytest.raises(HashFormatError):
        learned.code_of([1.0], DIGEST_A[:31])  # wrong-size model digest
    # A variant naming a model in anything but canonical hex is a pdq variant, not a model.
    assert signal_types.for_variant("learned/" + DIGEST_A.hex().upper()) is signal_types.PDQ
    ad = adapter(learned.NAME)
    ok = DIGEST_A.hex() + ":" + code.hex()
    assert ad.parse_bank_value(ok) == (code, (DIGEST_A,))
    for bad in (ok[:-2], DIGEST_A.hex()[:62] + ":" + code.hex() + "00", ok.replace(":", "-"), 7):
        with pytest.raises(SignalValueError):
            ad.parse_bank_value(bad)


# --- the project's model -------------------------------------------------------------------


def test_the_committed_model_is_the_recorded_one_and_codes_are_deterministic() -> None:
    record = json.loads((model_mod.MODEL_DIR / "MODEL.json").read_text())
    data = model_mod.DEFAULT_MODEL.read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"] and len(data) < 2 << 20
    m = model_mod.load()
    assert m.digest.hex() == record["sha256"] and m.size == 32
    photo = Image.fromarray(np.ascontiguousarray(skimage_data.astronaut()))
    e1, e2 = m.embed(photo), model_mod.load_bytes(data).embed(photo.copy())
    assert np.array_equal(e1, e2)
    code = learned.code_of(e1, m.digest)
    assert learned.code_of(m.embed(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), m.digest) == (
        code
    )  # the model sums over rotations and mirrors
    with pytest.raises(model_mod.ModelError):
        model_mod.load_bytes(b"not a model")
    with pytest.raises(model_mod.ModelError):
        model_mod.descriptor_of({"blindmatch.input_size": "4"})
    with pytest.raises(model_mod.ModelError):
        model_mod.descriptor_of({"blindmatch.input_size": "32", "blindmatch.std": "1,0,1"})


def _other_model(tmp_path: Path) -> Path:
    """The project's model with one metadata property changed: the same embeddings, another
    file, so another model digest."""
    onnx = pytest.importorskip("onnx")
    proto = onnx.load_from_string(model_mod.DEFAULT_MODEL.read_bytes())
    onnx.helper.set_model_props(
        proto, {**{p.key: p.value for p in proto.metadata_props}, "blindmatch.note": "other"}
    )
    path = tmp_path / "other.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


# --- two real nodes --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pictures() -> dict[str, bytes]:
    photo = Image.fromarray(np.ascontiguousarray(skimage_data.astronaut()))
    w, h = photo.size
    edited = photo.resize((w * 3 // 5, h * 3 // 5)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return {
        "source": _jpeg(photo, 92),
        "copy": _jpeg(edited, 60),
        "unrelated": _jpeg(Image.fromarray(np.ascontiguousarray(skimage_data.coffee())), 90),
    }


@pytest.fixture
async def fed(tmp_path: Path, pictures: dict[str, bytes]):
    federation = await LocalFederation(
        tmp_path, clock=FixedClock(1_800_000_000), background=False, record_wire=True
    ).start([NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)])
    hub = federation["hub"]
    for node in (hub, federation["platform"]):
        node.cfg.signal_options = {learned.NAME: {"enabled": True}}
    federation["platform"].cfg.derivative_search = False  # no tiles: this test is about codes
    await hub.banks.create_bank("reports", provenance="survivor-submitted", shared=True)
    # The hub banks the picture's learned code only (as `bank add --media` would beside PDQ):
    # whatever matches below matched through the learned signal.
    value = adapter(learned.NAME).picture_bank_value(pictures["source"], hub.cfg)
    assert value is not None
    added = await hub.banks.add_item("reports", learned.NAME, value, categories=["ncii"])
    federation.item_ref = added.item.item_ref  # type: ignore[attr-defined]
    federation.banked_code = bytes.fromhex(value[65:])  # type: ignore[attr-defined]
    await hub.node.publisher.reconcile()
    await federation["platform"].node.sync.sync_all()
    yield federation
    await federation.stop()


async def _upload(fed, data: bytes, content_ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    _, cases = await upload_media(fed, data, content_ref)
    return cases


async def test_an_edited_copy_matches_through_the_learned_signal(fed, pictures, tmp_path) -> None:
    m = model_mod.load()
    [case] = await _upload(fed, pictures["copy"], "upload-copy")
    assert await _upload(fed, pictures["unrelated"], "upload-unrelated") == []
    assert case["holder"] == "hub" and case["item"] == fed.item_ref.hex()
    assert case["release"]["signal"] == learned.NAME  # the case says which signal matched
    assert case["variant"] == learned.variant(m.digest)
    assert case["band"] <= learned.THRESHOLD

    # No code, embedding or bucket key of the banked picture or the upload crossed the wire.
    from test_wire_privacy import forms

    wire = fed.wire_bytes()
    secrets_: list[bytes] = []
    for name in ("source", "copy"):
        e = m.embed_bytes(pictures[name])
        code = learned.code_of(e, m.digest)
        secrets_ += [code, e.astype(np.float32).tobytes()[:32], e.tobytes()[:32]]
        # A bucket key's start is public (tag, signal name): its end is what would leak.
        for key in learned.index_keys(code, m.digest)[:4]:
            assert key not in wire and key[-16:] not in wire
    assert fed.banked_code in secrets_
    for value in secrets_:
        for form in forms(value):
            assert form not in wire

    # A platform running another model (another digest) meets none of the hub's buckets: the
    # same copy now matches nothing, rather than being compared with codes of another model.
    options = fed["platform"].cfg.signal_options[learned.NAME]
    options["model"] = str(_other_model(tmp_path))
    assert await _upload(fed, pictures["copy"], "upload-other-model") == []


async def test_bad_learned_bank_values_are_refused(fed) -> None:
    bank = fed["hub"].banks
    short = DIGEST_A.hex() + ":" + "ab" * 31
    for bad in (short, DIGEST_A.hex()[:60] + ":" + "ab" * 32):
        with pytest.raises((BankValidationError, SignalValueError)):
            await bank.add_item("reports", learned.NAME, bad)
    cfg = SimpleNamespace(signal_options={})
    assert adapter(learned.NAME).picture_bank_value(b"", cfg) is None
