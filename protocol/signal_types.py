"""The signal-type registry: one entry per signal type, the one place that says what a type is.

An entry names the type on the wire and in banks, its hash size, the LSH sub-scheme and bucket
signal name its keys use, how it is exchanged (a picture hash, a picture's tiles, a video's
frames, an exact digest), its distance threshold and match rule, the fields a holder may release
with one of its items, its spec section and its vector files. Everything that differs between
signal types is reached through an entry (``for_variant``, ``probe_keys``, ``release_schema``);
code outside this module and the per-type modules it names does not test a signal's name.

Adding a signal type is one :func:`register` call here, its pure module (like
:mod:`blindmatch.protocol.video`), its node adapter, its spec section and its vectors.

Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from blindmatch.protocol import derivative, video
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import PeerExchange, QueryHash
from blindmatch.protocol.schema import Field, blob, integer, list_of, text
from blindmatch.protocol.signals import (
    PDQ_BYTES,
    PDQ_MATCH_THRESHOLD,
    SHA256_BYTES,
    SignalType,
)


class Exchange(enum.Enum):
    """How a signal type's hashes meet a holder's (specs/protocol.md 10.5)."""

    PICTURE = "picture"  # one hash per item: LSH buckets, then the private threshold test
    TILES = "tiles"  # a picture's region hashes, each under its cell's buckets, then the test
    FRAMES = "frames"  # a video's frame hashes under the frame buckets, then the test per frame
    EXACT = "exact"  # a digest: one bucket key, equality (no threshold test needed)


class UnknownSignalType(ValueError):
    pass


# Release fields every item may carry, whatever its type (specs/protocol.md 7.4).
PROVENANCE_CLASSES = (
    "survivor-submitted",
    "moderator-confirmed",
    "peer-sourced",
    "protected-source",
    "generator",
)
BASE_RELEASE_FIELDS: Mapping[str, Field] = {
    "categories": Field(
        list_of(text(32, pattern=r"[a-z0-9][a-z0-9-]*"), max_items=8), required=False
    ),
    "provenance": Field(text(32, choices=PROVENANCE_CLASSES), required=False),
    "signal": Field(text(32, pattern=r"[a-z0-9_./-]+"), required=False),
}
_GROUP = Field(blob(exact=8), required=False)
# The mask of a protected source's quality cells (derivatives 6), one bit per cell.
_SOURCE_CELLS = Field(integer(0, (1 << 41) - 1), required=False)
# Which of a picture's banked off-centre crops matched (signals-and-lsh.md 3.5): the corner the
# crop keeps (c: centred) and the percentage cut off each dimension.
BANKED_CROP_PATTERN = r"crop/(tl|tr|bl|br|c)/[1-9][0-9]?"
_BANKED_CROP = Field(text(16, pattern=BANKED_CROP_PATTERN), required=False)


@dataclass(frozen=True)
class SignalTypeEntry:
    name: str  # the type's name in banks, logs, release ``signal`` and results
    hash_bytes: int
    exchange: Exchange
    lsh: str | None  # the LSH sub-scheme its bucket keys use; None for an exact digest
    bucket_signal: str  # the signal name inside its bucket keys ("pdq-tile/<cell>": per cell)
    distance_threshold: int  # the private threshold test's T for one of its hashes
    match_rule: str  # the rule in one sentence (the spec section is normative)
    release_fields: Mapping[str, Field]  # release fields beyond BASE_RELEASE_FIELDS
    release_signal: str  # the value of ``signal`` a holder releases with such an item
    spec: str  # the normative section
    vectors: tuple[str, ...]  # vector files (specs/vectors/) that pin it down
    bank_item: bool  # whether a bank item can be of this type (else it is derived from one)
    perceptual: bool  # matched by distance (quality-gated) rather than by equality
    threatexchange_name: str | None = None
    threatexchange_indicator: str | None = None
    # Whether a query hash's variant label belongs to this type; the PICTURE type owns every
    # label no other type claims.
    owns_variant: Callable[[str], bool] = field(default=lambda v: False, compare=False)
    # The bucket keys a query hash of this type probes, under a probe budget.
    probe_keys: Callable[[QueryHash, int | None], list[bytes]] | None = field(
        default=None, compare=False
    )

    def summary(self) -> dict[str, Any]:
        """The entry as data (specs/vectors/signal_types.json lists every entry this way)."""
        return {
            "name": self.name,
            "hash_bytes": self.hash_bytes,
            "exchange": self.exchange.value,
            "lsh": self.lsh,
            "bucket_signal": self.bucket_signal,
            "distance_threshold": self.distance_threshold,
            "release_fields": sorted(self.release_fields),
            "release_signal": self.release_signal,
            "bank_item": self.bank_item,
            "perceptual": self.perceptual,
            "threatexchange_name": self.threatexchange_name,
            "threatexchange_indicator": self.threatexchange_indicator,
            "spec": self.spec,
            "vectors": list(self.vectors),
        }


_REGISTRY: dict[str, SignalTypeEntry] = {}


def register(entry: SignalTypeEntry) -> SignalTypeEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"signal type {entry.name} is already registered")
    for other in _REGISTRY.values():
        clash = set(other.release_fields) & set(entry.release_fields)
        for name in clash:
            if other.release_fields[name] is not entry.release_fields[name]:
                raise ValueError(f"release field {name} is defined twice differently")
    if set(entry.release_fields) & set(BASE_RELEASE_FIELDS):
        raise ValueError("a signal type cannot redefine a base release field")
    _REGISTRY[entry.name] = entry
    return entry


def get(name: str) -> SignalTypeEntry:
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise UnknownSignalType(f"unknown signal type {name!r}")
    return entry


def entries() -> tuple[SignalTypeEntry, ...]:
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def bank_signal_names() -> tuple[str, ...]:
    """The signal types a bank item can have, in registration order."""
    return tuple(e.name for e in _REGISTRY.values() if e.bank_item)


def perceptual_bank_signal_names() -> frozenset[str]:
    return frozenset(e.name for e in _REGISTRY.values() if e.bank_item and e.perceptual)


def for_variant(variant: str) -> SignalTypeEntry:
    """The signal type a query hash belongs to, by its variant label."""
    for entry in _REGISTRY.values():
        if entry.exchange is not Exchange.PICTURE and entry.owns_variant(variant):
            return entry
    return PDQ


def release_schema() -> dict[str, Field]:
    """Every field a holder may release about a candidate (all optional): the base fields and
    each registered type's own."""
    out = dict(BASE_RELEASE_FIELDS)
    for entry in _REGISTRY.values():
        out.update(entry.release_fields)
    return out


