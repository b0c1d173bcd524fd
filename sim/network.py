"""The simulated network: latency, loss with retries, outages and partitions, vectorised.

A message from node ``a`` to node ``b`` sent at ``t`` is delivered after a lognormal one-way
latency plus its size over the link's bandwidth. A lost message is resent after ``retry_s``
(the outbox's retry), so each loss adds ``retry_s``. While either end is down, or the two are on
different sides of a partition, the sender's retries fail until the next retry after the outage
ends (the message waits in the outbox; nothing is lost).
"""

from __future__ import annotations

import numpy as np

from .scenario import Scenario


class Network:
    def __init__(self, s: Scenario) -> None:
        self.cfg = s.network
        names = s.node_names()
        index = {n: i for i, n in enumerate(names)}
        n = len(names)
        # outage windows per node: (node, start, end)
        self.down = [
            (index[o.node], o.start_h * 3600, (o.start_h + o.hours) * 3600)
            for o in self.cfg.outages
        ]
        # partitions: (side of each node or -1 for "in no group", start, end)
        self.partitions = []
        for p in self.cfg.partitions:
            side = np.full(n, -1)
            for g, members in enumerate(p.groups):
                side[[index[m] for m in members]] = g
            self.partitions.append((side, p.start_h * 3600, (p.start_h + p.hours) * 3600))

    def blocked_until(self, a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
        """For sends at ``t`` from ``a`` to ``b``: the time the outbox's first successful
        (re)try leaves (``t`` itself if the path is up)."""
        t = np.asarray(t, dtype=np.float64).copy()
        retry = self.cfg.retry_s
        for _ in range(3):  # overlapping windows: a few passes settle them
            changed = False
            for node, start, end in self.down:
                hit = ((a == node) | (b == node)) & (t >= start) & (t < end)
                if hit.any():
                    t[hit] += np.ceil((end - t[hit]) / retry) * retry
                    changed = True
            for side, start, end in self.partitions:
                sa, sb = side[a], side[b]
                hit = (sa >= 0) & (sb >= 0) & (sa != sb) & (t >= start) & (t < end)
                if hit.any():
                    t[hit] += np.ceil((end - t[hit]) / retry) * retry
                    changed = True
            if not changed:
                break
        return t

    def deliver(
        self,
        rng: np.random.Generator,
        a: np.ndarray,
        b: np.ndarray,
        t: np.ndarray,
        size: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Arrival times of messages, and the number of transmissions each took."""
        n = len(t)
        t = self.blocked_until(a, b, t)
        losses = rng.geometric(1 - self.cfg.loss, n) - 1 if self.cfg.loss > 0 else np.zeros(n)
        t = t + losses * self.cfg.retry_s
        if self.cfg.loss > 0:
            t = self.blocked_until(a, b, t)
        latency = (
            self.cfg.latency_ms / 1000 * np.exp(self.cfg.latency_sigma * rng.standard_normal(n))
        )
        transfer = np.asarray(size) * 8 / (self.cfg.bandwidth_mbps * 1e6)
        return t + latency + transfer, losses + 1
