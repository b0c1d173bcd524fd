"""An honest job's latency beside each hostile peer in turn (issue 15, "isolation").

    ./dev bench hostile [--jobs 10] [--hub-items 500]

Real nodes on loopback (LocalFederation: keys, a signed roster, SQLite stores, aiohttp): an
honest hub (served from its own process, so its CPU time is its own), an honest platform that
submits match jobs, and hostile members:

- ``slow``: a holder that stops answering ``oprf.evaluate`` (its part of every job hangs);
- ``flood``: a querier (its own process) sending ``oprf.evaluate`` to the hub as fast as it can,
  far past its budget;
- ``bad-proof``: the same querier re-sending one threshold query with a broken proof, each time
  in a fresh envelope (a fresh nonce);
- ``redirect``: a holder whose endpoint answers every request with a redirect to the hub;
- ``over-cap``: a holder publishing index deltas far past the size it declared in the roster,
  while the platform syncs as its sync loop would.

For each, the honest job (a near copy of a hub item; its latency is the time until the hub's
part has answered, as the platform sees it) is timed ``--jobs`` times with nothing hostile
running, then ``--jobs`` times beside the hostile peer, side by side in the same run. Reported:
p50 and p99 of both and their ratio (target: p50 within 2x), the hub's CPU time per hostile
request (its process CPU over the phase divided by the hostile requests; and the same less the
quiet phase's CPU, the marginal cost), and whether the defence engaged (refusal codes,
incidents, metrics). Results: bench/results/hostile.md and hostile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ATTACKER_BUDGET = {
    "evaluations_per_hour": 640,  # ten requests of 64 elements, then refusals
    "evaluations_per_day": 6400,
    "threshold_items_per_hour": 100,
    "threshold_items_per_day": 1000,
}
CAPPER_DECLARED = 1000  # entries: its queriers' cap is 10,000 entries, ~4.4 MB of feed


# --- the hub in its own process ------------------------------------------------------------------


def _hub_process(cfg: Any, document: Any, governance: list[bytes], port: int, conn: Any) -> None:
    asyncio.run(_hub_main(cfg, document, governance, port, conn))


async def _hub_main(cfg: Any, document: Any, governance: list[bytes], port: int, conn: Any):  # type: ignore[no-untyped-def]
    """The hub node as LocalFederation opens it; answers "cpu" (process CPU time and the
    defence metrics) and "stop" on ``conn``."""
    from aiohttp import web

    from blindmatch.node import keys as keyfiles
    from blindmatch.node.devtools.localfed import _listening_socket
    from blindmatch.node.federation.http import build_app
    from blindmatch.node.node import Node
    from blindmatch.node.storage import open_database
    from blindmatch.protocol import roster as roster_mod

    roster = roster_mod.verify_roster(document, governance, 2, int(time.time() * 1000))
    db = await open_database(cfg.database_url, migrate_now=int(time.time()))
    node = Node(cfg, keyfiles.load(cfg.keys_dir), db, roster)
    runner = web.AppRunner(build_app(node), access_log=None)
    await runner.setup()
    sock = _listening_socket(port)
    await web.SockSite(runner, sock).start()
    await node.start(background=False)
    conn.send("ready")
    names = (
        ("bad_proofs_total", {"peer": "attacker"}),
        ("early_refusals_total", {"peer": "attacker"}),
        ("budget_refusals_total", {"peer": "attacker", "what": "evaluations"}),
        ("requests_refused_total", {"code": "budget-exhausted"}),
        ("requests_refused_total", {"code": "bad-proof"}),
    )
    while True:
        msg = await asyncio.to_thread(conn.recv)
        if msg != "cpu":
            break
        incidents = await node.db.fetch_value(
            "SELECT COUNT(*) FROM peer_log_incidents WHERE peer_id = 'attacker'"
        )
        conn.send(
            {
                "cpu": time.process_time(),
                "incidents": int(incidents or 0),
                **{
                    f"{n}{{{','.join(f'{k}={v}' for k, v in labels.items())}}}": (
                        node.metrics.value(n, labels)
                    )
                    for n, labels in names
                },
            }
        )
    await runner.cleanup()
    sock.close()
    await node.stop()
    conn.send("stopped")


# --- the hostile querier in its own process ------------------------------------------------------


def _attacker_process(keys_dir: Path, document: Any, governance: list[bytes], conn: Any) -> None:
    asyncio.run(_attacker_main(keys_dir, document, governance, conn))


async def _attacker_main(keys_dir: Path, document: Any, governance: list[bytes], conn: Any):  # type: ignore[no-untyped-def]
    """Sends what it is told to the hub until told to stop; reports requests and codes."""
    from blindmatch.crypto import threshold as th
    from blindmatch.node import keys as keyfiles
    from blindmatch.node.clock import SystemClock
    from blindmatch.node.federation.peer_client import PeerClient, PeerError
    from blindmatch.node.metrics import Metrics
    from blindmatch.protocol import matching
    from blindmatch.protocol import roster as roster_mod
    from blindmatch.protocol.lsh import PDQ_LSH_1

    roster = roster_mod.verify_roster(document, governance, 2, int(time.time() * 1000))
    hub = roster.member("hub")
    assert hub is not None and hub.voprf_key is not None
    client = PeerClient("attacker", keyfiles.load(keys_dir).identity, SystemClock(), Metrics())
    evaluate = matching.PeerExchange(
        "hub", hub.voprf_key, PDQ_LSH_1, [matching.QueryHash(os.urandom(32))]
    ).evaluate_request()
    query = bytearray(
        th.encrypt_query(th.QuerierKey.generate(), os.urandom(32), os.urandom(16)).to_bytes()
    )
    query[-40] ^= 1  # inside the last bit's proof
    bad = {"query": bytes(query), "items": [os.urandom(24)]}
    conn.send("ready")
    while True:
        msg = await asyncio.to_thread(conn.recv)
        if msg[0] == "quit":
            break
        kind, concurrency = msg
        mtype, body = ("oprf.evaluate", evaluate) if kind == "flood" else ("threshold.query", bad)
        codes: Counter[str] = Counter()
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():  # noqa: B023
                try:
                    await client.call(hub, mtype, body)  # noqa: B023
                    codes["answered"] += 1  # noqa: B023
                except PeerError as exc:
                    codes[exc.code] += 1  # noqa: B023

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        assert await asyncio.to_thread(conn.recv) == "stop"
        stop.set()
        await asyncio.gather(*tasks)
        conn.send(dict(codes))
    await client.close()


# --- a holder whose endpoint redirects ------------------------------------------------------------


class _Sink:
    def __iadd__(self, _: bytes) -> _Sink:
        return self


def _redirecting_relay(target: tuple[str, int], location: str) -> Any:
    """A TCP relay in front of a node that, once ``hostile`` is set, answers every new
    connection with a 307 to ``location`` (and closes the ones it was relaying)."""
    from blindmatch.node.devtools.localfed import RecordingRelay

    class Relay(RecordingRelay):
        hostile = False
        redirects = 0
        open: set[asyncio.StreamWriter]

        async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):  # type: ignore[no-untyped-def]
            if not self.hostile:
                self.open.add(writer)
                try:
                    await super()._serve(reader, writer)
                finally:
                    self.open.discard(writer)
                return
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n\r\n")
                self.redirects += 1
                writer.write(
                    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: "
                    + location.encode()
                    + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
            writer.close()

        def turn_hostile(self) -> None:
            self.hostile = True
            for w in list(self.open):
                w.close()

    relay = Relay(target)
    relay.captured = _Sink()  # type: ignore[assignment]
    relay.open = set()
    return relay


# --- the run ------------------------------------------------------------------------------------


def _recv(conn: Any, proc: Any) -> Any:
    """The child's next message; an error (not a hang) if the child died."""
    while not conn.poll(1.0):
        if not proc.is_alive():
            raise RuntimeError(f"{proc.name} exited with {proc.exitcode}")
    return conn.recv()


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


