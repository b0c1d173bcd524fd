"""The reviewer console: a small server-rendered web UI the node serves at ``/console/``.

Reviewers sign in with their own accounts (roles: ``reviewer`` decides cases and appeals,
``admin`` also manages accounts, ``auditor`` reads the log and reports only), work through the
queue in the decision service's order, and open a case to see the match's provenance, distance
band, aggregate opinion and history next to the uploaded picture, which is sent **blurred and
in grayscale** until the reviewer explicitly reveals it (a recorded event). See
:mod:`blindmatch.node.console.app` for the security model and
:mod:`blindmatch.node.console.accounts` for accounts and sessions.
"""

from blindmatch.node.console.accounts import AccountError, Accounts, LoginLimiter
from blindmatch.node.console.site import build_console, console_root_app

__all__ = ["AccountError", "Accounts", "LoginLimiter", "build_console", "console_root_app"]
