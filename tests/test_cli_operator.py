"""What an operator sees when something is wrong: one line with a hint, never a traceback; a
node that cannot listen exits non-zero; a roster change is taken in without a restart."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blindmatch.node.cli.main import main
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.roster_watch import RosterWatch, roster_warnings
from blindmatch.protocol import roster as roster_mod

BIN = Path(sys.executable).parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def node_home(tmp_path: Path, capsys, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A node made with the CLI, with a signed roster, not running."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BLINDMATCH_CONFIG", raising=False)
    monkeypatch.delenv("BLINDMATCH_DB", raising=False)
    code, pub, _ = run(capsys, "roster", "keygen", "--out", "gov.key")
    assert code == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run(capsys, "init", "--home", "n1", "--node-id", "n1", "--listen",
               f"127.0.0.1:{port}", "--api", f"127.0.0.1:{port + 1}", "--roster",
               "roster.json", "--governance-key", pub.strip())[0] == 0  # fmt: skip
    assert run(capsys, "roster", "sign", "--federation", "fed", "--serial", "1", "--member",
               "n1/member.json", "--key", "gov.key", "--out", "roster.json")[0] == 0  # fmt: skip
    return tmp_path / "n1"


def test_common_mistakes_are_one_line_with_a_hint(node_home: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "status", "--config", str(node_home))
    assert code == 1 and "is 'blindmatch run' running" in one_line(err)
    code, _, err = run(capsys, "match", "missing.jpg", "--config", str(node_home))
    assert code == 1 and "no such file: missing.jpg" in one_line(err)
    code, _, err = run(capsys, "status")
    assert code == 2 and "which node? give --config HOME/config.toml" in one_line(err)
    code, _, err = run(capsys, "status", "--config", "nowhere")
    assert code == 2 and "no configuration at" in one_line(err)
    code, _, err = run(capsys, "bank", "list")
    assert code == 1 and "which node?" in one_line(err)
    assert not Path("var").exists()  # no database made up in the working directory
    sign = ["roster", "sign", "--serial", "2", "--member", "n1/member.json", "--key", "gov.key"]
    code, _, err = run(capsys, *sign, "--federation", "F", "--out", "r2.json")
    assert code == 2 and "lower-case letters" in one_line(err)
    code, _, err = run(capsys, "init", "--home", "n2", "--node-id", "n2", "--listen",
                       "0.0.0.0:8799")  # fmt: skip
    assert code == 2 and "--tls-cert and --tls-key" in one_line(err)
    # with the node named once in the environment, every command finds it
    monkeypatch.setenv("BLINDMATCH_CONFIG", str(node_home / "config.toml"))
    assert run(capsys, "bank", "create", "b", "--provenance", "peer-sourced")[0] == 0
    code, out, _ = run(capsys, "bank", "list")
    assert code == 0 and "peer-sourced" in out


def test_version(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("blindmatch ")


def test_run_exits_non_zero_when_it_cannot_listen(node_home: Path) -> None:
    config = (node_home / "config.toml").read_text()
    port = int(config.split('listen = "127.0.0.1:')[1].split('"')[0])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [str(BIN / "blindmatch"), "run", "--config", str(node_home)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert errors == [errors[0]] and f"cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "Traceback" not in done.stderr


def _sign(fed: LocalFederation, serial: int, members: list[dict], days: float = 30) -> dict:  # type: ignore[type-arg]
    now_ms = int(time.time() * 1000)
    body = {"federation": "local", "serial": serial, "issued_ms": now_ms - 1000,
            "expires_ms": now_ms + int(days * 86_400_000), "members": members}  # fmt: skip
    return roster_mod.sign_roster(body, fed.governance[:2])


async def test_a_changed_roster_is_taken_in_without_a_restart(tmp_path: Path) -> None:
    fed = await LocalFederation(tmp_path, background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    try:
        platform = fed["platform"].node
        members = [dict(m) for m in fed.roster.document["roster"]["members"]]
        roster_file = tmp_path / "roster.json"
        platform.cfg.roster_path = roster_file
        watch = RosterWatch(platform.cfg, platform)
        newcomer = dict(members[0], id="hub-2")
        roster_file.write_text(json.dumps(_sign(fed, 2, [*members, newcomer])))
        assert await watch.check() is True
        assert platform.roster.serial == 2
        assert "hub-2" in [m.node_id for m in platform.peers()]

        for document, reason in (
            (_sign(fed, 1, members), "older than the roster in use"),
            (_sign(fed, 2, members), "a different roster under the serial in use"),
            ({"not": "a roster"}, "roster"),
        ):
            roster_file.write_text(json.dumps(document))
            assert await watch.check() is False
            assert platform.roster.serial == 2 and reason in (watch.last_error or "")
        roster_file.write_text("{half a file")
        assert await watch.check() is False and "not JSON" in (watch.last_error or "")

        # An expiry coming up is said in status (and the log, and /metrics) days before.
        roster_file.write_text(json.dumps(_sign(fed, 3, members, days=3)))
        assert await watch.check() is True
        (warning,) = roster_warnings(platform.roster, time.time())
        assert "expires in 3.0 days" in warning and "serial 4" in warning
        from blindmatch.node.api.client import BlindmatchClient

        async with BlindmatchClient(fed["platform"].api_url, fed["platform"].api_token) as bm:
            status = await bm.status()
        assert status["roster_serial"] == 3 and status["warnings"] == [warning]
    finally:
        await fed.stop()


def test_every_command_in_the_readme_parses() -> None:
    """The README's commands use the options the CLI has (help and README cannot drift)."""
    import re
    import shlex

    from blindmatch.node.cli.main import build_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip().removesuffix("&").strip()
            if line.startswith("blindmatch "):
                commands.append(shlex.split(line.split(" > ")[0].split(" | ")[0])[1:])
    assert len(commands) >= 15
    parser = build_parser()
    for argv in commands:
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: blindmatch {' '.join(argv)}")
        assert getattr(args, "func", None) is not None, argv
