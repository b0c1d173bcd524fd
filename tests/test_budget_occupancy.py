"""A threshold budget follows the holder's occupancy (spec 8.3): decoys are never removed (8.7),
so honest spurious candidates grow with the index; the roster states each peer's threshold
budget at real occupancy and the holder scales it by entries / real entries. Over real nodes on
loopback: the factor after batches and a withdrawal, and an honest platform whose roster budget
fits only the real occupancy is answered in full by a padded hub and refused by an unpadded
one."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.protocol import admission
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.matching import QueryHash

RNG = random.Random(41)
PADDING = 40
DAY = 86_400
TABLES = SCHEMES["pdq-lsh-1"].tables
# an honest platform's roster budget sized for the hub's real occupancy: a match's best
# candidate fits, its other candidates (one per table that hit, 8.5) do not
SMALL = {"threshold_items_per_hour": 3, "threshold_items_per_day": 3}


def flip(h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in RNG.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


def test_occupancy_scales_down_to_the_roster_and_never_below() -> None:
    roster = admission.Limits(20_000, 20_000)
    assert admission.occupancy_limits(roster, 24, 24) == roster
    assert admission.occupancy_limits(roster, 0, 0) == roster
    assert admission.occupancy_limits(roster, 10, 0) == roster  # nothing real: nothing to scale
    assert admission.occupancy_limits(roster, 5, 7) == roster
    # a year of weekly decoys at a 1M-hash hub: 9.91 times the real entries (8.7)
    assert admission.occupancy_limits(roster, 9_910_000, 1_000_000) == admission.Limits(
        198_200, 198_200
    )
    assert admission.occupancy_limits(admission.Limits(3, 5), 10, 3) == admission.Limits(10, 16)
    with pytest.raises(ValueError):
        admission.occupancy_limits(roster, -1, 1)


async def test_the_factor_follows_batches_and_withdrawals(tmp_path: Path) -> None:
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [
            NodeSpec("hub", ("hub",), index_batch_s=DAY, index_batch_padding=PADDING),
            NodeSpec("platform", holds_index=False, budget=SMALL),
        ]
    )
    try:
        hub = fed["hub"].node
        peer = hub.roster.member("platform")
        banks = fed["hub"].banks
        await banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        # before anything is published: the roster's figures
        assert (await hub.admission.limits(peer, "threshold_items")).per_day == 3
        first = [(await banks.add_item("ncii", "pdq", os.urandom(32))).item for _ in range(2)]
        await hub.publisher.reconcile()
        # 2 items and 40 decoys: 42 / 2 = 21 times the real entries
        assert await hub.publisher.occupancy.counts() == (42 * TABLES, 2 * TABLES)
        limits = await hub.admission.limits(peer, "threshold_items")
        assert (limits.per_hour, limits.per_day) == (63, 63)
        # evaluations are per upload, whatever the occupancy: the roster's figure
        evals = await hub.admission.limits(peer, "evaluations")
        assert evals.per_day == peer.budget["evaluations_per_day"]
        # a withdrawn item's entries stay (8.7) and still count as real occupancy
        await banks.withdraw(first[0].item_ref)
        fed.clock.advance(DAY)
        await banks.add_item("ncii", "pdq", os.urandom(32))
        await hub.publisher.reconcile()
        assert await hub.publisher.occupancy.counts() == (83 * TABLES, 3 * TABLES)
        fed.clock.advance(61)  # past admission's cached read
        limits = await hub.admission.limits(peer, "threshold_items")
        assert limits.per_day == 3 * 83 // 3
        # another process of the node (a fresh reader) finds the recorded counts
        hub.publisher.occupancy._cached = None
        assert (await hub.admission.limits(peer, "threshold_items")).per_day == 83
    finally:
        await fed.stop()


@pytest.mark.parametrize("padding", [PADDING, 0])
async def test_an_honest_platform_is_answered_in_full_at_the_padded_occupancy(
    tmp_path: Path, padding: int
) -> None:
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [
            NodeSpec(
                "hub", ("hub",), index_batch_s=DAY if padding else 0, index_batch_padding=padding
            ),
            NodeSpec("platform", holds_index=False, budget=SMALL),
        ]
    )
    try:
        hub = fed["hub"].node
        platform = fed["platform"].node
        banks = fed["hub"].banks
        await banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        protected = os.urandom(32)
        await banks.add_item("ncii", "pdq", protected)
        await hub.publisher.reconcile()
        await platform.sync.sync_all()
        job = await platform.querier.submit([QueryHash(flip(protected, 6))])
        while await platform.delivery.process_due():
            pass
        status = await platform.querier.job_status(job)
        charged = await hub.budgets.usage("platform/threshold_items", fed.clock.now())
        refused = hub.metrics.value(
            "budget_refusals_total", {"peer": "platform", "what": "threshold_items"}
        )
        if padding:
            # every candidate the near copy hit was answered at once, beyond the roster's 3
            assert [r.band for r in status.results] == [8]
            assert charged["day"] > SMALL["threshold_items_per_day"] and refused == 0
            return
        # at real occupancy the roster's figure is the budget: the later round is refused and
        # the match is not delivered
        assert charged["day"] <= SMALL["threshold_items_per_day"] and refused >= 1
        assert status.results == []
    finally:
        await fed.stop()
