"""Bit-sampling LSH over 256-bit PDQ hashes, with query-directed multi-probe.

The scheme is public and versioned; ``specs/signals-and-lsh.md`` is its normative description
and ``specs/vectors/lsh.json`` its test vectors. In short:

* Table ``t`` (0 <= t < L) samples ``k`` bit positions of the hash. The positions come from a
  public derivation: sort 0..255 by SHA-256(tag || "table" || u16be(t) || u8(position)) and keep
  the first ``k``; within the table they are used in ascending order.
* A holder indexes L bucket keys per hash, one per table:
  ``u8(len(tag)) || tag || u8(len(signal)) || signal || u16be(t) || packed sampled bits``,
  where the sampled bits are packed most significant first into ceil(k / 8) bytes, zero-padded.
  The keys are the OPRF inputs; the scheme, the signal type and the table are domain-separated.
* A querier asks for the L base keys of its hash and then for perturbed keys: in a table, a set
  of its sampled bits is flipped. Perturbations are ranked by their cost, the sum of the squared
  distances of the flipped bits' DCT values from the hash's median (a bit whose value sits near
  the median is the one an edit most likely flips), cheapest first across all tables.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from blindmatch.protocol.signals import (
    PDQ_BITS,
    HashFormatError,
    SignalType,
    check_pdq_bytes,
    pdq_to_bits,
)


@dataclass(frozen=True)
class Probe:
    """One bucket a querier asks for: a table and the sampled positions it flipped."""

    table: int
    flipped: tuple[int, ...]  # hash bit positions, ascending; () for the base key
    cost: float
    key: bytes


@dataclass(frozen=True)
class BitSamplingScheme:
    name: str
    signal_type: SignalType
    tables: int  # L: bucket keys a holder indexes per hash
    bits_per_table: int  # k
    probe_budget: int  # default and maximum probe keys per query hash
    candidate_bits: int  # m: in each table, only its m least-certain bits are ever flipped
    max_flips: int  # at most this many bits are flipped in one probe
    _positions_cache: dict[str, tuple[tuple[int, ...], ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not 1 <= self.tables <= 0xFFFF:
            raise ValueError("tables must be in 1..65535")
        if not 1 <= self.bits_per_table <= PDQ_BITS:
            raise ValueError("bits_per_table must be in 1..256")
        if not 0 <= self.candidate_bits <= self.bits_per_table:
            raise ValueError("candidate_bits must be in 0..bits_per_table")

    @cached_property
    def tag(self) -> bytes:
        return b"blindmatch/lsh/" + self.name.encode("ascii")

    @cached_property
    def _key_prefix(self) -> bytes:
        tag = self.tag
        signal = self.signal_type.value.encode("ascii")
        return bytes([len(tag)]) + tag + bytes([len(signal)]) + signal

    @cached_property
    def table_positions(self) -> tuple[tuple[int, ...], ...]:
        """The k sampled bit positions of each table, ascending."""
        out = []
        for t in range(self.tables):
            order = sorted(
                range(PDQ_BITS),
                key=lambda p, t=t: hashlib.sha256(
                    self.tag + b"table" + t.to_bytes(2, "big") + bytes([p])
                ).digest(),
            )
            out.append(tuple(sorted(order[: self.bits_per_table])))
        return tuple(out)

    @cached_property
    def _position_matrix(self) -> np.ndarray:
        return np.array(self.table_positions, dtype=np.intp)  # (L, k)

    @property
    def key_length(self) -> int:
        return len(self._key_prefix) + 2 + (self.bits_per_table + 7) // 8

    def bucket_key(self, table: int, sampled_bits: Sequence[int] | np.ndarray) -> bytes:
        """The key of ``table``'s bucket holding the given k sampled bit values (in ascending
        position order)."""
        bits = np.asarray(sampled_bits, dtype=np.uint8)
        if bits.shape != (self.bits_per_table,):
            raise ValueError("wrong number of sampled bits")
        return self._key_prefix + table.to_bytes(2, "big") + np.packbits(bits).tobytes()

    def index_keys(self, hash32: bytes) -> list[bytes]:
        """The L bucket keys a holder indexes for one hash (table order)."""
        bits = pdq_to_bits(hash32)
        sampled = bits[self._position_matrix]  # (L, k)
        packed = np.packbits(sampled, axis=1)
        prefix = self._key_prefix
        return [prefix + t.to_bytes(2, "big") + packed[t].tobytes() for t in range(self.tables)]

    def probes(
        self,
        hash32: bytes,
        float_vector: Sequence[float] | np.ndarray | None = None,
        budget: int | None = None,
    ) -> list[Probe]:
        """The buckets a querier asks for, in the order the spec fixes (cheapest first).

        Without a float vector only the base keys are returned (nothing tells which bits are
        uncertain). ``budget`` caps the number of probes, the L base keys included.
        """
        check_pdq_bytes(hash32)
        budget = self.probe_budget if budget is None else budget
        if not 0 <= budget <= self.probe_budget:
            raise ValueError(f"budget must be in 0..{self.probe_budget}")
        bits = pdq_to_bits(hash32)
        base_rows = bits[self._position_matrix]
        ranked = self.ranked_perturbations(float_vector, budget)
        out: list[Probe] = []
        for cost, table, flipped in ranked:
            row = base_rows[table].copy()
            if flipped:
                pos = self.table_positions[table]
                for p in flipped:
                    j = pos.index(p)
                    row[j] ^= 1
            out.append(Probe(table, flipped, cost, self.bucket_key(table, row)))
        return out

    def probe_keys(
        self,
        hash32: bytes,
        float_vector: Sequence[float] | np.ndarray | None = None,
        budget: int | None = None,
    ) -> list[bytes]:
        return [p.key for p in self.probes(hash32, float_vector, budget)]

    def ranked_perturbations(
        self, float_vector: Sequence[float] | np.ndarray | None, budget: int
    ) -> list[tuple[float, int, tuple[int, ...]]]:
        """(cost, table, flipped positions) for the first ``budget`` probes, in probe order.

        Order: ascending cost; ties by table index, then by the flipped positions compared as
        ascending tuples. The L base keys (cost 0) come first.
        """
        base = [(0.0, t, ()) for t in range(min(budget, self.tables))]
        if float_vector is None or budget <= self.tables or self.candidate_bits == 0:
            return base
        uncertainty = perturbation_costs(float_vector)
        # Per table: its candidate positions ordered by (cost, position).
        candidates: list[list[tuple[float, int]]] = []
        for pos in self.table_positions:
            ranked = sorted((float(uncertainty[p]), p) for p in pos)[: self.candidate_bits]
            candidates.append(ranked)
        # Best-first enumeration of subsets (Lv et al.'s shift/expand over sorted candidates).
        # A heap entry is (cost, table, flipped positions sorted, indices into the candidates);
        # each subset is generated exactly once, and costs are non-decreasing along both moves,
        # so pops come out in ascending cost.
        heap: list[tuple[float, int, tuple[int, ...], tuple[int, ...]]] = []
        for t, cand in enumerate(candidates):
            if cand and self.max_flips >= 1:
                heapq.heappush(heap, (cand[0][0], t, (cand[0][1],), (0,)))
        popped: list[tuple[float, int, tuple[int, ...]]] = []
        wanted = budget - len(base)
        # Pop until ``wanted`` are out, then keep popping entries that tie with the last one
        # (a child never costs less than its parent), so the final sort applies the spec's
        # tie-break exactly even when costs are equal.
        while heap and (len(popped) < wanted or heap[0][0] <= popped[-1][0]):
            cost, t, flipped, idx = heapq.heappop(heap)
            popped.append((cost, t, flipped))
            cand = candidates[t]
            last = idx[-1]
            if last + 1 < len(cand):
                # shift: replace the last candidate by the next one
                heapq.heappush(heap, self._entry(cand, t, (*idx[:-1], last + 1)))
                # expand: add the next one
                if len(idx) < self.max_flips:
                    heapq.heappush(heap, self._entry(cand, t, (*idx, last + 1)))
        popped.sort()
        return base + popped[:wanted]

    @staticmethod
    def _entry(
        cand: list[tuple[float, int]], table: int, idx: tuple[int, ...]
    ) -> tuple[float, int, tuple[int, ...], tuple[int, ...]]:
        cost = 0.0
        for i in idx:
            cost += cand[i][0]
        return (cost, table, tuple(sorted(cand[i][1] for i in idx)), idx)


def perturbation_costs(float_vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per bit, the cost of flipping it: (value - median)^2 over the 256 DCT values."""
    v = np.asarray(float_vector, dtype=np.float64)
    if v.shape != (PDQ_BITS,) or not np.isfinite(v).all():
        raise HashFormatError("a PDQ float vector has 256 finite elements")
    return (v - np.median(v)) ** 2


PDQ_LSH_1 = BitSamplingScheme(
    name="pdq-lsh-1",
    signal_type=SignalType.PDQ,
    tables=16,
    bits_per_table=32,
    probe_budget=64,
    candidate_bits=12,
    max_flips=4,
)

SCHEMES: dict[str, BitSamplingScheme] = {PDQ_LSH_1.name: PDQ_LSH_1}
