"""Node benchmark: real nodes over real HTTP on loopback, every figure beside its crypto floor.

    ./dev bench node            # the issue's grid: 1, 2, 4 peers x 10k, 100k, 1M hashes each
    ./dev bench node --quick    # a smaller grid (2k, 20k hashes; fewer samples)

One command, one run. It starts a local federation (one querier, four holders, SQLite stores,
aiohttp servers on 127.0.0.1, a signed roster) and measures:

- match latency (p50, p99) of one query hash against 1, 2 and 4 peers holding 10k, 100k and
  1M hashes each, end to end (``Querier.submit`` + the per-peer ``Querier.run_task``s run
  concurrently, and separately the node's own ``process_due_tasks``); near-copy queries (one
  candidate per peer, so one private threshold test each) and no-candidate queries (VOPRF
  round only), with 64 probe keys (float vector) and with the 16 base keys;
- the holder's CPU per query (``handle_evaluate`` + ``handle_threshold``, process CPU time);
- the index build rate, ``IndexPublisher.reconcile`` as it is (a backlog is evaluated in worker
  processes, ``node/federation/index_build.py``; its wall time includes the deltas' writes
  and, the first time, starting the workers) and the bare evaluation over a process pool of 2;
- bytes on the wire per query (per round) and per indexed hash (index feed).

Floors: group operations are *counted* (``bench.crypto.counting``) for every protocol step and
priced with libsodium's raw cost per operation (``bench.crypto.Floor``), sampled again beside
every measurement because the machine is shared. Results: bench/results/node.md and node.json.

What is synthetic (see the report's section for details): the first ``--real`` hashes of every
holder are real items with a real blinded index (evaluated by ``reconcile_index``, replicated
to the querier over HTTP); the rest of each size is bank rows with random hashes inserted in
bulk with SQL, marked published, and random 24-byte index entries in the querier's replica.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.crypto import Floor, counting
from blindmatch.crypto import oprf, sodium
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.peer_client import PeerError
from blindmatch.node.federation.publisher import INDEX_FEED
from blindmatch.node.node import Node
from blindmatch.node.storage import open_database
from blindmatch.node.storage.validation import MAX_PAYLOAD_BYTES
from blindmatch.protocol import canonical, index, matching
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.roster import voprf_key_id

RESULTS = Path(__file__).resolve().parent / "results"
SCHEME = PDQ_LSH_1
BIG_BUDGET = {
    "evaluations_per_hour": 10**12,
    "evaluations_per_day": 10**12,
    "threshold_items_per_hour": 10**12,
    "threshold_items_per_day": 10**12,
    "index_entries": 10**12,  # the querier's replica is padded far past the default cap
}
HOLDERS = 4
TARGETS = 24  # hashes every holder holds; near-copy queries are edited copies of them
SYNTHETIC_SOURCE = "bench-synthetic"
ENTRY_BYTES_PER_ITEM = SCHEME.tables * index.ENTRY_BYTES
# Items per index delta, as reconcile_index cuts them (and within the feed payload limit).
SAFE_BATCH = min(
    (MAX_PAYLOAD_BYTES - 4096) // ENTRY_BYTES_PER_ITEM,
    index.MAX_ENTRIES_PER_DELTA // SCHEME.tables,
)


# --- floors -----------------------------------------------------------------------------------


def parallel_capacity(k: int = 150) -> float:
    """How many cores this process can use right now (1..2 here): ``k`` raw scalar
    multiplications on one thread, then on two threads at once (the binding releases the GIL).
    Other sessions on the shared machine lower it."""
    import threading

    n = sodium.scalar_random()
    p = sodium.scalarmult_base(sodium.scalar_random())

    def work() -> None:
        for _ in range(k):
            sodium.scalarmult(n, p)

    t0 = time.perf_counter()
    work()
    one = time.perf_counter() - t0
    threads = [threading.Thread(target=work) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    two = time.perf_counter() - t0
    return max(1.0, min(2.0, 2 * one / two))


class CpuFloor(Floor):
    """The same raw libsodium loops timed in this thread's CPU time, not wall time: the floor
    for CPU-time measurements, unaffected by other sessions taking the core away."""

    def sample(self) -> dict[str, float]:
        got = {}
        for op, call in self.calls.items():
            n = self.loops if op != "valid" else self.loops * 4
            t0 = time.thread_time()
            for _ in range(n):
                call()
            got[op] = (time.thread_time() - t0) / n
            self.samples[op].append(got[op])
        return got


class Beside:
    """Floor samples taken beside one measurement (interleaved with its samples): the wall-time
    floor, the CPU-time floor, and optionally the cores this process can get."""

    def __init__(self, floor: Floor, cpu_floor: Floor, capacity: bool = False) -> None:
        self.floor = floor
        self.cpu_floor = cpu_floor
        self.samples: list[dict[str, float]] = []
        self.cpu_samples: list[dict[str, float]] = []
        self.capacity: list[float] = []
        self.with_capacity = capacity

    def sample(self) -> None:
        self.samples.append(self.floor.sample())
        self.cpu_samples.append(self.cpu_floor.sample())
        if self.with_capacity:
            self.capacity.append(parallel_capacity())

    def cost(self) -> dict[str, float]:
        if not self.samples:
            self.sample()
        return {op: statistics.median(s[op] for s in self.samples) for op in Floor.OPS}

    def cpu_cost(self) -> dict[str, float]:
        if not self.cpu_samples:
            self.sample()
        return {op: statistics.median(s[op] for s in self.cpu_samples) for op in Floor.OPS}

    def cores(self) -> float:
        return statistics.median(self.capacity) if self.capacity else 2.0


def reference_key(key: oprf.ServerKey) -> oprf.ServerKey:
    """The same key evaluated by libsodium (no seed: the Rust backend cannot rebuild it), so
    that the operation counter sees every group operation."""
    return dataclasses.replace(key, seed=None)


def smult_floor(ops: dict[str, float], cost: dict[str, float]) -> float:
    return ops.get("var", 0) * cost["var"] + ops.get("base", 0) * cost["base"]


def group_floor(ops: dict[str, float], cost: dict[str, float]) -> float:
    return smult_floor(ops, cost) + sum(
        ops.get(k, 0) * cost[k] for k in ("add", "map", "inv", "valid")
    )


def add_ops(*many: dict[str, float], times: Sequence[float] | None = None) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for i, ops in enumerate(many):
        f = 1.0 if times is None else times[i]
        for k, v in ops.items():
            out[k] += v * f
    return dict(out)


def pct(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


# --- synthetic hashes with float vectors --------------------------------------------------------


def gaussian_hashes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[bytes]]:
    """Float vectors and their hashes (bit i = value i above the median), as PDQ makes them."""
    v = rng.standard_normal((n, 256))
    bits = v > np.median(v, axis=1, keepdims=True)
    packed = np.packbits(bits, axis=1)
    return v, [bytes(row) for row in packed]


def near_copy(
    rng: np.random.Generator, v: np.ndarray, h: bytes
) -> tuple[np.ndarray, bytes, int] | None:
    """An edited copy: the float vector plus noise; kept when it is 8..24 bits away and shares
    a base bucket with the original (so both probe variants find exactly this candidate)."""
    w = v + rng.normal(0.0, 0.12, 256)
    q = bytes(np.packbits(w > np.median(w)))
    d = (int.from_bytes(q, "big") ^ int.from_bytes(h, "big")).bit_count()
    if not 8 <= d <= 24:
        return None
    if not set(SCHEME.index_keys(q)) & set(SCHEME.index_keys(h)):
        return None
    return w, q, d


# --- the index build over both cores -----------------------------------------------------------


def _evaluate_chunk(
    args: tuple[bytes, bytes, list[bytes], list[bytes]],
) -> tuple[list[bytes], float]:
    """Worker: the exact entries ``IndexPublisher.reconcile`` publishes for these items, and the
    CPU time this worker spent on them."""
    t0 = time.thread_time()
    sk, pk, hashes, refs = args
    key = oprf.ServerKey(sk=sk, pk=pk)
    key_id = voprf_key_id(pk)
    out = [
        index.pack_entries(index.item_entries(key, key_id, r, SCHEME.index_keys(h)))
        for h, r in zip(hashes, refs, strict=True)
    ]
    return out, time.thread_time() - t0


def _warm(_: int) -> int:
    return 0


# --- holders in their own processes ------------------------------------------------------------


def _holder_process(cfg: Any, document: Any, governance: list[bytes], port: int, conn: Any) -> None:
    asyncio.run(_holder_main(cfg, document, governance, port, conn))


async def _holder_main(cfg: Any, document: Any, governance: list[bytes], port: int, conn: Any):  # type: ignore[no-untyped-def]
    """One holder node in this process: its store, keys, roster and HTTP server, as
    ``LocalFederation`` opens it; answers "cpu" (its process CPU time) and "stop" on ``conn``."""
    from aiohttp import web

    from blindmatch.node import keys as keyfiles
    from blindmatch.node.devtools.localfed import _listening_socket
    from blindmatch.node.federation.http import build_app
    from blindmatch.protocol import roster as roster_mod

    roster = roster_mod.verify_roster(document, governance, 2, int(time.time() * 1000))
    keys = keyfiles.load(cfg.keys_dir)
    db = await open_database(cfg.database_url, migrate_now=int(time.time()))
    node = Node(cfg, keys, db, roster)
    runner = web.AppRunner(build_app(node), access_log=None)
    await runner.setup()
    sock = _listening_socket(port)
    await web.SockSite(runner, sock).start()
    await node.start(background=False)
    conn.send("ready")
    while True:
        msg = await asyncio.to_thread(conn.recv)
        if msg == "cpu":
            conn.send(time.process_time())
        else:
            break
    await runner.cleanup()
    sock.close()
    await node.stop()
    conn.send("stopped")


# --- the querier's replica padded with random entries ------------------------------------------


class SyntheticEntries:
    """Random index entries (8-byte tag, 16-byte masked ref) kept as sorted numpy arrays.

    To anyone without the holder's OPRF key, real entries are exactly such uniform strings;
    what they cannot do is answer a lookup, which is why every item a query should find is real.
    """

    def __init__(self) -> None:
        self.tags = np.zeros(0, dtype="<u8")
        self.masked = np.zeros((0, index.ITEM_REF_BYTES), dtype=np.uint8)

    def grow(self, rng: np.random.Generator, n: int) -> None:
        if n <= 0:
            return
        tags = np.concatenate([self.tags, rng.integers(0, 2**64 - 1, n, dtype=np.uint64)])
        masked = np.concatenate(
            [self.masked, rng.integers(0, 256, (n, index.ITEM_REF_BYTES), dtype=np.uint8)]
        )
        order = np.argsort(tags, kind="stable")
        self.tags, self.masked = tags[order], masked[order]

    def __len__(self) -> int:
        return len(self.tags)

    def lookup(self, oprf_output: bytes) -> list[bytes]:
        tag = np.frombuffer(oprf_output[: index.TAG_BYTES], dtype="<u8")[0]
        i = int(np.searchsorted(self.tags, tag))
        out = []
        mask = np.frombuffer(oprf_output[8:24], dtype=np.uint8)
        while i < len(self.tags) and self.tags[i] == tag:
            out.append(oprf_output[:8] + bytes(self.masked[i] ^ mask))  # a candidate (8.5)
            i += 1
        return out

    def lookup_many(self, oprf_outputs: Sequence[bytes]) -> list[list[bytes]]:
        out: list[list[bytes]] = [[] for _ in oprf_outputs]
        if not len(self.tags) or not oprf_outputs:
            return out
        heads = np.frombuffer(b"".join(o[:24] for o in oprf_outputs), np.uint8).reshape(-1, 24)
        tags = heads[:, :8].copy().view("<u8").ravel()
        lo = np.searchsorted(self.tags, tags, side="left")
        hi = np.searchsorted(self.tags, tags, side="right")
        for i in np.flatnonzero(hi > lo).tolist():
            head = heads[i, :8].tobytes()
            out[i] = [head + bytes(m ^ heads[i, 8:24]) for m in self.masked[lo[i] : hi[i]]]
        return out


class PaddedReplica(index.ReplicaIndex):
    """The node's own replica (real entries, synced over HTTP) plus a synthetic part."""

    def __init__(self, real: index.ReplicaIndex, synthetic: SyntheticEntries) -> None:
        super().__init__(real.scheme, real.key_id)
        self.real = real
        self.real_entries = real.entries
        self.synthetic = synthetic

    @property
    def entries(self) -> int:  # type: ignore[override]
        return self.real.entries + len(self.synthetic)

    def lookup(self, oprf_output: bytes) -> list[bytes]:
        return sorted(self.real.lookup(oprf_output) + self.synthetic.lookup(oprf_output))

    def lookup_many(self, oprf_outputs: Sequence[bytes]) -> list[list[bytes]]:
        real = self.real.lookup_many(oprf_outputs)
        synthetic = self.synthetic.lookup_many(oprf_outputs)
        return [sorted(r + s) if s else r for r, s in zip(real, synthetic, strict=True)]


