"""The signal-type registry: one entry per type, and everything that differs between types is
reached through it (variants, probe keys, release fields, bank types)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from blindmatch.protocol import derivative, messages, schema, signal_types, transparency
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.signal_types.vpdq import video
from blindmatch.protocol.signals import SignalType

ROOT = Path(__file__).resolve().parent.parent
H = bytes(range(32))


def test_the_four_types_are_registered_with_their_parameters() -> None:
    assert signal_types.names() == ("pdq", "pdq-tiles-1", "vpdq", "sha256")
    assert signal_types.bank_signal_names() == ("pdq", "vpdq", "sha256")
    assert signal_types.perceptual_bank_signal_names() == {"pdq", "vpdq"}
    pdq, tiles, vpdq, sha = (signal_types.get(n) for n in signal_types.names())
    assert (pdq.exchange, pdq.distance_threshold, pdq.lsh) == (
        signal_types.Exchange.PICTURE,
        31,
        "pdq-lsh-1",
    )
    assert (tiles.exchange, tiles.distance_threshold) == (signal_types.Exchange.TILES, 39)
    assert (vpdq.exchange, vpdq.threatexchange_indicator) == (
        signal_types.Exchange.FRAMES,
        "HASH_VIDEO_VPDQ",
    )
    assert (sha.exchange, sha.lsh) == (signal_types.Exchange.EXACT, None)
    with pytest.raises(signal_types.UnknownSignalType):
        signal_types.get("md5")
    with pytest.raises(ValueError):
        signal_types.register(pdq)


def test_a_query_variant_names_its_type_and_its_buckets() -> None:
    assert signal_types.for_variant("original") is signal_types.PDQ
    assert signal_types.for_variant("uncrop/5") is signal_types.PDQ
    assert signal_types.for_variant("framed/identity") is signal_types.PDQ
    assert signal_types.for_variant("g4c1r2") is signal_types.PDQ_TILES
    assert signal_types.for_variant("vframe/7") is signal_types.VPDQ
    assert signal_types.for_variant("vframe/07") is signal_types.PDQ  # not canonical
    whole = signal_types.probe_keys(QueryHash(H, None, "original"))
    assert whole == PDQ_LSH_1.probe_keys(H)
    tile = signal_types.probe_keys(QueryHash(H, None, "g4c1r2"))
    assert tile == derivative.PDQ_TILES_1.probe_keys(derivative.Cell(4, 1, 2), H)
    frame = signal_types.probe_keys(QueryHash(H, None, "vframe/0"))
    assert frame == PDQ_LSH_1.probe_keys(H, signal=SignalType.VPDQ_FRAME)
    # Three signal names, three disjoint sets of buckets for the same hash.
    assert not set(whole) & set(tile) and not set(whole) & set(frame)
    assert not set(tile) & set(frame)
    assert frame == video.index_keys(H)  # a base probe is the holder's index key


def test_release_fields_and_log_signal_types_come_from_the_registry() -> None:
    assert set(messages.RELEASE_FIELDS) == {
        "categories",
        "provenance",
        "signal",
        "group",
        "source_cells",
        "frames",
    }
    release = video.release_for_frame(b"g" * 8, 12, "survivor-submitted", ["ncii"])
    assert schema.check(messages.RELEASE_FIELDS, release) == release
    with pytest.raises(schema.SchemaError):
        schema.check(messages.RELEASE_FIELDS, {**release, "frames": 0})
    assert signal_types.bank_signal_names() == transparency.SIGNAL_TYPES


def test_entries_describe_themselves_for_the_spec() -> None:
    for entry in signal_types.entries():
        summary = entry.summary()
        assert summary["name"] == entry.name
        for vectors in entry.vectors:
            assert (ROOT / "specs" / "vectors" / vectors).exists(), vectors
        assert (ROOT / entry.spec.split("#")[0]).exists()


def _signal_name_tests(path: Path) -> list[int]:
    """Lines of ``path`` that compare something with a registered signal type's name."""
    names = set(signal_types.names())
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare) and any(
            isinstance(c, ast.Constant) and c.value in names for c in [node.left, *node.comparators]
        ):
            lines.append(node.lineno)
    return lines


def _sql_with_signal_names(path: Path) -> list[int]:
    """Lines of ``path`` with a string literal quoting a signal type's name as SQL does."""
    quoted = {f"'{n}'" for n in signal_types.names()}
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and any(q in node.value for q in quoted)
        and any(k in node.value.upper() for k in ("SELECT ", "WHERE ", " AND ", "INSERT "))
    ]


def test_no_signal_name_is_tested_outside_the_registry_and_adapters() -> None:
    """Only the registry, the per-type protocol modules and the node's adapters may branch on a
    signal type's name; nothing writes one into SQL."""
    allowed = {"protocol/signal_types.py", "protocol/lsh_ops.py", "protocol/signals.py"}
    files = sorted((ROOT / "protocol").glob("*.py")) + sorted((ROOT / "node").rglob("*.py"))
    offenders = {}
    for p in files:
        rel = p.relative_to(ROOT).as_posix()
        if rel in allowed or rel.startswith("node/signals/"):
            continue
        lines = _signal_name_tests(p) + _sql_with_signal_names(p)
        if lines:
            offenders[rel] = lines
    assert offenders == {}
