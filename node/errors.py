"""The refusals the node reports to its caller (a peer or the platform)."""

from __future__ import annotations


class NodeError(Exception):
    """A refusal the node reports to its caller (peer or platform) with a stable code."""

    def __init__(self, code: str, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message
        self.retry_after_ms = retry_after_ms