# --- bulk rows ---------------------------------------------------------------------------------


async def insert_real_items(db: Any, bank_id: int, hashes: list[bytes], now: int) -> None:
    """Real hashes with fresh item refs, in multi-row INSERTs (one transaction)."""
    async with db.transaction():
        for start in range(0, len(hashes), 400):
            chunk = hashes[start : start + 400]
            values = ",".join(
                [f"({int(bank_id)}, 'pdq', ?, ?, 'bench-real', {int(now)})"] * len(chunk)
            )
            params: list[bytes] = []
            for h in chunk:
                params += [h, os.urandom(16)]
            await db.execute(
                "INSERT INTO bank_items (bank_id, signal_type, hash, item_ref, source, added_at)"
                " VALUES " + values,
                *params,
            )


async def grow_holder(node: Any, bank_id: int, n: int, now: int) -> float:
    """Add ``n`` synthetic items (random hashes and refs) and mark them published with random
    24-byte entries, so ``reconcile_index`` treats them as already in the index."""
    db = node.db
    t0 = time.perf_counter()
    # A bigger page cache for this connection only: the random keys of the unique indexes
    # otherwise make every insert a page miss.
    await db.execute("PRAGMA cache_size = -262144")
    last = int(await db.fetch_value("SELECT COALESCE(MAX(id), 0) FROM bank_items"))
    step = 100_000
    for start in range(0, n, step):
        k = min(step, n - start)
        await db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO bank_items (bank_id, signal_type, hash, item_ref, source, added_at)"
            " SELECT ?, 'pdq', randomblob(32), randomblob(16), ?, ? FROM n",
            k, bank_id, SYNTHETIC_SOURCE, now,
        )  # fmt: skip
    await db.execute(
        "INSERT INTO index_publications (item_ref, scheme, key_id, entries, published_at)"
        " SELECT item_ref, ?, ?, randomblob(?), ? FROM bank_items WHERE id > ?",
        SCHEME.name, node.keys.voprf_key_id, ENTRY_BYTES_PER_ITEM, now, last,
    )  # fmt: skip
    return time.perf_counter() - t0


