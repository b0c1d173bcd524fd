"""The signal-type registry: one entry per type, and everything that differs between types is
reached through it (variants, probe keys, release fields, bank types)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from blindmatch.protocol import derivative, messages, schema, signal_types, transparency
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.signal_types.vpdq import video

ROOT = Path(__file__).resolve().parent.parent
H = bytes(range(32))


def test_the_five_types_are_registered_with_their_parameters() -> None:
    assert signal_types.names() == ("pdq", "pdq-tiles-1", "vpdq", "sha256", "learned-lsh-1")
    assert signal_types.bank_signal_names() == ("pdq", "vpdq", "sha256", "learned-lsh-1")
    assert signal_types.perceptual_bank_signal_names() == {"pdq", "vpdq", "learned-lsh-1"}
    pdq, tiles, vpdq, sha, learned = (signal_types.get(n) for n in signal_types.names())
    assert (learned.exchange, learned.lsh) == (signal_types.Exchange.PICTURE, "learned-lsh-1")
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
    assert frame == PDQ_LSH_1.probe_keys(H, signal=signal_types.VPDQ.bucket_signal)
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
        "banked_crop",
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


def _signal_name_tests(source: str) -> list[int]:
    """Lines of ``source`` that compare something with a registered signal type's name."""
    names = set(signal_types.names())
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(
            isinstance(c, ast.Constant) and c.value in names for c in [node.left, *node.comparators]
        ):
            lines.append(node.lineno)
    return lines


def _sql_with_signal_names(source: str) -> list[int]:
    """Lines of ``source`` with a string literal quoting a signal type's name as SQL does."""
    quoted = {f"'{n}'" for n in signal_types.names()}
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and any(q in node.value for q in quoted)
        and any(k in node.value.upper() for k in ("SELECT ", "WHERE ", " AND ", "INSERT "))
    ]


# Where a signal type's name may be tested: the registry (every entry's module, at any depth) and
# the node's adapters with their tables.
NAME_TESTS_ALLOWED = ("protocol/signal_types/", "node/signals/", "node/storage/signal_tables/")


def _name_test_offenders(root: Path) -> dict[str, list[int]]:
    """Every module of ``root``'s protocol and node packages, at any depth, outside
    NAME_TESTS_ALLOWED that tests a signal type's name or writes one into SQL."""
    files = sorted((root / "protocol").rglob("*.py")) + sorted((root / "node").rglob("*.py"))
    offenders = {}
    for p in files:
        rel = p.relative_to(root).as_posix()
        if rel.startswith(NAME_TESTS_ALLOWED):
            continue
        source = p.read_text()
        lines = _signal_name_tests(source) + _sql_with_signal_names(source)
        if lines:
            offenders[rel] = lines
    return offenders


def test_no_signal_name_is_tested_outside_the_registry_and_adapters() -> None:
    """Only the registry's entries (with their pure parts) and the node's adapters may branch on
    a signal type's name; nothing writes one into SQL."""
    assert _name_test_offenders(ROOT) == {}


def test_the_name_test_scan_sees_nested_modules(tmp_path: Path) -> None:
    plant = {
        "protocol/lsh.py": "def f(s):\n    return s == 'vpdq'\n",
        "protocol/deep/er/x.py": "def f(s):\n    x = 1\n    return 'pdq-tiles-1' != s\n",
        "node/a/b.py": "Q = \"SELECT hash FROM items WHERE signal_type = 'sha256'\"\n",
        "protocol/signal_types/vpdq/video.py": "def f(s):\n    return s == 'vpdq'\n",
        "node/signals/vpdq/rows.py": "def f(s):\n    return s == 'vpdq'\n",
    }
    for rel, source in plant.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(source)
    assert _name_test_offenders(tmp_path) == {
        "protocol/lsh.py": [2],
        "protocol/deep/er/x.py": [3],
        "node/a/b.py": [1],
    }


# --- what a signal type owns ---------------------------------------------------------------------
#
# A signal type is its registry entry (protocol/signal_types/<module>), its node adapter
# (node/signals/<module>, with its tables in node/storage/signal_tables/<module>.py), its spec
# section and its vectors (specs/). Nothing else in the package imports its modules or names it:
# no import, no identifier with its name in it (``VPDQ``, ``VpdqAdapter``, ``hash_vpdq``), no
# string that is its name, ThreatExchange name, indicator or bucket signal.
#
# The base types, ``pdq`` and ``sha256``, are not sealed: the protocol's generic code is built on
# them (a PDQ hash is the LSH schemes' value, a SHA-256 digest the exact key) and may name them.

# The types that live entirely behind the seam, by their module's name.
SEALED = {"vpdq": "vpdq", "learned-lsh-1": "learned"}
# The registrations, which count as part of each type's registry entry: the registry's
# ``__init__`` imports each entry module and the adapters' ``__init__`` imports each adapter and
# lists it: one import of the type's own module and at most one more line naming it, no more.
# Nothing else outside a type's own modules is exempt.
INDEXES = {"protocol/signal_types/__init__.py", "node/signals/__init__.py"}


