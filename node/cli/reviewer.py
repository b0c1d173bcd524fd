"""``blindmatch reviewer ...``: accounts for the reviewer console.

    blindmatch reviewer add ID --role reviewer|admin|auditor [--password-file F] --config HOME
    blindmatch reviewer list --config HOME
    blindmatch reviewer disable ID --config HOME      (also ends the account's sessions)
    blindmatch reviewer enable ID --config HOME
    blindmatch reviewer password ID [--password-file F] --config HOME

The password comes from a prompt (typed twice) or from the first line of ``--password-file``;
it is never taken on the command line, where other users could read it. The database is the
node's (``--config`` or ``BLINDMATCH_CONFIG``), or ``--db URL`` / ``BLINDMATCH_DB``; it is
migrated on open. Without any of them the command refuses rather than guess.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from blindmatch.node import config as config_mod

ROLES = ("reviewer", "admin", "auditor")


def register(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    config_mod.add_database_arguments(common)
    p = sub.add_parser("reviewer", help="manage reviewer console accounts")
    rsub = p.add_subparsers(dest="reviewer_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: _usage(p))

    a = rsub.add_parser("add", parents=[common], help="create an account")
    a.add_argument("reviewer_id", metavar="ID")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--password-file", metavar="FILE", help="read the password from FILE")
    a.set_defaults(func=_sync(_add))

    ls = rsub.add_parser("list", parents=[common], help="list accounts")
    ls.set_defaults(func=_sync(_list))

    d = rsub.add_parser("disable", parents=[common], help="disable an account, ending its sessions")
    d.add_argument("reviewer_id", metavar="ID")
    d.set_defaults(func=_sync(_disable))

    en = rsub.add_parser("enable", parents=[common], help="re-enable an account")
    en.add_argument("reviewer_id", metavar="ID")
    en.set_defaults(func=_sync(_enable))

    pw = rsub.add_parser("password", parents=[common], help="set a new password")
    pw.add_argument("reviewer_id", metavar="ID")
    pw.add_argument("--password-file", metavar="FILE", help="read the password from FILE")
    pw.set_defaults(func=_sync(_password))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _sync(command: Callable[[argparse.Namespace, Any], Awaitable[int]]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        from blindmatch.node.console.accounts import AccountError
        from blindmatch.node.storage import StorageError

        try:
            password = None
            if getattr(args, "reviewer_command", None) in ("add", "password"):
                password = _read_password(args.password_file)
            return asyncio.run(_with_accounts(command, args, password))
        except (AccountError, StorageError, OSError, config_mod.ConfigError) as exc:
            print(f"blindmatch reviewer: error: {exc}", file=sys.stderr)
            return 1

    return run


def _read_password(path: str | None) -> str:
    from blindmatch.node.console.accounts import AccountError, check_password

    if path:
        with open(path, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise AccountError("the two passwords differ", code="mismatch")
    return check_password(password)


async def _with_accounts(
    command: Callable[[argparse.Namespace, Any], Awaitable[int]],
    args: argparse.Namespace,
    password: str | None,
) -> int:
    from blindmatch.node.clock import SystemClock
    from blindmatch.node.console.accounts import Accounts
    from blindmatch.node.storage import open_database
    from blindmatch.node.storage.reviewers import ReviewerStore

    clock = SystemClock()
    url = config_mod.database_url_from_args(args)
    db = await open_database(url, migrate_now=clock.now())
    try:
        args.password = password
        return await command(args, Accounts(ReviewerStore(db), clock.now))
    finally:
        await db.close()


async def _add(args: argparse.Namespace, accounts: Any) -> int:
    await accounts.create(args.reviewer_id, args.role, args.password)
    print(f"added {args.reviewer_id} ({args.role})")
    return 0


async def _list(args: argparse.Namespace, accounts: Any) -> int:
    import datetime

    rows = await accounts.list()
    if not rows:
        print("no reviewers")
        return 0
    width = max(len(r.reviewer_id) for r in rows)
    for r in rows:
        created = datetime.datetime.fromtimestamp(r.created_at, datetime.UTC)
        state = "disabled" if r.disabled else "active"
        print(f"{r.reviewer_id:<{width}}  {r.role:<8}  {state:<8}  {created:%Y-%m-%dT%H:%M:%SZ}")
    return 0


async def _disable(args: argparse.Namespace, accounts: Any) -> int:
    await accounts.set_disabled(args.reviewer_id, True)
    print(f"disabled {args.reviewer_id}; its sessions ended")
    return 0


async def _enable(args: argparse.Namespace, accounts: Any) -> int:
    await accounts.set_disabled(args.reviewer_id, False)
    print(f"enabled {args.reviewer_id}")
    return 0


async def _password(args: argparse.Namespace, accounts: Any) -> int:
    await accounts.set_password(args.reviewer_id, args.password)
    print(f"new password set for {args.reviewer_id}; its sessions ended")
    return 0
