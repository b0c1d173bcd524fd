"""Operator commands: init, roster, run, status, peer, match."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from blindmatch.crypto import signing
from blindmatch.node import config as config_mod
from blindmatch.node import keys as keyfiles
from blindmatch.node.api.client import BlindmatchClient

ROLES = ("platform", "hub", "generator")
NAME_RULE = "lower-case letters, digits, '.' and '-', starting with a letter or digit, at most 63"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    i = sub.add_parser(
        "init",
        help="create a node: keys, API token, configuration, member.json",
        description="Create a node's home: its keys, API token, config.toml and the member.json"
        " that governance lists in the roster.",
    )
    i.add_argument("--home", type=Path, required=True, help="directory for the node's files")
    i.add_argument("--node-id", required=True, help=f"the node's name: {NAME_RULE}")
    i.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="platform (matches uploads), hub (serves the survivor page), generator (an AI"
        " generator's own bank); repeatable; default: platform",
    )
    i.add_argument("--listen", default="127.0.0.1:8700", help="federation HOST:PORT")
    i.add_argument("--api", default="127.0.0.1:8710", help="local API HOST:PORT (keep loopback)")
    i.add_argument("--endpoint", help="public federation URL peers use (default: http(s)://LISTEN)")
    i.add_argument("--tls-cert", type=Path, help="certificate chain (PEM) for the listener")
    i.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    i.add_argument("--tls-ca", type=Path, help="CA bundle to verify peers (default: system CAs)")
    i.add_argument("--database", help="database URL (default: SQLite in the home)")
    i.add_argument("--hub-name", help="a hub: the name its survivor page shows")
    i.add_argument("--hub-contact", help="a hub: how survivors reach it (email, phone, URL)")
    i.add_argument("--privacy-url", help="a hub: its full privacy policy (https://...)")
    i.add_argument("--roster", type=Path, help="the roster file (it may not exist yet)")
    i.add_argument("--governance-key", action="append", default=[], help="hex; repeatable")
    i.add_argument("--governance-threshold", type=int, default=1)
    i.add_argument("--no-index", action="store_true", help="this node holds no hashes")
    i.add_argument(
        "--index-batch-days",
        type=float,
        default=7.0,
        metavar="DAYS",
        help="publish index additions in batches at most this often (spec 8.7; default 7);"
        " 0 publishes each at once, unprotected (a demo)",
    )
    i.add_argument(
        "--index-batch-padding",
        type=int,
        default=163_840,
        metavar="N",
        help="pad each batch with decoys to N entries per table (default 163840: no fresh hash"
        " within 10 years for 100 colluding members at platform volume, spec 8.7); 0 with"
        " --index-batch-days 0",
    )
    i.add_argument(
        "--index-tile-batch-days",
        type=float,
        default=90.0,
        metavar="DAYS",
        help="publish protected sources' tiles in batches of their own at most this often"
        " (spec 8.7; default 90: each is padded in 41 cells, weekly would grow every replica"
        " by 200 GB a year); ignored with --index-batch-days 0",
    )
    i.set_defaults(func=cmd_init)

    r = sub.add_parser("roster", help="federation governance: keys and signed rosters")
    rsub = r.add_subparsers(dest="roster_command", metavar="SUBCOMMAND")
    k = rsub.add_parser("keygen", help="create a governance signing key (prints its public key)")
    k.add_argument("--out", type=Path, required=True)
    k.set_defaults(func=cmd_roster_keygen)
    s = rsub.add_parser(
        "sign",
        help="build and sign a roster from member entries",
        description="Sign a roster. Nodes reload a changed roster file by themselves; a new"
        " roster needs a higher serial.",
    )
    s.add_argument("--federation", required=True, help=f"the federation's name: {NAME_RULE}")
    s.add_argument("--serial", type=int, required=True)
    s.add_argument("--days", type=int, default=30, help="validity (default 30)")
    s.add_argument("--member", type=Path, action="append", required=True,
                   help="a member.json written by 'blindmatch init' (repeatable)")  # fmt: skip
    s.add_argument("--key", type=Path, action="append", required=True,
                   help="a governance key file (repeatable, k of n)")  # fmt: skip
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_roster_sign)
    r.set_defaults(func=lambda a: _help(r))

    run = sub.add_parser("run", help="run the node (federation server, API, sync, matching)")
    config_mod.add_config_argument(run)
    run.add_argument("--fresh-database", action="store_true",
                     help="start over on an empty database although this node ran on another"
                     " (its jobs, cases and log are not there)")  # fmt: skip
    run.set_defaults(func=cmd_run)
    st = sub.add_parser("status", help="show the node's status (roster expiry, queues, peers)")
    config_mod.add_config_argument(st)
    st.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                    help="wait this long for the node to answer (after 'run')")  # fmt: skip
    st.set_defaults(func=cmd_status)
    pe = sub.add_parser("peer", help="list peers and their replication state")
    config_mod.add_config_argument(pe)
    pe.add_argument(
        "--wait-synced",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait until every peer's index has been pulled up to its head",
    )
    pe.set_defaults(func=cmd_peers)
    m = sub.add_parser(
        "match", help="match an image or video file, or a PDQ hash, against the federation"
    )
    config_mod.add_config_argument(m)
    m.add_argument("target", help="an image file, or a 64-hex PDQ hash")
    m.add_argument("--wait", type=float, default=60, help="seconds to wait for every peer")
    m.add_argument(
        "--content-ref",
        help="the platform's reference for this content: review cases open for its matches,"
        " as with the API's content_ref ([A-Za-z0-9._:-], at most 128, not starting with '.')",
    )
    up = m.add_argument_group(
        "uploader and context (need --content-ref; stored with the cases, never sent to a peer)"
    )
    up.add_argument("--uploader-ref", help="the platform's pseudonymous account reference")
    up.add_argument(
        "--uploader-email",
        action="append",
        default=[],
        metavar="EMAIL",
        help="for repeat-uploader signals: normalised and hashed here, only the digest is sent"
        " to the node (repeatable, up to 4 identifiers in all)",
    )
    up.add_argument(
        "--uploader-phone", action="append", default=[], metavar="E164", help="as --uploader-email"
    )
    up.add_argument("--account-age-days", type=int)
    up.add_argument("--strikes", type=int, help="earlier confirmed strikes on this platform")
    up.add_argument("--open-reports", type=int)
    up.add_argument(
        "--self-upload", action="store_true", help="the uploader says they are the person pictured"
    )
    up.add_argument("--surface", choices=("public-post", "private-message", "profile-picture"))
    m.set_defaults(func=cmd_match)


def cmd_init(args: argparse.Namespace) -> int:
    from blindmatch.protocol.roster import NODE_ID

    home: Path = args.home.resolve()
    if (home / "config.toml").exists():
        raise config_mod.ConfigError(
            f"{home}/config.toml exists; refusing to overwrite a node (pick another --home)"
        )
    if not NODE_ID.fullmatch(args.node_id):
        raise config_mod.ConfigError(f"--node-id {args.node_id!r}: use {NAME_RULE}")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key),
                       ("--tls-ca", args.tls_ca)):  # fmt: skip
        if path is not None and not path.is_file():
            raise config_mod.ConfigError(f"{flag}: no file {path}")
    cfg = config_mod.NodeConfig(node_id=args.node_id, home=home)
    cfg.listen_host, cfg.listen_port = config_mod._hostport(args.listen, "--listen")
    cfg.api_host, cfg.api_port = config_mod._hostport(args.api, "--api")
    cfg.roster_path = args.roster.resolve() if args.roster else None
    cfg.tls_cert = args.tls_cert.resolve() if args.tls_cert else None
    cfg.tls_key = args.tls_key.resolve() if args.tls_key else None
    cfg.tls_ca = args.tls_ca.resolve() if args.tls_ca else None
    cfg.database = args.database or ""
    cfg.hub_name = config_mod._short_text(args.hub_name, "--hub-name")
    cfg.hub_contact = config_mod._short_text(args.hub_contact, "--hub-contact")
    cfg.privacy_url = config_mod._short_text(args.privacy_url, "--privacy-url")
    try:
        cfg.governance_keys = [bytes.fromhex(k) for k in args.governance_key]
    except ValueError as exc:
        raise config_mod.ConfigError("--governance-key: the hex 'roster keygen' printed") from exc
    if any(len(k) != 32 for k in cfg.governance_keys):
        raise config_mod.ConfigError("--governance-key: 64 hex characters (an Ed25519 key)")
    cfg.governance_threshold = args.governance_threshold
    try:
        cfg.index_batch_s = config_mod._batch_seconds(args.index_batch_days)
    except ValueError as exc:
        raise config_mod.ConfigError(f"--index-batch-days: {exc}") from exc
    cfg.index_batch_padding = args.index_batch_padding if cfg.index_batch_s else 0
    try:
        tile_s = config_mod._batch_seconds(args.index_tile_batch_days, "--index-tile-batch-days")
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc)) from exc
    cfg.index_tile_batch_s = tile_s if cfg.index_batch_s else 0
    try:
        cfg.validate()
    except config_mod.ConfigError as exc:
        if "tls_cert" in str(exc):
            raise config_mod.ConfigError(
                f"{exc} (give --tls-cert and --tls-key, or listen on 127.0.0.1)"
            ) from exc
        raise
    scheme = "https" if cfg.tls_cert else "http"
    endpoint = args.endpoint or f"{scheme}://{cfg.listen_host}:{cfg.listen_port}"
    config_mod.require_tls_unless_loopback(endpoint, "--endpoint")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    node_keys = keyfiles.create(cfg.keys_dir)
    from blindmatch.node.runtime import api_token

    api_token(home)
    (home / "config.toml").write_text(config_mod.dump(cfg))
    member: dict[str, Any] = {
        "id": cfg.node_id,
        "signing_key": node_keys.identity.public_key.hex(),
        "voprf_key": None if args.no_index else node_keys.voprf.pk.hex(),
        "endpoint": endpoint,
        "roles": sorted(set(args.role or ["platform"])),
    }
    (home / "member.json").write_text(json.dumps(member, indent=2) + "\n")
    print(f"created node {cfg.node_id} ({', '.join(member['roles'])}) in {home}")
    print(f"  send {home / 'member.json'} to the federation's governance to be listed")
    print(f"  then: blindmatch run --config {home / 'config.toml'}")
    return 0


def cmd_roster_keygen(args: argparse.Namespace) -> int:
    key = signing.SigningKey.generate()
    keyfiles._write_secret(args.out, key.seed)
    print(key.public_key.hex())
    return 0


def cmd_roster_sign(args: argparse.Namespace) -> int:
    from blindmatch.protocol import roster as roster_mod

    if not roster_mod.NODE_ID.fullmatch(args.federation):
        raise config_mod.ConfigError(f"--federation {args.federation!r}: use {NAME_RULE}")
    members = []
    for path in args.member:
        try:
            members.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise config_mod.ConfigError(f"--member {path}: not JSON ({exc.msg})") from exc
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
    roster_mod.verify_roster(document, [k.public_key for k in keys], len(keys), now_ms)
    # Written beside and renamed, so a node reloading the file never reads half of it.
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(args.out)
    print(f"wrote {args.out}: {len(members)} members, serial {args.serial}")
    return 0


def _load(args: argparse.Namespace) -> config_mod.NodeConfig:
    return config_mod.load_from_args(args)


def cmd_run(args: argparse.Namespace) -> int:
    from blindmatch.node.runtime import configure_logging, run_forever

    cfg = _load(args)
    configure_logging()
    asyncio.run(run_forever(cfg, fresh_database=args.fresh_database))
    return 0


def _client(cfg: config_mod.NodeConfig) -> BlindmatchClient:
    from blindmatch.node.runtime import api_token

    return BlindmatchClient(api_url(cfg), api_token(cfg.home))


def api_url(cfg: config_mod.NodeConfig) -> str:
    host = f"[{cfg.api_host}]" if ":" in cfg.api_host else cfg.api_host
    scheme = "http" if config_mod.is_loopback_host(cfg.api_host) else "https"
    return f"{scheme}://{host}:{cfg.api_port}"


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2))


async def _status_when_up(bm: BlindmatchClient, wait: float) -> dict[str, Any]:
    """The node's status, retrying for up to ``wait`` seconds while it is not answering."""
    import aiohttp

    deadline = time.monotonic() + wait
    while True:
        try:
            return await bm.status()
        except aiohttp.ClientConnectionError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


