"""Holder CPU of a near-copy query: every candidate at once against rounds with tokens.

    ./dev bench rounds [--repeats N] [--items N]

Since issue 13 each table that hit an item is its own candidate (spec 8.5). Asked all at once,
each costs the holder a full threshold answer; asked in rounds (10.5: the best candidate
first, the rest showing the token of what it confirmed), the matched item's other candidates
are answered ``same``. One holder with ``--items`` random items and one protected hash; near
copies 8, 16 and 24 bits away, probed with ``pdq-lsh-1``'s 64 probes (whole-picture PDQ,
T = 31); both flows through the real ``protocol/matching.py`` code, interleaved, process CPU
time of the holder's side (verification, resolution, answers), medians. Writes
``bench/results/rounds.md`` and ``rounds.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from blindmatch.crypto import oprf, release
from blindmatch.protocol import index, matching
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.roster import voprf_key_id

RESULTS = Path(__file__).resolve().parent / "results"
FLOWS = ("at once", "rounds")


def _near(h: bytes, bits: int, rng: np.random.Generator) -> bytes:
    out = bytearray(h)
    for i in rng.choice(256, size=bits, replace=False):
        out[int(i) >> 3] ^= 0x80 >> (int(i) & 7)
    return bytes(out)


def _query(key: Any, key_id: bytes, replica: Any, refs: Any, items: Any, q: bytes, flow: str):  # type: ignore[no-untyped-def]
    scalar_key = release.scalar_key(index.reference_key(key.sk)) if flow == "rounds" else None
    ex = matching.PeerExchange(
        "hub",
        key.pk,
        PDQ_LSH_1,
        [matching.QueryHash(q, None)],
        probe_budget=64,
        first_round=1 if flow == "rounds" else None,
    )
    ex.on_evaluated(matching.answer_evaluate(key, key_id, ex.evaluate_request()), replica)
    cache = matching.EncryptionCache(os.urandom)
    cpu, answers, same, requests, up = 0.0, 0, 0, 0, 0
    verified: dict[bytes, Any] = {}  # a holder keeps verified queries (the node: its last 64)
    while batch := ex.next_threshold_requests(cache):
        for req in batch:
            requests += 1
            up += len(req["query"]) + 24 * len(req["items"]) + 16 * len(req.get("confirmed", ()))
            t0 = time.process_time()
            digest = hashlib.sha256(req["query"]).digest()
            if digest not in verified:
                verified[digest] = matching.verify_threshold_query(req)
            named = matching.resolve_in_memory(refs, items, req)
            ans = matching.answer_threshold(verified[digest], named, req, (31,), scalar_key)
            cpu += time.process_time() - t0
            answers += sum("response" in a for a in ans["answers"])
            same += sum("same" in a for a in ans["answers"])
            ex.on_answer(req, ans, cache)
    return {
        "holder_cpu_s": cpu,
        "candidates": sum(len(v) for v in ex.candidates.values()),
        "threshold_answers": answers,
        "same_answers": same,
        "requests": requests,
        "bytes_up": up,
        "confirmed": len(ex.confirmed),
    }


def run(repeats: int, n_items: int) -> dict[str, Any]:
    rng = np.random.default_rng(14)
    key = oprf.derive_key_pair(os.urandom(32), b"blindmatch-v1 node voprf key", oprf.Mode.VOPRF)
    key_id = voprf_key_id(key.pk)
    refs = index.HolderReferences(key, key_id)
    items: dict[bytes, matching.HolderItem] = {}
    entries: list[bytes] = []
    target = os.urandom(32)
    for h in [target] + [os.urandom(32) for _ in range(n_items)]:
        ref = os.urandom(16)
        items[ref] = matching.HolderItem(ref, h, (31,), {"provenance": "survivor-submitted"})
        entries += refs.publish(ref, PDQ_LSH_1.index_keys(h))
    replica = index.ReplicaIndex(PDQ_LSH_1.name, key_id)
    replica.add(index.pack_entries(entries))
    load0 = os.getloadavg()
    rows = []
    for bits in (8, 16, 24):
        q = _near(target, bits, rng)
        runs: dict[str, list[dict[str, Any]]] = {f: [] for f in FLOWS}
        for r in range(repeats):
            for flow in FLOWS if r % 2 == 0 else FLOWS[::-1]:
                runs[flow].append(_query(key, key_id, replica, refs, items, q, flow))
        row: dict[str, Any] = {"bits": bits}
        for flow in FLOWS:
            last = dict(runs[flow][-1])
            last["holder_cpu_s"] = statistics.median(x["holder_cpu_s"] for x in runs[flow])
            last["holder_cpu_runs"] = [x["holder_cpu_s"] for x in runs[flow]]
            row[flow] = last
        rows.append(row)
        print(f"rounds: {bits} bits: {json.dumps(row)}", flush=True)
    return {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "backend": oprf.backend(key),
        "items": n_items + 1,
        "repeats": repeats,
        "load": [load0[0], os.getloadavg()[0]],
        "rows": rows,
    }


def report(r: dict[str, Any]) -> str:
    lines = [
        "# A near copy's threshold test: every candidate at once, or in rounds with tokens",
        "",
        f"`./dev bench rounds` (bench/rounds.py). Machine: {r['machine']['platform']}, "
        f"{r['machine']['cpus']} shared CPUs, load average {r['load'][0]:.1f} -> "
        f"{r['load'][1]:.1f}. A holder with {r['items']:,} items (one of them the protected "
        "hash, the others random); near copies of the protected hash, probed with pdq-lsh-1's "
        "64 probes; whole-picture PDQ, T = 31. *At once*: every candidate in one "
        "`threshold.query`, each answered in full (issue 13). *Rounds*: the best candidate "
        "first, the rest in one more round showing the token of what matched, answered `same` "
        "(specs/protocol.md 8.5, 10.5; the holder keeps the verified query). Holder CPU: "
        f"verification, resolution and answers, process time, median of {r['repeats']} "
        "interleaved runs.",
        "",
        "| near copy | candidates | threshold answers (at once / rounds) | `same` answers | "
        "requests | bytes up | holder CPU (at once / rounds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        a, b = row["at once"], row["rounds"]
        lines.append(
            f"| {row['bits']} bits | {b['candidates']} | {a['threshold_answers']} / "
            f"{b['threshold_answers']} | {b['same_answers']} | {a['requests']} / "
            f"{b['requests']} | {a['bytes_up']:,} / {b['bytes_up']:,} | "
            f"{a['holder_cpu_s'] * 1000:.0f} ms / {b['holder_cpu_s'] * 1000:.0f} ms |"
        )
    lines += [
        "",
        "Both flows confirm the same item once. The rounds cost one more round trip and the "
        "encrypted query (49,200 bytes) sent again for a query hash with more than one "
        "candidate; the holder does not verify it again.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench rounds", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    r = run(args.repeats, args.items)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rounds.json").write_text(json.dumps(r, indent=1))
    (args.out / "rounds.md").write_text(report(r))
    print(f"rounds: wrote {args.out / 'rounds.md'}")
    return 0
