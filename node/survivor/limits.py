"""The survivor page's rate limits: token buckets per client address, per source network and
per receipt, in memory."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from blindmatch.node.survivor.requests import SurvivorError


@dataclass
class RateLimiter:
    """A token bucket per client address, in memory: ``burst`` requests, then one every
    ``per_seconds``. At most ``max_clients`` addresses are remembered (least recent dropped)."""

    burst: float = 10.0
    per_seconds: float = 6.0
    max_clients: int = 10_000
    clock: Any = time.monotonic
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def take(self, client: str) -> float:
        """0 when allowed; otherwise the seconds to wait."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) / self.per_seconds)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) * self.per_seconds
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def source_network(client: str) -> str:
    """The network a client address belongs to, for the per-source limit: IPv4 /24, IPv6 /48
    (what one subscriber or small host usually has); anything else is its own source."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@dataclass
class SurvivorLimits:
    """The page's rate limits: per client address, per source network, per receipt."""

    address: RateLimiter = field(default_factory=RateLimiter)
    # A source network may hold many honest people (a university, a carrier's NAT): a larger
    # bucket than one address's, still far below what a flood needs.
    network: RateLimiter = field(default_factory=lambda: RateLimiter(burst=60, per_seconds=1.0))
    # Withdrawal attempts naming one receipt reference, from anywhere: a person withdraws a
    # receipt once or twice; nobody needs dozens of tries at one.
    receipt: RateLimiter = field(default_factory=lambda: RateLimiter(burst=5, per_seconds=60.0))

    def by_client(self, client: str) -> SurvivorError | None:
        """None if the client may go on; else the refusal (429, with the wait)."""
        wait = self.address.take(client)
        if wait > 0:
            return _limited("too many requests from your address; please wait a minute", wait)
        wait = self.network.take(source_network(client))
        if wait > 0:
            return _limited("too many requests from your network; please wait a minute", wait)
        return None

    def by_receipt(self, refs: list[bytes]) -> SurvivorError | None:
        wait = max((self.receipt.take(ref.hex()) for ref in refs), default=0.0)
        if wait > 0:
            return _limited(
                "too many attempts to withdraw this receipt; please wait a few minutes", wait
            )
        return None


def _limited(message: str, wait_s: float) -> SurvivorError:
    return SurvivorError(
        message, code="rate-limited", retry_after_ms=math.ceil(wait_s * 1000), status_hint=429
    )