def cmd_status(args: argparse.Namespace) -> int:
    async def go() -> dict:
        async with _client(_load(args)) as bm:
            return await _status_when_up(bm, args.wait)

    status = asyncio.run(go())
    _print(status)
    for warning in status.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    dead = status.get("jobs", {}).get("dead-lettered", 0)
    if dead:
        print(
            f"warning: {dead} match job(s) dead-lettered (a peer's part failed for good);"
            " see GET /api/v1/match/JOB, then POST .../retry or leave them",
            file=sys.stderr,
        )
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    async def go() -> list:
        async with _client(_load(args)) as bm:
            deadline = time.monotonic() + args.wait_synced
            status = await _status_when_up(bm, args.wait_synced)
            while args.wait_synced and not _all_synced(status):
                if time.monotonic() >= deadline:
                    behind = [p["peer"] for p in status["peers"] if not _synced(p)]
                    raise TimeoutError(
                        f"not synced with {', '.join(behind)} after {args.wait_synced:g} s"
                        " (see 'blindmatch status': last_error, incidents)"
                    )
                await asyncio.sleep(0.5)
                status = await bm.status()
            return status["peers"]

    _print(asyncio.run(go()))
    return 0


def _synced(peer: dict[str, Any]) -> bool:
    return not peer["holds_index"] or (peer["synced_at"] is not None and peer["feed_lag"] == 0)


