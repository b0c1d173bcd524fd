"""The survivor page under hostile use: a submission takes the same steps whether the hub holds
its hash or not (checked by the steps, not by timing), and the rate limits key on the client's
address, its source network and, for withdrawals, the receipt."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from blindmatch.node.survivor import RateLimiter, SurvivorLimits, SurvivorService
from blindmatch.node.survivor.routes import (
    SUBMIT_QUANTUM_S,
    Submitted,
    build_survivor_app,
    source_network,
)

H = [bytes([i]) * 32 for i in range(1, 6)]


def _traced(hub: Any, clock: Any = lambda: 100.0) -> tuple[SurvivorService, list[Any]]:
    """A real service on the hub, its steps recorded as they happen."""
    steps: list[Any] = []
    banks, node = hub["hub"].banks, hub["hub"].node

    async def sleep(seconds: float) -> None:
        steps.append(("answer-after", seconds))

    service = SurvivorService(node, banks, clock=clock, sleep=sleep)
    add_item, add_source = banks.add_item, banks.add_protected_source
    publish_soon = service.publish_soon

    async def traced_add_item(*args: Any, **kw: Any) -> Any:
        steps.append("bank-write")
        return await add_item(*args, **kw)

    async def traced_add_source(*args: Any, **kw: Any) -> Any:
        steps.append("bank-write")
        return await add_source(*args, **kw)

    def traced_publish_soon() -> None:
        steps.append("publish-later")
        publish_soon()

    banks.add_item, banks.add_protected_source = traced_add_item, traced_add_source
    service.publish_soon = traced_publish_soon  # type: ignore[method-assign]
    return service, steps


async def test_held_new_and_withdrawn_hashes_take_the_same_steps(hub) -> None:
    service, steps = _traced(hub)
    reconciles = []
    real = hub["hub"].node.publisher.reconcile

    async def counted() -> dict[str, int]:
        reconciles.append(len(steps))
        return await real()

    hub["hub"].node.publisher.reconcile = counted  # type: ignore[method-assign]
    runs = {}
    for label, submission in (
        ("new", [Submitted(H[0], 90)]),
        ("held", [Submitted(H[0], 90)]),
        ("new-and-held", [Submitted(H[1], 90), Submitted(H[0], 90)]),
        ("held-and-new", [Submitted(H[0], 90), Submitted(H[2], 90)]),
    ):
        steps.clear()
        answer = await service.submit(submission, "ncii")
        assert len(answer["receipt"]) == len(submission)
        runs[label] = list(steps)
        await service.published()
    # One bank write per hash, publication after the answer, the answer at the same deadline
    # (with the clock standing still, exactly one quantum), whatever the hub held.
    one = ["bank-write", "publish-later", ("answer-after", SUBMIT_QUANTUM_S)]
    two = ["bank-write", *one]
    assert runs == {"new": one, "held": one, "new-and-held": two, "held-and-new": two}
    # The index was built outside the request, once per submission, never before its answer.
    assert len(reconciles) == 4
    items = await hub["hub"].banks.list_items("survivor-submissions")
    assert sorted(i.hash for i in items) == sorted(H[:3])
    # A withdrawn hash sent again: the same steps as ever.
    ref = next(i.item_ref for i in items if i.hash == H[2])
    await hub["hub"].banks.withdraw(ref, reason="test")
    steps.clear()
    await service.submit([Submitted(H[2], 90)], "ncii")
    assert steps == one
    await service.published()


async def test_the_answer_waits_for_the_next_quantum(hub) -> None:
    now = [0.0]
    service, steps = _traced(hub, clock=lambda: now[0])
    for took, wait in ((0.0, 0.25), (0.1, 0.15), (0.25, 0.0), (0.3, 0.2)):
        steps.clear()
        now[0] = 0.0
        await service._answer_at_quantum(-took)  # started `took` seconds ago
        assert steps == [("answer-after", pytest.approx(wait))]


def test_source_networks() -> None:
    assert source_network("203.0.113.7") == "203.0.113.0/24"
    assert source_network("::ffff:203.0.113.9") == "203.0.113.0/24"
    assert source_network("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert source_network("unknown") == "unknown"


async def test_rate_limits_by_address_network_and_receipt(hub) -> None:
    limits = SurvivorLimits(
        address=RateLimiter(burst=2, per_seconds=60),
        network=RateLimiter(burst=3, per_seconds=60),
        receipt=RateLimiter(burst=2, per_seconds=60),
    )
    app = build_survivor_app(
        hub["hub"].node, hub["hub"].banks, limits=limits, trust_forwarded_for=True
    )
    body = {"items": ["ab" * 16], "secret": "ab" * 32}

    async def withdraw(c: TestClient, source: str, items: list[str] | None = None) -> Any:
        r = await c.post(
            "/survivor/v1/withdraw",
            json={**body, "items": items or body["items"]},
            headers={"X-Forwarded-For": source},
        )
        return r.status, (await r.json()).get("message", ""), r.headers.get("Retry-After")

    async with TestClient(TestServer(app)) as c:
        # Per receipt, from addresses in different networks: the third attempt is refused.
        assert (await withdraw(c, "198.51.100.1"))[0] == 200
        assert (await withdraw(c, "192.0.2.1"))[0] == 200
        status, message, retry = await withdraw(c, "100.64.0.1")
        assert status == 429 and "receipt" in message and int(retry) >= 1
        assert (await withdraw(c, "100.64.0.1", ["cd" * 16]))[0] == 200  # another receipt
        # Per address.
        other = ["ef" * 16]
        assert (await withdraw(c, "203.0.113.1", other))[0] == 200
        assert (await withdraw(c, "203.0.113.1", ["01" * 16]))[0] == 200
        status, message, _ = await withdraw(c, "203.0.113.1", ["02" * 16])
        assert status == 429 and "address" in message
        # Per source network: 203.0.113.0/24 has 3 (an address refused took none of them).
        assert (await withdraw(c, "203.0.113.2", ["03" * 16]))[0] == 200
        status, message, retry = await withdraw(c, "203.0.113.4", ["05" * 16])
        assert status == 429 and "network" in message and int(retry) >= 1
        assert (await withdraw(c, "203.0.114.2", ["04" * 16]))[0] == 200  # next network
        # Submissions are limited the same way (before the body is read).
        r = await c.post(
            "/survivor/v1/submit",
            json={"hashes": [], "category": "ncii", "consent": True},
            headers={"X-Forwarded-For": "203.0.113.3"},
        )
        assert r.status == 429 and (await r.json())["error"] == "rate-limited"
