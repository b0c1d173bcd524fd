"""Vectors for the signal-type registry (specs/signals-and-lsh.md section 2) and the
federation's sans-I/O machines: feed paging (specs/protocol.md 10.4) and admission (8.3); and
index-feed entry ids (10.3), which carry the VOPRF key id since rotation (8.4).
Conformance format {"id", "op", "input", "expected"}.
"""

from __future__ import annotations

from typing import Any

from blindmatch.protocol import (
    federation_ops,  # noqa: F401  (registers the ops)
    signal_types,
)
from blindmatch.protocol.conformance_ops import make_case as _case


def registry_cases() -> list[dict[str, Any]]:
    out = [_case(f"entry-{n}", "signal_types.entry", {"name": n}) for n in signal_types.names()]
    out.append(_case("entry-unknown", "signal_types.entry", {"name": "md5"}))
    for v in (
        "original",
        "rotate90",
        "uncrop/5",
        "g4c3r0",
        "g5c4r4",
        "vframe/0",
        "vframe/12",
        "vframe/012",
        "g4c03r0",
        "learned/" + "5a" * 32,
        "learned/" + "5A" * 32,
    ):
        out.append(
            _case(f"variant-{v.replace('/', '-')}", "signal_types.of_variant", {"variant": v})
        )
    return out


def _entry(seq: int) -> dict[str, Any]:
    return {"seq": seq, "id": f"{seq:032x}", "kind": "index.add", "payload": "80"}


def pull_cases() -> list[dict[str, Any]]:
    base = {"feed": "index", "cursor": 10, "page_limit": 2, "max_pages": 5}

    def page(seqs: list[int], head: int, feed: str = "index") -> dict[str, Any]:
        return {"feed": feed, "entries": [_entry(s) for s in seqs], "head": head}

    scenarios = {
        "two-pages-to-head": [page([11, 12], 13), page([13], 13)],
        "empty-page": [page([], 10)],
        "gap-is-fine": [page([15, 40], 40)],
        "at-cursor": [page([10, 11], 12)],
        "out-of-order": [page([12, 11], 12)],
        "duplicate-seq": [page([11, 11], 12)],
        "beyond-head": [page([11, 12], 11)],
        "other-feed": [page([11], 11, "feedback")],
        "longer-than-asked": [page([11, 12, 13], 13)],
        "page-allowance": [page([11 + 2 * k, 12 + 2 * k], 99) for k in range(6)],
    }
    cases = [
        _case(f"pull-{name}", "replication.pull", {**base, "pages": pages})
        for name, pages in scenarios.items()
    ]
    # The feed-bytes cap (each entry's payload is one byte): a page that would pass it is
    # refused whole, so nothing past the cap is stored.
    capped = {
        "cap-exactly": (3, 6, [page([11, 12], 13), page([13], 13)]),
        "cap-passed-on-second-page": (3, 5, [page([11, 12], 13), page([13], 13)]),
        "cap-passed-on-first-page": (4, 5, [page([11, 12], 13)]),
    }
    cases += [
        _case(
            f"pull-{name}",
            "replication.pull",
            {**base, "stored_bytes": stored, "max_bytes": cap, "pages": pages},
        )
        for name, (stored, cap, pages) in capped.items()
    ]
    cases += [
        _case(f"caps-{n}", "replication.caps", {"declared_entries": n})
        for n in (0, 2_400_000, 5_000_000, 24_000_000)
    ]
    return cases


def admission_cases() -> list[dict[str, Any]]:
    now = 1_760_000_000_000  # ms
    base = {
        "sender": "platform-a",
        "self_id": "hub",
        "now_ms": now,
        "timestamp_ms": now - 1000,
        "nonce_seen": False,
        "charge": None,
    }
    charge = {
        "budget": "evaluations",
        "units": 64,
        "per_hour": 1000,
        "per_day": 5000,
        "used_hour": 0,
        "used_day": 0,
        "counter": "evaluations",
    }
    scenarios = {
        "unbudgeted": {},
        "budgeted": {"charge": charge},
        "self": {"sender": "hub"},
        "stale": {"timestamp_ms": now - 300_001, "charge": charge},
        "future": {"timestamp_ms": now + 300_001},
        "edge-of-window": {"timestamp_ms": now - 300_000},
        "replay": {"nonce_seen": True, "charge": charge},
        "hour-used-up": {"charge": {**charge, "used_hour": 937}},
        "hour-exactly": {"charge": {**charge, "used_hour": 936}},
        "day-used-up": {"charge": {**charge, "used_day": 4999}},
        "larger-than-limit": {"charge": {**charge, "units": 1001}},
        "zero-units": {"charge": {**charge, "units": 0}},
    }
    return [
        _case(f"admit-{name}", "admission.decide", {**base, **over})
        for name, over in scenarios.items()
    ]


