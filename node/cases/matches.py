"""A match as the cases see it: a peer's confirmed item, and a match to open a case for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PeerMatch:
    """One confirmed item as the node stored it (``node.MatchResult``'s fields)."""

    peer: str
    item_ref: bytes
    variant: str
    band: int
    release: dict[str, Any]


@dataclass
class ReviewMatch:
    """A match to open a case for: one holder's item (or protected source)."""

    holder: str
    item_ref: bytes
    band: int
    variant: str
    release: dict[str, Any]
    kind: str | None = None  # "copy" / "derivative" for a protected source, else None
    generator_nodes: list[str] = field(default_factory=list)
