"""Fault suite: ``kill -9`` real node processes at random points and check nothing is lost,
nothing is duplicated and every verifiable log still verifies.

    ./dev bench faults                              # 100 kills on SQLite, 100 on PostgreSQL
    ./dev bench faults --kills 20 --backend sqlite --seed 7

A hub and a platform run as ``blindmatch run`` processes (node/devtools/procfed.py: ``init``,
``roster sign``, ``run``, as an operator sets them up). Each round picks a phase and kills one
node with SIGKILL after a random delay drawn from a seeded RNG (``--seed``, default 15):

- ``import``: the hub, during ``POST /api/v1/banks/ncii/hashes`` (bank import, then reconcile);
  the caller, having lost its answer, sends the same batch again after the restart;
- ``reconcile``: the hub, while it publishes items a ``blindmatch bank import`` just stored;
- ``sync``: the platform (three rounds in four) or the hub, while the platform pulls the
  hub's new index deltas;
- ``match``: the platform (three in four) or the hub, while match jobs of near copies of held
  hashes run and earlier cases are decided (their confirmations go to the hub by the outbox).

After each kill the node is started again, the federation is let settle (bounded), and every
invariant is checked against both databases and both live logs:

- no loss: every hash the hub acknowledged is held, published and in the platform's replica;
  every job id a caller got ends ``complete`` and found its near copy's item; every decided
  case's confirmation reached the hub;
- no duplicate: one bank item per hash, one publication per item, each index entry once in
  the feed (net of removals), one replica row per feed entry, one case per upload, one
  feedback record per confirmation, each feed position covered by exactly one
  ``index-publication`` log entry, no log entry twice;
- the log verifies: ``audit_url`` (what ``blindmatch audit verify --url`` runs) against each
  node, with the head verified before the kill as ``--previous-sth`` (no fork, no rollback).

The delay of a kill is uniform over the phase's duration measured without kills at the start
of the run (its "window"), so some kills land before the work starts and some after it ends;
the report counts the kills that found the phase's work unfinished.

Writes bench/results/faults.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from blindmatch.node.devtools.procfed import BM, ProcessFederation
from blindmatch.node.storage import open_database
from blindmatch.protocol import canonical, index
from blindmatch.protocol import transparency as tl

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_DSN = os.environ.get("BLINDMATCH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PHASES = ("import", "reconcile", "sync", "match")
BANK = "ncii"
SETTLE_S = 240.0  # a federation that has not settled by then is a failure (a stuck job, a lag)


def near_copy(h: bytes, bits: int, rng: random.Random) -> bytes:
    out = bytearray(h)
    for i in rng.sample(range(256), bits):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


@dataclass
class Ledger:
    """What the callers were told, and so what must hold after any kill."""

    submitted: set[bytes] = field(default_factory=set)  # every hash ever sent to the hub
    acked: set[bytes] = field(default_factory=set)  # hashes the hub acknowledged
    used: set[bytes] = field(default_factory=set)  # held hashes a job's near copy came from
    jobs: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # job id -> (held, ref)
    refs: dict[str, bytes] = field(default_factory=dict)  # content_ref -> held hash
    decided: set[str] = field(default_factory=set)  # content_refs whose case we actioned
    n_ref: int = 0


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)  # phase -> kills
    mid: Counter[str] = field(default_factory=Counter)  # phase -> kills with work unfinished
    targets: Counter[str] = field(default_factory=Counter)  # "phase/node" -> kills
    losses: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    log_ok: int = 0
    log_failed: list[str] = field(default_factory=list)
    restarts_s: list[float] = field(default_factory=list)
    settle_s: list[float] = field(default_factory=list)
    lost_answers: Counter[str] = field(default_factory=Counter)  # calls the kill cut off
    windows: dict[str, float] = field(default_factory=dict)
    final: dict[str, int] = field(default_factory=dict)
    logged: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> error lines


class FaultRun:
    def __init__(self, home: Path, database: str, seed: int, *, verbose: bool = True) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.fed = ProcessFederation(
            home, database=database, schema_prefix=f"bm_faults_{secrets.token_hex(4)}"
        )
        self.ledger = Ledger()
        self.tally = Tally()
        self.heads: dict[str, bytes] = {}  # node -> last verified signed tree head
        self.verbose = verbose
        self.http: aiohttp.ClientSession | None = None
        self._resubmit: list[str] = []  # uploads whose job id the caller never got
        self.targets: dict[str, str] = {}  # phase -> the node to kill, instead of a draw
        self._pools: dict[str, Any] = {}
        self.progress: Any = None  # called with the tally after each kill

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)

    # --- the nodes' databases, read as an auditor with database access would ---------------

    def _db_url(self, name: str) -> str:
        node = self.fed[name]
        return node.database or f"sqlite:///{node.home / 'node.db'}"

    async def _query(self, name: str, sql: str, *params: Any) -> list[Any]:
        url = self._db_url(name)
        if url.startswith("postgresql"):  # a pool per node for the run: opening one is slow
            if name not in self._pools:
                self._pools[name] = await open_database(url)
            return await self._pools[name].fetch_all(sql, *params)
        db = await open_database(url)  # SQLite: a fresh connection, so a fresh snapshot
        try:
            return await db.fetch_all(sql, *params)
        finally:
            await db.close()

    async def _api(self, name: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.http is not None
        return await self.fed.api(self.http, name, method, path, body)

    # --- set-up --------------------------------------------------------------------------

    async def start(self, windows: dict[str, float] | None = None) -> None:
        await asyncio.to_thread(self.fed.setup)
        self.tally.restarts_s += await asyncio.gather(
            self.fed.start("hub"), self.fed.start("platform")
        )
        status, _ = await self._api(
            "hub", "POST", "/api/v1/banks",
            {"name": BANK, "provenance": "survivor-submitted", "shared": True},
        )  # fmt: skip
        assert status == 201, status
        if windows is not None:  # given (a short CI run): no calibration
            self.tally.windows = dict(windows)
            await self._import_batch(self._new_hashes(100))
            await self._wait(self._synced, "first sync")
            return
        # Calibration: each phase once without a kill; its duration is the kill window.
        t0 = time.monotonic()
        await self._import_batch(self._new_hashes(300))
        self.tally.windows["import"] = time.monotonic() - t0
        t0 = time.monotonic()
        await self._cli_import(self._new_hashes(300))
        await self._wait(self._published, "calibration reconcile")
        self.tally.windows["reconcile"] = time.monotonic() - t0
        await self._wait(self._synced, "calibration sync")
        t0 = time.monotonic()
        await self._import_batch(self._new_hashes(600))
        posted = time.monotonic()
        await self._wait(self._synced, "calibration sync")
        self.tally.windows["sync"] = time.monotonic() - posted
        t0 = time.monotonic()
        await self._match_round()
        await self._wait(self._jobs_ended, "calibration match")
        self.tally.windows["match"] = time.monotonic() - t0
        for name in ("hub", "platform"):
            await self._verify_log(name)
        self.say("windows (s): " + ", ".join(f"{k} {v:.2f}" for k, v in self.tally.windows.items()))

    def _new_hashes(self, n: int) -> list[bytes]:
        out = [self.rng.randbytes(32) for _ in range(n)]
        self.ledger.submitted.update(out)
        return out

    # --- the operations a kill interrupts ------------------------------------------------

    async def _import_batch(self, batch: list[bytes]) -> bool:
        """The hub's bank import API; True when the hub answered (the batch is acknowledged)."""
        body = {"hashes": [h.hex() for h in batch]}
        status, data = await self._api("hub", "POST", f"/api/v1/banks/{BANK}/hashes", body)
        if status != 201:
            raise RuntimeError(f"import answered {status}: {data}")
        if data["added"] + data["already_present"] != len(batch):
            self.tally.losses.append(f"import answer counts {data} for {len(batch)} hashes")
        self.ledger.acked.update(batch)
        return True

    async def _cli_import(self, batch: list[bytes]) -> None:
        """``blindmatch bank import`` into the hub's database while the hub runs."""
        lines = "".join(json.dumps({"signal_type": "pdq", "hash": h.hex()}) + "\n" for h in batch)
        proc = await asyncio.create_subprocess_exec(
            *BM, "bank", "import", BANK, "-", "--format", "jsonl",
            "--config", str(self.fed["hub"].home / "config.toml"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate(lines.encode())
        if proc.returncode != 0:
            raise RuntimeError(f"bank import failed: {err.decode()[-400:]}")
        self.ledger.acked.update(batch)

    async def _submit(self, ref: str, held: bytes) -> str | None:
        """One match job of a near copy of ``held``; the job id, or None if the answer was
        lost (the platform was killed)."""
        query = near_copy(held, 6, self.rng)
        body = {"hashes": [{"hash": query.hex()}]}
        try:
            status, data = await self._api(
                "platform", "POST", f"/api/v1/match/hashes?content_ref={ref}", body
            )
        except (TimeoutError, aiohttp.ClientError):
            return None
        if status not in (200, 202) or not isinstance(data, dict) or "job" not in data:
            self.tally.losses.append(f"submit {ref}: HTTP {status} {str(data)[:120]}")
            return None
        self.ledger.jobs[data["job"]] = (held, ref)
        return str(data["job"])

    async def _decide_open_cases(self) -> None:
        """Action the open cases of earlier rounds: each sends a confirm to the hub."""
        for ref in list(self.ledger.refs):
            if ref in self.ledger.decided:
                continue
            try:
                status, data = await self._api("platform", "GET", f"/api/v1/content/{ref}/cases")
                if status != 200 or not data["cases"]:
                    continue
                for case in data["cases"]:
                    if case["state"] == "actioned":
                        continue
                    status, _ = await self._api(
                        "platform", "POST", f"/api/v1/cases/{case['case']}/decision",
                        {"outcome": "actioned", "reason": "fault suite", "by": "faults"},
                    )  # fmt: skip
                    if status != 200:
                        continue
                self.ledger.decided.add(ref)
            except (TimeoutError, aiohttp.ClientError):
                return

    async def _match_round(self) -> None:
        """Submit a few jobs at once while the cases of earlier rounds are decided."""
        synced = sorted(self.ledger.acked - self.ledger.used)
        jobs = self.rng.randint(3, 8)
        held = self.rng.sample(synced, jobs)
        self.ledger.used.update(held)
        refs = []
        for h in held:
            self.ledger.n_ref += 1
            ref = f"fault-{self.ledger.n_ref}"
            self.ledger.refs[ref] = h
            refs.append(ref)
        results = await asyncio.gather(
            *(self._submit(r, h) for r, h in zip(refs, held, strict=True)),
            self._decide_open_cases(),
            return_exceptions=True,
        )
        for r, got in zip(refs, results[:-1], strict=True):
            if got is None or isinstance(got, BaseException):
                self.tally.lost_answers["submit"] += 1
                self._resubmit.append(r)

    # --- settling and checking ------------------------------------------------------------

    async def _wait(self, ready: Any, what: str, timeout: float = SETTLE_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await ready():
                    return True
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)
        self.tally.stuck.append(f"{what}: not settled in {timeout:.0f} s")
        self.say(f"  STUCK {what}")
        return False

    async def _published(self) -> bool:
        rows = await self._query(
            "hub",
            "SELECT count(*) AS n FROM bank_items i LEFT JOIN index_publications p"
            " ON p.item_ref = i.item_ref WHERE i.withdrawn_at IS NULL AND p.item_ref IS NULL",
        )
        return int(rows[0]["n"]) == 0

    async def _synced(self) -> bool:
        if not await self._published():
            return False
        _, hub = await self._api("hub", "GET", "/api/v1/status")
        _, plat = await self._api("platform", "GET", "/api/v1/status")
        (peer,) = plat["peers"]
        return bool(peer["replica_cursor"] == hub["index_feed_head"] and peer["feed_lag"] == 0)

    async def _jobs_ended(self) -> bool:
        rows = await self._query(
            "platform", "SELECT count(*) AS n FROM match_jobs WHERE completed_at IS NULL"
        )
        if int(rows[0]["n"]):
            return False
        _, plat = await self._api("platform", "GET", "/api/v1/status")
        return int(plat["outbox_pending"]) == 0

    async def _settle(self) -> None:
        t0 = time.monotonic()
        # A caller whose answer was lost sends its upload again (same content_ref).
        while self._resubmit:
            ref = self._resubmit.pop()
            if await self._submit(ref, self.ledger.refs[ref]) is None:
                self._resubmit.append(ref)
                await asyncio.sleep(0.5)
        await self._wait(self._synced, "sync")
        await self._wait(self._jobs_ended, "jobs and outbox")
        self.tally.settle_s.append(time.monotonic() - t0)

    async def _verify_log(self, name: str) -> None:
        from blindmatch.node.cli.audit import audit_url

        node = self.fed[name]
        previous = [self.heads[name]] if name in self.heads else []
        out = io.StringIO()
        code, head = await audit_url(node.endpoint, node.signing_key(), previous, 8, out)
        if code == 0 and head is not None:
            self.tally.log_ok += 1
            self.heads[name] = head.to_bytes()
        else:
            self.tally.log_failed.append(f"{name}: {out.getvalue().strip()[:300]}")
        # Each feed position is covered by exactly one index-publication entry; no entry twice.
        rows = await self._query(name, "SELECT seq, entry FROM log_entries ORDER BY seq")
        raw = Counter(bytes(r["entry"]) for r in rows)
        if any(c > 1 for c in raw.values()):
            self.tally.duplicates.append(f"{name} log: {sum(c - 1 for c in raw.values())} twice")
        if name == "hub":
            covered: Counter[int] = Counter()
            for r in rows:
                e = tl.decode_entry(bytes(r["entry"]))
                if e["kind"] == "index-publication" and e["feed"] == "index":
                    covered.update(range(e["seq_from"], e["seq_to"] + 1))
            head_rows = await self._query(
                "hub", "SELECT max(seq) AS n FROM feed_entries WHERE feed = 'index'"
            )
            n = int(head_rows[0]["n"] or 0)
            twice = [s for s, c in covered.items() if c > 1]
            missing = [s for s in range(1, n + 1) if s not in covered]
            if twice:
                self.tally.duplicates.append(f"hub log: feed seqs {twice[:5]} published twice")
            if missing:
                self.tally.losses.append(f"hub log: feed seqs {missing[:5]} never logged")

    async def check(self, label: str) -> None:
        """Every invariant, on a settled federation."""
        lg, t = self.ledger, self.tally
        nl, nd = len(t.losses), len(t.duplicates)
        items = await self._query("hub", "SELECT hash, item_ref, withdrawn_at FROM bank_items")
        held = Counter(bytes(r["hash"]) for r in items)
        ref_of = {bytes(r["hash"]): bytes(r["item_ref"]) for r in items}
        if dup := [h for h, c in held.items() if c > 1]:
            t.duplicates.append(f"{label}: {len(dup)} hashes held twice")
        if lost := lg.acked - set(held):
            t.losses.append(f"{label}: {len(lost)} acknowledged hashes not held")
        if phantom := set(held) - lg.submitted:
            t.duplicates.append(f"{label}: {len(phantom)} items nobody submitted")
        live = {bytes(r["item_ref"]) for r in items if r["withdrawn_at"] is None}
        pubs = await self._query("hub", "SELECT item_ref, entries FROM index_publications")
        published = Counter(bytes(r["item_ref"]) for r in pubs)
        if missing := live - set(published):
            t.losses.append(f"{label}: {len(missing)} live items not published")
        if extra := set(published) - live:
            t.duplicates.append(f"{label}: {len(extra)} publications of no live item")
        want: Counter[bytes] = Counter()
        for r in pubs:
            want.update(index.split_entries(bytes(r["entries"])))
        feed = await self._query(
            "hub",
            "SELECT seq, entry_id, kind, payload FROM feed_entries WHERE feed = 'index'"
            " ORDER BY seq",
        )
        net: Counter[bytes] = Counter()
        for r in feed:
            entries = index.split_entries(bytes(canonical.decode(bytes(r["payload"]))["entries"]))
            if r["kind"] == "index.add":
                net.update(entries)
            elif r["kind"] == "index.remove":
                net.subtract(entries)
        net = +net
        if twice := [e for e, c in net.items() if c > 1]:
            t.duplicates.append(f"{label}: {len(twice)} index entries in the feed twice")
        if set(net) != set(want):
            t.losses.append(
                f"{label}: feed and publications differ ({len(set(want) - set(net))} missing,"
                f" {len(set(net) - set(want))} extra)"
            )
        if [int(r["seq"]) for r in feed] != list(range(1, len(feed) + 1)):
            t.losses.append(f"{label}: the hub's index feed has a gap")
        replica = await self._query(
            "platform",
            "SELECT seq, entry_id FROM replica_entries WHERE peer_id = 'hub' AND feed = 'index'"
            " ORDER BY seq",
        )
        if [(int(r["seq"]), bytes(r["entry_id"])) for r in replica] != [
            (int(r["seq"]), bytes(r["entry_id"])) for r in feed
        ]:
            t.losses.append(
                f"{label}: replica ({len(replica)} rows) differs from the hub's feed"
                f" ({len(feed)} entries)"
            )
        _, plat = await self._api("platform", "GET", "/api/v1/status")
        (peer,) = plat["peers"]
        if peer["replica_entries"] != sum(net.values()):
            t.losses.append(
                f"{label}: the platform's replica holds {peer['replica_entries']} entries,"
                f" the hub publishes {sum(net.values())}"
            )
        # Jobs: every id a caller got ends complete and found its item; every job ends.
        for job, (h, ref) in lg.jobs.items():
            status, data = await self._api("platform", "GET", f"/api/v1/match/{job}")
            if status != 200:
                t.losses.append(f"{label}: job {job[:8]} ({ref}) answers {status}")
            elif data["state"] != "complete":
                t.losses.append(f"{label}: job {ref} ended {data['state']}: {data['reason']}")
            elif ref_of[h].hex() not in {m["item"] for m in data["matches"]}:
                t.losses.append(f"{label}: job {ref} missed its held near copy")
        rows = await self._query(
            "platform", "SELECT count(*) AS n FROM match_jobs WHERE completed_at IS NULL"
        )
        if int(rows[0]["n"]):
            t.stuck.append(f"{label}: {rows[0]['n']} jobs never ended")
        cases = await self._query("platform", "SELECT content_ref, holder, item_ref FROM cases")
        per_ref = Counter(str(r["content_ref"]) for r in cases)
        if dup := [r for r, c in per_ref.items() if c > 1]:
            t.duplicates.append(f"{label}: {len(dup)} uploads with more than one case")
        answered = {ref for _, ref in lg.jobs.values()}
        if lost := answered - set(per_ref):
            t.losses.append(f"{label}: {len(lost)} matched uploads without a case")
        for r in cases:
            if bytes(r["item_ref"]) != ref_of.get(lg.refs.get(str(r["content_ref"]), b"")):
                t.duplicates.append(f"{label}: case of {r['content_ref']} names another item")
        # Outbox: each actioned case's confirm delivered once, none dead.
        outbox = await self._query("platform", "SELECT state FROM outbox")
        states = Counter(str(r["state"]) for r in outbox)
        if states["dead"]:
            t.losses.append(f"{label}: {states['dead']} outbox messages dead")
        records = await self._query(
            "hub",
            "SELECT item_ref, opinion FROM feedback_records WHERE origin = 'platform'",
        )
        got = Counter((bytes(r["item_ref"]), str(r["opinion"])) for r in records)
        if dup := [k for k, c in got.items() if c > 1]:
            t.duplicates.append(f"{label}: {len(dup)} feedback records delivered twice")
        actioned = await self._query(
            "platform", "SELECT item_ref FROM cases WHERE state = 'actioned'"
        )
        confirms = {bytes(r["item_ref"]) for r in actioned}
        if lost := confirms - {i for i, o in got if o == "confirm"}:
            t.losses.append(f"{label}: {len(lost)} confirmations never reached the hub")
        for name in ("hub", "platform"):
            await self._verify_log(name)
        t.final = {
            "hub_items": len(held),
            "feed_entries": len(feed),
            "index_entries": sum(net.values()),
            "jobs": len(lg.jobs),
            "cases": len(cases),
            "actioned": len(confirms),
            "feedback_records": sum(got.values()),
            "outbox_messages": len(outbox),
        }
        if len(t.losses) > nl or len(t.duplicates) > nd:
            self.say(f"  PROBLEM {label}: {(t.losses[nl:] + t.duplicates[nd:])[:3]}")

    # --- one kill -------------------------------------------------------------------------

    async def _kill_after(self, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.fed.kill(name)

    async def _unfinished(self, phase: str) -> bool:
        """With the killed node down: did the kill find the phase's work unfinished?"""
        if phase in ("import", "reconcile"):
            return not await self._published()
        if phase == "sync":
            feed = await self._query(
                "hub", "SELECT max(seq) AS n FROM feed_entries WHERE feed = 'index'"
            )
            replica = await self._query(
                "platform",
                "SELECT max(seq) AS n FROM replica_entries WHERE peer_id = 'hub'"
                " AND feed = 'index'",
            )
            return int(replica[0]["n"] or 0) < int(feed[0]["n"] or 0)
        rows = await self._query(
            "platform", "SELECT count(*) AS n FROM match_jobs WHERE completed_at IS NULL"
        )
        return int(rows[0]["n"]) > 0 or bool(self._resubmit)

    async def one_kill(self, k: int, phase: str) -> None:
        rng = self.rng
        if phase in ("import", "reconcile"):
            target = "hub"
        else:
            target = "hub" if rng.random() < 0.25 else "platform"
        target = self.targets.get(phase, target)
        delay = rng.uniform(0.0, self.tally.windows[phase])
        t0 = time.monotonic()
        batch: list[bytes] = []
        if phase == "import":
            batch = self._new_hashes(rng.randint(100, 400))
            killer = asyncio.create_task(self._kill_after(target, delay))
            try:
                await self._import_batch(batch)
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                self.tally.lost_answers["import"] += 1
            await killer
            unfinished = batch[0] not in self.ledger.acked or await self._unfinished(phase)
        elif phase == "reconcile":
            # The window starts with the import command: the hub may die while another
            # process writes its bank, or while it publishes what was written.
            killer = asyncio.create_task(self._kill_after(target, delay))
            await self._cli_import(self._new_hashes(rng.randint(100, 400)))
            await killer
            unfinished = await self._unfinished(phase)
        elif phase == "sync":
            await self._import_batch(self._new_hashes(rng.randint(300, 900)))
            await self._kill_after(target, delay)
            unfinished = await self._unfinished(phase)
        else:
            killer = asyncio.create_task(self._kill_after(target, delay))
            await self._match_round()
            await killer
            unfinished = await self._unfinished(phase)
        self.tally.kills[phase] += 1
        self.tally.targets[f"{phase}/{target}"] += 1
        self.tally.mid[phase] += bool(unfinished)
        t_kill = time.monotonic()
        self.tally.restarts_s.append(await self.fed.start(target))
        t_up = time.monotonic()
        if phase == "import" and batch[0] not in self.ledger.acked:
            await self._import_batch(batch)  # the caller retries the batch it got no answer for
        await self._settle()
        t_settled = time.monotonic()
        await self.check(f"kill {k} ({phase}/{target})")
        if self.progress is not None:
            self.progress(self.tally)
        self.say(
            f"kill {k:3d} {phase:9s} {target:8s} after {delay:5.2f}s"
            f" {'mid' if unfinished else 'after'}  round {time.monotonic() - t0:5.1f}s"
            f" (op {t_kill - t0:.0f} restart {t_up - t_kill:.0f} settle {t_settled - t_up:.0f}"
            f" check {time.monotonic() - t_settled:.0f})"
            f"  losses {len(self.tally.losses)} dups {len(self.tally.duplicates)}"
            f" stuck {len(self.tally.stuck)} logs-failed {len(self.tally.log_failed)}"
        )

    async def run(
        self,
        kills: int,
        phases: tuple[str, ...] = PHASES,
        windows: dict[str, float] | None = None,
    ) -> Tally:
        """``kills`` rounds, the phases in a shuffled rotation."""
        async with aiohttp.ClientSession() as self.http:
            try:
                await self.start(windows)
                order: list[str] = []
                for k in range(kills):
                    if not order:
                        order = list(phases)
                        self.rng.shuffle(order)
                    await self.one_kill(k + 1, order.pop())
            finally:
                await self.fed.stop_all()
                for name in self.fed.nodes:
                    self.tally.logged[name] = dict(self.fed.log_problems(name))
                for pool in self._pools.values():
                    await pool.close()
                with contextlib.suppress(Exception):
                    await self.fed.drop_schemas()
        return self.tally


def summary(backend: str, t: Tally, seconds: float) -> dict[str, Any]:
    return {
        "backend": backend,
        "kills": sum(t.kills.values()),
        "kills_by_phase": dict(t.kills),
        "kills_mid_operation": dict(t.mid),
        "kills_by_target": dict(t.targets),
        "losses": t.losses,
        "duplicates": t.duplicates,
        "stuck": t.stuck,
        "log_verifications": t.log_ok,
        "log_failures": t.log_failed,
        "answers_lost_to_kills": dict(t.lost_answers),
        "windows_s": {k: round(v, 2) for k, v in t.windows.items()},
        "restart_s_median": round(sorted(t.restarts_s)[len(t.restarts_s) // 2], 2),
        "settle_s_median": round(sorted(t.settle_s)[len(t.settle_s) // 2], 2)
        if t.settle_s
        else None,
        "final_state": t.final,
        "error_lines_logged": t.logged,
        "seconds": round(seconds, 1),
    }


async def run_backend(
    backend: str, kills: int, seed: int, verbose: bool = True, write: bool = False
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"bm-faults-{backend}-"))
    database = "sqlite" if backend == "sqlite" else PG_DSN
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    run = FaultRun(home, database, seed, verbose=verbose)

    def result(tally: Tally) -> dict[str, Any]:
        out = summary(backend, tally, time.monotonic() - t0)
        load = [load0, os.getloadavg()[0]]
        return {**out, "kills_planned": kills, "seed": seed, "load_average": load}

    if write:  # after every kill, so a run cut short still leaves its counts
        run.progress = lambda tally: write_results([result(tally)])
    try:
        tally = await run.run(kills)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return result(tally)


def write_results(new_runs: list[dict[str, Any]]) -> None:
    """Write faults.md/.json; a backend run separately keeps the other backend's last run."""
    import fcntl

    path = RESULTS / "faults.json"
    with (Path(tempfile.gettempdir()) / "bm-faults-results.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the two backends may run side by side
        runs = {}
        if path.exists():
            runs = {r["backend"]: r for r in json.loads(path.read_text()).get("runs", [])}
        runs.update({r["backend"]: r for r in new_runs})
        ordered = [runs[b] for b in ("sqlite", "postgres") if b in runs]
        path.write_text(json.dumps({"runs": ordered}, indent=2) + "\n")
        _write_md(ordered)


def _write_md(runs_: list[dict[str, Any]]) -> None:
    seeds = sorted({str(r["seed"]) for r in runs_})
    lines = [
        "# Fault suite: SIGKILL at random points (issue 15)",
        "",
        f"`./dev bench faults --seed {', '.join(seeds)}` (bench/faults.py). A hub and a"
        " platform run as `blindmatch run` processes; each round kills one of them with SIGKILL"
        " after a delay drawn uniformly over the phase's window (its duration measured"
        " without a kill at the start of the run), restarts it, lets the federation settle"
        " and checks every invariant on both databases and both live logs (the module"
        " docstring lists them).",
        "",
        "Load average (1 min) at the start and end of each backend's run: "
        + "; ".join(
            f"{r['backend']} {r['load_average'][0]:.1f} → {r['load_average'][1]:.1f}" for r in runs_
        )
        + " (2 cores shared with other agents; the backends ran side by side).",
        "",
        "| backend | kills (of planned) | import | reconcile | sync | match"
        " | work unfinished at the kill | losses | duplicates | stuck"
        " | log verifications (failed) | wall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs_:
        k, m = r["kills_by_phase"], r["kills_mid_operation"]
        lines.append(
            f"| {r['backend']} | **{r['kills']}** of {r.get('kills_planned', r['kills'])} | "
            f"{k.get('import', 0)} | "
            f"{k.get('reconcile', 0)} | {k.get('sync', 0)} | {k.get('match', 0)} | "
            f"{sum(m.values())} ({', '.join(f'{p} {m.get(p, 0)}' for p in PHASES)}) | "
            f"**{len(r['losses'])}** | **{len(r['duplicates'])}** | **{len(r['stuck'])}** | "
            f"{r['log_verifications']} ({len(r['log_failures'])}) | {r['seconds'] / 60:.0f} min |"
        )
    lines += ["", "Per backend:", ""]
    for r in runs_:
        lines.append(
            f"- **{r['backend']}**: kills by node {r['kills_by_target']}; kill windows (s)"
            f" {r['windows_s']}; median restart {r['restart_s_median']} s, median settle"
            f" {r['settle_s_median']} s; answers the kill cut off (the caller retried)"
            f" {r['answers_lost_to_kills']}; state at the end {r['final_state']}; error"
            f" lines the nodes logged (kills included) {r['error_lines_logged']}."
        )
        for what in ("losses", "duplicates", "stuck", "log_failures"):
            for problem in r[what][:10]:
                lines.append(f"  - {what}: {problem}")
    lines += [
        "",
        '"Work unfinished at the kill" is read from the killed node\'s database before the'
        " restart: items not yet published (import, reconcile), a replica behind the hub's"
        " feed (sync), a job not ended or a submission unanswered (match). The other kills"
        " landed before the phase began or after it ended; they still check restart.",
        "",
        "CI runs a few kills on SQLite (`tests/test_fault_kills.py`; more with"
        " `BLINDMATCH_FAULT_KILLS=N`).",
    ]
    (RESULTS / "faults.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="./dev bench faults", description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=100, help="kills per backend (default 100)")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--no-write", action="store_true", help="print only; keep results files")
    args = ap.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    runs = []
    for backend in backends:
        print(f"== {backend}: {args.kills} kills, seed {args.seed}", flush=True)
        runs.append(
            asyncio.run(run_backend(backend, args.kills, args.seed, write=not args.no_write))
        )
        print(json.dumps(runs[-1], indent=2), flush=True)
        if not args.no_write:
            write_results(runs)
    bad = sum(len(r["losses"]) + len(r["duplicates"]) + len(r["stuck"]) for r in runs)
    bad += sum(len(r["log_failures"]) for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