def _all_synced(status: dict[str, Any]) -> bool:
    return all(_synced(p) for p in status["peers"])


def _upload_args(args: argparse.Namespace) -> dict[str, Any]:
    """The match command's uploader and context, with the identifiers reduced to digests here
    (specs/uploaders.md 3); a bad email or phone stops the command with the reason."""
    from blindmatch.node.api.client import uploader
    from blindmatch.protocol.uploaders import UploaderError

    out: dict[str, Any] = {}
    if args.uploader_ref or args.uploader_email or args.uploader_phone:
        try:
            out["uploader"] = uploader(args.uploader_ref, args.uploader_email, args.uploader_phone)
        except UploaderError as exc:
            raise SystemExit(f"blindmatch match: {exc}") from None
    context = {
        k: getattr(args, k)
        for k in ("account_age_days", "strikes", "open_reports", "surface")
        if getattr(args, k) is not None
    }
    if args.self_upload:
        context["self_upload"] = True
    if context:
        out["context"] = context
    if out and args.content_ref is None:
        raise SystemExit("blindmatch match: uploader and context need --content-ref")
    return out


def cmd_match(args: argparse.Namespace) -> int:
    target = args.target
    is_hash = len(target) == 64 and all(c in "0123456789abcdefABCDEF" for c in target)
    media = None if is_hash else _read_image(target)

    upload = _upload_args(args)

    async def go() -> dict:
        async with _client(_load(args)) as bm:
            if media is None:
                return await bm.match_hashes(
                    [target], wait=args.wait, content_ref=args.content_ref, **upload
                )
            return await bm.match_media(
                media, wait=args.wait, content_ref=args.content_ref, **upload
            )

    result = asyncio.run(go())
    out = {"job": result["job"], "complete": result["complete"], "matches": result["matches"]}
    if args.content_ref is not None:
        out["content_ref"] = args.content_ref
    _print(out)
    return 0 if result["complete"] else 1


def _read_image(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no such file: {path} (give an image file or a 64-hex PDQ hash)"
        ) from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a directory, not an image") from None


def _help(parser: argparse.ArgumentParser) -> int:
    """A command group run without its subcommand: its help, exit status 2."""
    parser.print_help()
    return 2
