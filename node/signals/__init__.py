"""Node-side adapters, one per signal type of the protocol registry (protocol/signal_types/).

An adapter is everything the node does differently for one signal type:

* **live items**: which of its stored hashes are in the blinded index (each with the bucket
  keys it is indexed under) and, for a candidate a peer asks about, the hash, bands and release
  the holder answers with. The SQL filters items by the type's name as a bound value; no
  signal name is written into SQL.
* **who is asked**: a type whose items only some roster role holds (protected sources' tiles
  are banked by hubs) is only asked of peers with that role.
* **bank items**: a type held as a signal string of parts (a video's frame list) parses it,
  stores the parts in its own tables (``node/storage/signal_tables/<type>.py``, migrations in
  the node's one sequence) and writes it back for exports.
* **hasher / classifier**: which media it hashes (``accepts``, sniffed; ``accepts_path``), its
  query hashes and bank value of such media, and how its confirmations become the matches a
  platform reviews (``review``, called by ``node/cases``).

The node loops over :data:`ADAPTERS`; adding a signal type adds its registry entry, its adapter
module here, its spec section and its vectors.
"""

from __future__ import annotations

import os

from blindmatch.node.signals.base import SignalAdapter, SignalValueError
from blindmatch.node.signals.learned import LearnedAdapter
from blindmatch.node.signals.pdq import PdqAdapter
from blindmatch.node.signals.sha256 import Sha256Adapter
from blindmatch.node.signals.tiles import TilesAdapter
from blindmatch.node.signals.vpdq import VpdqAdapter
from blindmatch.node.storage.migrations import MIGRATIONS
from blindmatch.protocol import signal_types
from blindmatch.protocol.matching import QueryHash

ADAPTERS: tuple[SignalAdapter, ...] = (
    PdqAdapter(),
    TilesAdapter(),
    VpdqAdapter(),
    Sha256Adapter(),
    LearnedAdapter(),
)
_BY_NAME = {a.entry.name: a for a in ADAPTERS}
assert set(_BY_NAME) == set(signal_types.names()), "every registered type has one adapter"
# An adapter's tables are in the node's one migration sequence (storage gathers them).
assert all(m in MIGRATIONS for a in ADAPTERS for m in a.migrations), "adapter tables not applied"


def adapter(name: str) -> SignalAdapter:
    return _BY_NAME[signal_types.get(name).name]


def adapter_for(query: QueryHash) -> SignalAdapter:
    """The adapter of the signal type a query hash belongs to (by its variant)."""
    return _BY_NAME[signal_types.for_variant(query.variant).name]


def asked_of(query: QueryHash, roles: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
    """Whether a peer with these roster roles is asked about this query hash."""
    role = adapter_for(query).asked_of_role
    return role is None or role in roles


def for_media(data: bytes) -> SignalAdapter | None:
    """The adapter of a type that claims these media bytes (None: a picture, hashed as PDQ)."""
    return next((a for a in ADAPTERS if a.accepts(data)), None)


def for_path(path: str | os.PathLike[str]) -> SignalAdapter | None:
    """The adapter of a type that claims this file by its name (None: a picture)."""
    return next((a for a in ADAPTERS if a.accepts_path(path)), None)


__all__ = [
    "ADAPTERS",
    "SignalAdapter",
    "SignalValueError",
    "adapter",
    "adapter_for",
    "asked_of",
    "for_media",
    "for_path",
]