def occupancy_cases() -> list[dict[str, Any]]:
    """A threshold budget scaled to the holder's occupancy (8.3): roster figures at real
    occupancy, multiplied by entries / real entries, rounded down, never below the roster's."""
    roster = {"per_hour": 20_000, "per_day": 20_000}
    scenarios = {
        "unpadded": {"entries": 24_000, "real_entries": 24_000},
        "a-year-of-decoys": {"entries": 237_840_000, "real_entries": 24_000_000},
        "rounds-down": {"entries": 10, "real_entries": 3},
        "nothing-real": {"entries": 3_932_160, "real_entries": 0},
        "empty": {"entries": 0, "real_entries": 0},
        "fewer-than-real": {"entries": 5, "real_entries": 7},
    }
    return [
        _case(f"occupancy-{name}", "admission.occupancy_limits", {**roster, **over})
        for name, over in scenarios.items()
    ]


def entry_id_cases() -> list[dict[str, Any]]:
    old, new = "6f6c646b65796964", "6e65776b65796964"  # two key ids: a rotation's two indexes
    refs = ["02" * 16, "01" * 16]
    return [
        _case(
            "entry-id-add",
            "index.feed_entry_id",
            {"kind": "index.add", "key_id": old, "refs": refs},
        ),
        _case(
            "entry-id-add-refs-in-any-order",
            "index.feed_entry_id",
            {"kind": "index.add", "key_id": old, "refs": refs[::-1]},
        ),
        _case(
            "entry-id-add-under-successor",
            "index.feed_entry_id",
            {"kind": "index.add", "key_id": new, "refs": refs},
        ),
        _case(
            "entry-id-remove",
            "index.feed_entry_id",
            {"kind": "index.remove", "key_id": old, "refs": refs},
        ),
    ]


def batch_cases() -> list[dict[str, Any]]:
    """Batched publication (8.7): delta ids from sorted entries, and decoy buckets."""
    from blindmatch.protocol.lsh import SCHEMES

    old = "6f6c646b65796964"
    entries = ["ff" * 24, "00" * 24, "7f" * 8 + "01" * 16]
    prefix = SCHEMES["pdq-lsh-1"].index_keys(bytes(32))[0][:-6].hex()
    return [
        _case(
            "delta-id",
            "index.delta_id",
            {"kind": "index.add", "key_id": old, "entries": "".join(entries)},
        ),
        _case(
            "delta-id-entries-in-any-order",
            "index.delta_id",
            {"kind": "index.add", "key_id": old, "entries": "".join(entries[::-1])},
        ),
        _case(
            "decoy-keys-pdq-lsh-1",
            "index.decoy_keys",
            {"decoy_ref": "5a" * 16, "prefix": prefix, "tables": list(range(24)), "bits": 27},
        ),
        _case(
            "decoy-keys-whole-bytes",
            "index.decoy_keys",
            {"decoy_ref": "a5" * 16, "prefix": prefix, "tables": [0, 1], "bits": 256},
        ),
    ]


def generate() -> dict[str, object]:
    return {
        "signal_types.json": {
            "name": "Signal-type registry",
            "spec": "specs/signals-and-lsh.md#2-signal-types",
            "version": 1,
            "cases": [{**c, "id": f"registry/{c['id']}"} for c in registry_cases()],
        },
        "replication.json": {
            "name": "Feed paging and admission (sans-I/O)",
            "spec": "specs/protocol.md#104-replication",
            "version": 1,
            "cases": [
                {**c, "id": f"federation/{c['id']}"}
                for c in pull_cases()
                + admission_cases()
                + occupancy_cases()
                + entry_id_cases()
                + batch_cases()
            ],
        },
    }
