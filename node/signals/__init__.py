"""Node-side adapters, one per signal type of the protocol registry (protocol/signal_types/).

An adapter is everything the node does differently for one signal type:

* **live items**: which of its stored hashes are in the blinded index (each with the bucket
  keys it is indexed under) and, for a candidate a peer asks about, the hash, bands and release
  the holder answers with. The SQL filters items by the type's name as a bound value; no
  signal name is written into SQL.
* **who is asked**: a type whose items only some roster role holds (protected sources' tiles
  are banked by hubs) is only asked of peers with that role.
* **hasher / classifier**: the media it hashes for a query (``node/media``), and how its
  confirmations become the matches a platform reviews (``node/cases``).

The node loops over :data:`ADAPTERS`; adding a signal type adds its registry entry, its adapter
module here, its spec section and its vectors.
"""

from __future__ import annotations

from blindmatch.node.signals.base import SignalAdapter
from blindmatch.node.signals.pdq import PdqAdapter
from blindmatch.node.signals.sha256 import Sha256Adapter
from blindmatch.node.signals.tiles import TilesAdapter
from blindmatch.node.signals.vpdq import VpdqAdapter
from blindmatch.protocol import signal_types
from blindmatch.protocol.matching import QueryHash

ADAPTERS: tuple[SignalAdapter, ...] = (
    PdqAdapter(),
    TilesAdapter(),
    VpdqAdapter(),
    Sha256Adapter(),
)
_BY_NAME = {a.entry.name: a for a in ADAPTERS}
assert set(_BY_NAME) == set(signal_types.names()), "every registered type has one adapter"


def adapter(name: str) -> SignalAdapter:
    return _BY_NAME[signal_types.get(name).name]


def adapter_for(query: QueryHash) -> SignalAdapter:
    """The adapter of the signal type a query hash belongs to (by its variant)."""
    return _BY_NAME[signal_types.for_variant(query.variant).name]


def asked_of(query: QueryHash, roles: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
    """Whether a peer with these roster roles is asked about this query hash."""
    role = adapter_for(query).asked_of_role
    return role is None or role in roles


__all__ = ["ADAPTERS", "SignalAdapter", "adapter", "adapter_for", "asked_of"]
