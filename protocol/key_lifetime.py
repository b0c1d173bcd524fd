"""The lifetime of a VOPRF key (spec 8.2): how many evaluations it may answer, and when to start
its successor.

A VOPRF key is a static-DH oracle; the evaluations it answers over its life are capped (2^44 in
version 1: the spec derives it from the factorisation of L - 1 and L + 1 and from the honest
volume of large platforms). A holder counts every element it evaluates under a key, starts a
rotation at 7/8 of the cap so that queriers re-sync to the successor's index while the old key
still answers, and refuses evaluations that would pass the cap.

Pure: the node keeps the counts durably and calls these.
"""

from __future__ import annotations

from dataclasses import dataclass

LIFETIME_CAP = 2**44
ROTATE_NUMERATOR, ROTATE_DENOMINATOR = 7, 8


class KeyExhausted(Exception):
    """An evaluation would take a key past its lifetime cap."""


@dataclass(frozen=True)
class KeyLifetime:
    cap: int = LIFETIME_CAP

    def __post_init__(self) -> None:
        if self.cap < 1:
            raise ValueError("a key's lifetime cap must be at least 1 evaluation")

    @property
    def rotate_at(self) -> int:
        """The count at which the successor key is made and its index published."""
        return max(1, self.cap * ROTATE_NUMERATOR // ROTATE_DENOMINATOR)

    def admit(self, used: int, n: int) -> int:
        """The count after answering ``n`` more evaluations; refuses (whole) past the cap."""
        if n < 0 or used < 0:
            raise ValueError("evaluation counts are non-negative")
        if used + n > self.cap:
            raise KeyExhausted(
                f"this VOPRF key has answered {used} evaluations; {n} more would pass its "
                f"lifetime cap of {self.cap}"
            )
        return used + n

    def needs_successor(self, used: int) -> bool:
        return used >= self.rotate_at