def probe_keys(query: QueryHash, budget: int | None = None) -> list[bytes]:
    entry = for_variant(query.variant)
    if entry.probe_keys is None:
        raise UnknownSignalType(f"{entry.name} hashes are not probed")
    return entry.probe_keys(query, budget)


class SignalPeerExchange(PeerExchange):
    """:class:`PeerExchange` for one batch mixing signal types (a picture's hashes and tiles, a
    video's frames): each query hash is probed under its own type's buckets."""

    def probe_keys(self, query: QueryHash) -> list[bytes]:
        return probe_keys(query, self.probe_budget)

    def release_fields(self) -> Mapping[str, Field]:
        return release_schema()

    def next_round(self) -> list[int]:
        """A picture with tiles asks only what the derivative rule needs (derivatives.md 6.5);
        any other batch asks about every candidate at once."""
        if any(_is_tile_variant(q.variant) for q in self.queries):
            return derivative.staged_round(self, derivative.PDQ_TILES_1)
        return super().next_round()


# --- the registered types ----------------------------------------------------------------------


def _picture_probe(query: QueryHash, budget: int | None) -> list[bytes]:
    return PDQ_LSH_1.probe_keys(query.hash, query.float_vector, budget)


def _is_tile_variant(variant: str) -> bool:
    if not derivative.is_cell_variant(variant):
        return False
    try:
        derivative.Cell.parse(variant)
    except derivative.DerivativeError:
        return False
    return True


