"""The operator's path, as a person would run it: init two nodes, create governance keys, sign a
roster, run both nodes as separate processes, add a hash at the hub, match from the platform."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BM = [sys.executable, "-m", "blindmatch"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BM, *map(str, args)], capture_output=True, text=True, check=check)


def wait_healthy(port: int, proc: subprocess.Popen[str] | None = None, timeout: float = 90) -> None:
    """Until the node answers /healthz. Generous: a loaded CI machine starts a node slowly
    (the bound only catches a node that never comes up; one that died fails at once)."""
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"node on {port} exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"node on {port} did not come up")


def test_init_roster_run_match(tmp_path: Path) -> None:
    gov = tmp_path / "gov.key"
    gov_pub = run("roster", "keygen", "--out", gov).stdout.strip()
    assert len(gov_pub) == 64
    roster = tmp_path / "roster.json"
    ports = {}
    for name in ("hub", "platform"):
        ports[name] = (free_port(), free_port())
        run(
            "init", "--home", tmp_path / name, "--node-id", name,
            "--listen", f"127.0.0.1:{ports[name][0]}", "--api", f"127.0.0.1:{ports[name][1]}",
            "--roster", roster, "--governance-key", gov_pub,
            "--index-batch-days", "0",  # publish at once: the test matches right after
        )  # fmt: skip
        assert oct((tmp_path / name / "keys" / "voprf.key").stat().st_mode & 0o777) == "0o600"
    # init refuses to overwrite an existing node
    again = run("init", "--home", tmp_path / "hub", "--node-id", "hub", check=False)
    assert again.returncode == 2 and "refusing" in again.stderr
    run(
        "roster", "sign", "--federation", "test", "--serial", "1",
        "--member", tmp_path / "hub" / "member.json",
        "--member", tmp_path / "platform" / "member.json",
        "--key", gov, "--out", roster,
    )  # fmt: skip
    assert json.loads(roster.read_text())["roster"]["serial"] == 1
    procs = []
    try:
        for name in ("hub", "platform"):
            procs.append(
                subprocess.Popen(
                    [*BM, "run", "--config", str(tmp_path / name / "config.toml")],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for name, proc in zip(("hub", "platform"), procs, strict=True):
            wait_healthy(ports[name][1], proc)
        held = os.urandom(32)
        hub_cfg = tmp_path / "hub" / "config.toml"
        db = f"sqlite:///{tmp_path / 'hub' / 'node.db'}"
        run("bank", "create", "ncii", "--db", db, "--provenance", "survivor-submitted", "--shared")
        created = run("bank", "list", "--db", db)
        assert "ncii" in created.stdout, created.stdout + created.stderr
        # The running node publishes what the bank command stored, on its own schedule.
        run("bank", "add", "ncii", held.hex(), "--db", db)
        near = bytearray(held)
        near[0] ^= 0b1010_0000
        deadline = time.time() + 90  # publication and sync run on their own schedule
        matches: list = []
        while time.time() < deadline and not matches:
            out = run("match", "--config", tmp_path / "platform" / "config.toml", near.hex(),
                      "--wait", "20")  # fmt: skip
            matches = json.loads(out.stdout)["matches"]
            if not matches:
                time.sleep(1)  # the hub publishes and the platform syncs every few seconds
        assert matches and matches[0]["peer"] == "hub" and matches[0]["band"] == 8
        # With the uploader and context: digests computed by the CLI, stored by the node.
        platform_cfg = tmp_path / "platform" / "config.toml"
        run("match", "--config", platform_cfg, near.hex(), "--wait", "20",
            "--content-ref", "cli-1", "--uploader-ref", "acct-1",
            "--uploader-email", "Someone+x@Example.org", "--account-age-days", "3",
            "--self-upload")  # fmt: skip
        import sqlite3

        with sqlite3.connect(tmp_path / "platform" / "node.db") as conn:
            ((ref, ctx),) = conn.execute("SELECT uploader_ref, context FROM upload_context")
        assert ref == "acct-1" and json.loads(ctx)["self_upload"] is True
        assert "someone" not in ctx.lower() and "example.org" not in ctx.lower()
        bad = run("match", "--config", platform_cfg, near.hex(), "--content-ref", "cli-2",
                  "--uploader-phone", "020 7946 0958", check=False)  # fmt: skip
        assert bad.returncode != 0 and "E.164" in bad.stderr
        status = json.loads(run("status", "--config", hub_cfg).stdout)
        assert status["node"] == "hub" and status["index_feed_head"] >= 1
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        logs = []
        for p in procs:
            try:
                _, err = p.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            logs.append(err)
        assert all(p.returncode == 0 for p in procs), logs
    # Logs are JSON lines and carry no hash.
    for err in logs:
        for line in err.splitlines():
            if line.startswith("{"):
                json.loads(line)
        assert held.hex() not in err and bytes(near).hex() not in err
