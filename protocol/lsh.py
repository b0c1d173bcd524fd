"""Bit-sampling LSH over 256-bit PDQ hashes, with query-directed multi-probe.

The scheme is public and versioned; ``specs/signals-and-lsh.md`` is its normative description
and ``specs/vectors/lsh.json`` its test vectors. In short:

* Table ``t`` (0 <= t < L) samples ``k`` bit positions of the hash. The positions come from a
  public derivation: tables form groups of floor(256 / k) disjoint tables, group g cutting the
  order of 0..255 by SHA-256(tag || "perm" || u16be(g) || u8(position)) into runs of k; within
  a table the positions are used in ascending order.
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

# The bucket signal names whose values are PDQ hashes, keyed by these schemes as a picture's are
# but apart from them (specs/signals-and-lsh.md 5.2). A signal type whose hashes are PDQ hashes
# under a name of its own registers the name here from its registry entry, so the scheme names
# no type beyond the picture's; insertion-ordered, for the error message.
_PDQ_VALUED_SIGNALS: dict[str, None] = {SignalType.PDQ.value: None}


def register_pdq_valued_signal(name: str) -> str:
    """Let the schemes key PDQ hashes under bucket signal ``name``; returns ``name``."""
    if not isinstance(name, str) or not name.isascii() or not 1 <= len(name) <= 0xFF:
        raise ValueError("a bucket signal name is 1..255 ASCII characters")
    if name == SignalType.SHA256.value:
        raise ValueError(f"{name} is an exact digest, not a PDQ-valued signal")
    _PDQ_VALUED_SIGNALS[name] = None
    return name


def pdq_valued_signals() -> tuple[str, ...]:
    """The bucket signal names the schemes key PDQ hashes under, in registration order."""
    return tuple(_PDQ_VALUED_SIGNALS)


# A bucket signal: a registered name, or a base type (sha256 is refused: it is not PDQ-valued).
Signal = str | SignalType


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
    cost_model: str = "logodds"  # how a probe is ranked: see bit_costs()
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
        return self._prefix_for(self.signal_type)

    def _prefix_for(self, signal: Signal | None) -> bytes:
        """``u8(len(tag)) || tag || u8(len(signal)) || signal`` for a PDQ-valued signal: a
        picture's PDQ hash (the default) or one registered with register_pdq_valued_signal."""
        signal = self.signal_type if signal is None else signal
        text = signal.value if isinstance(signal, SignalType) else signal
        if text not in _PDQ_VALUED_SIGNALS:
            raise ValueError(f"{self.name} buckets PDQ-valued signals, not {text}")
        tag = self.tag
        name = text.encode("ascii")
        return bytes([len(tag)]) + tag + bytes([len(name)]) + name

    @cached_property
    def table_positions(self) -> tuple[tuple[int, ...], ...]:
        """The k sampled bit positions of each table, ascending.

        Tables come in groups of ``floor(256 / k)`` that partition (most of) the hash: group
        ``g`` orders 0..255 by SHA-256(tag || "perm" || u16be(g) || u8(position)) and cuts that
        order into consecutive runs of k. Every bit is sampled about equally often, and within a
        group any two hashes at distance d differ in at most d of its disjoint tables.
        """
        per_group = PDQ_BITS // self.bits_per_table
        out = []
        for t in range(self.tables):
            group, member = divmod(t, per_group)
            tag = self.tag + b"perm" + group.to_bytes(2, "big")

            def perm_key(position: int, tag: bytes = tag) -> bytes:
                return hashlib.sha256(tag + bytes([position])).digest()

            order = sorted(range(PDQ_BITS), key=perm_key)
            run = order[member * self.bits_per_table : (member + 1) * self.bits_per_table]
            out.append(tuple(sorted(run)))
        return tuple(out)

    @cached_property
    def _position_matrix(self) -> np.ndarray:
        return np.array(self.table_positions, dtype=np.intp)  # (L, k)

    @property
    def key_length(self) -> int:
        return len(self._key_prefix) + 2 + (self.bits_per_table + 7) // 8

    def bucket_key(
        self,
        table: int,
        sampled_bits: Sequence[int] | np.ndarray,
        *,
        signal: Signal | None = None,
    ) -> bytes:
        """The key of ``table``'s bucket holding the given k sampled bit values (in ascending
        position order)."""
        bits = np.asarray(sampled_bits, dtype=np.uint8)
        if bits.shape != (self.bits_per_table,):
            raise ValueError("wrong number of sampled bits")
        prefix = self._key_prefix if signal is None else self._prefix_for(signal)
        return prefix + table.to_bytes(2, "big") + np.packbits(bits).tobytes()

    def exact_key(self, digest: bytes) -> bytes:
        """The single bucket key of a SHA-256 value (exact copies are not LSH-bucketed): the
        key layout with signal ``sha256``, table 0 and the 32-byte digest as the sampled bits."""
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise HashFormatError("a SHA-256 value is 32 bytes")
        tag = self.tag
        signal = SignalType.SHA256.value.encode("ascii")
        return bytes([len(tag)]) + tag + bytes([len(signal)]) + signal + b"\x00\x00" + digest

    def index_keys(self, hash32: bytes, *, signal: Signal | None = None) -> list[bytes]:
        """The L bucket keys a holder indexes for one hash (table order)."""
        bits = pdq_to_bits(hash32)
        sampled = bits[self._position_matrix]  # (L, k)
        packed = np.packbits(sampled, axis=1)
        prefix = self._key_prefix if signal is None else self._prefix_for(signal)
        return [prefix + t.to_bytes(2, "big") + packed[t].tobytes() for t in range(self.tables)]

    def probes(
        self,
        hash32: bytes,
        float_vector: Sequence[float] | np.ndarray | None = None,
        budget: int | None = None,
        *,
        signal: Signal | None = None,
    ) -> list[Probe]:
        """The buckets a querier asks for, in the order the spec fixes (cheapest first).

        Without a float vector only the base keys are returned (nothing tells which bits are
        uncertain). ``budget`` caps the number of probes (default: the scheme's probe budget).
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
            out.append(Probe(table, flipped, cost, self.bucket_key(table, row, signal=signal)))
        return out

    def probe_keys(
        self,
        hash32: bytes,
        float_vector: Sequence[float] | np.ndarray | None = None,
        budget: int | None = None,
        *,
        signal: Signal | None = None,
    ) -> list[bytes]:
        return [p.key for p in self.probes(hash32, float_vector, budget, signal=signal)]

    def ranked_perturbations(
        self, float_vector: Sequence[float] | np.ndarray | None, budget: int
    ) -> list[tuple[float, int, tuple[int, ...]]]:
        """(cost, table, flipped positions) for the first ``budget`` probes, in probe order.

        Order: ascending cost; ties by table index, then by the flipped positions compared as
        ascending tuples. Without a float vector: the base keys in table order.
        """
        if float_vector is None or self.candidate_bits == 0 or budget <= 0:
            return [(0.0, t, ()) for t in range(min(max(budget, 0), self.tables))]
        flip_cost, keep_cost = bit_costs(float_vector, self.cost_model)
        # Per table: the cost of its base key (no flips) and its candidate positions, the
        # cheapest to flip first, ordered by (flip cost, position).
        candidates: list[list[tuple[float, int]]] = []
        base_costs: list[float] = []
        heap: list[tuple[float, int, tuple[int, ...], tuple[int, ...]]] = []
        for t, pos in enumerate(self.table_positions):
            base_cost = 0.0
            for p in pos:  # ascending positions, left to right: the spec's summation order
                base_cost += float(keep_cost[p])
            base_costs.append(base_cost)
            candidates.append(sorted((float(flip_cost[p]), p) for p in pos)[: self.candidate_bits])
            heap.append((base_cost, t, (), ()))
        heapq.heapify(heap)
        # Best-first enumeration (Lv et al.'s shift/expand over each table's sorted candidates):
        # every subset is generated exactly once and no child costs less than its parent, so
        # pops come out in ascending cost. Entries tying with the last wanted one are popped too
        # so that the final sort applies the tie-break exactly.
        out: list[tuple[float, int, tuple[int, ...]]] = []
        while heap and (len(out) < budget or heap[0][0] <= out[-1][0]):
            cost, t, flipped, idx = heapq.heappop(heap)
            out.append((cost, t, flipped))
            cand = candidates[t]
            base_cost = base_costs[t]
            if not idx:
                if cand and self.max_flips >= 1:
                    heapq.heappush(heap, self._entry(cand, t, (0,), base_cost))
                continue
            last = idx[-1]
            if last + 1 < len(cand):
                # shift: replace the last candidate by the next one
                heapq.heappush(heap, self._entry(cand, t, (*idx[:-1], last + 1), base_cost))
                # expand: add the next one
                if len(idx) < self.max_flips:
                    heapq.heappush(heap, self._entry(cand, t, (*idx, last + 1), base_cost))
        out.sort()
        return out[:budget]

    @staticmethod
    def _entry(
        cand: list[tuple[float, int]], table: int, idx: tuple[int, ...], base_cost: float
    ) -> tuple[float, int, tuple[int, ...], tuple[int, ...]]:
        cost = base_cost
        for i in idx:
            cost += cand[i][0]
        return (cost, table, tuple(sorted(cand[i][1] for i in idx)), idx)


def perturbation_costs(float_vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per bit, the cost of flipping it under the default cost model."""
    return bit_costs(float_vector, "logodds")[0]


