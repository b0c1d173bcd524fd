"""``blindmatch audit verify``: check an exported verifiable log against a signed tree head.

The export is JSON lines, one entry per line in index order: a JSON string (the entry's bytes
in hex) or an object ``{"entry": hex, "leaf_hash": hex}``. Tree heads are files holding the hex
(or the raw bytes) of a signed tree head. specs/transparency.md section 8 is the algorithm.

With ``--url`` it audits a live node instead: it fetches the node's signed tree head and every
entry it covers (with the stored leaf hashes) from the read-only log API (``/log/v1/...``),
recomputes the tree, checks the node's own inclusion proofs for a sample of entries, and, with
``--previous-sth FILE``, fetches and checks the consistency proof from an earlier head (a fork
or a rollback is reported with both heads as evidence). ``--save-sth FILE`` keeps the head just
checked, to pass as ``--previous-sth`` next time.

Exit status: 0 the log matches the head; 1 it does not (the verdict says why and where);
2 the inputs could not be read (or the node could not be reached).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from blindmatch.node.errors import BlindmatchError
from blindmatch.protocol import transparency as tl


class InputError(BlindmatchError):
    code = "bad-input"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="verifiable log tools")
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    v = asub.add_parser("verify", help="check an exported log against a signed tree head")
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--log", metavar="FILE", help="exported log (JSON lines); needs --sth")
    source.add_argument(
        "--url", metavar="URL", help="audit a live node: its federation endpoint (http(s)://...)"
    )
    v.add_argument("--sth", metavar="FILE", help="signed tree head (hex), with --log")
    v.add_argument("--key", required=True, metavar="HEX", help="the log's Ed25519 public key")
    v.add_argument(
        "--previous-sth",
        action="append",
        default=[],
        metavar="FILE",
        help="with --url: a head of this log seen earlier (repeatable); the node must prove "
        "its current tree extends it",
    )
    v.add_argument(
        "--save-sth", metavar="FILE", help="with --url: write the verified head here (hex)"
    )
    v.add_argument(
        "--samples",
        type=int,
        default=16,
        metavar="N",
        help="with --url: inclusion proofs to fetch and check (default 16; 0: none)",
    )
    v.add_argument(
        "--earlier-sth",
        action="append",
        default=[],
        metavar="FILE",
        help="an earlier signed tree head of the same log (repeatable): checked for forks, "
        "and used to locate an altered entry",
    )
    v.set_defaults(func=run_verify)

    e = asub.add_parser(
        "export",
        help="export a node's log and its signed tree heads from its database, for verify",
    )
    e.add_argument("--database", required=True, metavar="URL", help="the node's database URL")
    e.add_argument("--node-id", required=True, metavar="ID", help="the node's id (the log id)")
    e.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    e.set_defaults(func=run_export)

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=usage)


def read_export(path: Path) -> tuple[list[bytes], list[bytes] | None]:
    """Entries and, if every line carries one, the stored leaf hashes."""
    entries: list[bytes] = []
    stored: list[bytes] = []
    with path.open() as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if isinstance(item, str):
                    entries.append(bytes.fromhex(item))
                elif isinstance(item, dict) and isinstance(item.get("entry"), str):
                    entries.append(bytes.fromhex(item["entry"]))
                    if isinstance(item.get("leaf_hash"), str):
                        stored.append(bytes.fromhex(item["leaf_hash"]))
                else:
                    raise ValueError('expected a hex string or {"entry": hex}')
            except ValueError as exc:
                raise InputError(f"{path}:{number}: {exc}") from exc
    return entries, stored if stored and len(stored) == len(entries) else None


def read_tree_head(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        return bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return data


def verify(
    log: Path,
    sth: Path,
    key_hex: str,
    earlier: list[Path],
    out: TextIO = sys.stdout,
) -> int:
    try:
        public_key = bytes.fromhex(key_hex)
        entries, stored = read_export(log)
        head = read_tree_head(sth)
        earlier_heads = [read_tree_head(p) for p in earlier]
    except (OSError, InputError, ValueError) as exc:
        print(f"cannot read the inputs: {exc}", file=out)
        return 2
    try:
        report = tl.audit_log(
            entries, head, public_key, leaf_hashes=stored, earlier_heads=earlier_heads
        )
    except tl.ForkError as exc:
        print(f"FAIL [{exc.code}] {exc.detail}", file=out)
        print(f"evidence: {json.dumps(exc.evidence())}", file=out)
        return 1
    except tl.LogError as exc:
        print(f"FAIL [{exc.code}] {exc.detail}", file=out)
        return 1
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.kinds.items())) or "none"
    print(
        f"OK log {report.log_id}: {report.tree_size} entries match the tree head signed at "
        f"{report.timestamp_ms} (root {report.root_hash.hex()})",
        file=out,
    )
    print(f"entries by kind: {kinds}", file=out)
    if earlier_heads:
        print(f"{len(earlier_heads)} earlier tree head(s) are prefixes of it", file=out)
    if report.entries_after_head:
        print(f"{report.entries_after_head} later entries are not covered by this head", file=out)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    if args.url:
        if args.sth or args.earlier_sth:
            print("--url fetches the head itself: use --previous-sth for earlier heads")
            return 2
        return verify_url(
            args.url,
            args.key,
            [Path(p) for p in args.previous_sth],
            save_sth=Path(args.save_sth) if args.save_sth else None,
            samples=args.samples,
        )
    if not args.sth:
        print("--log needs --sth (the signed tree head the export is checked against)")
        return 2
    if args.previous_sth:
        print("--previous-sth is for --url; with --log use --earlier-sth")
        return 2
    return verify(Path(args.log), Path(args.sth), args.key, [Path(p) for p in args.earlier_sth])


def _fail(exc: tl.LogError, out: TextIO) -> int:
    print(f"FAIL [{exc.code}] {exc.detail}", file=out)
    if isinstance(exc, tl.ForkError):
        print(f"evidence: {json.dumps(exc.evidence())}", file=out)
    elif isinstance(exc, tl.RollbackError):
        evidence = {
            "log_id": exc.previous.log_id,
            "previous": exc.previous.to_bytes().hex(),
            "presented": exc.presented.to_bytes().hex(),
        }
        print(f"evidence: {json.dumps(evidence)}", file=out)
    return 1


def _sample_indices(n: int, samples: int) -> list[int]:
    if n == 0 or samples <= 0:
        return []
    picks = {0, n - 1, n // 2}
    step = max(1, n // max(1, samples))
    picks.update(range(0, n, step))
    return sorted(picks)[: max(samples, 3)]


async def audit_url(
    url: str,
    public_key: bytes,
    previous: list[bytes],
    samples: int = 16,
    out: TextIO | None = None,
) -> tuple[int, tl.SignedTreeHead | None]:
    """Audit a live node's log; returns (exit status, the verified head or None)."""
    out = sys.stdout if out is None else out
    from blindmatch.node.translog.monitor import LogClient, LogFetchError

    async with LogClient(url) as client:
        try:
            sth = await client.sth()
            try:
                head = tl.verify_tree_head(sth, public_key)
            except tl.LogError as exc:
                return _fail(exc, out), None
            n = head.tree_size
            fetched = await client.entries(0, n)
            entries = [e for e, _ in fetched]
            stored = [h for _, h in fetched]
            known = [h for h in stored if h is not None] if stored else []
            leaf_hashes = known if stored and len(known) == len(stored) else None
            earlier: list[tl.SignedTreeHead] = []
            for data in previous:
                try:
                    prev = tl.verify_tree_head(data, public_key)
                    if prev.log_id != head.log_id:
                        raise tl.TreeHeadError(
                            f"the previous head is of log {prev.log_id}, the node serves "
                            f"{head.log_id}"
                        )
                    monitor = tl.TreeHeadMonitor(head.log_id, public_key, [prev])
                    proof = []
                    if 0 < prev.tree_size < n:
                        proof = await client.consistency(prev.tree_size, n)
                    try:
                        monitor.observe(head, proof)
                    except tl.ForkError:
                        if not proof:
                            raise
                        proof = await client.consistency(prev.tree_size, n)  # ask once more
                        monitor.observe(head, proof)
                except tl.LogError as exc:
                    return _fail(exc, out), head
                earlier.append(prev)
            try:
                report = tl.audit_log(
                    entries,
                    head,
                    public_key,
                    leaf_hashes=leaf_hashes,
                    earlier_heads=earlier,
                )
                checked = 0
                for i in _sample_indices(n, samples):
                    path = await client.inclusion(i, n)
                    try:
                        tl.verify_inclusion(tl.leaf_hash(entries[i]), i, n, path, head.root_hash)
                    except tl.InclusionError as exc:
                        raise tl.InclusionError(
                            f"entry {i}: the node's inclusion proof does not verify ({exc.detail})"
                        ) from exc
                    checked += 1
            except tl.LogError as exc:
                return _fail(exc, out), head
        except LogFetchError as exc:
            print(f"cannot audit {url}: {exc}", file=out)
            return 2, None
    kinds = ", ".join(f"{k} {c}" for k, c in sorted(report.kinds.items())) or "none"
    print(
        f"OK log {report.log_id} at {url}: {report.tree_size} entries match the tree head "
        f"signed at {report.timestamp_ms} (root {report.root_hash.hex()})",
        file=out,
    )
    print(f"entries by kind: {kinds}", file=out)
    print(f"{checked} inclusion proof(s) from the node verified", file=out)
    if earlier:
        print(
            f"the node proved its tree extends {len(earlier)} previous head(s) "
            f"(sizes {', '.join(str(e.tree_size) for e in earlier)})",
            file=out,
        )
    return 0, head


