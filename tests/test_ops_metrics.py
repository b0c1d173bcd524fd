"""The metrics an operator alerts on, scraped over HTTP from a node whose peer is down: a stuck
job's age, the retrying task, per-peer latency and failures, feed lag, roster expiry."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.metrics import METRICS
from blindmatch.protocol.matching import QueryHash


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
async def fed(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = FixedClock(int(time.time()))
    federation = await LocalFederation(tmp_path, clock=clock, background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    yield federation, clock
    await federation.stop()


async def test_a_stuck_job_shows_its_age(fed) -> None:  # type: ignore[no-untyped-def]
    federation, clock = fed
    platform = federation["platform"]
    await platform.node.sync.sync_all()  # a healthy round trip first
    samples = await scrape(platform.api_url)
    assert value(samples, "blindmatch_peer_request_seconds_count", peer="hub",
                 type="feed.pull") >= 2  # fmt: skip
    assert value(samples, "blindmatch_feed_lag_entries", peer="hub", feed="index") == 0
    assert value(samples, "blindmatch_queue_depth", queue="match-jobs", state="pending") == 0
    assert value(samples, "blindmatch_queue_oldest_age_seconds", queue="match-jobs",
                 state="pending") == 0  # fmt: skip

    await federation.stop_node("hub")
    await platform.node.querier.submit([QueryHash(bytes(range(32)), None, "original")])
    assert await platform.node.delivery.process_due() == 1  # the hub is down: deferred
    clock.advance(600)
    samples = await scrape(platform.api_url)
    assert value(samples, "blindmatch_queue_depth", queue="match-jobs", state="pending") == 1
    assert value(samples, "blindmatch_queue_oldest_age_seconds", queue="match-jobs",
                 state="pending") == 600  # fmt: skip
    assert value(samples, "blindmatch_queue_depth", queue="outbox:match", state="pending") == 1
    assert value(samples, "blindmatch_queue_oldest_age_seconds", queue="outbox:match",
                 state="pending") == 600  # fmt: skip
    assert value(samples, "blindmatch_queue_retrying", queue="outbox:match") == 1
    assert value(samples, "blindmatch_queue_depth", queue="outbox:match", state="dead") == 0
    assert value(samples, "blindmatch_match_task_retries_total", peer="hub") == 1
    assert value(samples, "blindmatch_peer_request_failures_total", peer="hub",
                 code="unreachable") == 1  # fmt: skip
    assert value(samples, "blindmatch_feed_last_pull_age_seconds", peer="hub", feed="index") == 600
    expires = federation.roster.expires_ms / 1000 - clock.now()
    assert value(samples, "blindmatch_roster_expires_in_seconds") == expires
    assert value(samples, "blindmatch_budget_remaining", peer="hub", what="evaluations",
                 window="hour") == 200_000  # fmt: skip
    assert ("blindmatch_voprf_key_age_seconds", frozenset()) in samples
    # the platform's key has answered nothing yet: the whole lifetime cap is left
    cap = platform.node.cfg.voprf_key_cap
    assert value(samples, "blindmatch_voprf_key_evaluations_left") == cap


async def test_every_documented_metric_is_exported(fed) -> None:  # type: ignore[no-untyped-def]
    federation, _ = fed
    platform = federation["platform"]
    await platform.node.sync.sync_all()
    platform.node.metrics.inc("match_task_retries_total", 0, labels={"peer": "hub"})
    platform.node.metrics.inc("budget_refusals_total", 0, labels={"peer": "hub", "what": "x"})
    platform.node.metrics.inc("peer_request_failures_total", 0, labels={"peer": "hub", "code": "x"})
    platform.node.metrics.inc("peer_caps_exceeded_total", 0, labels={"peer": "hub", "cap": "x"})
    platform.node.metrics.inc("peer_incidents_dropped_total", 0, labels={"peer": "hub"})
    platform.node.metrics.inc("query_refs_total", 0, labels={"outcome": "kept"})
    platform.node.metrics.inc(
        "threshold_query_fallbacks_total", 0, labels={"peer": "hub", "code": "x"}
    )
    names = {name for name, _ in await scrape(platform.api_url)}
    for name, (kind, _, _) in METRICS.items():
        exported = {
            "counter": f"blindmatch_{name}",
            "histogram": f"blindmatch_{name}_count",
            "gauge": f"blindmatch_{name}",
        }[kind]
        assert exported in names, name
