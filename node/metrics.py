"""Prometheus metrics, one registry per node (several nodes can share a process in tests and
the demo). Label values are node ids and step names, never content."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._counters: dict[tuple[str, tuple[str, ...]], Counter] = {}
        # Registered up front so a scrape shows them (at zero) before anything has happened.
        for name in (
            "match_jobs_total",
            "matches_confirmed_total",
            "threshold_answers_total",
            "index_items_published_total",
            "index_items_removed_total",
        ):
            self.inc(name, 0)

    def inc(self, name: str, amount: float = 1, labels: dict[str, str] | None = None) -> None:
        labels = labels or {}
        key = (name, tuple(sorted(labels)))
        counter = self._counters.get(key)
        if counter is None:
            counter = Counter(
                f"blindmatch_{name.removesuffix('_total')}",
                name.replace("_", " "),
                labelnames=key[1],
                registry=self.registry,
            )
            self._counters[key] = counter
        (counter.labels(**labels) if labels else counter).inc(amount)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        sample = self.registry.get_sample_value(
            f"blindmatch_{name.removesuffix('_total')}_total", labels or {}
        )
        return sample or 0.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