# Flip probability of a bit against its normalised distance x from the median (see bit_costs),
# fitted on the corpus's edited copies at distance 17..31 from their originals:
# p(x) = min(P_MAX, P_SCALE * exp(-x / X_SCALE) + P_FLOOR).
P_SCALE, X_SCALE, P_FLOOR, P_MAX = 0.5, 0.3, 0.003, 0.49


def bit_costs(
    float_vector: Sequence[float] | np.ndarray, model: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per bit: (cost of flipping it, cost of keeping it) for ranking probes.

    ``logodds``: x_i = |v_i - median| / median_j |v_j - median| (PDQ's median threshold, in
    units of the vector's own typical distance from it), p_i as fitted above; flipping costs
    ln((1 - p_i) / p_i), keeping costs -ln(1 - p_i). A probe's cost is its table's keep costs
    plus the flip costs of its flipped bits, i.e. minus the log-probability that exactly those
    bits of the table differ (bits taken as independent), up to a constant.
    ``squared``: flipping costs (v_i - median)^2 and keeping costs nothing.
    """
    v = np.asarray(float_vector, dtype=np.float64)
    if v.shape != (PDQ_BITS,) or not np.isfinite(v).all():
        raise HashFormatError("a PDQ float vector has 256 finite elements")
    distance = np.abs(v - np.median(v))
    if model == "squared":
        return distance**2, np.zeros(PDQ_BITS)
    if model != "logodds":
        raise ValueError(f"unknown cost model {model}")
    typical = float(np.median(distance))
    x = distance / typical if typical > 0 else np.zeros(PDQ_BITS)
    p = np.minimum(P_MAX, P_SCALE * np.exp(-x / X_SCALE) + P_FLOOR)
    return np.log((1 - p) / p), -np.log1p(-p)


# Parameters chosen from the measured distance distributions (bench/results/signals.md): k = 27
# keeps a probe's chance of meeting an unrelated hash near 2^-27, so 64 probes against a
# 1M-hash holder meet ~0.5 unrelated hashes; with 24 tables and log-odds probing the scheme finds
# all corpus pairs at distance <= 16 and ~97-98% of those at 17..31 (mean over table draws).
PDQ_LSH_1 = BitSamplingScheme(
    name="pdq-lsh-1",
    signal_type=SignalType.PDQ,
    tables=24,
    bits_per_table=27,
    probe_budget=64,
    candidate_bits=10,
    max_flips=3,
    cost_model="logodds",
)

SCHEMES: dict[str, BitSamplingScheme] = {PDQ_LSH_1.name: PDQ_LSH_1}
