"""Conformance operations of the signal-type registry and the federation's sans-I/O machines:
feed paging (specs/protocol.md 10.4), admission (8.3) and index-feed entry ids (10.3).

Gathered into :mod:`blindmatch.protocol.conformance_ops`'s table. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blindmatch.protocol import admission, conformance_support, index, replication, signal_types
from blindmatch.protocol.conformance_support import OpError


def signal_type_entry(i: dict[str, Any]) -> dict[str, Any]:
    try:
        return signal_types.get(i["name"]).summary()
    except signal_types.UnknownSignalType as exc:
        raise OpError("signals:unknown-type", str(exc)) from exc


def signal_type_of_variant(i: dict[str, Any]) -> dict[str, Any]:
    return {"signal_type": signal_types.for_variant(i["variant"]).name}


def replication_pull(i: dict[str, Any]) -> dict[str, Any]:
    """Drive a FeedPull over the given page bodies; report the requests and where it stopped."""
    pull = replication.FeedPull(
        i["feed"],
        i["cursor"],
        page_limit=i["page_limit"],
        max_pages=i["max_pages"],
        stored_bytes=i.get("stored_bytes", 0),
        max_bytes=i.get("max_bytes"),
    )
    requests = []
    for page in i["pages"]:
        body = pull.request()
        if body is None:
            break
        requests.append(body)
        entries = [
            {
                **e,
                "id": conformance_support.hex_bytes(e["id"]),
                "payload": conformance_support.hex_bytes(e["payload"]),
            }
            for e in page["entries"]
        ]
        try:
            got = pull.receive({**page, "entries": entries})
        except replication.ReplicationError as exc:
            raise OpError(f"replication:{exc.code}", exc.message) from exc
        if got.entries:
            pull.stored()
    return {
        "requests": requests,
        "cursor": pull.cursor,
        "pulled": pull.pulled,
        "state": pull.state.value,
        "stored_bytes": pull.stored_bytes,
    }


def replication_caps(i: dict[str, Any]) -> dict[str, Any]:
    """A holder's caps from the index entries it declared (10.4)."""
    caps = replication.PeerCaps.from_declared(i["declared_entries"])
    return {"entries": caps.entries, "feed_bytes": caps.feed_bytes, "incidents": caps.incidents}


def admission_decide(i: dict[str, Any]) -> dict[str, Any]:
    charge = None
    if i.get("charge") is not None:
        c = i["charge"]
        charge = admission.Charge(
            c["budget"],
            c["units"],
            admission.Limits(c["per_hour"], c["per_day"]),
            admission.Usage(c["used_hour"], c["used_day"]),
            c["counter"],
        )
    d = admission.decide(
        sender=i["sender"],
        self_id=i["self_id"],
        now_ms=i["now_ms"],
        timestamp_ms=i["timestamp_ms"],
        nonce_seen=i["nonce_seen"],
        charge=charge,
    )
    return {
        "admit": d.admit,
        "code": d.code,
        "record_nonce": d.record_nonce,
        "nonce_expires_at": d.nonce_expires_at,
        "charge_units": d.charge_units,
        "count_traffic": d.count_traffic,
        "retry_after_ms": d.retry_after_ms,
    }


def admission_occupancy_limits(i: dict[str, Any]) -> dict[str, Any]:
    limits = admission.occupancy_limits(
        admission.Limits(i["per_hour"], i["per_day"]), i["entries"], i["real_entries"]
    )
    return {"per_hour": limits.per_hour, "per_day": limits.per_day}


def index_feed_entry_id(i: dict[str, Any]) -> dict[str, Any]:
    refs = [conformance_support.hex_bytes(r) for r in i["refs"]]
    key_id = conformance_support.hex_bytes(i["key_id"])
    return {"id": index.feed_entry_id(i["kind"], key_id, refs).hex()}


def index_delta_id(i: dict[str, Any]) -> dict[str, Any]:
    key_id = conformance_support.hex_bytes(i["key_id"])
    entries = index.split_entries(conformance_support.hex_bytes(i["entries"]))
    return {"id": index.delta_id(i["kind"], key_id, entries).hex()}


def index_decoy_keys(i: dict[str, Any]) -> dict[str, Any]:
    keys = index.decoy_keys(
        conformance_support.hex_bytes(i["decoy_ref"]),
        conformance_support.hex_bytes(i["prefix"]),
        [int(t) for t in i["tables"]],
        int(i["bits"]),
    )
    return {"keys": [k.hex() for k in keys]}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "signal_types.entry": signal_type_entry,
    "signal_types.of_variant": signal_type_of_variant,
    "replication.pull": replication_pull,
    "replication.caps": replication_caps,
    "admission.decide": admission_decide,
    "admission.occupancy_limits": admission_occupancy_limits,
    "index.feed_entry_id": index_feed_entry_id,
    "index.delta_id": index_delta_id,
    "index.decoy_keys": index_decoy_keys,
}
