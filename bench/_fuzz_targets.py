"""Every decoder and parser that reads bytes from a peer, a platform, a survivor or a file, as
fuzz targets: ``run(data)`` feeds one input through the same code the node runs on it, and
may raise only the target's refusals (``refusals``); anything else is a finding.

Used twice: by the property tests (tests/test_parsers_property.py, hypothesis, in CI) and by
the coverage-guided fuzz run (bench/fuzz.py, atheris). Findings of either are kept under
``tests/data/fuzz/<target>/`` and replayed by the tests. ``seeds()`` gives valid inputs built
by the real encoders, so mutations start inside the formats rather than at random bytes.

A target whose format has several parsers picks one with its first byte.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindmatch.crypto import oprf, signing
from blindmatch.crypto import threshold as th
from blindmatch.protocol import (
    canonical,
    envelope,
    feedback,
    index,
    matching,
    messages,
    schema,
    transparency,
    uploaders,
)
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.roster import RosterError, sign_roster, voprf_key_id
from blindmatch.protocol.signal_types.vpdq import video

ROOT = Path(__file__).resolve().parent.parent
FINDINGS = ROOT / "tests" / "data" / "fuzz"
NOW_MS = 1_800_000_000_000
PEER = "fuzz-peer"


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    refusals: tuple[type[BaseException], ...]
    seeds: Callable[[], list[bytes]]

    def findings(self) -> list[Path]:
        folder = FINDINGS / self.name
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


# --- shared state: keys, one real exchange ---------------------------------------------------


@functools.cache
def _world() -> dict[str, Any]:
    """Keys and one honest exchange between a holder and a querier, made once per process."""
    identity = signing.SigningKey.generate()
    holder_key = oprf.generate_key_pair()
    key_id = voprf_key_id(holder_key.pk)
    held = bytes(range(32))
    ref = bytes(16)
    refs = index.HolderReferences(holder_key, key_id)
    entries = refs.publish(ref, PDQ_LSH_1.index_keys(held))
    replica = index.ReplicaIndex(PDQ_LSH_1.name, key_id)
    replica.add(index.pack_entries(entries))
    ex = matching.PeerExchange(PEER, holder_key.pk, PDQ_LSH_1, [matching.QueryHash(held)])
    evaluate = ex.evaluate_request()
    evaluated = matching.answer_evaluate(holder_key, key_id, evaluate)
    ex.on_evaluated(evaluated, replica)
    cache = matching.EncryptionCache(os.urandom)
    [query] = ex.threshold_requests(cache)
    verified = matching.verify_threshold_query(query)
    item = matching.HolderItem(ref, held, (8, 16, 31), {"provenance": "survivor-submitted"})
    named = matching.resolve_in_memory(refs, {ref: item}, query)
    answer = matching.answer_threshold(verified, named, query, (8, 16, 31))
    record = feedback.make_record(
        identity,
        record_id=bytes(16),
        origin=PEER,
        holder=PEER,
        item=ref,
        opinion="confirm",
        at_ms=NOW_MS,
    )
    return {
        "identity": identity,
        "holder_key": holder_key,
        "key_id": key_id,
        "exchange": ex,
        "cache": cache,
        "bodies": {
            "oprf.evaluate": evaluate,
            "oprf.evaluated": {**evaluated, "re": bytes(16)},
            "threshold.query": query,
            "threshold.answer": {**answer, "re": bytes(16)},
            "feedback.accepted": {"seq": 1, "re": bytes(16)},
            "feed.pull": {"feed": "index", "after": 0, "limit": 500},
            "feed.page": {
                "feed": "index",
                "head": 1,
                "re": bytes(16),
                "entries": [
                    {
                        "seq": 1,
                        "id": bytes(16),
                        "kind": "index.add",
                        "payload": canonical.encode(
                            {
                                "scheme": PDQ_LSH_1.name,
                                "key_id": key_id,
                                "entries": index.pack_entries(entries),
                            }
                        ),
                    }
                ],
            },
            "feedback.submit": {"record": record.signed},
            "error": {"code": "bad-body", "message": "no"},
        },
        "record": record.signed,
    }


def _exchange() -> matching.PeerExchange:
    """The honest exchange as it stood after its VOPRF round (a copy: inputs do not share)."""
    ex = copy.copy(_world()["exchange"])
    ex.candidates = dict(ex.candidates)
    ex.confirmed = []
    return ex


def _key_of(sender: str) -> bytes | None:
    return _world()["identity"].public_key if sender == PEER else None


# --- messages: envelopes, then each body as the node reads it ---------------------------------

_TYPES = sorted(messages.SCHEMAS)


def _deep(mtype: str, body: dict[str, Any]) -> None:
    """What the node does with a body past its schema (the parsing and checking parts)."""
    w = _world()
    if mtype == "oprf.evaluate":
        matching.answer_evaluate(w["holder_key"], w["key_id"], body)
    elif mtype == "oprf.evaluated":
        replica = index.ReplicaIndex(PDQ_LSH_1.name, w["key_id"])
        _exchange().on_evaluated(body, replica)
    elif mtype == "threshold.query" and "query" in body:  # else a query_ref: a cache lookup
        th.EncryptedQuery.from_bytes(body["query"])
    elif mtype == "threshold.answer":
        request = w["bodies"]["threshold.query"]
        _exchange().on_answer(request, body, w["cache"])
    elif mtype == "feed.page":
        _feed_page(body)
    elif mtype == "feedback.submit":
        feedback.open_record(body["record"], _key_of)


def _feed_page(body: dict[str, Any]) -> None:
    from blindmatch.node.federation.peer_replicas import PeerReplica, StoredEntry

    replica = PeerReplica(PEER, PDQ_LSH_1.name, _world()["key_id"])
    stored = [StoredEntry(e["seq"], e["id"], e["kind"], e["payload"]) for e in body["entries"]]
    seqs = [e.seq for e in stored]
    if seqs != sorted(set(seqs)):
        return  # the querier refuses such a page before applying it
    replica.apply_page(0, stored)  # refused entries are returned, never raised
    for e in stored:
        if body["feed"] == feedback.FEED:
            with contextlib.suppress(feedback.FeedbackError):
                feedback.open_record(e.payload, _key_of)


def run_messages(data: bytes) -> None:
    if not data:
        return
    selector, rest = data[0], data[1:]
    if selector < 32:
        env = envelope.open_envelope(rest, now_ms=NOW_MS, sender_key=_key_of)
        _deep(env.type, env.body)
        return
    mtype = _TYPES[(selector - 32) % len(_TYPES)]
    body = messages.check_body(mtype, canonical.decode(rest))
    _deep(mtype, body)


def seeds_messages() -> list[bytes]:
    w = _world()
    out = []
    for mtype, body in w["bodies"].items():
        sealed = envelope.seal(w["identity"], PEER, mtype, body, NOW_MS, bytes(16))
        out.append(b"\x00" + sealed)
        out.append(bytes([32 + _TYPES.index(mtype)]) + canonical.encode(body))
    return out


MESSAGES = Target(
    "messages",
    run_messages,
    (
        envelope.EnvelopeError,
        canonical.CanonicalError,
        schema.SchemaError,
        matching.ExchangeError,
        th.ThresholdError,
        feedback.FeedbackError,
    ),
    seeds_messages,
)


# --- canonical msgpack ---------------------------------------------------------------------


def run_canonical(data: bytes) -> None:
    value = canonical.decode(data)
    if canonical.encode(value) != data:  # decode accepts only the canonical form
        raise AssertionError("decoded value does not re-encode to its input")


CANONICAL = Target(
    "canonical",
    run_canonical,
    (canonical.CanonicalError,),
    lambda: [
        canonical.encode(v)
        for v in ({"a": [1, -2, b"x", "y", None, True]}, [2**63, -(2**63)], {"": {"b": []}})
    ],
)


# --- transparency log: entries and signed tree heads ------------------------------------------


def run_transparency(data: bytes) -> None:
    if not data:
        return
    if data[0] % 2:
        transparency.decode_entry(data[1:])
    else:
        head = transparency.parse_tree_head(data[1:])
        transparency.verify_tree_head(head, _world()["identity"].public_key)


def seeds_transparency() -> list[bytes]:
    cases = json.loads((ROOT / "specs" / "vectors" / "transparency.json").read_text())["cases"]
    out = []
    for c in cases:
        if c["op"] == "log.encode_entry" and "output" in c.get("expected", {}):
            out.append(b"\x01" + bytes.fromhex(c["expected"]["output"]["entry"]))
        elif c["op"] == "sth.verify":
            out.append(b"\x00" + bytes.fromhex(c["input"]["sth"]))
    return out


TRANSPARENCY = Target(
    "transparency",
    run_transparency,
    (transparency.LogError,),
    seeds_transparency,
)


# --- feed entries a querier stores: index deltas, uploader deltas, feedback records -------------


def run_feed_entries(data: bytes) -> None:
    from blindmatch.node.federation.peer_replicas import PeerReplica, StoredEntry

    if len(data) < 2:
        return
    selector, rest = data[0] % 4, data[1:]
    if selector == 0:
        replica = PeerReplica(PEER, PDQ_LSH_1.name, _world()["key_id"])
        kind = ("index.add", "index.remove", "index.checkpoint", "index.other")[data[1] % 4]
        replica.apply_page(0, [StoredEntry(1, bytes(16), kind, rest[1:])])
        replica.lookup_many_at([bytes(64)])
    elif selector == 1:
        kind = sorted(uploaders.FEED_SCHEMAS)[data[1] % len(uploaders.FEED_SCHEMAS)]
        uploaders.parse_entry(kind, rest[1:])
    else:
        feedback.open_record(rest, _key_of)


def seeds_feed_entries() -> list[bytes]:
    w = _world()
    page = w["bodies"]["feed.page"]["entries"][0]["payload"]
    return [b"\x00\x00" + page, b"\x00\x01" + page, b"\x02" + w["record"]]


FEED_ENTRIES = Target(
    "feed_entries",
    run_feed_entries,
    (uploaders.UploaderError, feedback.FeedbackError),
    seeds_feed_entries,
)


# --- roster documents (as the node loads them) ---------------------------------------------


@functools.cache
def _governance() -> list[signing.SigningKey]:
    return [signing.SigningKey.generate() for _ in range(2)]


def run_roster(data: bytes) -> None:
    from blindmatch.node.federation.roster_watch import parse_roster_document

    keys = [k.public_key for k in _governance()]
    parse_roster_document(data, keys, 2, NOW_MS)


def seeds_roster() -> list[bytes]:
    w = _world()
    body = {
        "federation": "fuzz",
        "serial": 1,
        "issued_ms": NOW_MS - 1000,
        "expires_ms": NOW_MS + 10**9,
        "members": [
            {
                "id": PEER,
                "signing_key": w["identity"].public_key.hex(),
                "voprf_key": w["holder_key"].pk.hex(),
                "endpoint": "https://fuzz.example",
                "roles": ["hub"],
            }
        ],
    }
    return [json.dumps(sign_roster(body, _governance())).encode()]


def _roster_refusals() -> tuple[type[BaseException], ...]:
    from blindmatch.node.config import ConfigError

    return (RosterError, ConfigError)


ROSTER = Target("roster", run_roster, _roster_refusals(), seeds_roster)


# --- hash lists a bank imports (JSON lines, ThreatExchange, HMA) and vPDQ signal strings ------


def run_bank_formats(data: bytes) -> None:
    from blindmatch.node.banks import formats

    if not data:
        return
    choices = (*formats.FORMATS, "vpdq-signal")
    fmt = choices[data[0] % len(choices)]
    if fmt == "vpdq-signal":
        video.parse_signal_string(data[1:].decode("utf-8", errors="replace"))
        return
    formats.parse_hash_list(fmt, io.BytesIO(data[1:]), skip_unsupported=bool(data[0] & 0x80))


def seeds_bank_formats() -> list[bytes]:
    from blindmatch.node.banks import formats

    h = "ab" * 32
    lines = {
        "jsonl": f'{{"signal_type": "pdq", "hash": "{h}", "categories": ["ncii"]}}\n',
        "te-lines": f"pdq {h} ncii\n",
        "te-csv": f"signal_type,signal_str,category\npdq,{h},ncii\n",
        "hma-json": json.dumps({"pdq": h, "vpdq": "[]"}) + "\n",
    }
    out = []
    for i, fmt in enumerate(formats.FORMATS):
        out.append(bytes([i]) + lines.get(fmt, lines["jsonl"]).encode())
    frames = json.dumps([f"{h},100,0.000", f"{h},90,1.000"])
    out.append(bytes([len(formats.FORMATS)]) + frames.encode())
    return out


def _bank_refusals() -> tuple[type[BaseException], ...]:
    from blindmatch.node.banks.validation import BankValidationError

    return (BankValidationError, video.VideoError)


BANK_FORMATS = Target("bank_formats", run_bank_formats, _bank_refusals(), seeds_bank_formats)


# --- operator files: policy and node configuration (TOML), loaded from a file ------------------


def run_operator_files(data: bytes) -> None:
    from blindmatch.node import config
    from blindmatch.node.cases import policy

    if not data:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.toml"
        path.write_bytes(data[1:])
        if data[0] % 2:
            policy.load(path)
        else:
            config.load(path)


def seeds_operator_files() -> list[bytes]:
    policy_text = (
        "[auto_action]\nenabled = true\nmax_band = 8\n[review]\nband_priority = { 8 = 30 }\n"
        "[quarantine]\nfactor = 10.0\nwindow_s = 3600\n"
    )
    config_text = (
        'node_id = "hub"\nlisten = "127.0.0.1:8700"\napi_listen = "127.0.0.1:8710"\n'
        'database = "sqlite:///x.db"\nroster = "roster.json"\ngovernance_keys = []\n'
        "governance_threshold = 1\nmatch_workers = 4\n"
    )
    return [b"\x01" + policy_text.encode(), b"\x00" + config_text.encode()]


def _operator_refusals() -> tuple[type[BaseException], ...]:
    from blindmatch.node.cases.policy import PolicyError
    from blindmatch.node.config import ConfigError

    return (PolicyError, ConfigError)


OPERATOR_FILES = Target(
    "operator_files", run_operator_files, _operator_refusals(), seeds_operator_files
)


# --- media: image files as uploads and survivor submissions arrive --------------------------


def run_media(data: bytes) -> None:
    from blindmatch.node.media import hashing

    image = hashing.decode_image(data)
    if image.width * image.height <= 256 * 256:  # hashing a large picture is slow, not a parser
        hashing.hash_image(image, query_variants=False)


def seeds_media() -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    out = []
    for fmt, options in (
        ("PNG", {}),
        ("JPEG", {"quality": 50}),
        ("GIF", {}),
        ("BMP", {}),
        ("WEBP", {"quality": 50}),
        ("TIFF", {"compression": "raw"}),
        ("TIFF", {"compression": "tiff_lzw"}),
    ):
        buf = io.BytesIO()
        picture.save(buf, fmt, **options)
        out.append(buf.getvalue())
    survivor = ROOT / "tests" / "data" / "survivor"
    out += [p.read_bytes() for p in sorted(survivor.glob("*.png")) if p.stat().st_size < 65536]
    return out


def _media_refusals() -> tuple[type[BaseException], ...]:
    from blindmatch.node.media.hashing import MediaError

    return (MediaError,)


MEDIA = Target("media", run_media, _media_refusals(), seeds_media)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        MESSAGES,
        CANONICAL,
        TRANSPARENCY,
        FEED_ENTRIES,
        ROSTER,
        BANK_FORMATS,
        OPERATOR_FILES,
        MEDIA,
    )
}


def check(target: Target, data: bytes) -> None:
    """Run one input: a refusal is fine, anything else propagates (a finding)."""
    with contextlib.suppress(target.refusals):
        target.run(data)
