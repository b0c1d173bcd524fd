"""Feed replication and admission as sans-I/O code: driven by plain calls, every outcome
explicit (protocol/replication.py, protocol/admission.py)."""

from __future__ import annotations

import os

import pytest

from blindmatch.protocol import admission, canonical, index, replication
from blindmatch.protocol.replication import EntryOutcome, FeedPull, PullState

KEY_ID = b"k" * 8


def _entry(seq: int) -> dict:
    return {"seq": seq, "id": seq.to_bytes(16, "big"), "kind": "index.add", "payload": b"x"}


def _page(seqs: list[int], head: int, feed: str = "index") -> dict:
    return {"feed": feed, "entries": [_entry(s) for s in seqs], "head": head}


def test_pull_moves_the_cursor_only_once_a_page_is_stored() -> None:
    pull = FeedPull("index", 10, page_limit=2)
    assert pull.request() == {"feed": "index", "after": 10, "limit": 2}
    page = pull.receive(_page([11, 12], 14))
    assert [e.seq for e in page.entries] == [11, 12] and page.cursor == 12
    assert pull.cursor == 10 and pull.state is PullState.STORE  # not stored yet
    with pytest.raises(RuntimeError):
        pull.request()  # the driver must store the page first
    pull.stored()
    assert pull.cursor == 12 and pull.request() == {"feed": "index", "after": 12, "limit": 2}
    pull.receive(_page([14], 14))
    pull.stored()
    assert pull.done and pull.request() is None and (pull.cursor, pull.pulled) == (14, 3)


@pytest.mark.parametrize(
    "page",
    [
        _page([10, 11], 12),  # at the cursor
        _page([12, 11], 12),  # out of order
        _page([11, 11], 12),  # a seq twice
        _page([11, 12], 11),  # beyond the head it names
        _page([11], 11, feed="feedback"),  # another feed
        _page([11, 12, 13], 13),  # longer than asked for
    ],
)
def test_a_bad_page_fails_the_pull_and_moves_nothing(page: dict) -> None:
    pull = FeedPull("index", 10, page_limit=2)
    pull.request()
    with pytest.raises(replication.ReplicationError) as err:
        pull.receive(page)
    assert err.value.code == "bad-body"
    assert pull.state is PullState.FAILED and pull.cursor == 10 and pull.request() is None


def test_an_empty_page_and_the_page_allowance_end_the_pass() -> None:
    pull = FeedPull("index", 5)
    pull.request()
    pull.receive(_page([], 5))
    assert pull.done and pull.cursor == 5
    pull = FeedPull("index", 0, page_limit=1, max_pages=2)
    for seq in (1, 2):
        pull.request()
        pull.receive(_page([seq], 100))
        pull.stored()
    assert pull.done and pull.cursor == 2  # the rest waits for the next pass


def _payload(kind: str, scheme: str = "pdq-lsh-1", key_id: bytes = KEY_ID, n: int = 2) -> bytes:
    if kind == "index.checkpoint":
        return canonical.encode({"scheme": scheme, "key_id": key_id, "entries_total": n})
    return canonical.encode(
        {"scheme": scheme, "key_id": key_id, "entries": os.urandom(index.ENTRY_BYTES * n)}
    )