# --- the benchmark -----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = np.random.default_rng(args.seed)
        self.floor = Floor(loops=150)
        self.cpu_floor = CpuFloor(loops=150)
        self.result: dict[str, Any] = {}
        self.wire: list[tuple[str, str, int, int]] = []  # (peer, type, sent, received)
        self.procs: dict[str, Any] = {}

    # setup ---------------------------------------------------------------------------------

    async def setup(self) -> None:
        a = self.args
        self.home = Path(tempfile.mkdtemp(prefix="bench-node-", dir=a.workdir))
        specs = [NodeSpec("querier", holds_index=False, budget=BIG_BUDGET)] + [
            NodeSpec(f"holder-{i + 1}", ("hub",), budget=BIG_BUDGET) for i in range(HOLDERS)
        ]
        self.fed = await LocalFederation(self.home, background=False).start(specs)
        self.q = self.fed["querier"].node
        self.holder_ids = [f"holder-{i + 1}" for i in range(HOLDERS)]
        self.members = {h: self.q.roster.member(h) for h in self.holder_ids}
        self.q_member = self.fed["holder-1"].node.roster.member("querier")
        self._instrument_client()
        # Targets: the same hashes in every holder's bank, added through the bank API.
        self.target_v, self.target_h = gaussian_hashes(self.rng, TARGETS)
        self.bank_ids = {}
        for h in self.holder_ids:
            banks = self.fed[h].banks
            bank = await banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
            self.bank_ids[h] = bank.id
            for th_ in self.target_h:
                await banks.add_item("ncii", "pdq", th_)
        _, self.others = gaussian_hashes(self.rng, HOLDERS * (a.real - TARGETS))
        self.held = a.real
        # Queries: near copies of the targets; unrelated hashes.
        self.near: list[QueryHash] = []
        self.near_distance: list[int] = []
        while len(self.near) < 4 * TARGETS:
            i = len(self.near) % TARGETS
            got = near_copy(self.rng, self.target_v[i], self.target_h[i])
            if got is not None:
                self.near.append(QueryHash(got[1], got[0]))
                self.near_distance.append(got[2])
        v, hs = gaussian_hashes(self.rng, 4 * TARGETS)
        self.unrelated = [QueryHash(h, v[i]) for i, h in enumerate(hs)]

    def _instrument_client(self) -> None:
        client = self.q.client
        original = client.call

        async def call(peer, message_type, body):  # type: ignore[no-untyped-def]
            s0, r0 = client.bytes_with(peer.node_id)
            try:
                return await original(peer, message_type, body)
            finally:
                s1, r1 = client.bytes_with(peer.node_id)
                self.wire.append((peer.node_id, message_type, s1 - s0, r1 - r0))

        client.call = call  # type: ignore[method-assign]

    # index build -----------------------------------------------------------------------------

    async def index_build(self) -> None:
        a = self.args
        # Counted on libsodium: the Rust backend's operations are not visible to the counter,
        # and an item's group operations are the algorithm's, whichever backend runs it.
        key = reference_key(self.fed["holder-1"].node.keys.voprf)
        with counting() as c:
            for k in SCHEME.index_keys(self.target_h[0]):
                oprf.evaluate(key, k, oprf.Mode.VOPRF)
        ops_per_item = {k: float(v) for k, v in c.items()}
        runs = []
        now = self.q.now()
        per = a.real - TARGETS
        for i, h in enumerate(self.holder_ids):
            node = self.fed[h].node
            await insert_real_items(
                node.db, self.bank_ids[h], self.others[i * per : (i + 1) * per], now
            )
            beside = Beside(self.floor, self.cpu_floor)
            beside.sample()
            c0, t0 = time.process_time(), time.perf_counter()
            got = await node.publisher.reconcile()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            beside.sample()
            assert got["added"] == a.real, got
            runs.append((wall, cpu, beside.cost(), beside.cpu_cost()))
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        cost = {op: statistics.median(r[2][op] for r in runs) for op in Floor.OPS}
        cpu_cost = {op: statistics.median(r[3][op] for r in runs) for op in Floor.OPS}
        items = a.real
        floor1 = items * smult_floor(ops_per_item, cost)
        gfloor1 = items * group_floor(ops_per_item, cost)
        as_is = {
            "items": items,
            "holders_measured": len(runs),
            "wall_s": wall,
            "cpu_s": cpu,
            "items_per_s": items / wall,
            "floor_items_per_s_both_cores": 2 / smult_floor(ops_per_item, cost),
            "ratio_vs_floor_both_cores": wall / (floor1 / 2),
            "ratio_vs_floor_one_core": wall / floor1,
            "ratio_vs_group_op_floor_both_cores": wall / (gfloor1 / 2),
            "cpu_ratio_vs_cpu_floor_one_core": cpu / (items * smult_floor(ops_per_item, cpu_cost)),
            "cpu_ratio_vs_cpu_group_op_floor_one_core": cpu
            / (items * group_floor(ops_per_item, cpu_cost)),
            "floor_beside_s": cost,
        }
        # The same evaluation over both cores (process pool), checked against what was published.
        node = self.fed["holder-1"].node
        rows = await node.db.fetch_all(
            "SELECT i.item_ref, i.hash, p.entries FROM bank_items i"
            " JOIN index_publications p ON p.item_ref = i.item_ref ORDER BY i.id"
        )
        hashes = [bytes(r["hash"]) for r in rows]
        refs = [bytes(r["item_ref"]) for r in rows]
        published = [bytes(r["entries"]) for r in rows]
        key = node.keys.voprf
        ctx = multiprocessing.get_context("spawn")
        chunk = 250
        with ProcessPoolExecutor(2, mp_context=ctx) as pool:
            list(pool.map(_warm, range(4)))  # workers started and imported before timing
            pool_runs = []
            for _ in range(a.pool_repeats):
                beside = Beside(self.floor, self.cpu_floor, capacity=True)
                beside.sample()
                t0 = time.perf_counter()
                jobs = [
                    (key.sk, key.pk, hashes[s : s + chunk], refs[s : s + chunk])
                    for s in range(0, len(hashes), chunk)
                ]
                parts = list(pool.map(_evaluate_chunk, jobs))
                out = [e for part, _ in parts for e in part]
                wall_p = time.perf_counter() - t0
                worker_cpu = sum(c for _, c in parts)
                beside.sample()
                pool_runs.append((wall_p, beside.cost(), beside.cpu_cost(), worker_cpu, beside))
        # Each entry carries a fresh table reference (spec 8.5): the same buckets, not bytes.
        assert [index.entry_tags(e) for e in out] == [index.entry_tags(e) for e in published], (
            "process-pool entries differ from reconcile_index's"
        )
        wall_p = statistics.median(r[0] for r in pool_runs)
        cost_p = {op: statistics.median(r[1][op] for r in pool_runs) for op in Floor.OPS}
        cpu_cost_p = {op: statistics.median(r[2][op] for r in pool_runs) for op in Floor.OPS}
        worker_cpu = statistics.median(r[3] for r in pool_runs)
        cores = statistics.median(c for r in pool_runs for c in r[4].capacity)
        floor_p = len(hashes) * smult_floor(ops_per_item, cost_p) / 2
        pooled = {
            "items": len(hashes),
            "repeats": a.pool_repeats,
            "wall_s": wall_p,
            "items_per_s": len(hashes) / wall_p,
            "floor_items_per_s_both_cores": 2 / smult_floor(ops_per_item, cost_p),
            "ratio_vs_floor_both_cores": wall_p / floor_p,
            "ratio_vs_group_op_floor_both_cores": wall_p
            / (len(hashes) * group_floor(ops_per_item, cost_p) / 2),
            "entries_identical_to_reconcile_index": True,
            "cores_free_beside": cores,
            "ratio_vs_floor_at_cores_free": wall_p
            / (len(hashes) * smult_floor(ops_per_item, cost_p) / cores),
            "workers_cpu_s": worker_cpu,
            "workers_cpu_ratio_vs_cpu_floor": worker_cpu
            / (len(hashes) * smult_floor(ops_per_item, cpu_cost_p)),
            "workers_cpu_ratio_vs_cpu_group_op_floor": worker_cpu
            / (len(hashes) * group_floor(ops_per_item, cpu_cost_p)),
            "floor_beside_s": cost_p,
        }
        self.result["index_build"] = {
            "ops_per_item": ops_per_item,
            "reconcile_index_as_is": as_is,
            "process_pool_2": pooled,
        }

    # replication ------------------------------------------------------------------------------

    async def replicate(self) -> None:
        q = self.q
        before = {h: q.client.bytes_with(h) for h in self.holder_ids}
        t0 = time.perf_counter()
        await q.sync.sync_all()
        wall = time.perf_counter() - t0
        per = []
        for h in self.holder_ids:
            s, r = q.client.bytes_with(h)
            s0, r0 = before[h]
            entries = await self.fed[h].node.feeds.read(INDEX_FEED, 0, 10_000)
            payload = sum(len(e.payload) for e in entries)
            assert q.replication.replica_indexes[h].entries == self.args.real * SCHEME.tables
            per.append(
                {
                    "holder": h,
                    "feed_entries": len(entries),
                    "payload_bytes": payload,
                    "sent_bytes": s - s0,
                    "received_bytes": r - r0,
                }
            )
        items = self.args.real
        p = per[0]
        # Memory of the node's in-memory replica (ReplicaIndex).
        entries = await self.fed["holder-1"].node.feeds.read(INDEX_FEED, 0, 10_000)
        tracemalloc.start()
        ri = index.ReplicaIndex(SCHEME.name, self.fed["holder-1"].node.keys.voprf_key_id)
        for e in entries:
            ri.add(canonical.decode(e.payload)["entries"])
        ri.lookup_many([os.urandom(64)])  # a replica that merges lazily merges here
        mem, mem_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # Lookup cost in the node's replica.
        outs = [os.urandom(64) for _ in range(2000)]
        t0 = time.perf_counter()
        for o in outs:
            ri.lookup(o)
        lookup_s = (time.perf_counter() - t0) / len(outs)
        # The same outputs as exchanges do it: one vectorised lookup per 64-output reply.
        t0 = time.perf_counter()
        for start in range(0, len(outs), SCHEME.probe_budget):
            ri.lookup_many(outs[start : start + SCHEME.probe_budget])
        lookup_many_s = (time.perf_counter() - t0) / len(outs)
        del ri
        self.result["replication"] = {
            "items_per_holder": items,
            "sync_all_wall_s": wall,
            "per_holder": per,
            "payload_bytes_per_item": p["payload_bytes"] / items,
            "entry_bytes_per_item": ENTRY_BYTES_PER_ITEM,
            "received_bytes_per_item": p["received_bytes"] / items,
            "sent_bytes_per_item": p["sent_bytes"] / items,
            "overhead_bytes_per_item": (p["received_bytes"] + p["sent_bytes"]) / items
            - ENTRY_BYTES_PER_ITEM,
            "items_per_feed_entry": SAFE_BATCH,
            "replica_memory_bytes_per_entry": mem / (items * SCHEME.tables),
            "replica_memory_peak_vs_steady": mem_peak / mem,
            "replica_memory_bytes_per_1M_hash_peer": mem / items * 1_000_000,
            "replica_lookup_s": lookup_s,
            "replica_lookup_many_s_per_output": lookup_many_s,
        }

    # sizes ---------------------------------------------------------------------------------------

    async def grow_to(self, size: int, synthetic: SyntheticEntries) -> dict[str, Any]:
        add = size - self.held
        now = self.q.now()
        t0 = time.perf_counter()
        if add > 0:
            await asyncio.gather(
                *(
                    grow_holder(self.fed[h].node, self.bank_ids[h], add, now)
                    for h in self.holder_ids
                )
            )
        rows_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        synthetic.grow(self.rng, add * SCHEME.tables)
        for h in self.holder_ids:
            replica = self.q.replication.peer_replicas[h]
            real = replica.index
            if not isinstance(real, PaddedReplica):  # a padded one follows `synthetic` as it grows
                # The node exposes its replica read-only; the bench grafts its synthetic entries
                # under the sans-I/O replica the node matches against.
                replica._replica.index = PaddedReplica(real, synthetic)
        replica_s = time.perf_counter() - t0
        self.held = size
        counts = []
        for h in self.holder_ids:
            db = self.fed[h].node.db
            counts.append(
                (
                    int(await db.fetch_value("SELECT COUNT(*) FROM bank_items")),
                    int(await db.fetch_value("SELECT COUNT(*) FROM index_publications")),
                )
            )
            assert counts[-1] == (size, size), counts[-1]
        # reconcile_index with nothing to do still reads every item and every publication.
        node = self.fed["holder-1"].node
        t0 = time.perf_counter()
        got = await node.publisher.reconcile()
        noop = time.perf_counter() - t0
        assert got == {"added": 0, "removed": 0}, got
        return {
            "size": size,
            "synthetic_items_per_holder": size - self.args.real,
            "bulk_insert_s_all_holders": rows_s,
            "replica_pad_s": replica_s,
            "replica_entries_per_peer": self.q.replication.replica_indexes["holder-1"].entries,
            "bank_items_rows": counts[0][0],
            "index_publications_rows": counts[0][1],
            "reconcile_index_noop_s": noop,
        }

    async def holders_out(self) -> None:
        """Stop the in-process holders (their stores stay) and serve each from its own process
        on the same address, as separate machines would (in one process the holders' and the
        querier's Python code would share one interpreter lock)."""
        ctx = multiprocessing.get_context("spawn")
        self.procs = {}
        gov = [k.public_key for k in self.fed.governance]
        for h in self.holder_ids:
            cfg = self.fed[h].cfg
            stopped = await self.fed.stop_node(h)
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_holder_process,
                args=(cfg, dict(self.fed.roster.document), gov, stopped[2][1], child),
                daemon=True,
            )
            proc.start()
            self.procs[h] = (proc, parent, stopped)
        for _, conn, _ in self.procs.values():
            got = await asyncio.to_thread(conn.recv)
            assert got == "ready", got

    async def holders_cpu(self) -> dict[str, float]:
        out = {}
        for h, (_, conn, _) in self.procs.items():
            conn.send("cpu")
            out[h] = await asyncio.to_thread(conn.recv)
        return out

    async def holders_in(self) -> None:
        for h, (proc, conn, stopped) in self.procs.items():
            conn.send("stop")
            assert await asyncio.to_thread(conn.recv) == "stopped"
            await asyncio.to_thread(proc.join, 30)
            await self.fed.restart_node(h, stopped)
        self.procs = {}

    # step counts (the floor's operation counts) ------------------------------------------------

    def step_ops(self, probes: int) -> dict[str, dict[str, float]]:
        """Group operations of every step of one query against one holder, counted by running
        the sans-I/O steps directly (one thread, nothing else running)."""
        holder = self.fed["holder-1"].node
        peer_key = self.members["holder-1"].voprf_key
        qh = self.near[0]
        qh = QueryHash(qh.hash, qh.float_vector if probes > SCHEME.tables else None)
        replica = self.q.replication.replica_indexes["holder-1"]
        ops: dict[str, dict[str, float]] = {}
        times: dict[str, float] = {}

        def run(name: str, fn):  # type: ignore[no-untyped-def]
            with counting() as c:
                t0 = time.thread_time()
                out = fn()
                times[name] = time.thread_time() - t0
            ops[name] = {k: float(v) for k, v in c.items()}
            return out

        ex = matching.PeerExchange("holder-1", peer_key, SCHEME, [qh])
        body = run("querier: blind probe keys", ex.evaluate_request)
        assert len(body["elements"]) == probes
        reply = run(
            "holder: BlindEvaluate + DLEQ proof",
            lambda: matching.answer_evaluate(
                reference_key(holder.keys.voprf), holder.keys.voprf_key_id, body
            ),
        )
        cands = run(
            "querier: verify proof, unblind, look up", lambda: ex.on_evaluated(reply, replica)
        )
        # a near copy hits its item in several tables: each hit is a candidate (spec 8.5)
        self._near_candidates[probes] = sum(len(v) for v in cands.values())
        assert self._near_candidates[probes] >= 1
        cache = matching.EncryptionCache(os.urandom)
        reqs = run(
            "querier: encrypt query hash (once per hash)", lambda: ex.threshold_requests(cache)
        )
        verified = run(
            "holder: verify 256 bit proofs", lambda: matching.verify_threshold_query(reqs[0])
        )
        item = matching.HolderItem(
            item_ref=bytes(16), hash=self.target_h[0], bands=(31,), release={"signal": "pdq"}
        )
        named = {c: item for c in reqs[0]["items"]}
        ans = run(
            "holder: sums + answer every candidate",
            lambda: matching.answer_threshold(verified, named, reqs[0], (31,)),
        )
        found = run("querier: decide every candidate", lambda: ex.on_answer(reqs[0], ans, cache))
        assert len(found) == 1
        self._step_times[probes] = times
        return ops

    # latency -------------------------------------------------------------------------------------

    async def _finish_outbox(self, job: bytes) -> None:
        now = self.q.now()
        for h in self.holder_ids:
            await self.q.outbox.mark_delivered(job + h.encode()[:32], now)

    async def one_query(self, qh: QueryHash, n: int, near: bool, node_path: bool) -> float:
        q = self.q
        peers = [self.members[h] for h in self.holder_ids[:n]]
        t0 = time.perf_counter()
        job = await q.querier.submit([qh])
        if node_path:
            while await q.delivery.process_due():
                pass
            status = await q.querier.job_status(job)
            found = len(status.results)
            dt = time.perf_counter() - t0
            assert status.complete
        else:
            if near:
                # Made before the concurrent rounds: EncryptionCache.get is not safe against two
                # run_tasks encrypting the same hash at once (see the report).
                await asyncio.to_thread(q.querier._encryptions_for(job).get, qh.hash)
            got = await asyncio.gather(*(q.querier.run_task(job, p) for p in peers))
            dt = time.perf_counter() - t0
            found = sum(len(g) for g in got)
            await self._finish_outbox(job)
        want = n if near else 0
        assert found == want, (found, want)
        return dt

    async def latency_cell(
        self, n: int, near: bool, probes: int, samples: int, node_path: bool = False
    ) -> dict[str, Any]:
        pool = self.near if near else self.unrelated
        beside = Beside(self.floor, self.cpu_floor, capacity=True)
        times = []
        wire_start = len(self.wire)
        cpu0 = await self.holders_cpu() if self.procs else None
        for i in range(samples):
            beside.sample()
            qh = pool[(self._cursor + i) % len(pool)]
            if probes <= SCHEME.tables:
                qh = QueryHash(qh.hash, None)
            times.append(await self.one_query(qh, n, near, node_path))
        cpu1 = await self.holders_cpu() if self.procs else None
        beside.sample()
        self._cursor += samples
        cost = beside.cost()
        cpu_cost = beside.cpu_cost()
        st = self.ops[probes]
        names = list(st)
        holder_ops = add_ops(st[names[1]], *((st[names[4]], st[names[5]]) if near else ()))
        holder_cpu = None
        if cpu0 is not None and cpu1 is not None:
            holder_cpu = statistics.median(
                (cpu1[h] - cpu0[h]) / samples for h in self.holder_ids[:n]
            )
        voprf_chain = add_ops(*(st[k] for k in names[:3]))
        enc = st[names[3]]
        thr_chain = add_ops(*(st[k] for k in names[4:]))
        if near:
            chain = add_ops(voprf_chain, thr_chain)
            crit = add_ops(enc, chain)
            total = add_ops(enc, chain, times=[1, n])
        else:
            crit = voprf_chain
            total = add_ops(voprf_chain, times=[n])
        floor_s = max(smult_floor(crit, cost), smult_floor(total, cost) / 2)
        gfloor_s = max(group_floor(crit, cost), group_floor(total, cost) / 2)
        capacity = beside.cores()
        floor_cap = max(smult_floor(crit, cost), smult_floor(total, cost) / capacity)
        p50 = statistics.median(times)
        wire = self.wire[wire_start:]
        per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for _peer, typ, s, r in wire:
            per_type[typ][0] += s
            per_type[typ][1] += r
        per_query_peer = {
            t: {"sent": v[0] / samples / n, "received": v[1] / samples / n}
            for t, v in per_type.items()
        }
        return {
            "peers": n,
            "query": "near-copy" if near else "no-candidate",
            "probe_keys": probes,
            "path": "process_due_tasks (sequential)" if node_path else "run_task x N concurrent",
            "samples": samples,
            "p50_s": p50,
            "p99_s": pct(times, 99),
            "min_s": min(times),
            "critical_path_floor_s": floor_s,
            "critical_path_group_op_floor_s": gfloor_s,
            "ratio_p50_vs_floor": p50 / floor_s,
            "ratio_p50_vs_group_op_floor": p50 / gfloor_s,
            "parallel_capacity_beside": capacity,
            "critical_path_floor_at_capacity_s": floor_cap,
            "ratio_p50_vs_floor_at_capacity": p50 / floor_cap,
            "bytes_per_query_per_peer": per_query_peer,
            "holder_process_cpu_per_query_s": holder_cpu,
            "holder_floor_s": smult_floor(holder_ops, cpu_cost),
            "holder_process_cpu_ratio_vs_floor": None
            if holder_cpu is None
            else holder_cpu / smult_floor(holder_ops, cpu_cost),
            "holder_process_cpu_ratio_vs_group_op_floor": None
            if holder_cpu is None
            else holder_cpu / group_floor(holder_ops, cpu_cost),
            "floor_beside_s": cost,
        }

    # holder CPU per query ----------------------------------------------------------------------

    async def holder_cpu(self, probes: int, near: bool, samples: int) -> dict[str, Any]:
        holder = self.fed["holder-1"].node
        peer_key = self.members["holder-1"].voprf_key
        replica = self.q.replication.replica_indexes["holder-1"]
        pool = self.near if near else self.unrelated
        beside = Beside(self.floor, self.cpu_floor)
        ev_cpu, th_cpu, ev_wall, th_wall = [], [], [], []
        for i in range(samples):
            qh = pool[(self._cursor + i) % len(pool)]
            qh = QueryHash(qh.hash, qh.float_vector if probes > SCHEME.tables else None)
            ex = matching.PeerExchange("holder-1", peer_key, SCHEME, [qh])
            body = ex.evaluate_request()
            beside.sample()
            c0, t0 = time.process_time(), time.perf_counter()
            reply = await holder.responder.evaluate(self.q_member, body)
            ev_cpu.append(time.process_time() - c0)
            ev_wall.append(time.perf_counter() - t0)
            if near:
                ex.on_evaluated(reply, replica)
                reqs = ex.threshold_requests(matching.EncryptionCache(os.urandom))
                c0, t0 = time.process_time(), time.perf_counter()
                ans = await holder.responder.threshold(self.q_member, reqs[0])
                th_cpu.append(time.process_time() - c0)
                th_wall.append(time.perf_counter() - t0)
                assert len(ans["answers"]) == len(reqs[0]["items"])
        beside.sample()
        self._cursor += samples
        cost = beside.cpu_cost()  # CPU time against the CPU-time floor
        st = self.ops[probes]
        names = list(st)
        ev_ops = st[names[1]]
        th_ops = add_ops(st[names[4]], st[names[5]])
        ops = add_ops(ev_ops, th_ops) if near else ev_ops
        cpu = statistics.median(ev_cpu) + (statistics.median(th_cpu) if near else 0.0)
        out = {
            "query": "near-copy" if near else "no-candidate",
            "probe_keys": probes,
            "samples": samples,
            "cpu_s": cpu,
            "evaluate_cpu_s": statistics.median(ev_cpu),
            "evaluate_wall_s": statistics.median(ev_wall),
            "ops": ops,
            "floor_s": smult_floor(ops, cost),
            "group_op_floor_s": group_floor(ops, cost),
            "ratio_vs_floor": cpu / smult_floor(ops, cost),
            "ratio_vs_group_op_floor": cpu / group_floor(ops, cost),
            "evaluate_ratio_vs_floor": statistics.median(ev_cpu) / smult_floor(ev_ops, cost),
            "floor_beside_s": cost,
        }
        if near:
            out |= {
                "threshold_cpu_s": statistics.median(th_cpu),
                "threshold_wall_s": statistics.median(th_wall),
                "threshold_ratio_vs_floor": statistics.median(th_cpu) / smult_floor(th_ops, cost),
                "threshold_ratio_vs_group_op_floor": statistics.median(th_cpu)
                / group_floor(th_ops, cost),
            }
        return out

    async def request_overhead(self, samples: int) -> dict[str, float]:
        """CPU (and wall) of the per-request work around the crypto, on the in-process
        holder-1: opening and sealing an envelope the size of an ``oprf.evaluate``, and the
        request's admission (nonce, budget charge, traffic count) as ``Admission.charge`` does
        it now (one transaction, no fsync) and as it was (three separate fsynced commits)."""
        from blindmatch.node.storage import BudgetLimits
        from blindmatch.protocol import envelope

        holder = self.fed["holder-1"].node
        qm = self.q_member
        ex = matching.PeerExchange(
            "holder-1", self.members["holder-1"].voprf_key, SCHEME, [self.unrelated[0]]
        )
        body = ex.evaluate_request()
        limits = BudgetLimits(
            per_hour=qm.budget["evaluations_per_hour"], per_day=qm.budget["evaluations_per_day"]
        )
        out: dict[str, list[float]] = defaultdict(list)
        for _ in range(samples):
            c0 = time.process_time()
            data, _nonce = self.q.client.seal("oprf.evaluate", body)
            c1 = time.process_time()
            envelope.open_envelope(
                data,
                now_ms=int(holder.now() * 1000),
                sender_key=holder.roster.signing_key,
                max_bytes=1 << 20,
                expected_types=("oprf.evaluate",),
            )
            c2 = time.process_time()
            out["seal_envelope_s"].append(c1 - c0)
            out["open_envelope_s"].append(c2 - c1)
            adm = holder.admission.pending("querier", os.urandom(16))
            w0, c0 = time.perf_counter(), time.process_time()
            await holder.admission.charge(qm, "evaluations", 64, "evaluations", adm)
            c1, w1 = time.process_time(), time.perf_counter()
            assert adm.recorded
            out["admission_s"].append(c1 - c0)
            out["admission_wall_s"].append(w1 - w0)
            # The same three writes as separate durable commits, as before this change.
            w0, c0 = time.perf_counter(), time.process_time()
            await holder.nonces.remember(
                "querier", os.urandom(16), holder.now() + 600, holder.now()
            )
            await holder.budgets.charge("querier/evaluations", 64, holder.now(), limits)
            await holder.traffic.record(
                "querier", "evaluations", "received", 1, 64, holder.now() * 1000
            )
            c1, w1 = time.process_time(), time.perf_counter()
            out["admission_separate_commits_s"].append(c1 - c0)
            out["admission_separate_commits_wall_s"].append(w1 - w0)
            # A round trip with no crypto and no budget: an empty feed.pull, querier and
            # holder-1 both in this process (HTTP, two envelopes sealed and opened, a nonce).
            head = await holder.feeds.head("feedback")
            w0, c0 = time.perf_counter(), time.process_time()
            await self.q.client.call(
                self.members["holder-1"],
                "feed.pull",
                {"feed": "feedback", "after": head, "limit": 1},
            )
            c1, w1 = time.process_time(), time.perf_counter()
            out["empty_round_trip_s"].append(c1 - c0)
            out["empty_round_trip_wall_s"].append(w1 - w0)
        return {k: statistics.median(v) for k, v in out.items()}

    # checks of behaviour at scale ---------------------------------------------------------------

    async def race_check(self) -> dict[str, Any]:
        """Two run_tasks of one near-copy job at once, without making the encryption first."""
        q = self.q
        errors = []
        for i in range(3):
            job = await q.querier.submit([self.near[(self._cursor + i) % len(self.near)]])
            got = await asyncio.gather(
                *(q.querier.run_task(job, self.members[h]) for h in self.holder_ids[:2]),
                return_exceptions=True,
            )
            errors += [f"{type(g).__name__}: {g}" for g in got if isinstance(g, BaseException)]
            await self._finish_outbox(job)
        self._cursor += 3
        return {"jobs": 3, "failed_tasks": len(errors), "errors": sorted(set(errors))[:3]}

    async def large_feed_check(self, items: int) -> dict[str, Any]:
        """A holder whose index feed holds ``items`` items in SAFE_BATCH-item deltas
        (random entries appended to holder-4's feed), pulled by the querier over HTTP."""
        holder = self.fed["holder-4"].node
        now = holder.now()
        batches = items // SAFE_BATCH
        for _ in range(batches):
            payload = canonical.encode(
                {
                    "scheme": SCHEME.name,
                    "key_id": holder.keys.voprf_key_id,
                    "entries": index.pack_entries(
                        index.split_entries(os.urandom(SAFE_BATCH * ENTRY_BYTES_PER_ITEM))
                    ),
                }
            )
            await holder.feeds.append(INDEX_FEED, os.urandom(16), "index.add", payload, now)
        peer = self.members["holder-4"]
        t0 = time.perf_counter()
        try:
            new = await self.q.replication.sync_peer(peer)
            outcome = f"ok: {new} feed entries"
        except PeerError as exc:
            outcome = f"refused: {exc.code}: {exc}"
        return {
            "items_appended": batches * SAFE_BATCH,
            "feed_entries_appended": batches,
            "page_bytes_estimate": batches * len(payload),
            "outcome": outcome,
            "wall_s": time.perf_counter() - t0,
        }

    # the run -----------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        a = self.args
        started = time.perf_counter()
        self.result["load_average_at_start"] = os.getloadavg()
        self._cursor = 0
        for _ in range(3):
            self.floor.sample()
        print(f"[node bench] setup: {HOLDERS} holders x {a.real} real items", flush=True)
        await self.setup()
        print("[node bench] index build (reconcile_index as is, then process pool)", flush=True)
        await self.index_build()
        print("[node bench] replication over HTTP", flush=True)
        await self.replicate()
        self._step_times: dict[int, dict[str, float]] = {}
        self._near_candidates: dict[int, int] = {}  # candidates of the near copy, per probe count
        self.ops = {p: self.step_ops(p) for p in (SCHEME.probe_budget, SCHEME.tables)}
        self.result["step_ops"] = {str(p): v for p, v in self.ops.items()}
        self.result["step_times_single_thread_s"] = {str(p): v for p, v in self._step_times.items()}
        self.result["near_copy_candidates"] = {str(p): v for p, v in self._near_candidates.items()}
        self.result["race_check"] = await self.race_check()
        self.result["request_overhead_cpu"] = await self.request_overhead(20)
        synthetic = SyntheticEntries()
        sizes, cells, holder_cpu = [], [], []
        for size in a.sizes:
            print(f"[node bench] size {size:,}: growing holders and replicas", flush=True)
            sizes.append(await self.grow_to(size, synthetic))
            for near in (True, False):
                hc = await self.holder_cpu(SCHEME.probe_budget, near, a.samples_cpu)
                hc["size"] = size
                holder_cpu.append(hc)
            await self.holders_out()
            for probes in (SCHEME.probe_budget, SCHEME.tables):
                ns = a.samples if probes == SCHEME.probe_budget else a.samples_base
                for n in a.peers:
                    for near in (True, False):
                        cell = await self.latency_cell(n, near, probes, ns)
                        cell["size"] = size
                        cells.append(cell)
                        print(
                            f"  {size:>9,} x {n} peers, {cell['query']:<12} {probes} keys: "
                            f"p50 {cell['p50_s'] * 1e3:7.1f} ms  p99 {cell['p99_s'] * 1e3:7.1f} ms"
                            f"  {cell['ratio_p50_vs_floor']:.2f}x floor",
                            flush=True,
                        )
            for near in (True, False):
                cell = await self.latency_cell(
                    HOLDERS, near, SCHEME.probe_budget, a.samples_node, node_path=True
                )
                cell["size"] = size
                cells.append(cell)
                print(
                    f"  {size:>9,} x {HOLDERS} peers, {cell['query']:<12} node path: "
                    f"p50 {cell['p50_s'] * 1e3:7.1f} ms  {cell['ratio_p50_vs_floor']:.2f}x floor",
                    flush=True,
                )
            await self.holders_in()
        self.result["sizes"] = sizes
        self.result["latency"] = cells
        self.result["holder_cpu"] = holder_cpu
        print("[node bench] large feed page check", flush=True)
        self.result["large_feed_check"] = await self.large_feed_check(a.feed_check_items)
        self.result["wall_s"] = time.perf_counter() - started
        self.result["load_average_at_end"] = os.getloadavg()
        return self.result

    async def close(self) -> None:
        for proc, _, _ in self.procs.values():
            proc.terminate()
        await self.fed.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def summarize(r: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    ib = r["index_build"]
    main_cells = [
        c
        for c in r["latency"]
        if c["path"].startswith("run_task") and c["probe_keys"] == SCHEME.probe_budget
    ]
    hc = r["holder_cpu"]
    targets = {
        "holder CPU per query <= 1.3x its scalar-mult floor (near-copy, every size)": all(
            h["ratio_vs_floor"] <= 1.3 for h in hc if h["query"] == "near-copy"
        ),
        "holder CPU per query <= 1.3x its scalar-mult floor (no-candidate, every size)": all(
            h["ratio_vs_floor"] <= 1.3 for h in hc if h["query"] == "no-candidate"
        ),
        "index build (reconcile_index as is) <= 1.3x the two-core floor": ib[
            "reconcile_index_as_is"
        ]["ratio_vs_floor_both_cores"]
        <= 1.3,
        "index build (process pool, 2 workers) <= 1.3x the two-core floor": ib["process_pool_2"][
            "ratio_vs_floor_both_cores"
        ]
        <= 1.3,
        "p50 latency <= 1.5x the critical path's floor (every cell, 64 keys, concurrent)": all(
            c["ratio_p50_vs_floor"] <= 1.5 for c in main_cells
        ),
        # Informational, against the floor at the cores this run could actually get.
        "(contention-adjusted) index build (process pool) <= 1.3x the floor at the cores free": ib[
            "process_pool_2"
        ]["ratio_vs_floor_at_cores_free"]
        <= 1.3,
        "(contention-adjusted) p50 latency <= 1.5x the floor at the cores free (every cell)": all(
            c["ratio_p50_vs_floor_at_capacity"] <= 1.5 for c in main_cells
        ),
        "(group ops counted) holder CPU per query <= 1.3x its group-op floor (near-copy)": all(
            h["ratio_vs_group_op_floor"] <= 1.3 for h in hc if h["query"] == "near-copy"
        ),
        "(group ops counted) index build, pool workers' CPU <= 1.3x the group-op CPU floor": ib[
            "process_pool_2"
        ]["workers_cpu_ratio_vs_cpu_group_op_floor"]
        <= 1.3,
    }
    return targets


# --- report -------------------------------------------------------------------------------------


def _t(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:,.1f} µs"
    if s < 1:
        return f"{s * 1e3:,.1f} ms"
    return f"{s:,.2f} s"


def _b(n: float) -> str:
    return f"{n:,.0f} B"


def findings(r: dict[str, Any]) -> list[str]:
    """Bottlenecks, with the figures of this run that show them and a fix in the node code."""
    lat = r["latency"]
    top = max(c["size"] for c in lat)
    near4 = [c for c in lat if c["size"] == top and c["peers"] == HOLDERS and c["query"] ==
             "near-copy" and c["probe_keys"] == SCHEME.probe_budget]  # fmt: skip
    seq = next(c for c in near4 if not c["path"].startswith("run_task"))
    par = next((c for c in near4 if c["path"].startswith("run_task")), None)
    par_text = "(not measured)" if par is None else _t(par["p50_s"])
    steps = r["step_ops"][str(SCHEME.probe_budget)]
    ans = steps["holder: sums + answer every candidate"]
    ver = steps["holder: verify 256 bit proofs"]
    f = r["cpu_floor_s"]
    noop = {s["size"]: s["reconcile_index_noop_s"] for s in r["sizes"]}
    rep = r["replication"]
    ro = r["request_overhead_cpu"]
    out = [
        "",
        "## Bottlenecks found (and the fix suggested for the node code)",
        "",
        "Status in the node code: items 1, 2, 7, 8 and 9 are fixed (a job's peers run "
        "concurrently, query encryption is serialised per job, feed pages stop at an 8 MiB "
        "budget, the replica is a sorted numpy multiset with a vectorised `lookup_many`, a "
        "request's nonce, budget and count are one transaction); item 5's figures are the "
        "differences-only `reconcile_index` (it was 17.6 s at 1M before). The check above "
        "shows the large backlog now syncs.",
        "",
        f"1. **`process_due_tasks` runs a job's per-peer tasks one after another.** Near-copy "
        f"query, {HOLDERS} peers, {top:,} hashes: p50 {_t(seq['p50_s'])} through the node's own "
        f"path against {par_text} with the tasks run concurrently. Fix: run the claimed "
        "tasks concurrently (`asyncio.gather` under a semaphore of `cfg.match_workers`), after "
        "fixing 2.",
        f"2. **`EncryptionCache.get` races.** Two concurrent `run_task`s of one job both miss "
        f"the cache, both encrypt, and the later write wins; the other task's answer no longer "
        f"matches its request ({r['race_check']['failed_tasks']} of "
        f"{2 * r['race_check']['jobs']} tasks failed with `internal`). Fix: a `threading.Lock` "
        "in `EncryptionCache.get` (it runs in worker threads), or encrypt once per job in "
        "`Querier.run_task` under a per-job `asyncio.Lock` before `threshold_requests`.",
        (
            f"3. **The holder builds per-query nibble tables even for one candidate.** The step "
            f"'sums + answer every candidate' costs {ans.get('add', 0):g} point additions "
            f"({_t(ans.get('add', 0) * f['add'])} at the CPU floor) against "
            f"{ans.get('var', 0):g} + {ans.get('base', 0):g} scalar multiplications "
            f"({_t(smult_floor(ans, f))}). Summing the 256 signed ciphertexts directly takes "
            "about 2 x 255 additions per candidate against about 2,000 once per query, so it is "
            "cheaper up to about five candidates per query. Fix: in `crypto/threshold.py`, "
            "compute `(A_D, B_D)` directly for a query's first few candidates and build the "
            "tables only from the fifth."
            if ans.get("add", 0) > 1000
            else f"3. (Resolved in this run's code: one candidate now costs the holder "
            f"{ans.get('add', 0):g} point additions for its sums and answer, "
            f"{_t(ans.get('add', 0) * f['add'])} at the CPU floor, instead of ~2,100 with "
            "per-query nibble tables.)"
        ),
        f"4. **Point additions are priced at {f['add'] / f['var']:.2f} of a scalar "
        "multiplication** because libsodium only adds encoded points (decode + add + encode): "
        f"the bit-proof check alone has {ver.get('add', 0):g} of them. With them counted the "
        "holder is near its floor (group-op ratios above); against scalar multiplications "
        "only, the 1.3x target cannot be met with this binding. Likewise every `Evaluate` of "
        f"the index build needs a one-way map ({f['map'] / f['var']:.2f} of a multiplication): "
        "the index floor should count it (RFC 9497 Evaluate = HashToGroup + one "
        "multiplication).",
        "5. **A no-op `reconcile_index` reads every item and every publication**: "
        + ", ".join(f"{_t(v)} at {k:,}" for k, v in noop.items())
        + " hashes, and `_sync_loop` calls it every `sync_interval_s`. Fix: select only the "
        "deltas in SQL (`LEFT JOIN index_publications p ON p.item_ref = i.item_ref WHERE "
        "p.item_ref IS NULL` for additions, `NOT EXISTS` an active item for removals, "
        "selecting `entries` only for those).",
        "6. **`reconcile_index` evaluated in the event loop, on one core.** Fixed: a backlog "
        "of 20,000 keys or more is evaluated in worker processes, one per core "
        "(`node/federation/index_build.py`, spawned once and kept), smaller ones in a thread; "
        "the loop only writes the deltas. The rate table above measures `reconcile_index()` "
        "itself.",
        "7. **Feed pages have no byte cap.** `feed.pull` asks for 500 entries and a full delta "
        f"is ~{SAFE_BATCH * ENTRY_BYTES_PER_ITEM / 2**20:.1f} MiB, so a backlog of more than "
        f"~{16 * 2**20 // (SAFE_BATCH * ENTRY_BYTES_PER_ITEM)} deltas (about "
        f"{16 * 2**20 // ENTRY_BYTES_PER_ITEM:,} hashes) makes a page above the querier's "
        "16 MiB reply limit, and the first sync of such a holder never completes (check "
        "above). Fix: `handle_feed_pull` stops adding entries at a byte budget (say 8 MiB, "
        "always at least one entry).",
        f"8. **The querier's replica costs {rep['replica_memory_bytes_per_entry']:,.0f} bytes "
        f"per entry** in `ReplicaIndex` (sorted runs of columns, merged column by column; "
        f"measured after its merges; peak {rep.get('replica_memory_peak_vs_steady', 0):.2f}x "
        f"while syncing this bench's {rep['items_per_holder']:,}-hash replica, the decoded "
        f"feed payloads counted): "
        f"{rep['replica_memory_bytes_per_1M_hash_peer'] / 2**30:,.2f} GiB per 1M-hash peer. "
        "bench/results/replica.md measures a 1M-hash peer's replica (merge "
        "peak, first lookup after a sync) against the previous one.",
        f"9. **Fixed CPU per request** (seal {_t(ro['seal_envelope_s'])}, open "
        f"{_t(ro['open_envelope_s'])} on the holder alone). Fixed: a request's nonce, budget "
        "charge and traffic count were three fsynced SQLite commits "
        f"({_t(ro['admission_separate_commits_s'])} CPU, "
        f"{_t(ro['admission_separate_commits_wall_s'])} wall); they are one transaction "
        f"committed without fsync ({_t(ro['admission_s'])} CPU, {_t(ro['admission_wall_s'])} "
        "wall).",
        *_critical_path_budget(r),
    ]
    return out


def _critical_path_budget(r: dict[str, Any]) -> list[str]:
    """Item 10: how a one-peer p50 splits into the crypto code's own time and the rest."""
    steps = r["step_times_single_thread_s"][str(SCHEME.probe_budget)]
    names = list(steps)
    voprf = sum(steps[n] for n in names[:3])
    full = sum(steps.values())
    top = max(c["size"] for c in r["latency"])
    cells = {
        c["query"]: c
        for c in r["latency"]
        if c["size"] == top
        and c["peers"] == 1
        and c["probe_keys"] == SCHEME.probe_budget
        and c["path"].startswith("run_task")
    }
    if len(cells) < 2:
        return []
    none, near = cells["no-candidate"], cells["near-copy"]
    ro = r["request_overhead_cpu"]
    return [
        f"10. **What else is on the critical path** (one peer, {top:,} hashes, "
        f"{SCHEME.probe_budget} keys). The steps' own CPU, each run alone (table above), "
        f"sums to {_t(voprf)} for a no-candidate query (floor {_t(none['critical_path_floor_s'])}"
        f", p50 {_t(none['p50_s'])}) and {_t(full)} for a near copy (floor "
        f"{_t(near['critical_path_floor_s'])}, p50 {_t(near['p50_s'])}). So of the near copy's "
        f"{near['ratio_p50_vs_floor']:.2f}x, {full / near['critical_path_floor_s']:.2f}x is the "
        "crypto code against its scalar-multiplication floor (point additions and encodings: "
        "bottleneck 4, crypto/threshold.py) and the node adds "
        f"{_t(max(0.0, near['p50_s'] - full))}; a no-candidate query is small enough that the "
        f"node's share, {_t(max(0.0, none['p50_s'] - voprf))}, weighs more. That share is: one "
        f"HTTP round trip of signed envelopes per round (an empty one costs "
        f"{_t(ro['empty_round_trip_wall_s'])}; sealing {_t(ro['seal_envelope_s'])} and opening "
        f"{_t(ro['open_envelope_s'])} each side, of which checking every group element of "
        "the body again on seal is redundant for the sender's own output: protocol/envelope.py), "
        f"the holder's admission ({_t(ro['admission_wall_s'])}), `submit` and `run_task`'s "
        "bookkeeping on the querier (14 to 20 statements a job with one peer, each a thread round "
        "trip through aiosqlite of ~0.1 ms; fsynced commits), and a worker-thread hop per "
        "crypto step. Overlap is what is left: the holder's 256 proof checks are one thread "
        "while the other core idles (one peer), and the query could be encrypted during the "
        "VOPRF round; both would beat this floor's sequential path, not the floor itself.",
    ]


def render_markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    a = r["args"]
    f = r["floor_s"]
    ib = r["index_build"]
    rep = r["replication"]
    lines = [
        "# Node benchmark",
        "",
        f"Machine: {m['processor']}, {m['cpus']} CPUs (shared), {m['platform']}, Python "
        f"{m['python']}, libsodium {m['libsodium']}. One run of `./dev bench node"
        f"{' --quick' if a['quick'] else ''}` ({r['wall_s'] / 60:.1f} min): one querier and "
        f"{HOLDERS} holders, each a real `Node` with its SQLite store and aiohttp server on "
        "127.0.0.1, signed envelopes, a signed roster. Medians unless said otherwise; every "
        "ratio uses the floor sampled beside its own measurement in this run. Load average "
        f"(other sessions share the machine): {r['load_average_at_start'][0]:.2f} at the "
        f"start, {r['load_average_at_end'][0]:.2f} at the end.",
        "",
        f"Floor on this core (run median): variable-base scalar multiplication "
        f"{_t(f['var'])}, fixed-base {_t(f['base'])}, point addition {_t(f['add'])}, "
        f"one-way map {_t(f['map'])}. CPU time is compared with the same loops timed in CPU "
        f"time (variable-base {_t(r['cpu_floor_s']['var'])}), wall time with the wall-time floor.",
        "",
        f"LSH scheme `{SCHEME.name}` as in the working tree at run time: {SCHEME.tables} "
        f"tables x {SCHEME.bits_per_table} bits, probe budget {SCHEME.probe_budget} "
        f"(git {r['git']}).",
        "",
        "## Targets",
        "",
        "The issue's targets first; the lines in parentheses are the same figures against the "
        "floor at the cores this run could actually get, or with point additions and one-way "
        "maps counted in the floor (see bottleneck 4).",
        "",
    ]
    for k, v in r["targets"].items():
        lines.append(f"- {'met' if v else 'MISSED'}: {k}")
    lines += [
        "",
        "## Match latency, one query hash against N peers in parallel",
        "",
        "End to end on the querier: `Querier.submit` (the job and its per-peer tasks, committed), "
        "then `Querier.run_task` for each of the N peers concurrently (`asyncio.gather`): VOPRF "
        "round over HTTP, proof check, replica lookup, and for a near copy the threshold round. "
        "Near-copy queries are edited copies (8–24 bits away) of a hash every holder holds, so "
        "each peer has one matching item, a candidate in every table (and probe) that hits it "
        "(spec 8.5), each answered by the private threshold test; no-candidate queries "
        "hit no bucket and cost the VOPRF round only. The p99 of "
        f"{a['samples']} ({SCHEME.probe_budget} keys) or {a['samples_base']} ({SCHEME.tables} "
        "keys) samples is close to their "
        "maximum.",
        "",
        "Critical-path floor: counted group operations of each step (table below) times the "
        "cost of one, summed along the path: querier blind -> holder BlindEvaluate + proof -> "
        "querier finalize (+ querier encryption once per hash -> holder proof check -> holder "
        "sums + answer -> querier decide). Peers run in parallel but all N+1 nodes share 2 "
        "cores, so the floor is max(path, total work / 2): the longest chain, or all the work "
        "spread perfectly over both cores, whichever is longer.",
        "",
        "The machine is shared: beside every sample the bench also measures how many cores it "
        "can actually get (two threads of raw scalar multiplications against one; 2.0 = both "
        "cores free). The last two columns use that measured capacity instead of 2.",
        "",
        "| hashes / peer | peers | query | keys | p50 | p99 | floor | p50 / floor | "
        "p50 / group-op floor | cores free | p50 / floor at cores free |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in r["latency"]:
        if not c["path"].startswith("run_task"):
            continue
        lines.append(
            f"| {c['size']:,} | {c['peers']} | {c['query']} | {c['probe_keys']} | "
            f"{_t(c['p50_s'])} | {_t(c['p99_s'])} | {_t(c['critical_path_floor_s'])} | "
            f"{c['ratio_p50_vs_floor']:.2f}x | {c['ratio_p50_vs_group_op_floor']:.2f}x | "
            f"{c['parallel_capacity_beside']:.2f} | {c['ratio_p50_vs_floor_at_capacity']:.2f}x |"
        )
    lines += [
        "",
        "The node's own path, `submit` + `process_due_tasks` (which runs the claimed per-peer "
        "tasks one after another), 64 keys:",
        "",
        "| hashes / peer | peers | query | p50 | p99 | floor (parallel peers) | p50 / floor |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for c in r["latency"]:
        if c["path"].startswith("run_task"):
            continue
        lines.append(
            f"| {c['size']:,} | {c['peers']} | {c['query']} | {_t(c['p50_s'])} | "
            f"{_t(c['p99_s'])} | {_t(c['critical_path_floor_s'])} | "
            f"{c['ratio_p50_vs_floor']:.2f}x |"
        )
    lines += [
        "",
        "### Steps of one query against one holder (counted once, single thread)",
        "",
        "Each step run once by itself in one thread, its CPU time against the CPU-time floor "
        "(run medians).",
        "",
        "| step | var / base / add / map | floor (scalar mults) | floor (group ops) | CPU alone |"
        " ratio | group-op ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    cost = r["cpu_floor_s"]
    for name, ops in r["step_ops"][str(SCHEME.probe_budget)].items():
        took = r["step_times_single_thread_s"][str(SCHEME.probe_budget)][name]
        lines.append(
            f"| {name} | {ops.get('var', 0):g} / {ops.get('base', 0):g} / {ops.get('add', 0):g}"
            f" / {ops.get('map', 0):g} | {_t(smult_floor(ops, cost))} | "
            f"{_t(group_floor(ops, cost))} | {_t(took)} | {took / smult_floor(ops, cost):.2f}x | "
            f"{took / group_floor(ops, cost):.2f}x |"
        )
    lines += [
        "",
        f"({SCHEME.probe_budget} probe keys; with the {SCHEME.tables} base keys the first three "
        f"steps scale by {SCHEME.tables}/{SCHEME.probe_budget}.)",
        "",
        "## The holder's CPU per query",
        "",
        "`PeerResponder.evaluate` and `PeerResponder.threshold` called directly on holder-1 "
        "(budget charge, VOPRF evaluation with proof; proof check of the encrypted query, "
        "candidate lookup in `bank_items`, answer), CPU time of the whole process (its worker "
        "threads included; nothing else runs meanwhile) against the CPU-time floor, "
        f"{SCHEME.probe_budget} keys, fresh encrypted query per sample.",
        "",
        "| hashes | query | CPU / query | scalar-mult floor | ratio | group-op ratio | "
        "evaluate ratio | threshold ratio |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for h in r["holder_cpu"]:
        lines.append(
            f"| {h['size']:,} | {h['query']} | {_t(h['cpu_s'])} | {_t(h['floor_s'])} | "
            f"{h['ratio_vs_floor']:.2f}x | {h['ratio_vs_group_op_floor']:.2f}x | "
            f"{h['evaluate_ratio_vs_floor']:.2f}x | "
            f"{h.get('threshold_ratio_vs_floor', float('nan')):.2f}x |"
        )
    lines += [
        "",
        "The same, measured in each holder's own process during the latency runs (CPU time of "
        "the whole holder process per query: HTTP server, envelope checks and signatures, "
        "nonce and budget writes, the handlers), median over the queried holders:",
        "",
        "| hashes | peers | query | keys | holder CPU / query | floor | ratio | group-op ratio |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in r["latency"]:
        if c.get("holder_process_cpu_per_query_s") is None or not c["path"].startswith("run"):
            continue
        lines.append(
            f"| {c['size']:,} | {c['peers']} | {c['query']} | {c['probe_keys']} | "
            f"{_t(c['holder_process_cpu_per_query_s'])} | {_t(c['holder_floor_s'])} | "
            f"{c['holder_process_cpu_ratio_vs_floor']:.2f}x | "
            f"{c['holder_process_cpu_ratio_vs_group_op_floor']:.2f}x |"
        )
    ro = r["request_overhead_cpu"]
    lines += [
        "",
        "Fixed CPU per request around the crypto (holder-1, in process): seal an envelope "
        f"{_t(ro['seal_envelope_s'])}, open and verify it {_t(ro['open_envelope_s'])}; the "
        "request's admission (nonce, budget charge, traffic count in one transaction, "
        f"committed without fsync) {_t(ro['admission_s'])} CPU, {_t(ro['admission_wall_s'])} "
        "wall, against "
        f"{_t(ro['admission_separate_commits_s'])} CPU, "
        f"{_t(ro['admission_separate_commits_wall_s'])} wall as three separate fsynced "
        "commits (as before). A round trip with no crypto (an empty `feed.pull` from the "
        f"querier to holder-1, both in this process) takes {_t(ro['empty_round_trip_wall_s'])}"
        f" wall, {_t(ro['empty_round_trip_s'])} CPU.",
    ]
    asis, pooled = ib["reconcile_index_as_is"], ib["process_pool_2"]
    ops = ib["ops_per_item"]
    lines += [
        "",
        "## Index build",
        "",
        f"Per indexed hash: {SCHEME.tables} bucket keys, each `Evaluate` = "
        f"{ops.get('map', 0) / SCHEME.tables:g} one-way map + {ops.get('var', 0) / SCHEME.tables:g}"
        f" variable-base multiplication. Floor for both cores = hashes x {SCHEME.tables} x t_var"
        " / 2.",
        "",
        "| build | hashes | wall | hashes / s | floor (2 cores) hashes / s | ratio vs 2-core "
        "floor | ratio vs group-op floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| `reconcile_index()` as is (worker processes for the backlog; median of "
        f"{asis['holders_measured']} holders) | {asis['items']:,} | {_t(asis['wall_s'])} | "
        f"{asis['items_per_s']:,.0f} | {asis['floor_items_per_s_both_cores']:,.0f} | "
        f"{asis['ratio_vs_floor_both_cores']:.2f}x (one-core floor: "
        f"{asis['ratio_vs_floor_one_core']:.2f}x) | "
        f"{asis['ratio_vs_group_op_floor_both_cores']:.2f}x |",
        f"| same evaluation, `ProcessPoolExecutor(2)`, 250-hash chunks (median of "
        f"{pooled['repeats']}) | {pooled['items']:,} | {_t(pooled['wall_s'])} | "
        f"{pooled['items_per_s']:,.0f} | {pooled['floor_items_per_s_both_cores']:,.0f} | "
        f"{pooled['ratio_vs_floor_both_cores']:.2f}x | "
        f"{pooled['ratio_vs_group_op_floor_both_cores']:.2f}x |",
        "",
        "CPU time against the CPU-time floor (what the code costs per core, whatever the "
        f"other sessions take): `reconcile_index` {asis['cpu_ratio_vs_cpu_floor_one_core']:.2f}x"
        f" its one-core floor ({asis['cpu_ratio_vs_cpu_group_op_floor_one_core']:.2f}x counting "
        "the one-way maps); the pool's workers "
        f"{pooled['workers_cpu_ratio_vs_cpu_floor']:.2f}x "
        f"({pooled['workers_cpu_ratio_vs_cpu_group_op_floor']:.2f}x counting the maps). Cores "
        "free beside the pool run: "
        f"{pooled['cores_free_beside']:.2f}, so against the floor at the cores actually free "
        f"the pool is at {pooled['ratio_vs_floor_at_cores_free']:.2f}x.",
        "",
        "The process-pool entries are byte-identical to those `reconcile_index` published "
        "(checked). A no-op `reconcile_index` (nothing to add or remove) at each size:",
        "",
        "| hashes | no-op reconcile_index |",
        "|---:|---:|",
    ]
    for s in r["sizes"]:
        lines.append(f"| {s['size']:,} | {_t(s['reconcile_index_noop_s'])} |")
    lines += [
        "",
        "## Bytes on the wire",
        "",
        "Envelope bytes as `PeerClient` counts them (signed msgpack envelopes; HTTP/1.1 headers, "
        "about 150–250 bytes per request and per reply, are not counted). Per query and per "
        "peer, from the latency runs:",
        "",
        "| query | keys | oprf.evaluate | oprf.evaluated | threshold.query | threshold.answer |"
        " total |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    seen = set()
    for c in r["latency"]:
        k = (c["query"], c["probe_keys"])
        if k in seen or not c["path"].startswith("run_task") or c["peers"] != 1:
            continue
        seen.add(k)
        bq = c["bytes_per_query_per_peer"]
        ev = bq.get("oprf.evaluate", {"sent": 0, "received": 0})
        tq = bq.get("threshold.query", {"sent": 0, "received": 0})
        tot = ev["sent"] + ev["received"] + tq["sent"] + tq["received"]
        lines.append(
            f"| {c['query']} | {c['probe_keys']} | {_b(ev['sent'])} | {_b(ev['received'])} | "
            f"{_b(tq['sent'])} | {_b(tq['received'])} | {_b(tot)} |"
        )
    lines += [
        "",
        f"Per indexed hash (the index feed, {rep['items_per_holder']:,} real hashes per holder "
        f"pulled over HTTP, {rep['items_per_feed_entry']:,} hashes per feed entry):",
        "",
        "| | bytes per hash |",
        "|---|---:|",
        f"| index entries ({SCHEME.tables} x {index.ENTRY_BYTES} B) | "
        f"{rep['entry_bytes_per_item']:,} |",
        f"| feed payloads (msgpack `index.add`) | {rep['payload_bytes_per_item']:,.2f} |",
        f"| feed pages received (envelopes) | {rep['received_bytes_per_item']:,.2f} |",
        f"| feed.pull requests sent | {rep['sent_bytes_per_item']:,.3f} |",
        f"| overhead over the entries (pages + requests) | {rep['overhead_bytes_per_item']:,.2f} |",
        "",
        f"The querier's in-memory replica (`ReplicaIndex`, sorted runs of columns) costs "
        f"{rep['replica_memory_bytes_per_entry']:,.0f} bytes per entry, "
        f"{rep['replica_memory_bytes_per_1M_hash_peer'] / 2**30:,.1f} GiB per peer holding 1M "
        f"hashes; a lookup takes {_t(rep['replica_lookup_s'])} one output at a time, "
        f"{_t(rep['replica_lookup_many_s_per_output'])} per output with `lookup_many` over an "
        f"exchange's {SCHEME.probe_budget} outputs (what `PeerExchange.on_evaluated` uses).",
        "",
        "## Checks at scale",
        "",
    ]
    rc = r["race_check"]
    lines.append(
        f"- Two `run_task`s of one near-copy job at once, without making the encrypted query "
        f"first: {rc['failed_tasks']} of {2 * rc['jobs']} tasks failed"
        + (f" ({'; '.join(rc['errors'])})." if rc["errors"] else ".")
    )
    lf = r["large_feed_check"]
    lines.append(
        f"- A holder whose index feed holds {lf['items_appended']:,} more hashes "
        f"({lf['feed_entries_appended']} entries of {SAFE_BATCH:,}; one page would be "
        f"~{lf['page_bytes_estimate'] / 2**20:,.0f} MiB), pulled by the querier: "
        f"{lf['outcome']}."
    )
    lines += findings(r)
    lines += ["", "## What is real and what is synthetic", ""]
    lines += [
        f"- Real: every node, key, roster, envelope, HTTP exchange, SQLite store, budget charge "
        f"and nonce check; the first {a['real']:,} hashes of every holder ({TARGETS} of them "
        "held by all four holders and added with `BankService.add_item`, the rest inserted as "
        "bank rows in multi-row INSERTs) are indexed by `reconcile_index` with the holder's "
        "VOPRF key and replicated to the querier over HTTP (`sync_all`). Every item a query "
        "finds is among them.",
        "- Hashes are synthetic: a Gaussian float vector per image, bit i = value i above the "
        "median (as PDQ derives bits from its DCT values); an edited copy adds noise (sigma "
        "0.12) to the vector. Multi-probe uses that float vector.",
        "- Synthetic, for the sizes above the real part: the holders' extra rows are "
        "`bank_items` with random 32-byte hashes and random refs (one SQL `INSERT ... SELECT "
        "randomblob()` per 100k rows), each marked published with an `index_publications` "
        "row of random entries, so `reconcile_index` does not evaluate them; the holder's "
        "database really holds that many items. The querier's replica of each peer is the "
        "node's real `ReplicaIndex` (the real entries) plus random 24-byte entries (8-byte "
        "tag, 16-byte masked ref) for the other items, kept in sorted numpy arrays and "
        "shared by the four peers' replicas (memory: the real `ReplicaIndex` would need the "
        "figure above per peer). To anyone without the holder's OPRF key, real entries are "
        "distributed exactly like these random strings, so the replica's size and lookups "
        "behave as with real entries; what random entries cannot reproduce is the rare chance "
        "bucket collision with an unrelated held hash (if hashes were uniform, a query's "
        f"{SCHEME.probe_budget} probes would meet about {SCHEME.probe_budget} x 1M / "
        f"2^{SCHEME.bits_per_table} = {SCHEME.probe_budget * 1e6 / 2**SCHEME.bits_per_table:.2f}"
        " unrelated items of a 1M-hash peer, each one more threshold test).",
        "- The holder's VOPRF and threshold work is real at every size; the size only changes "
        "the tables it looks candidates up in and the replica the querier searches.",
    ]
    return "\n".join(lines) + "\n"


def _git_describe() -> str:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench node", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller grid, fewer samples")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--peers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--real", type=int, help="real (OPRF-indexed) hashes per holder")
    parser.add_argument("--samples", type=int)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--feed-check-items", type=int, default=50_000, help="backlog for the feed-page check"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or [2_000, 20_000]
        args.real = args.real or 2_000
        args.samples = args.samples or 8
        args.samples_base, args.samples_node, args.samples_cpu = 5, 4, 5
        args.pool_repeats = 1
    else:
        args.sizes = args.sizes or [10_000, 100_000, 1_000_000]
        args.real = args.real or 10_000
        args.samples = args.samples or 25
        args.samples_base, args.samples_node, args.samples_cpu = 11, 7, 9
        args.pool_repeats = 2
    if min(args.sizes) < args.real or max(args.peers) > HOLDERS:
        parser.error(f"sizes must be >= --real and peers <= {HOLDERS}")
    args.sizes = sorted(args.sizes)
    bench = Bench(args)

    async def go() -> dict[str, Any]:
        try:
            return await bench.run()
        finally:
            await bench.close()

    result = asyncio.run(go())
    result["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "libsodium": sodium.version(),
        "cpus": os.cpu_count(),
    }
    result["args"] = {
        "quick": args.quick,
        "sizes": args.sizes,
        "peers": args.peers,
        "real": args.real,
        "samples": args.samples,
        "samples_base": args.samples_base,
        "samples_node": args.samples_node,
        "samples_cpu": args.samples_cpu,
        "seed": args.seed,
    }
    result["floor_s"] = bench.floor.median()
    result["cpu_floor_s"] = bench.cpu_floor.median()
    result["scheme"] = {
        "name": SCHEME.name,
        "tables": SCHEME.tables,
        "bits_per_table": SCHEME.bits_per_table,
        "probe_budget": SCHEME.probe_budget,
    }
    result["git"] = _git_describe()
    result["targets"] = summarize(result, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "node.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    md = render_markdown(result)
    (args.out / "node.md").write_text(md)
    print(md)
    return 0