class Bench:
    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        self.args, self.home = args, home
        self.misses: list[dict[str, Any]] = []

    async def setup(self) -> None:
        from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec, _listening_socket

        a = self.args
        self.fed = await LocalFederation(self.home, background=False).start(
            [
                NodeSpec("hub", ("hub",)),
                NodeSpec("platform", holds_index=False),
                NodeSpec("attacker", holds_index=False, budget=ATTACKER_BUDGET),
                NodeSpec("slow", ("platform",)),
                NodeSpec("redirect", ("platform",)),
                NodeSpec("capper", ("platform",), budget={"index_entries": CAPPER_DECLARED}),
            ]
        )
        fed = self.fed
        rng = os.urandom
        self.targets = [rng(32) for _ in range(8)]
        hub = fed["hub"]
        await hub.banks.create_bank("b", provenance="survivor-submitted", shared=True)
        for h in self.targets + [rng(32) for _ in range(a.hub_items - len(self.targets))]:
            await hub.banks.add_item("b", "pdq", h)
        t0 = time.perf_counter()
        await hub.node.publisher.reconcile()
        self.index_build_s = time.perf_counter() - t0
        for name in ("slow", "redirect", "capper"):
            local = fed[name]
            await local.banks.create_bank("b", provenance="survivor-submitted", shared=True)
            await local.banks.add_item("b", "pdq", rng(32))
            await local.node.publisher.reconcile()
        # The hub in its own process, on the same address.
        ctx = multiprocessing.get_context("spawn")
        gov = [k.public_key for k in fed.governance]
        document = dict(fed.roster.document)  # type: ignore[union-attr]
        hub_cfg = hub.cfg
        stopped = await fed.stop_node("hub")
        self.hub_conn, child = ctx.Pipe()
        self.hub_proc = ctx.Process(
            target=_hub_process, args=(hub_cfg, document, gov, stopped[2][1], child), daemon=True
        )
        self.hub_proc.start()
        assert await asyncio.to_thread(_recv, self.hub_conn, self.hub_proc) == "ready"
        # The attacker in its own process.
        self.att_conn, child = ctx.Pipe()
        self.att_proc = ctx.Process(
            target=_attacker_process,
            args=(fed["attacker"].cfg.keys_dir, document, gov, child),
            daemon=True,
        )
        self.att_proc.start()
        assert await asyncio.to_thread(_recv, self.att_conn, self.att_proc) == "ready"
        # The redirecting holder: its node moves to a new port, a relay takes its address.
        spec, keys, (host, port) = await fed.stop_node("redirect")
        moved = await fed.restart_node("redirect", (spec, keys, (host, 0)))
        self.relay = _redirecting_relay(
            moved.sock.getsockname()[:2], f"http://{host}:{stopped[2][1]}/fed/v1/message"
        )
        await self.relay.start(_listening_socket(port))
        self.platform = fed["platform"].node
        await self.platform.sync.sync_all()

    async def hub_stats(self) -> dict[str, float]:
        self.hub_conn.send("cpu")
        return dict(await asyncio.to_thread(_recv, self.hub_conn, self.hub_proc))

    async def honest_job(self) -> float:
        """Seconds from submit until the hub's part answered (found the near copy)."""
        from blindmatch.protocol.matching import QueryHash

        target = self.targets[int.from_bytes(os.urandom(1)) % len(self.targets)]
        near = bytearray(target)
        for bit in (3, 77, 140, 201):  # 4 bits flipped: a near copy
            near[bit // 8] ^= 1 << (bit % 8)
        p = self.platform
        t0 = time.perf_counter()
        job = await p.querier.submit([QueryHash(bytes(near))])
        while True:
            await p.delivery.process_due(wait=False)
            status = await p.querier.job_status(job)
            hub_task = next(t for t in status.tasks if t["peer_id"] == "hub")
            if hub_task["state"] == "done":
                elapsed = time.perf_counter() - t0
                break
            await asyncio.sleep(0.005)
        # job_status reads tasks and results in two queries: read again before calling it a miss.
        status = await p.querier.job_status(job)
        if not any(r.peer == "hub" for r in status.results):
            # Reported, not hidden: a defence that made an honest job miss is a finding.
            self.misses.append({"tasks": status.tasks, "state": status.state})
            print("honest job missed:", status.tasks, flush=True)
        return elapsed

    async def phase(
        self, name: str, start: Callable[[], Awaitable[Any]], stop: Callable[[], Awaitable[Any]]
    ) -> dict[str, Any]:
        jobs = self.args.jobs
        q_stats0 = await self.hub_stats()
        t0 = time.perf_counter()
        quiet = [await self.honest_job() for _ in range(jobs)]
        q_wall = time.perf_counter() - t0
        q_stats1 = await self.hub_stats()
        await start()
        await asyncio.sleep(self.args.warmup)  # the hostile peer gets going
        h_stats0 = await self.hub_stats()
        t0 = time.perf_counter()
        beside = [await self.honest_job() for _ in range(jobs)]
        h_wall = time.perf_counter() - t0
        h_stats1 = await self.hub_stats()
        engaged = await stop()
        quiet_cpu = q_stats1["cpu"] - q_stats0["cpu"]
        hostile_cpu = h_stats1["cpu"] - h_stats0["cpu"]
        requests = engaged.pop("hostile_requests", None)
        row = {
            "hostile": name,
            "quiet_p50_s": statistics.median(quiet),
            "quiet_p99_s": _pct(quiet, 0.99),
            "beside_p50_s": statistics.median(beside),
            "beside_p99_s": _pct(beside, 0.99),
            "quiet_wall_s": q_wall,
            "beside_wall_s": h_wall,
            "hub_cpu_quiet_s": quiet_cpu,
            "hub_cpu_beside_s": hostile_cpu,
            "hostile_requests": requests,
            "defence": engaged,
            "hub_metrics_delta": {
                k: h_stats1[k] - q_stats1[k]
                for k in h_stats1
                if k != "cpu" and h_stats1[k] != q_stats1[k]
            },
        }
        row["p50_ratio"] = row["beside_p50_s"] / row["quiet_p50_s"]
        row["p99_ratio"] = row["beside_p99_s"] / row["quiet_p99_s"]
        if requests:
            row["hub_cpu_ms_per_hostile_request"] = 1000 * hostile_cpu / requests
            # Less what the honest jobs cost it (the quiet phase ran as many).
            marginal = max(0.0, hostile_cpu - quiet_cpu * min(1.0, h_wall / max(q_wall, 1e-9)))
            row["hub_marginal_cpu_ms_per_hostile_request"] = 1000 * marginal / requests
        print(
            f"{name:10} p50 {row['quiet_p50_s']:.3f} -> {row['beside_p50_s']:.3f} s"
            f" (x{row['p50_ratio']:.2f}), p99 {row['quiet_p99_s']:.3f} ->"
            f" {row['beside_p99_s']:.3f} s; requests {requests}; {engaged}",
            flush=True,
        )
        return row

    # each hostile peer: start, and stop returning what engaged ---------------------------------

    async def slow(self) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]:
        node = self.fed["slow"].node
        real = node.responder.evaluate
        release = asyncio.Event()
        stalled = []

        async def hang(*args: Any) -> Any:
            stalled.append(1)
            await release.wait()
            return await real(*args)

        async def start() -> None:
            node.responder.evaluate = hang

        async def stop() -> dict[str, Any]:
            node.responder.evaluate = real
            release.set()
            return {"hostile_requests": len(stalled), "evaluations_stalled": len(stalled)}

        return start, stop

    async def attacker(self, kind: str) -> tuple[Any, Any]:
        async def start() -> None:
            self.att_conn.send((kind, self.args.concurrency))

        async def stop() -> dict[str, Any]:
            self.att_conn.send("stop")
            codes = await asyncio.to_thread(_recv, self.att_conn, self.att_proc)
            return {"hostile_requests": sum(codes.values()), "codes": codes}

        return start, stop

    async def redirect(self) -> tuple[Any, Any]:
        labels = {"peer": "redirect", "code": "not-allowed"}
        before = self.platform.metrics.value("peer_request_failures_total", labels)

        async def start() -> None:
            self.relay.turn_hostile()

        async def stop() -> dict[str, Any]:
            self.relay.hostile = False
            refused = self.platform.metrics.value("peer_request_failures_total", labels) - before
            return {
                "hostile_requests": self.relay.redirects,
                "redirects_refused_not_followed": refused,
            }

        return start, stop

    async def over_cap(self) -> tuple[Any, Any]:
        from blindmatch.node.federation.publisher import INDEX_FEED
        from blindmatch.protocol import canonical, index

        capper = self.fed["capper"].node
        key_id = capper.roster.member("capper").voprf_key_id
        running = asyncio.Event()
        published = [0]

        async def publish() -> None:
            while running.is_set():
                entries = b"".join(sorted(os.urandom(index.ENTRY_BYTES) for _ in range(4000)))
                payload = canonical.encode(
                    {"scheme": capper.scheme.name, "key_id": key_id, "entries": entries}
                )
                await capper.feeds.append_many(
                    INDEX_FEED, [(os.urandom(16), "index.add", payload)], capper.now()
                )
                published[0] += 1
                await asyncio.sleep(0.1)

        async def sync() -> None:
            while running.is_set():  # the platform's sync loop
                await self.platform.sync.sync_all()
                await asyncio.sleep(0.5)

        tasks: list[asyncio.Task[None]] = []

        async def start() -> None:
            running.set()
            tasks.extend([asyncio.create_task(publish()), asyncio.create_task(sync())])

        async def stop() -> dict[str, Any]:
            running.clear()
            await asyncio.gather(*tasks)
            p = self.platform
            labels = {"peer": "capper", "cap": "entries"}
            replica = p.replication.peer_replicas["capper"]
            incidents = await p.db.fetch_value(
                "SELECT COUNT(*) FROM peer_log_incidents WHERE peer_id = 'capper'"
                " AND code = 'over-cap'"
            )
            return {
                "hostile_requests": published[0],
                "deltas_published_of_4000_entries": published[0],
                "replica_entries_held": replica.entries,
                "entry_cap": p.replication.caps("capper").entries,
                "stored_feed_bytes": await p.replicas.stored_bytes("capper"),
                "over_cap_incidents": int(incidents or 0),
                "peer_caps_exceeded_total": p.metrics.value("peer_caps_exceeded_total", labels),
            }

        return start, stop

    async def close(self) -> None:
        self.att_conn.send(("quit",))
        self.hub_conn.send("stop")
        with contextlib.suppress(EOFError):
            await asyncio.to_thread(self.hub_conn.recv)
        for proc in (self.att_proc, self.hub_proc):
            await asyncio.to_thread(proc.join, 30)
        await self.relay.close()
        await self.fed.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bm-hostile-") as tmp:
        bench = Bench(args, Path(tmp))
        await bench.setup()
        rows = []
        try:
            for _ in range(2):  # warm up caches and connections
                await bench.honest_job()
            plans = {
                "slow": bench.slow,
                "flood": lambda: bench.attacker("flood"),
                "bad-proof": lambda: bench.attacker("bad-proof"),
                "redirect": bench.redirect,
                "over-cap": bench.over_cap,
            }
            for name in args.only or list(plans):
                start, stop = await plans[name]()
                rows.append(await bench.phase(name, start, stop))
        finally:
            await bench.close()
    return {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
        },
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "index_build_s": bench.index_build_s,
        "wall_s": time.time() - started,
        "rows": rows,
        "honest_misses": bench.misses,
    }


