"""Clocks: the one place the node reads the wall clock.

Everything below the CLI and the server takes a ``now`` (integer unix seconds, UTC) from a
clock passed in, so storage and protocol code is deterministic under test.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """Current time as integer unix seconds (UTC)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> int:
        return int(time.time())


class FixedClock:
    """A clock that only moves when told to (tests, simulations)."""

    def __init__(self, start: int = 1_700_000_000) -> None:
        self._now = int(start)

    def now(self) -> int:
        return self._now

    def set(self, when: int) -> None:
        self._now = int(when)

    def advance(self, seconds: int) -> int:
        self._now += int(seconds)
        return self._now
