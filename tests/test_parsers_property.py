"""Property tests over every decoder and parser (hypothesis).

Each target of bench/_fuzz_targets.py (the same ones ``./dev bench fuzz`` runs under atheris)
gets random bytes and mutations of valid inputs, and may end only in its own refusals; every
finding kept under tests/data/fuzz/ is replayed. Beside those, properties of the formats:
canonical msgpack round-trips and refuses every other encoding of a value; a signed envelope
with any body opens or is refused as ``bad-body``; a replica is the multiset its deltas say,
whatever order pages arrive in.
"""

from __future__ import annotations

import collections
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench._fuzz_targets import TARGETS, check
from blindmatch.crypto import signing
from blindmatch.protocol import canonical, envelope, index, messages

EXAMPLES = int(os.environ.get("BLINDMATCH_PROPERTY_EXAMPLES", "40"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = {"media": 15}  # decoding and hashing a picture is slower than parsing a message


@st.composite
def _mutated(draw, seeds: list[bytes]) -> bytes:  # type: ignore[no-untyped-def]
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xC0, 0xC1, 0xFF]))
        elif op == "cut":
            data = data[:at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "splice" and data:
            end = draw(st.integers(at, len(data)))
            data[at:end] = data[at:end] * draw(st.integers(0, 3))
    return bytes(data)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_each_parser_refuses_mutated_inputs_cleanly(name: str) -> None:
    target = TARGETS[name]
    seeds = target.seeds()

    @settings(SETTINGS, max_examples=SLOW.get(name, EXAMPLES))
    @given(st.one_of(_mutated(seeds), st.binary(max_size=512)))
    def run(data: bytes) -> None:
        check(target, data)

    run()


FINDINGS = [(name, path) for name, t in sorted(TARGETS.items()) for path in t.findings()]


@pytest.mark.parametrize(
    ("name", "path"), FINDINGS, ids=[f"{n}/{p.name}" for n, p in FINDINGS] or None
)
def test_every_kept_finding_is_refused_cleanly(name, path) -> None:  # type: ignore[no-untyped-def]
    check(TARGETS[name], path.read_bytes())


# --- properties of the formats ---------------------------------------------------------------

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.binary(max_size=64),
    st.text(max_size=32),
)
values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=40,
)


@SETTINGS
@given(values)
def test_canonical_encoding_round_trips(value) -> None:  # type: ignore[no-untyped-def]
    data = canonical.encode(value)
    assert canonical.encode(canonical.decode(data)) == data


@SETTINGS
@given(values)
def test_canonical_decode_refuses_any_other_encoding_of_a_value(value) -> None:  # type: ignore[no-untyped-def]
    import msgpack

    data = canonical.encode(value)
    # msgpack's own packer, unsorted maps and smallest-first widths left to it: any byte string
    # that differs from the canonical one must be refused, never silently accepted.
    other = msgpack.packb(value, use_bin_type=True)
    if other != data:
        with pytest.raises(canonical.CanonicalError):
            canonical.decode(other)


_KEY = signing.SigningKey.generate()


@SETTINGS
@given(st.sampled_from(sorted(messages.SCHEMAS)), st.dictionaries(st.text(max_size=12), values))
def test_a_signed_envelope_with_any_body_opens_or_is_bad_body(mtype, body) -> None:  # type: ignore[no-untyped-def]
    # Signed by hand: seal() itself refuses a body its schema does not allow.
    part = envelope._signed_part(1, mtype, "peer", 1000, bytes(16), body)
    sig = _KEY.sign(envelope.ENVELOPE_DOMAIN, part)
    data = canonical.encode([1, mtype, "peer", 1000, bytes(16), body, sig])
    try:
        env = envelope.open_envelope(
            data, now_ms=1000, sender_key=lambda s: _KEY.public_key if s == "peer" else None
        )
    except envelope.EnvelopeError as exc:
        assert exc.code == "bad-body"
    else:
        assert env.type == mtype and env.sender == "peer"


_entry = st.binary(min_size=index.ENTRY_BYTES, max_size=index.ENTRY_BYTES)


@SETTINGS
@given(
    st.lists(st.tuples(st.booleans(), st.lists(_entry, min_size=1, max_size=6)), max_size=12),
    st.lists(_entry, min_size=1, max_size=4),
)
def test_a_replica_is_the_multiset_its_deltas_say(deltas, extra) -> None:  # type: ignore[no-untyped-def]
    """Adds and removes in feed order against a Counter: entries and lookups agree."""
    replica = index.ReplicaIndex("pdq-lsh-1", b"k" * 8)
    model: collections.Counter[bytes] = collections.Counter()
    for add, entries in deltas:
        # Removals name entries that were added (a holder removes what it published).
        if not add:
            entries = [e for e in entries if model[e]] or list(model)[:1]
            if not entries:
                continue
        packed = b"".join(entries)
        if add:
            replica.add(packed)
            model.update(entries)
        else:
            replica.remove(packed)
            model.subtract(entries)
            model = +model
    assert replica.entries == len(model)
    probes = [e + bytes(40) for e in list(model)[:8] + extra]
    found = replica.lookup_many(probes)
    for probe, refs in zip(probes, found, strict=True):
        tag, mask = probe[: index.TAG_BYTES], probe[index.TAG_BYTES : index.ENTRY_BYTES]
        expected = sorted(  # candidates: the tag and the unmasked reference (spec 8.5)
            tag + bytes(a ^ b for a, b in zip(e[index.TAG_BYTES :], mask, strict=True))
            for e in model
            if e.startswith(tag)
        )
        assert refs == expected