def report(result: dict[str, Any]) -> str:
    m, a = result["machine"], result["args"]
    lines = [
        "# Hostile peers beside an honest job (`./dev bench hostile`)",
        "",
        f"Machine: {m['cpus']} cores shared with other agents; load average"
        f" {m['load_avg_before'][0]:.1f} before and {m['load_avg_after'][0]:.1f} after the run"
        f" (1-minute); Python {m['python']}; SQLite. Wall time {result['wall_s']:.0f} s.",
        "",
        f"Real nodes on loopback: a hub holding {a['hub_items']} hashes (its own process), a"
        " platform submitting honest jobs, and one hostile member at a time (see the module"
        " docstring of `bench/hostile.py`). An honest job is one near copy (4 bits flipped) of a"
        " hub item; its latency is from submit until the hub's part answered and found it"
        " (every job also has parts at the other holders, the hostile one included). Each row"
        f" times {a['jobs']} honest jobs with nothing hostile running, then {a['jobs']} beside"
        f" the hostile peer ({a['concurrency']} concurrent hostile requests for the querier-side"
        " attacks), side by side in the same run. Medians; p99 of so few jobs is their maximum.",
        "",
        "| hostile peer | quiet p50 | beside p50 | p50 ratio | quiet p99 | beside p99 | p99"
        " ratio | hostile requests | hub CPU per hostile request (marginal) | defence engaged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        cpu = (
            f"{r['hub_cpu_ms_per_hostile_request']:.2f} ms"
            f" ({r['hub_marginal_cpu_ms_per_hostile_request']:.2f} ms)"
            if r["hostile"] in ("flood", "bad-proof") and r.get("hostile_requests")
            else "n/a (a holder attacks the querier)"
        )
        defence = dict(r["defence"])
        defence.update({f"hub {k}": v for k, v in r["hub_metrics_delta"].items()})
        ok = "**yes**" if r["p50_ratio"] <= 2 else "**no**"
        lines.append(
            f"| {r['hostile']} | {1000 * r['quiet_p50_s']:.0f} ms |"
            f" {1000 * r['beside_p50_s']:.0f} ms | {r['p50_ratio']:.2f} ({ok} <= 2) |"
            f" {1000 * r['quiet_p99_s']:.0f} ms | {1000 * r['beside_p99_s']:.0f} ms |"
            f" {r['p99_ratio']:.2f} | {r['hostile_requests']} | {cpu} |"
            f" {json.dumps(defence, sort_keys=True)} |"
        )
    lines += [
        "",
        f"Honest jobs that missed the hub's item: {len(result['honest_misses'])} (every honest"
        " job is a near copy of a hub item and must find it; a miss would be listed in"
        " hostile.json).",
        "",
        "Caveats: one run of a few jobs per side on a shared, loaded machine (the load average"
        " above), so a ratio within about +-30% of 1 is noise; p99 is the slowest of the jobs;"
        " the marginal CPU subtracts an estimate of the honest jobs' share and is noisier than"
        " the total. The attacker sends at most"
        f" {a['concurrency']} requests at a time from one identity; a flood from many identities"
        " is bounded per identity by the same early refusals and, in total, by the public"
        " port's connection limits (tests/test_public_port.py), not measured here.",
        "",
        "Reading the columns:",
        "",
        "- *hub CPU per hostile request*: the hub process's CPU time while the hostile peer ran"
        " (honest jobs included) divided by the hostile requests; in brackets the same less the"
        " CPU the quiet phase's honest jobs took (scaled to the phase's length), i.e. what the"
        " hostile requests themselves cost. For the holder-side attacks (slow, redirect,"
        " over-cap) the victim is the querier, not the hub, so the column does not apply.",
        "- *hostile requests*: flood and bad-proof: requests the attacker sent (its codes under"
        " *defence*); slow: evaluations that hung; redirect: redirects it answered; over-cap:"
        " index deltas of 4,000 entries it published.",
        "- *defence engaged*: what the defences recorded in that phase: refusal codes the"
        " attacker received, the hub's `bad_proofs_total` (every `bad-proof` refusal, those"
        " from memory included; the hub's incidents count the proofs it verified and found bad),"
        " `early_refusals_total` (refused from"
        " memory, before any database work or crypto) and `requests_refused_total`, incidents;"
        " for the redirecting holder the refusals of its redirects (never followed); for the"
        " over-cap publisher the platform's replica held at its entry cap, the `over-cap`"
        " incident and `peer_caps_exceeded_total`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench hostile", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10, help="honest jobs per phase and side")
    parser.add_argument("--hub-items", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4, help="hostile requests in flight")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before timing")
    parser.add_argument(
        "--only", nargs="+", choices=["slow", "flood", "bad-proof", "redirect", "over-cap"]
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hostile.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (args.out / "hostile.md").write_text(report(result))
    print(report(result))
    return 0