def test_every_index_entry_has_an_explicit_counted_outcome() -> None:
    replica = replication.IndexReplica("pdq-lsh-1", KEY_ID)
    add = _payload("index.add")
    outcomes = [
        replica.apply(1, "index.add", add).outcome,
        replica.apply(1, "index.add", add).outcome,  # the same entry again
        replica.apply(2, "index.add", _payload("index.add", scheme="pdq-lsh-2")).outcome,
        replica.apply(3, "index.add", _payload("index.add", key_id=b"o" * 8)).outcome,
        replica.apply(4, "index.checkpoint", _payload("index.checkpoint")).outcome,
        replica.apply(5, "index.purge", add).outcome,
        replica.apply(6, "index.add", b"\xc1").outcome,
        replica.apply(7, "index.remove", add).outcome,
    ]
    assert outcomes == [
        EntryOutcome.ADDED,
        EntryOutcome.ALREADY_APPLIED,
        EntryOutcome.OTHER_SCHEME,
        EntryOutcome.OTHER_KEY,
        EntryOutcome.CHECKPOINT,
        EntryOutcome.REJECTED,
        EntryOutcome.REJECTED,
        EntryOutcome.REMOVED,
    ]
    assert replica.index.entries == 0 and replica.position == 7
    assert replica.counts[EntryOutcome.OTHER_SCHEME] == 1
    assert sum(replica.counts.values()) == 8  # nothing unaccounted for
    assert replica.apply(5, "index.purge", add).reason == ""  # behind the position: skipped


NOW_MS = 1_760_000_000_500
LIMITS = admission.Limits(per_hour=100, per_day=150)


def _decide(**over) -> admission.Decision:
    args = dict(sender="a", self_id="hub", now_ms=NOW_MS, timestamp_ms=NOW_MS, nonce_seen=False)
    return admission.decide(**{**args, **over})


def _charge(units: int, hour: int = 0, day: int = 0) -> admission.Charge:
    return admission.Charge("evaluations", units, LIMITS, admission.Usage(hour, day), "evals")


def test_admission_admits_charges_and_counts_in_one_decision() -> None:
    d = _decide(charge=_charge(40, hour=60, day=60))
    assert d.admit and d.record_nonce and d.charge_units == 40 and d.count_traffic
    assert d.nonce_expires_at == NOW_MS // 1000 + admission.NONCE_RETENTION_S
    d = _decide()
    assert d.admit and d.record_nonce and not d.charge_units and not d.count_traffic


def test_admission_refusals_say_why_and_what_still_happens() -> None:
    assert _decide(sender="hub").code == "not-allowed"
    stale = _decide(timestamp_ms=NOW_MS - admission.DEFAULT_MAX_SKEW_MS - 1, charge=_charge(1))
    assert stale.code == "stale-timestamp" and not stale.record_nonce
    replay = _decide(nonce_seen=True, charge=_charge(1))
    assert replay.code == "replayed" and not replay.record_nonce and not replay.charge_units
    hour = _decide(charge=_charge(41, hour=60, day=60))
    assert hour.code == "budget-exhausted" and hour.record_nonce and not hour.charge_units
    now = NOW_MS // 1000
    assert hour.retry_after_ms == (3600 - now % 3600) * 1000
    day = _decide(charge=_charge(10, hour=0, day=145))  # the day window refuses: wait for it
    assert day.code == "budget-exhausted" and day.retry_after_ms == (86400 - now % 86400) * 1000
    assert _decide(charge=_charge(101)).code == "budget-exhausted"


def test_the_node_replica_counts_every_entry_it_does_not_apply() -> None:
    """The node's PeerReplica decides through IndexReplica: an entry of another scheme or key
    is counted as such, an unreadable one is returned as rejected (an incident)."""
    from blindmatch.node.federation.peer_replicas import PeerReplica, StoredEntry

    replica = PeerReplica("hub", "pdq-lsh-1", KEY_ID)
    page = [
        StoredEntry(1, b"\x01" * 16, "index.add", _payload("index.add")),
        StoredEntry(2, b"\x02" * 16, "index.add", _payload("index.add", scheme="pdq-lsh-2")),
        StoredEntry(3, b"\x03" * 16, "index.add", _payload("index.add", key_id=b"o" * 8)),
        StoredEntry(4, b"\x04" * 16, "index.add", b"\xc1"),
    ]
    rejected = replica.apply_page(0, page)
    assert rejected is not None and [r.seq for r in rejected] == [4]
    assert replica.cursor == 4 and replica.entries == 2
    assert replica.outcome_counts() == {
        "added": 1,
        "other-scheme": 1,
        "other-key": 1,
        "rejected": 1,
    }
