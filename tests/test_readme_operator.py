"""The README's "Running a node" block, run as written: each command a separate process, as an
operator would type them, with TLS between the two nodes (certificates from a CA this test
makes). It must end in a cross-node match that opens a review case."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from console_fixtures import jpeg, photo
from PIL import Image

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent


def operator_block() -> list[str]:
    """The commands of the first ``sh`` block under "## Running a node", continuation lines
    joined, comments and blank lines dropped."""
    text = README.read_text()
    section = text[text.index("## Running a node\n") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(tls: Path, nodes: list[str]) -> None:
    """A CA and a certificate per node for localhost, as an operator's CA would issue."""
    tls.mkdir()
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test federation CA"))
        .issuer_name(_name("test federation CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    (tls / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for node in nodes:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(node))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(ca_key, hashes.SHA256())
        )
        (tls / f"{node}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file = tls / f"{node}.key"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_ports(commands: list[str]) -> list[str]:
    """The block as written, unless one of its ports is taken on this machine (another test
    run): then those port numbers, and only they, are replaced by free ones everywhere."""
    ports = sorted({int(p) for p in re.findall(r":(87\d\d)\b", " ".join(commands))})
    assert ports, "the block names its ports"
    mapping = {}
    for port in ports:
        if not _free(port):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                mapping[port] = s.getsockname()[1]
    return [re.sub(r":(87\d\d)\b", lambda m: f":{mapping.get(int(m[1]), int(m[1]))}", c)
            for c in commands]  # fmt: skip


def test_readme_operator_block_gives_a_cross_node_match_over_tls(tmp_path: Path) -> None:
    commands = free_ports(operator_block())
    assert any(c.startswith("blindmatch run") for c in commands)
    # What the README says the operator brings: certificates, a reported picture, an upload.
    make_ca(tmp_path / "tls", ["hub", "platform-a"])
    reported = photo(7)
    (tmp_path / "reported.jpg").write_bytes(jpeg(reported))
    (tmp_path / "upload.jpg").write_bytes(
        jpeg(reported.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((560, 420)), 70)
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("BLINDMATCH_CONFIG", None)
    env.pop("BLINDMATCH_DB", None)
    servers: list[subprocess.Popen[bytes]] = []
    outputs: dict[str, str] = {}
    try:
        for command in commands:
            if command.endswith("&"):
                log = open(tmp_path / f"run-{len(servers)}.log", "wb")  # noqa: SIM115
                servers.append(
                    subprocess.Popen(
                        ["bash", "-c", "exec " + command.removesuffix("&").strip()],
                        cwd=tmp_path,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
                continue
            done = subprocess.run(
                ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                text=True, timeout=180,
            )  # fmt: skip
            logs = "".join(p.read_text() for p in tmp_path.glob("run-*.log"))
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}\n{logs}"
            outputs[shlex.split(command)[1]] = done.stdout
        for server in servers:
            assert server.poll() is None, "a node stopped"

        result = json.loads(outputs["match"])
        assert result["complete"] and result["content_ref"] == "upload-1"
        assert [m["peer"] for m in result["matches"]] and {
            m["peer"] for m in result["matches"]
        } == {"hub"}
        status = json.loads(outputs["status"])
        assert status["federation"] == "example-fed" and status["warnings"] == []
        (peer,) = status["peers"]
        assert peer["peer"] == "hub" and peer["feed_lag"] == 0
        # The match opened a review case on the platform, as the API's content_ref does.
        cases = subprocess.run(
            [str(BIN / "python"), "-c", _CASES], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert cases.returncode == 0, cases.stderr
        assert [c["holder"] for c in json.loads(cases.stdout)] == ["hub"]
        # Between the nodes: TLS on the non-loopback listeners, and plain HTTP is refused.
        hub_config = (tmp_path / "hub" / "config.toml").read_text()
        assert 'listen = "0.0.0.0:' in hub_config and "tls_cert" in hub_config
        assert 'hub_name = "Example Support Line"' in hub_config
        member = json.loads((tmp_path / "hub" / "member.json").read_text())
        assert member["endpoint"].startswith("https://") and member["roles"] == ["hub"]
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    assert all(server.returncode == 0 for server in servers), "a node did not stop cleanly"


# The platform's cases for the upload, read through its API with its own token and config.
_CASES = """
import asyncio, json
from pathlib import Path
from blindmatch.node import config
from blindmatch.node.api.client import BlindmatchClient
from blindmatch.node.cli.node import api_url
cfg = config.load(Path("platform-a/config.toml").resolve())
async def main():
    token = (cfg.home / "api.token").read_text().strip()
    async with BlindmatchClient(api_url(cfg), token) as bm:
        print(json.dumps(await bm.cases_for_content("upload-1")))
asyncio.run(main())
"""