def verify_url(
    url: str,
    key_hex: str,
    previous: list[Path],
    save_sth: Path | None = None,
    samples: int = 16,
    out: TextIO | None = None,
) -> int:
    out = sys.stdout if out is None else out
    import asyncio

    try:
        public_key = bytes.fromhex(key_hex)
        previous_heads = [read_tree_head(p) for p in previous]
    except (OSError, ValueError) as exc:
        print(f"cannot read the inputs: {exc}", file=out)
        return 2
    if not url.startswith(("http://", "https://")):
        print(f"--url must be an http(s):// address, got {url!r}", file=out)
        return 2
    status, head = asyncio.run(audit_url(url, public_key, previous_heads, samples, out))
    if status == 0 and head is not None and save_sth is not None:
        save_sth.write_text(head.to_bytes().hex() + "\n")
        print(f"tree head saved to {save_sth}", file=out)
    return status


def export(database: str, node_id: str, out_dir: Path, out: TextIO | None = None) -> int:
    """Write ``log.jsonl``, ``sth.hex`` (the newest stored head) and ``sth-<size>.hex`` for
    every earlier head; prints the ``verify`` command that checks them."""
    import asyncio

    from blindmatch.node.storage import StorageError, open_database
    from blindmatch.node.storage.translog import TranslogStore
    from blindmatch.node.translog.log import read_stored_log

    out = sys.stdout if out is None else out

    async def read() -> tuple[list[str], list[tl.SignedTreeHead]]:
        db = await open_database(database)
        try:
            return await read_stored_log(TranslogStore(db), node_id)
        finally:
            await db.close()

    try:
        lines, heads = asyncio.run(read())
    except (StorageError, OSError) as exc:
        print(f"cannot read the database: {exc}", file=out)
        return 2
    except tl.LogError as exc:
        print(f"FAIL [{exc.code}] {exc.detail}", file=out)
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "log.jsonl").write_text("".join(line + "\n" for line in lines))
    print(f"wrote {out_dir / 'log.jsonl'} ({len(lines)} entries)", file=out)
    if not heads:
        print("the log has no signed tree head yet: nothing to verify against", file=out)
        return 0
    (out_dir / "sth.hex").write_text(heads[-1].to_bytes().hex() + "\n")
    earlier = []
    for h in heads[:-1]:
        path = out_dir / f"sth-{h.tree_size}.hex"
        path.write_text(h.to_bytes().hex() + "\n")
        earlier.append(path)
    print(
        f"wrote {out_dir / 'sth.hex'} (size {heads[-1].tree_size}) and {len(earlier)} earlier "
        "head(s)",
        file=out,
    )
    flags = "".join(f" --earlier-sth {p}" for p in earlier[-8:])
    print(
        f"check: blindmatch audit verify --log {out_dir / 'log.jsonl'} --sth "
        f"{out_dir / 'sth.hex'} --key <the node's Ed25519 key from the roster>{flags}",
        file=out,
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    return export(args.database, args.node_id, Path(args.out))