def _tile_probe(query: QueryHash, budget: int | None) -> list[bytes]:
    cell = derivative.Cell.parse(query.variant)
    scheme = derivative.PDQ_TILES_1
    budget = scheme.query_probes if budget is None else budget
    return scheme.probe_keys(cell, query.hash, query.float_vector, budget)


PDQ = register(
    SignalTypeEntry(
        name=SignalType.PDQ.value,
        hash_bytes=PDQ_BYTES,
        exchange=Exchange.PICTURE,
        lsh=PDQ_LSH_1.name,
        bucket_signal=SignalType.PDQ.value,
        distance_threshold=PDQ_MATCH_THRESHOLD,
        match_rule="a query hash (or one of its variants) within the item's threshold (<= 31)",
        # A protected source's whole-picture item names its tiles' group too (derivatives 6);
        # a match through one of the picture's banked crops says which.
        release_fields={
            "group": _GROUP,
            "source_cells": _SOURCE_CELLS,
            "banked_crop": _BANKED_CROP,
        },
        release_signal=SignalType.PDQ.value,
        spec="specs/signals-and-lsh.md#11-pdq",
        vectors=("lsh.json",),
        bank_item=True,
        perceptual=True,
        threatexchange_name="pdq",
        threatexchange_indicator="HASH_PDQ",
        probe_keys=_picture_probe,
    )
)

PDQ_TILES = register(
    SignalTypeEntry(
        name=derivative.PDQ_TILES_1.name,
        hash_bytes=PDQ_BYTES,
        exchange=Exchange.TILES,
        lsh=PDQ_LSH_1.name,
        bucket_signal=derivative.SIGNAL + "/<cell>",
        distance_threshold=derivative.PDQ_TILES_1.threshold,
        match_rule=(
            f">= {derivative.PDQ_TILES_1.min_regions} distinct quality cells confirmed against "
            "one source group; coverage decides copy or derivative"
        ),
        release_fields={"group": _GROUP, "source_cells": _SOURCE_CELLS},
        release_signal=derivative.SIGNAL,
        spec="specs/derivatives.md",
        vectors=("derivative.json",),
        bank_item=False,  # derived from a protected source's photo, never imported alone
        perceptual=True,
        owns_variant=_is_tile_variant,
        probe_keys=_tile_probe,
    )
)

VPDQ = register(
    SignalTypeEntry(
        name=video.SIGNAL,
        hash_bytes=PDQ_BYTES,
        exchange=Exchange.FRAMES,
        lsh=PDQ_LSH_1.name,
        bucket_signal=SignalType.VPDQ_FRAME.value,
        distance_threshold=video.FRAME_THRESHOLD,
        match_rule=(
            "vPDQ's: the larger of query-match % and compared-match % of distinct quality "
            "frames confirmed (<= 31) is at least 80"
        ),
        release_fields={
            "group": _GROUP,
            "frames": Field(integer(1, video.MAX_INDEX_FRAMES), required=False),
        },
        release_signal=video.SIGNAL,
        spec="specs/signals-and-lsh.md#7-vpdq-video-across-the-federation",
        vectors=("video.json",),
        bank_item=True,
        perceptual=True,
        threatexchange_name="vpdq",
        threatexchange_indicator="HASH_VIDEO_VPDQ",
        owns_variant=video.is_frame_variant,
        probe_keys=video.probe_keys,
    )
)

SHA256 = register(
    SignalTypeEntry(
        name=SignalType.SHA256.value,
        hash_bytes=SHA256_BYTES,
        exchange=Exchange.EXACT,
        lsh=None,
        bucket_signal=SignalType.SHA256.value,
        distance_threshold=0,
        match_rule="the same 32-byte digest",
        release_fields={},
        release_signal=SignalType.SHA256.value,
        spec="specs/signals-and-lsh.md#15-sha-256",
        vectors=("lsh.json",),
        bank_item=True,
        perceptual=False,
        threatexchange_name=None,  # python-threatexchange ships MD5 signals only
        threatexchange_indicator="HASH_SHA256",
    )
)
