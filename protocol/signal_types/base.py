"""The signal-type registry's machinery: what an entry is, and the look-ups over the entries.

An entry names the type on the wire and in banks, its hash size, the LSH sub-scheme and bucket
signal name its keys use, how it is exchanged (a picture hash, a picture's tiles, a video's
frames, an exact digest), its distance threshold and match rule, the fields a holder may release
with one of its items, the conformance operations it defines, its spec section and its vector
files. Everything that differs between signal types is reached through an entry
(``for_variant``, ``probe_keys``, ``release_schema``, ``conformance_ops``); code outside a type's
entry module does not test the type's name.

Each type's entry is its own module (or subpackage) of this package, which calls
:func:`register` once; the package's ``__init__`` imports them in order.

Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from blindmatch.protocol.matching import PeerExchange, QueryHash
from blindmatch.protocol.schema import Field, blob, integer, list_of, text

ConformanceOp = Callable[[dict[str, Any]], dict[str, Any]]


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
# Release fields several types share (one definition each, so register() accepts them twice).
GROUP = Field(blob(exact=8), required=False)
# The mask of a protected source's quality cells (derivatives 6), one bit per cell.
SOURCE_CELLS = Field(integer(0, (1 << 41) - 1), required=False)


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
    # Whether a query hash's variant label belongs to this type; the first PICTURE type owns
    # every label no type claims.
    owns_variant: Callable[[str], bool] = field(default=lambda v: False, compare=False)
    # The bucket keys a query hash of this type probes, under a probe budget.
    probe_keys: Callable[[QueryHash, int | None], list[bytes]] | None = field(
        default=None, compare=False
    )
    # The rounds a batch with some of this type's query hashes asks in (derivatives.md 6.5);
    # None: every candidate at once.
    next_round: Callable[[PeerExchange], list[tuple[int, int]]] | None = field(
        default=None, compare=False
    )
    # Conformance operations the type defines (specs/protocol.md 9), optional in the node
    # profile, with the error codes they answer and when.
    conformance_ops: Mapping[str, ConformanceOp] = field(default_factory=dict, compare=False)
    conformance_errors: Mapping[str, str] = field(default_factory=dict, compare=False)

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
    """The signal type a query hash belongs to, by its variant label: the type that claims the
    label, else the first picture type (it owns every label no type claims)."""
    for entry in _REGISTRY.values():
        if entry.owns_variant(variant):
            return entry
    for entry in _REGISTRY.values():
        if entry.exchange is Exchange.PICTURE:
            return entry
    raise UnknownSignalType("no picture signal type is registered")


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

    def next_round(self) -> list[tuple[int, int]]:
        """A batch with a type that asks in stages (a picture with tiles asks only what the
        derivative rule needs, derivatives.md 6.5) asks in its stages; any other batch asks
        about every candidate at once."""
        for entry in _REGISTRY.values():
            if entry.next_round is not None and any(
                entry.owns_variant(q.variant) for q in self.queries
            ):
                return entry.next_round(self)
        return super().next_round()


def conformance_ops() -> dict[str, ConformanceOp]:
    """The conformance operations the registered types define."""
    out: dict[str, ConformanceOp] = {}
    for entry in _REGISTRY.values():
        out.update(entry.conformance_ops)
    return out


def conformance_errors() -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in _REGISTRY.values():
        out.update(entry.conformance_errors)
    return out
