"""Jobs that end: every caller learns its job's id under load; a job that cannot be run is
dead-lettered with a reason instead of retrying forever; an operator can cancel or retry."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec

CONCURRENT = int(os.environ.get("BLINDMATCH_CONCURRENT_SUBMITS", "200"))


@pytest.fixture
async def fed(tmp_path: Path, db_url: str):
    """A hub and a platform whose store is each backend in turn."""
    federation = await LocalFederation(tmp_path, background=True, sync_interval_s=0.2).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False, database=db_url)]
    )
    hub = federation["hub"]
    await hub.banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
    for _ in range(20):
        await hub.banks.add_item("ncii", "pdq", os.urandom(32))
    yield federation
    await federation.stop()


async def test_every_caller_gets_its_job_id_under_concurrent_submissions(fed) -> None:
    platform = fed["platform"]
    headers = {"Authorization": f"Bearer {platform.api_token}"}
    connector = aiohttp.TCPConnector(limit=CONCURRENT)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as s:

        async def submit() -> tuple[int, dict]:
            body = {"hashes": [{"hash": os.urandom(32).hex()}]}
            async with s.post(platform.api_url + "/api/v1/match/hashes", json=body) as resp:
                return resp.status, await resp.json()

        answers = await asyncio.gather(*(submit() for _ in range(CONCURRENT)))
    statuses = sorted({status for status, _ in answers})
    assert statuses in ([200], [202], [200, 202]), [a for a in answers if a[0] >= 300][:3]
    jobs = {body["job"] for _, body in answers}
    assert len(jobs) == CONCURRENT
    created = await platform.node.db.fetch_value("SELECT COUNT(*) FROM match_jobs")
    assert created == CONCURRENT


@pytest.fixture
async def quiet(tmp_path: Path):
    """A hub holding one hash and a platform, no background loops, a clock the test moves."""
    from blindmatch.node.clock import FixedClock

    federation = await LocalFederation(
        tmp_path, clock=FixedClock(1_800_000_000), background=False
    ).start([NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)])
    hub = federation["hub"]
    await hub.banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
    federation.held = os.urandom(32)  # type: ignore[attr-defined]
    await hub.banks.add_item("ncii", "pdq", federation.held)  # type: ignore[attr-defined]
    await hub.node.publisher.reconcile()
    await federation["platform"].node.sync.sync_all()
    yield federation
    await federation.stop()


async def _api(local, method: str, path: str, body=None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {local.api_token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.request(method, local.api_url + path, json=body) as resp,
    ):
        return resp.status, await resp.json()


async def _drain(node) -> None:  # type: ignore[no-untyped-def]
    while await node.delivery.process_due():
        pass


async def test_a_job_whose_queries_cannot_run_is_dead_lettered_at_once(quiet) -> None:
    """A job stored before submit checked float vectors (inf): refused by every attempt, so
    its part is dead-lettered on the first, with the reason, in the API, status and metrics."""
    import msgpack
    import numpy as np

    from blindmatch.protocol.matching import QueryHash

    local = quiet["platform"]
    node = local.node
    job = await node.querier.submit([QueryHash(quiet.held, [0.0] * 256)])
    poisoned = msgpack.packb(
        [[quiet.held, np.full(256, np.inf, dtype="<f4").tobytes(), "original"]], use_bin_type=True
    )
    await node.db.execute("UPDATE match_jobs SET queries = ? WHERE job_ref = ?", poisoned, job)
    await _drain(node)
    status, body = await _api(local, "GET", f"/api/v1/match/{job.hex()}")
    assert status == 200
    assert (body["state"], body["complete"]) == ("dead-lettered", False)
    assert "hub: bad-body" in body["reason"] and "not finite" in body["reason"]
    assert body["peers"][0]["state"] == "failed"
    assert node.metrics.value("match_tasks_dead_lettered_total", {"peer": "hub"}) == 1
    assert node.metrics.value("match_jobs_ended_total", {"state": "dead-lettered"}) == 1
    _, st = await _api(local, "GET", "/api/v1/status")
    assert st["jobs"]["dead-lettered"] == 1
    quiet.clock.advance(3600)
    assert await node.delivery.process_due() == 0  # nothing left to retry


async def test_retries_are_bounded_then_an_operator_retries_the_job(quiet) -> None:
    from blindmatch.node.storage.outbox import RetryPolicy
    from blindmatch.protocol.matching import QueryHash

    local = quiet["platform"]
    node = local.node
    node.outbox.policy = RetryPolicy(base_delay=1, max_delay=1, max_attempts=3)
    stopped = await quiet.stop_node("hub")
    job = await node.querier.submit([QueryHash(quiet.held)])
    for _ in range(5):
        await _drain(node)
        quiet.clock.advance(5)
    status = await node.querier.job_status(job)
    assert status.ended and status.state == "dead-lettered"
    assert status.reason == "hub: gave up after 3 attempts; last error unreachable"
    await quiet.restart_node("hub", stopped)
    code, body = await _api(local, "POST", f"/api/v1/match/{job.hex()}/retry")
    assert (code, body["state"]) == (200, "running")
    await _drain(node)
    status = await node.querier.job_status(job)
    assert status.complete and status.state == "complete" and len(status.results) == 1
    code, body = await _api(local, "POST", f"/api/v1/match/{job.hex()}/retry")
    assert (code, body["error"]) == (409, "conflict")


async def test_an_operator_cancels_a_running_job(quiet) -> None:
    from blindmatch.protocol.matching import QueryHash

    local = quiet["platform"]
    node = local.node
    stopped = await quiet.stop_node("hub")
    job = await node.querier.submit([QueryHash(quiet.held)])
    await _drain(node)  # one failed attempt; the next is due later
    code, body = await _api(
        local, "POST", f"/api/v1/match/{job.hex()}/cancel", {"reason": "duplicate upload"}
    )
    assert (code, body["state"]) == (200, "cancelled")
    assert body["reason"] == "cancelled by the operator: duplicate upload"
    await quiet.restart_node("hub", stopped)
    quiet.clock.advance(3600)
    assert await node.delivery.process_due() == 0  # its part is not attempted again
    code, body = await _api(local, "POST", f"/api/v1/match/{job.hex()}/cancel")
    assert (code, body["error"]) == (409, "conflict")
    code, body = await _api(local, "POST", f"/api/v1/match/{'0' * 32}/cancel")
    assert (code, body["error"]) == (404, "unknown-item")
    # ...and retried, it runs and completes.
    code, _ = await _api(local, "POST", f"/api/v1/match/{job.hex()}/retry")
    await _drain(node)
    assert (await node.querier.job_status(job)).complete
