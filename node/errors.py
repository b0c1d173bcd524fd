"""One error model for the node: every refusal has a stable code, a sentence and one HTTP status.

In the spirit of h11's ``ProtocolError``: an error carries a hint of the status it answers with,
and every HTTP surface of the node (the federation endpoint, the local API, the survivor page)
turns a :class:`BlindmatchError` into a response through :func:`http_status`, so one code means
one status everywhere. Every error is built one way: the sentence, then the code and the status
hint by keyword when its class does not fix them.

Protocol-layer errors (``blindmatch.protocol``, ``blindmatch.crypto``) keep their own bases,
pure as those packages are; :func:`from_protocol` is the one place the node maps them.
"""

from __future__ import annotations

from typing import Any

# Every code a node answers with, and its status. A code missing here answers 400.
HTTP_STATUS: dict[str, int] = {
    "bad-request": 400,
    "bad-json": 400,
    "bad-envelope": 400,
    "bad-body": 400,
    "bad-proof": 400,
    "bad-signature": 401,
    "stale-timestamp": 401,
    "unauthorized": 401,
    "unknown-sender": 403,
    "not-allowed": 403,
    "unknown-item": 404,
    "unknown-case": 404,
    "unknown-query": 404,
    "not-found": 404,
    "replayed": 409,
    "conflict": 409,
    "too-large": 413,
    "unsupported-media-type": 415,
    "low-quality": 422,
    "budget-exhausted": 429,
    "rate-limited": 429,
    "internal": 500,
}


class BlindmatchError(Exception):
    """The base of every error the node raises for a caller to read.

    One constructor for every subclass: ``Error(sentence, *, code=..., status_hint=...)``. A
    class names its usual code (``BankNotFoundError("no bank named 'x'")``); a class whose code
    depends on the refusal takes it where it is raised (``NodeError("seen before",
    code="replayed")``). The status comes from ``status_hint`` if given, else the class's, else
    the code's row in :data:`HTTP_STATUS`.
    """

    code = "internal"
    status_hint: int | None = None  # a class's status, when its codes do not say it
    _code_in_str = False  # str() reads "code: sentence" (how peers' and jobs' errors are logged)

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        status_hint: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        if status_hint is not None:
            self.status_hint = status_hint
        self.detail = message
        self.retry_after_ms = retry_after_ms
        super().__init__(f"{self.code}: {message}" if self._code_in_str else message)

    @property
    def message(self) -> str:
        return self.detail

    @property
    def http_status(self) -> int:
        if self.status_hint is not None:
            return self.status_hint
        return HTTP_STATUS.get(self.code, 400)

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.detail}


def http_status(exc: BlindmatchError) -> int:
    return exc.http_status


class NodeError(BlindmatchError):
    """A refusal the node reports to its caller (peer or platform)."""

    _code_in_str = True


def from_protocol(exc: Exception, default: str = "bad-request") -> NodeError:
    """A protocol-layer error (an envelope, exchange, feedback, log or schema error: each has a
    ``code``, most a ``detail``) as the node reports it."""
    code = getattr(exc, "code", default)
    return NodeError(getattr(exc, "detail", None) or str(exc), code=code)
