"""Prometheus metrics, one registry per node (several nodes can share a process in tests and
the demo). Label values are node ids, step names and states, never content.

Counters and histograms are updated where things happen; the gauges an operator alerts on
(queue depth and age, dead letters, feed lag, roster expiry, key age, budget left) are read
from the store when ``/metrics`` is scraped (:mod:`blindmatch.node.ops_metrics`), so they are
true even after a restart. ``METRICS`` lists every exported family with its help text; the
example dashboard and alert rules in ``examples/monitoring/`` are checked against it.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Request round trips to peers: from 5 ms (a loopback feed page) to a minute (the client's
# timeout).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# name (without the blindmatch_ prefix) -> (type, labels, help)
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "match_jobs_total": ("counter", (), "match jobs submitted"),
    "matches_confirmed_total": ("counter", (), "matches confirmed by a peer's threshold test"),
    "threshold_answers_total": ("counter", (), "threshold tests answered as holder"),
    "index_items_published_total": ("counter", (), "index entries published"),
    "index_items_removed_total": ("counter", (), "index entries removed"),
    "index_decoys_published_total": (
        "counter",
        (),
        "decoys published to pad index batches (spec 8.7)",
    ),
    "index_over_declared_total": (
        "counter",
        (),
        "index batches that left the index above the roster's index_entries",
    ),
    "match_task_retries_total": ("counter", ("peer",), "outbox deliveries deferred for a retry"),
    "outbox_leases_released_total": (
        "counter",
        (),
        "outbox messages handed out again because the process of this node holding them died",
    ),
    "budget_refusals_total": (
        "counter",
        ("peer", "what"),
        "peer requests refused because the peer's budget was used up",
    ),
    "peer_request_seconds": (
        "histogram",
        ("peer", "type"),
        "round trip of a request to a peer that answered (including signed refusals)",
    ),
    "peer_request_failures_total": (
        "counter",
        ("peer", "code"),
        "requests to a peer that failed (unreachable, refused, bad reply)",
    ),
    "query_refs_total": (
        "counter",
        ("outcome",),
        "later-round threshold queries naming an encrypted query by digest: kept (answered"
        " without sending or verifying it again) or unknown (refused unknown-query)",
    ),
    "threshold_query_fallbacks_total": (
        "counter",
        ("peer", "code"),
        "threshold queries sent again in the form the holder accepts: whole (unknown-query) or"
        " as an older version asks (bad-body to a field of the rounds)",
    ),
    "peer_caps_exceeded_total": (
        "counter",
        ("peer", "cap"),
        "holders cut off for passing a cap set from their declared index size (entries,"
        " feed-bytes)",
    ),
    "peer_incidents_dropped_total": (
        "counter",
        ("peer",),
        "incidents about a peer counted but not stored: the peer used up its incident rows",
    ),
    "queue_depth": (
        "gauge",
        ("queue", "state"),
        "items waiting: outbox messages by kind (match, feedback, webhook), match jobs, review"
        " cases",
    ),
    "queue_oldest_age_seconds": (
        "gauge",
        ("queue", "state"),
        "age of the oldest item in the queue and state (0 when empty)",
    ),
    "queue_retrying": (
        "gauge",
        ("queue",),
        "pending outbox messages that have failed at least once",
    ),
    "feed_lag_entries": (
        "gauge",
        ("peer", "feed"),
        "entries of a peer's feed not yet replicated here, as of the last pull",
    ),
    "feed_last_pull_age_seconds": (
        "gauge",
        ("peer", "feed"),
        "seconds since the last complete pull of a peer's feed (since start if none yet)",
    ),
    "roster_expires_in_seconds": ("gauge", (), "seconds until the roster in use expires"),
    "roster_serial": ("gauge", (), "serial of the roster in use"),
    "voprf_key_age_seconds": ("gauge", (), "age of this node's VOPRF key (its key file)"),
    "voprf_key_evaluations_left": (
        "gauge",
        (),
        "evaluations this node's VOPRF key may still answer before its lifetime cap (spec 8.2)",
    ),
    "budget_remaining": (
        "gauge",
        ("peer", "what", "window"),
        "units of a peer's budget left in the current hour or day window",
    ),
    "index_entries_published": (
        "gauge",
        ("kind",),
        "index entries published under the current key: all, or real (no decoy); their ratio"
        " scales every peer's threshold budget (spec 8.3)",
    ),
}
PREREGISTERED = (
    "match_jobs_total",
    "matches_confirmed_total",
    "threshold_answers_total",
    "index_items_published_total",
    "index_items_removed_total",
    "index_decoys_published_total",
    "index_over_declared_total",
    "outbox_leases_released_total",
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._counters: dict[tuple[str, tuple[str, ...]], Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._histograms: dict[str, Histogram] = {}
        # Registered up front so a scrape shows them (at zero) before anything has happened.
        for name in PREREGISTERED:
            self.inc(name, 0)

    def inc(self, name: str, amount: float = 1, labels: dict[str, str] | None = None) -> None:
        labels = labels or {}
        key = (name, tuple(sorted(labels)))
        counter = self._counters.get(key)
        if counter is None:
            counter = Counter(
                f"blindmatch_{name.removesuffix('_total')}",
                METRICS.get(name, ("", (), name.replace("_", " ")))[2],
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

    def observe(self, name: str, seconds: float, labels: dict[str, str]) -> None:
        histogram = self._histograms.get(name)
        if histogram is None:
            kind, labelnames, help_text = METRICS[name]
            assert kind == "histogram"
            histogram = Histogram(
                f"blindmatch_{name}",
                help_text,
                labelnames=labelnames,
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            )
            self._histograms[name] = histogram
        histogram.labels(**labels).observe(seconds)

    def gauge(self, name: str) -> Gauge:
        gauge = self._gauges.get(name)
        if gauge is None:
            kind, labelnames, help_text = METRICS[name]
            assert kind == "gauge"
            gauge = Gauge(
                f"blindmatch_{name}", help_text, labelnames=labelnames, registry=self.registry
            )
            self._gauges[name] = gauge
        return gauge

    def set_gauges(self, name: str, values: dict[tuple[str, ...], float]) -> None:
        """Replace every series of a labelled gauge (series not given disappear)."""
        gauge = self.gauge(name)
        gauge.clear()
        for labels, value in values.items():
            gauge.labels(*labels).set(value if math.isfinite(value) else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
