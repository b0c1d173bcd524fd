"""Conformance operations of vPDQ across the federation (specs/signals-and-lsh.md, section 7).

Registered with the vpdq entry, through which :mod:`blindmatch.protocol.conformance_ops` gathers
them. Byte strings travel as lower-case hex. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blindmatch.protocol import conformance_support
from blindmatch.protocol.conformance_support import OpError
from blindmatch.protocol.matching import Confirmation, QueryHash
from blindmatch.protocol.signal_types.vpdq import video


def _frames(signal: Any) -> list[Any]:
    try:
        return video.parse_signal_string(signal)
    except video.VideoError as exc:
        raise OpError("vpdq:bad-signal", str(exc)) from exc


def vpdq_parse_signal(i: dict[str, Any]) -> dict[str, Any]:
    frames = _frames(i["signal"])
    return {
        "frames": [
            {
                "frame_number": f.frame_number,
                "hash": f.pdq.hex(),
                "quality": f.quality,
                "timestamp": f.timestamp,
            }
            for f in frames
        ],
        "signal": video.format_signal_string(frames),
    }


def vpdq_indexed_frames(i: dict[str, Any]) -> dict[str, Any]:
    try:
        frames = video.indexed_frames(_frames(i["signal"]))
    except video.VideoError as exc:
        raise OpError("vpdq:too-many-frames", str(exc)) from exc
    return {"frames": [f.frame_number for f in frames]}


def vpdq_query_frames(i: dict[str, Any]) -> dict[str, Any]:
    max_frames = i.get("max_frames", video.MAX_QUERY_FRAMES)
    if not isinstance(max_frames, int) or isinstance(max_frames, bool):
        raise OpError("vpdq:bad-request", "max_frames is an integer")
    try:
        queries = video.query_frames(_frames(i["signal"]), max_frames=max_frames)
    except video.VideoError as exc:
        raise OpError("vpdq:bad-request", str(exc)) from exc
    return {
        "queries": [{"variant": q.variant, "hash": q.hash.hex()} for q in queries],
        "base_keys": [k.hex() for k in video.index_keys(queries[0].hash)] if queries else [],
    }


def vpdq_judge(i: dict[str, Any]) -> dict[str, Any]:
    n = i["query_frames"]
    if not isinstance(n, int) or not 0 <= n <= video.MAX_INDEX_FRAMES:
        raise OpError("vpdq:bad-request", "query_frames is 0..4096")
    queries = [QueryHash(b"\x00" * 32, None, video.frame_variant(k)) for k in range(n)]
    confs = []
    for c in i["confirmations"]:
        release = dict(c["release"])
        if "group" in release:
            release["group"] = conformance_support.hex_bytes(release["group"])
        confs.append(
            Confirmation(
                c["peer"],
                conformance_support.hex_bytes(c["item"]),
                0,
                c["variant"],
                c["band"],
                release,
            )
        )
    return {
        "verdicts": [
            {
                **v.as_result(),
                "peer": v.peer,
                "group": v.group.hex(),
                "match": v.is_match,
                "query_matched": v.query_matched,
                "compared_matched": v.compared_matched,
            }
            for v in video.judge(queries, confs)
        ]
    }


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "vpdq.parse_signal": vpdq_parse_signal,
    "vpdq.indexed_frames": vpdq_indexed_frames,
    "vpdq.query_frames": vpdq_query_frames,
    "vpdq.judge": vpdq_judge,
}
