"""Operator commands: init, roster, run, status, peer, match."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from blindmatch.crypto import signing
from blindmatch.node import config as config_mod
from blindmatch.node import keys as keyfiles
from blindmatch.node.api.client import BlindmatchClient


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    i = sub.add_parser("init", help="create a node: keys, API token, configuration, database")
    i.add_argument("--home", type=Path, required=True, help="directory for the node's files")
    i.add_argument("--node-id", required=True)
    i.add_argument("--listen", default="127.0.0.1:8700", help="federation HOST:PORT")
    i.add_argument("--api", default="127.0.0.1:8710", help="local API HOST:PORT")
    i.add_argument("--endpoint", help="public federation URL (default: http://LISTEN)")
    i.add_argument("--roster", type=Path, help="roster file path to put in the config")
    i.add_argument("--governance-key", action="append", default=[], help="hex; repeatable")
    i.add_argument("--governance-threshold", type=int, default=1)
    i.add_argument("--no-index", action="store_true", help="this node holds no hashes")
    i.set_defaults(func=cmd_init)

    r = sub.add_parser("roster", help="federation governance: keys and signed rosters")
    rsub = r.add_subparsers(dest="roster_command", metavar="SUBCOMMAND")
    k = rsub.add_parser("keygen", help="create a governance signing key")
    k.add_argument("--out", type=Path, required=True)
    k.set_defaults(func=cmd_roster_keygen)
    s = rsub.add_parser("sign", help="build and sign a roster from member entries")
    s.add_argument("--federation", required=True)
    s.add_argument("--serial", type=int, required=True)
    s.add_argument("--days", type=int, default=30, help="validity")
    s.add_argument("--member", type=Path, action="append", required=True,
                   help="a member.json written by 'blindmatch init' (repeatable)")  # fmt: skip
    s.add_argument("--key", type=Path, action="append", required=True,
                   help="a governance key file (repeatable, k of n)")  # fmt: skip
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_roster_sign)
    r.set_defaults(func=lambda a: _help(r))

    for name, helptext, fn in (
        ("run", "run the node (federation server, API, sync, matching)", cmd_run),
        ("status", "show the node's status", cmd_status),
        ("peer", "list peers and their replication state", cmd_peers),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", type=Path, required=True)
        p.set_defaults(func=fn)
    m = sub.add_parser("match", help="match an image file or a PDQ hash against the federation")
    m.add_argument("--config", type=Path, required=True)
    m.add_argument("target", help="an image file, or a 64-hex PDQ hash")
    m.add_argument("--wait", type=float, default=60)
    m.set_defaults(func=cmd_match)


def cmd_init(args: argparse.Namespace) -> int:
    home: Path = args.home.resolve()
    if (home / "config.toml").exists():
        print(f"{home}/config.toml exists; refusing to overwrite a node", file=sys.stderr)
        return 2
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg = config_mod.NodeConfig(node_id=args.node_id, home=home)
    cfg.listen_host, cfg.listen_port = config_mod._hostport(args.listen, "--listen")
    cfg.api_host, cfg.api_port = config_mod._hostport(args.api, "--api")
    cfg.roster_path = args.roster.resolve() if args.roster else None
    cfg.governance_keys = [bytes.fromhex(k) for k in args.governance_key]
    cfg.governance_threshold = args.governance_threshold
    try:
        cfg.validate()
    except config_mod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    node_keys = keyfiles.create(cfg.keys_dir)
    from blindmatch.node.runtime import api_token

    api_token(home)
    (home / "config.toml").write_text(config_mod.dump(cfg))
    endpoint = args.endpoint or f"http://{cfg.listen_host}:{cfg.listen_port}"
    member = {
        "id": cfg.node_id,
        "signing_key": node_keys.identity.public_key.hex(),
        "voprf_key": None if args.no_index else node_keys.voprf.pk.hex(),
        "endpoint": endpoint,
        "roles": ["platform"],
    }
    (home / "member.json").write_text(json.dumps(member, indent=2) + "\n")
    print(f"created node {cfg.node_id} in {home}")
    print(f"  send {home / 'member.json'} to the federation's governance to be listed")
    return 0


def cmd_roster_keygen(args: argparse.Namespace) -> int:
    key = signing.SigningKey.generate()
    keyfiles._write_secret(args.out, key.seed)
    print(key.public_key.hex())
    return 0


def cmd_roster_sign(args: argparse.Namespace) -> int:
    from blindmatch.protocol import roster as roster_mod

    members = [json.loads(p.read_text()) for p in args.member]
    now_ms = int(time.time() * 1000)
    body = {
        "federation": args.federation,
        "serial": args.serial,
        "issued_ms": now_ms,
        "expires_ms": now_ms + args.days * 86_400_000,
        "members": members,
    }
    keys = [signing.SigningKey(keyfiles._read_secret(p, 32)) for p in args.key]
    document = roster_mod.sign_roster(body, keys)
    try:
        roster_mod.verify_roster(document, [k.public_key for k in keys], len(keys), now_ms)
    except roster_mod.RosterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}: {len(members)} members, serial {args.serial}")
    return 0


def _load(args: argparse.Namespace) -> config_mod.NodeConfig:
    return config_mod.load(args.config.resolve())


def cmd_run(args: argparse.Namespace) -> int:
    from blindmatch.node.runtime import configure_logging, run_forever

    configure_logging()
    try:
        asyncio.run(run_forever(_load(args)))
    except (config_mod.ConfigError, keyfiles.KeyFileError, ValueError) as exc:
        # ConfigError, PolicyError and RosterError are ValueErrors with a clear sentence.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _client(cfg: config_mod.NodeConfig) -> BlindmatchClient:
    from blindmatch.node.runtime import api_token

    return BlindmatchClient(f"http://{cfg.api_host}:{cfg.api_port}", api_token(cfg.home))


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def cmd_status(args: argparse.Namespace) -> int:
    async def go() -> None:
        async with _client(_load(args)) as bm:
            _print(await bm.status())

    asyncio.run(go())
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    async def go() -> None:
        async with _client(_load(args)) as bm:
            _print((await bm.status())["peers"])

    asyncio.run(go())
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    target = args.target

    async def go() -> dict:
        async with _client(_load(args)) as bm:
            if len(target) == 64 and all(c in "0123456789abcdefABCDEF" for c in target):
                return await bm.match_hashes([target], wait=args.wait)
            return await bm.match_media(Path(target).read_bytes(), wait=args.wait)

    result = asyncio.run(go())
    _print({"complete": result["complete"], "matches": result["matches"]})
    return 0 if result["complete"] else 1


def _help(parser: argparse.ArgumentParser) -> int:
    """A command group run without its subcommand: its help, exit status 2."""
    parser.print_help()
    return 2
