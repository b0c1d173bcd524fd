"""Load bench: many concurrent match jobs against a hub holding 100k hashes.

    ./dev bench load                                  # 100k hashes; 10, 100, 1000 jobs at once
    ./dev bench load --hashes 20000 --concurrency 10 100 --backend postgres

A hub and a platform run as ``blindmatch run`` processes (node/devtools/procfed.py) with the
node's default settings. The hub's bank gets ``--hashes`` random 256-bit hashes through the
import path (one ``blindmatch bank import`` of a JSON-lines file), publishes its blinded index
on its own schedule and the platform replicates it. Then, for each concurrency C, C callers
each ``POST /api/v1/match/hashes`` a near copy (6 bits flipped) of a different held hash, all
at once, and the bench follows every job to its end. Per level it reports:

- ids: callers that got a job id (an answer 200/202 with ``job``), HTTP statuses, 5xx;
- ended: jobs that ended (``complete``, ``dead-lettered`` or ``cancelled``, with the reason)
  within ``--timeout``; success: complete *and* found the held item its query was copied from;
- submit latency (the POST's answer) and time to the job's end (from the POST), p50 / p99;
- peak resident memory of both node processes during the level (sampled every 0.2 s) and
  since each started (VmHWM), and the load average.

Writes bench/results/load.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from blindmatch.node.devtools.procfed import BM, ProcessFederation

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_DSN = os.environ.get("BLINDMATCH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BANK = "ncii"
ENDED = ("complete", "dead-lettered", "cancelled")


def near_copy(h: bytes, bits: int, rng: random.Random) -> bytes:
    out = bytearray(h)
    for i in rng.sample(range(256), bits):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Sampler:
    """Peak RSS of the node processes while a level runs."""

    def __init__(self, fed: ProcessFederation) -> None:
        self.fed = fed
        self.peak: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for name in self.fed.nodes:
                self.peak[name] = max(self.peak[name], self.fed[name].rss_kb())
            await asyncio.sleep(0.2)

    def __enter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def build_hub(
    fed: ProcessFederation, http: aiohttp.ClientSession, hashes: list[bytes], say: Any
) -> dict[str, float]:
    status, _ = await fed.api(
        http, "hub", "POST", "/api/v1/banks",
        {"name": BANK, "provenance": "survivor-submitted", "shared": True},
    )  # fmt: skip
    assert status == 201, status
    lines = fed.home / "hashes.jsonl"
    lines.write_text(
        "".join(json.dumps({"signal_type": "pdq", "hash": h.hex()}) + "\n" for h in hashes)
    )
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *BM, "bank", "import", BANK, str(lines), "--format", "jsonl",
        "--config", str(fed["hub"].home / "config.toml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bank import: {err.decode()[-500:]}")
    imported = time.monotonic() - t0
    say(f"imported {len(hashes)} hashes in {imported:.1f} s: {out.decode().strip()[:200]}")
    # The hub publishes on its own schedule; the platform replicates what it published.
    from blindmatch.node.storage import open_database

    t1 = time.monotonic()
    hub_db = fed["hub"].database or f"sqlite:///{fed['hub'].home}/node.db"
    published = 0
    while True:
        if published < len(hashes):
            db = await open_database(hub_db)
            try:
                published = int(await db.fetch_value("SELECT count(*) FROM index_publications"))
            finally:
                await db.close()
        _, hub = await fed.api(http, "hub", "GET", "/api/v1/status")
        _, plat = await fed.api(http, "platform", "GET", "/api/v1/status")
        (peer,) = plat["peers"]
        done = peer["replica_cursor"] == hub["index_feed_head"] and peer["feed_lag"] == 0
        if published >= len(hashes) and done:
            break
        if time.monotonic() - t1 > 7200:
            raise RuntimeError("the hub's index did not reach the platform in 2 h")
        await asyncio.sleep(2)
    took = time.monotonic() - t1
    say(f"published and replicated ({peer['replica_entries']} entries) in {took:.0f} s")
    return {"import_s": imported, "publish_and_sync_s": took,
            "replica_entries": peer["replica_entries"]}  # fmt: skip


async def one_level(
    fed: ProcessFederation,
    concurrency: int,
    targets: list[bytes],
    item_of: dict[bytes, str],
    rng: random.Random,
    timeout: float,
    say: Any,
) -> dict[str, Any]:
    node = fed["platform"]
    queries = [near_copy(h, 6, rng) for h in targets]
    connector = aiohttp.TCPConnector(limit=0)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    load0 = os.getloadavg()
    with Sampler(fed) as sampler:
        async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as http:
            start = asyncio.Event()

            async def submit(i: int) -> dict[str, Any]:
                await start.wait()
                t0 = time.monotonic()
                body = {"hashes": [{"hash": queries[i].hex()}]}
                try:
                    async with http.post(
                        f"{node.api_url}/api/v1/match/hashes?content_ref=load-{concurrency}-{i}",
                        json=body,
                        headers=node.headers,
                    ) as r:
                        data = await r.json(content_type=None)
                        status = r.status
                except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as exc:
                    return {"i": i, "t0": t0, "submit_s": time.monotonic() - t0,
                            "status": type(exc).__name__, "job": None}  # fmt: skip
                job = data.get("job") if isinstance(data, dict) and status in (200, 202) else None
                out = {"i": i, "t0": t0, "submit_s": time.monotonic() - t0, "status": status,
                       "job": job, "error": None if job else str(data)[:200]}  # fmt: skip
                if job and status == 200:  # ended already
                    out["end_s"] = out["submit_s"]
                    out["final"] = data
                return out

            tasks = [asyncio.create_task(submit(i)) for i in range(concurrency)]
            await asyncio.sleep(0.05)
            t_start = time.monotonic()
            start.set()
            results = await asyncio.gather(*tasks)
            submitted = time.monotonic() - t_start
            say(f"  {concurrency}: {sum(bool(r['job']) for r in results)} ids in {submitted:.1f} s")
            # Follow every job to its end, a few GETs at a time (the platform is busy).
            open_ = [r for r in results if r["job"] and "final" not in r]
            deadline = time.monotonic() + timeout
            sem = asyncio.Semaphore(8)

            async def poll(r: dict[str, Any]) -> None:
                async with sem:
                    try:
                        async with http.get(
                            f"{node.api_url}/api/v1/match/{r['job']}", headers=node.headers
                        ) as resp:
                            data = await resp.json(content_type=None)
                            if resp.status != 200:
                                r.setdefault("poll_errors", []).append(resp.status)
                                return
                    except (TimeoutError, aiohttp.ClientError):
                        return
                    if data.get("state") in ENDED:
                        r["end_s"] = time.monotonic() - r["t0"]
                        r["final"] = data

            while open_ and time.monotonic() < deadline:
                await asyncio.gather(*(poll(r) for r in open_))
                open_ = [r for r in open_ if "final" not in r]
                if open_:
                    await asyncio.sleep(0.25)
    statuses = Counter(str(r["status"]) for r in results)
    ended = [r for r in results if "final" in r]
    states = Counter(r["final"]["state"] for r in ended)
    reasons = Counter(
        str(r["final"].get("reason")) for r in ended if r["final"]["state"] != "complete"
    )
    found = [
        r for r in ended
        if r["final"]["state"] == "complete"
        and item_of[targets[r["i"]]] in {m["item"] for m in r["final"]["matches"]}
    ]  # fmt: skip
    hwm = {name: fed[name].peak_rss_kb() for name in fed.nodes}
    level = {
        "concurrency": concurrency,
        "ids": sum(bool(r["job"]) for r in results),
        "distinct_ids": len({r["job"] for r in results if r["job"]}),
        "statuses": dict(statuses),
        "http_5xx": sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500),
        "errors": [r["error"] for r in results if r.get("error")][:5],
        "ended": len(ended),
        "states": dict(states),
        "reasons": dict(reasons),
        "not_ended": [r["job"] for r in results if r["job"] and "final" not in r][:10],
        "success": len(found),
        "success_rate": len(found) / concurrency,
        "submit_p50_s": pct([r["submit_s"] for r in results], 0.5),
        "submit_p99_s": pct([r["submit_s"] for r in results], 0.99),
        "end_p50_s": pct([r["end_s"] for r in ended], 0.5),
        "end_p99_s": pct([r["end_s"] for r in ended], 0.99),
        "all_submitted_s": submitted,
        "rss_peak_kb": dict(sampler.peak),
        "rss_hwm_kb": hwm,
        "load_before": load0[0],
        "load_after": os.getloadavg()[0],
    }
    say("  " + json.dumps({k: v for k, v in level.items() if k != "errors"}))
    return level


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    home = Path(tempfile.mkdtemp(prefix="bm-load-"))
    database = "sqlite" if args.backend == "sqlite" else PG_DSN
    fed = ProcessFederation(
        home, database=database, sync_interval_s=5.0,
        schema_prefix=f"bm_load_{rng.randrange(1 << 32):08x}",
    )  # fmt: skip

    def say(text: str) -> None:
        print(text, flush=True)

    out: dict[str, Any] = {"backend": args.backend, "hashes": args.hashes, "seed": args.seed}
    try:
        await asyncio.to_thread(fed.setup)
        # The node's defaults, except the sync interval (5 s, the default): nothing tuned.
        await asyncio.gather(fed.start("hub"), fed.start("platform"))
        hashes = [rng.randbytes(32) for _ in range(args.hashes)]
        async with aiohttp.ClientSession() as http:
            out["build"] = await build_hub(fed, http, hashes, say)
        item_of: dict[bytes, str] = {}
        from blindmatch.node.storage import open_database

        db = await open_database(fed["hub"].database or f"sqlite:///{fed['hub'].home}/node.db")
        try:
            for r in await db.fetch_all("SELECT hash, item_ref FROM bank_items"):
                item_of[bytes(r["hash"])] = bytes(r["item_ref"]).hex()
        finally:
            await db.close()
        pool = rng.sample(hashes, sum(args.concurrency))
        out["levels"] = []
        for c in args.concurrency:
            targets, pool = pool[:c], pool[c:]
            out["levels"].append(await one_level(fed, c, targets, item_of, rng, args.timeout, say))
        out["rss_hwm_kb"] = {name: fed[name].peak_rss_kb() for name in fed.nodes}
        out["log_problems"] = {}
    finally:
        await fed.stop_all()
        out["log_problems"] = {n: dict(fed.log_problems(n)) for n in fed.nodes}
        if database != "sqlite":
            await fed.drop_schemas()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            say(f"kept {home}")
    return out


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def write_results(out: dict[str, Any], load: tuple[float, float]) -> None:
    (RESULTS / "load.json").write_text(json.dumps({**out, "load_average": load}, indent=2) + "\n")
    b = out["build"]
    lines = [
        "# Load: concurrent match jobs against a hub with 100k hashes (issue 15)",
        "",
        f"`./dev bench load` (bench/load.py), {out['backend']}, seed {out['seed']}. A hub and a"
        " platform as `blindmatch run` processes with the node's default settings; the hub's"
        f" bank holds {out['hashes']:,} random hashes imported with one `blindmatch bank import`"
        f" ({b['import_s']:.0f} s), published by the hub and replicated by the platform in"
        f" {b['publish_and_sync_s']:.0f} s ({b['replica_entries']:,} index entries). Each level"
        " fires C `POST /api/v1/match/hashes` at once, each a near copy (6 bits flipped) of a"
        " different held hash, and follows every job to its end.",
        "",
        f"Load average: {load[0]:.1f} at the start, {load[1]:.1f} at the end (2 cores shared"
        " with other agents); per level below.",
        "",
        "| concurrent jobs | got a job id | HTTP 5xx | ended | complete and found its item"
        " | submit p50 / p99 | time to end p50 / p99 | peak RSS hub / platform (MB)"
        " | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in out["levels"]:
        c = lv["concurrency"]
        rss = lv["rss_peak_kb"]
        lines.append(
            f"| {c:,} | {lv['ids']:,} / {c:,} | {lv['http_5xx']} | {lv['ended']:,} | "
            f"{lv['success']:,} ({lv['success_rate']:.1%}) | {fmt(lv['submit_p50_s'])} s / "
            f"{fmt(lv['submit_p99_s'])} s | {fmt(lv['end_p50_s'])} s / {fmt(lv['end_p99_s'])} s"
            f" | {rss.get('hub', 0) / 1024:.0f} / {rss.get('platform', 0) / 1024:.0f} | "
            f"{lv['load_before']:.1f} → {lv['load_after']:.1f} |"
        )
    lines += [""]
    for lv in out["levels"]:
        lines.append(
            f"- {lv['concurrency']:,}: statuses {lv['statuses']}, end states {lv['states']}"
            + (f", reasons {lv['reasons']}" if lv["reasons"] else "")
            + (f", not ended {lv['not_ended']}" if lv["not_ended"] else "")
            + (f", errors {lv['errors']}" if lv["errors"] else "")
            + "."
        )
    hwm = out["rss_hwm_kb"]
    lines += [
        "",
        f"Peak RSS since start (VmHWM, includes building and replicating the index): hub"
        f" {hwm.get('hub', 0) / 1024:.0f} MB, platform {hwm.get('platform', 0) / 1024:.0f} MB."
        f" Error lines the nodes logged: {out['log_problems']}.",
        "",
        "Time to end is measured by polling `GET /api/v1/match/{job}` (8 at a time, every"
        " 0.25 s once all were read), so it includes up to one polling round.",
    ]
    (RESULTS / "load.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="./dev bench load", description=__doc__.split("\n")[0])
    ap.add_argument("--hashes", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per level, for every job")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--keep", action="store_true", help="keep the nodes' homes (logs)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    out = asyncio.run(run(args))
    if not args.no_write:
        write_results(out, (load0, os.getloadavg()[0]))
    bad = sum(lv["ids"] != lv["concurrency"] or lv["ended"] != lv["ids"] for lv in out["levels"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
