"""``blindmatch hash FILE...``: print the hashes of media files as JSON lines.

One line per signal: ``{"file", "signal_type", "threatexchange_signal_type", "hex", ...}``. A
file that cannot be hashed gives one line ``{"file", "error", "message"}`` and the command exits
with status 1 after the remaining files. Images are ``pdq`` (with quality) and ``sha256``; a
signal type's adapter may hash media of its own (``hashes_file``, ``hash_lines``, ``hash_doc``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from blindmatch.node import signals
from blindmatch.node.media.hashing import (
    MediaError,
    hash_image_bytes,
    read_media,
    sha256_file,
)
from blindmatch.protocol.signals import SignalType


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kinds = ["images are pdq (with quality) and sha256"]
    kinds += [a.hash_doc for a in signals.ADAPTERS if a.hash_doc]
    p = sub.add_parser(
        "hash",
        help="print the hashes of media files as JSON lines",
        description="Print the hashes of media files as JSON lines: " + "; ".join(kinds) + ".",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--variants",
        action="store_true",
        help="also print the query variants (rotations/mirrors, border removed)",
    )
    p.add_argument("--float", action="store_true", help="include PDQ's 256 float values")
    for adapter in signals.ADAPTERS:  # a signal type that hashes its own media (a video)
        adapter.add_hash_arguments(p)
    p.set_defaults(func=run)


def _signal(kind: SignalType) -> dict[str, Any]:
    return {
        "signal_type": kind.value,
        "threatexchange_signal_type": kind.threatexchange_name,
    }


def lines_for_file(path: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    name = str(path)
    adapter = next((a for a in signals.ADAPTERS if a.hashes_file(path, args)), None)
    if adapter is not None:
        out: list[dict[str, Any]] = [
            {"file": name, **line} for line in adapter.hash_lines(path, args)
        ]
        out.append({"file": name, **_signal(SignalType.SHA256), "hex": sha256_file(path).hex()})
        return out
    data = read_media(path)
    hashes = hash_image_bytes(data, query_variants=args.variants)
    pdq_line: dict[str, Any] = {
        "file": name,
        **_signal(SignalType.PDQ),
        "hex": hashes.pdq.hex,
        "quality": hashes.pdq.quality,
        "good_quality": hashes.pdq.good_quality,
    }
    if args.variants:
        pdq_line["border_removed"] = hashes.border_removed
    if args.float and hashes.pdq.float_vector is not None:
        pdq_line["float"] = [float(x) for x in hashes.pdq.float_vector]
    out = [pdq_line]
    for variant in hashes.variants[1:]:
        line: dict[str, Any] = {
            "file": name,
            **_signal(SignalType.PDQ),
            "variant": variant.name,
            "hex": variant.pdq.hex,
            "quality": variant.pdq.quality,
        }
        if args.float and variant.pdq.float_vector is not None:
            line["float"] = [float(x) for x in variant.pdq.float_vector]
        out.append(line)
    out.append({"file": name, **_signal(SignalType.SHA256), "hex": hashes.sha256.hex()})
    return out


def run(args: argparse.Namespace) -> int:
    status = 0
    for file in args.files:
        path = Path(file)
        try:
            lines = lines_for_file(path, args)
        except MediaError as exc:
            lines = [{"file": str(path), "error": exc.code, "message": str(exc)}]
            status = 1
        for line in lines:
            sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    return status
