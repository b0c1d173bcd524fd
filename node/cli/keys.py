"""Key commands: ``keys rotate`` starts a VOPRF key rotation now (spec 8.4).

A rotation normally starts by itself at 7/8 of the key's lifetime cap (8.2). An operator starts
one early on a suspected compromise of the key, or on a schedule. The command makes the
successor key in the node's home (the same files and steps as the automatic start, so a running
node takes it in on its next publication round: it publishes its whole index under the
successor), and prints the successor's public key, which governance names as the node's
``voprf_key`` in the next roster; the promotion, the overlap window and the erasure of the old
key then follow as for an automatic rotation. It never prints a secret.
"""

from __future__ import annotations

import argparse
import json
import sys

from blindmatch.node import config as config_mod
from blindmatch.node import keys as keyfiles
from blindmatch.protocol.roster import voprf_key_id


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    k = sub.add_parser("keys", help="the node's keys: start a VOPRF key rotation")
    ksub = k.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    r = ksub.add_parser(
        "rotate",
        help="start a VOPRF key rotation now (suspected compromise, or on a schedule)",
        description="Make the successor VOPRF key now instead of at 7/8 of the key's lifetime"
        " cap (spec 8.4). The running node publishes its index under it on its next round;"
        " give governance the printed public key to name as this node's voprf_key in the next"
        " roster. Refused while a rotation is under way (a successor exists).",
    )
    config_mod.add_config_argument(r)
    r.set_defaults(func=cmd_rotate)
    k.set_defaults(func=lambda a: _help(k))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_rotate(args: argparse.Namespace) -> int:
    cfg = config_mod.load_from_args(args)
    keys = keyfiles.load(cfg.keys_dir)
    if keys.successor is not None:
        print(
            "error: a rotation is already under way: successor "
            f"{voprf_key_id(keys.successor.pk).hex()} (public key {keys.successor.pk.hex()});"
            " governance names it in the next roster",
            file=sys.stderr,
        )
        return 1
    rotated = keyfiles.make_successor(cfg.keys_dir, keys)
    successor = rotated.successor
    assert successor is not None
    print(
        json.dumps(
            {
                "rotation": "started",
                "current_key_id": keys.voprf_key_id.hex(),
                "successor_key_id": voprf_key_id(successor.pk).hex(),
                "voprf_key": successor.pk.hex(),
                "next": "the node publishes its index under the successor on its next round;"
                " governance names voprf_key for this node in the next roster (spec 8.4)",
            },
            indent=2,
        )
    )
    return 0
