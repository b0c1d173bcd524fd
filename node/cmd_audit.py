"""``blindmatch audit verify``: check an exported verifiable log against a signed tree head.

The export is JSON lines, one entry per line in index order: a JSON string (the entry's bytes
in hex) or an object ``{"entry": hex, "leaf_hash": hex}``. Tree heads are files holding the hex
(or the raw bytes) of a signed tree head. specs/transparency.md section 8 is the algorithm.

Exit status: 0 the log matches the head; 1 it does not (the verdict says why and where);
2 the inputs could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from blindmatch.protocol import transparency as tl


class InputError(Exception):
    pass


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="verifiable log tools")
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    v = asub.add_parser("verify", help="check an exported log against a signed tree head")
    v.add_argument("--log", required=True, metavar="FILE", help="exported log (JSON lines)")
    v.add_argument("--sth", required=True, metavar="FILE", help="signed tree head (hex)")
    v.add_argument("--key", required=True, metavar="HEX", help="the log's Ed25519 public key")
    v.add_argument(
        "--earlier-sth",
        action="append",
        default=[],
        metavar="FILE",
        help="an earlier signed tree head of the same log (repeatable): checked for forks, "
        "and used to locate an altered entry",
    )
    v.set_defaults(func=run_verify)

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
    return verify(Path(args.log), Path(args.sth), args.key, [Path(p) for p in args.earlier_sth])