def _owned(module: str) -> tuple[str, ...]:
    """Path prefixes of what a type owns in the package, for its module's name."""
    return (
        f"protocol/signal_types/{module}",
        f"node/signals/{module}",
        f"node/storage/signal_tables/{module}",
    )


def _owned_modules(module: str) -> tuple[str, ...]:
    return tuple("blindmatch." + p.replace("/", ".") for p in _owned(module))


def _tokens(identifier: str) -> set[str]:
    """``VpdqFrame`` -> {vpdq, frame}; ``hash_vpdq_x`` -> {hash, vpdq, x}."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", identifier).lower()
    return {w for w in words.split("_") if w}


def _namings(source: str, name: str, module: str) -> list[int]:
    """Lines of ``source`` that import signal type ``name``'s modules (``module``) or name it."""
    entry = signal_types.get(name)
    strings = {
        s
        for s in (
            entry.name,
            entry.threatexchange_name,
            entry.threatexchange_indicator,
            entry.bucket_signal,
        )
        if s
    }
    owned = _owned_modules(module)
    tree = ast.parse(source)
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    lines = []
    for node in ast.walk(tree):
        found = False
        if isinstance(node, ast.Import):
            found = any(a.name.startswith(owned) for a in node.names)
            found |= any(module in _tokens(a.asname or a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
            found = any(t == o or t.startswith(o + ".") for t in targets for o in owned)
            found |= any(module in _tokens(a.asname or a.name) for a in node.names)
        elif isinstance(node, ast.Name):
            found = module in _tokens(node.id)
        elif isinstance(node, ast.Attribute):
            found = module in _tokens(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found = module in _tokens(node.name)
        elif isinstance(node, ast.Constant) and id(node) not in docstrings:
            found = isinstance(node.value, str) and node.value in strings
        if found:
            lines.append(node.lineno)
    return sorted(set(lines))


def test_the_naming_check_finds_a_signal_type_named_outside_its_seam() -> None:
    offending = (
        "from blindmatch.protocol.signal_types.vpdq import video\n"
        "from blindmatch.protocol.signal_types import VPDQ\n"
        "from blindmatch.node.signals import vpdq\n"
        "import blindmatch.node.storage.signal_tables.vpdq\n"
        "def f(t, types):\n"
        "    if t == 'vpdq':\n"
        "        return types.VPDQ\n"
        "    return VpdqFrame, 'HASH_VIDEO_VPDQ'\n"
    )
    assert _namings(offending, "vpdq", "vpdq") == [1, 2, 3, 4, 6, 7, 8]
    clean = (
        '"""A docstring may say vpdq."""\n'
        "from blindmatch.node import signals\n"
        "def f(data):\n"
        "    adapter = signals.for_media(data)\n"
        "    return adapter and adapter.entry.name, 'vpdq signal strings, as help text'\n"
    )
    assert _namings(clean, "vpdq", "vpdq") == []


def test_a_sealed_signal_type_is_named_only_by_its_own_modules() -> None:
    """Adding a signal type touches its registry entry, its adapter, its spec section and its
    vectors: no other module of the package imports its modules or names it, except the
    one-line registrations in the two indexes (INDEXES), which count as its registry entry.

    Sealed: ``vpdq``. The base types ``pdq`` and ``sha256`` are not sealed and may stay named in
    generic code (the LSH schemes key PDQ hashes, the exact key is a SHA-256 digest).
    ``pdq-tiles-1`` is not sealed yet: its scheme (protocol/derivative.py, derivative_ops.py),
    tile hashing (node/media/tiles.py) and protected sources (banks, survivor, cases) live
    outside its entry and adapter."""
    files = [
        p
        for package in ("crypto", "protocol", "node")
        for p in sorted((ROOT / package).rglob("*.py"))
    ]
    offenders = {}
    for name, module in SEALED.items():
        assert name in signal_types.names()
        for path in files:
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(_owned(module)):
                continue
            source = path.read_text()
            lines = _namings(source, name, module)
            if rel in INDEXES and _is_registration(source, lines, module):
                continue
            if lines:
                offenders[f"{name}: {rel}"] = lines
    assert offenders == {}


def _is_registration(source: str, lines: list[int], module: str) -> bool:
    """Whether ``lines`` (an index's lines naming a type) are just its registration: one import
    from the type's own modules, and at most one more line."""
    owned = _owned_modules(module)
    imports = [
        n.lineno
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith(owned)
    ]
    return len(imports) == 1 and imports[0] in lines and len(lines) <= 2


def test_an_index_names_a_type_only_to_register_it() -> None:
    index = "from blindmatch.node.signals.vpdq import VpdqAdapter\nADAPTERS = (VpdqAdapter(),)\n"
    assert _is_registration(index, _namings(index, "vpdq", "vpdq"), "vpdq")
    more = index + "def f(a):\n    return a.entry.name == 'vpdq'\n"
    assert not _is_registration(more, _namings(more, "vpdq", "vpdq"), "vpdq")
