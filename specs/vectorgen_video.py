"""Vectors for specs/signals-and-lsh.md section 7 (vPDQ across the federation): ThreatExchange
vpdq signal strings, the frames a holder indexes and a querier asks for, and vPDQ's match rule
over confirmed frames. Conformance format {"id", "op", "input", "expected"}; fixed seeds.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.signal_types.vpdq import ops  # noqa: F401  (registers the ops)


def _hash(n: int) -> str:
    return hashlib.sha256(b"blindmatch vectors vpdq frame %d" % n).hexdigest()


def _signal(frames: list[tuple[int, int, float]]) -> str:
    """(hash seed, quality, timestamp) per frame, as python-threatexchange writes it."""
    return json.dumps([f"{_hash(h)},{q},{t:.3f}" for h, q, t in frames])


def cases() -> list[dict[str, Any]]:
    # Ten frames at one per second; frames 3 and 4 repeat frame 2 (a still), frame 6 is flat.
    clip = [
        (0, 100, 0.0),
        (1, 92, 1.0),
        (2, 88, 2.0),
        (2, 88, 3.0),
        (2, 90, 4.0),
        (5, 71, 5.0),
        (6, 12, 6.0),
        (7, 64, 7.0),
        (8, 50, 8.0),
        (9, 49, 9.0),
    ]
    out = [
        _case("parse", "vpdq.parse_signal", {"signal": _signal(clip)}),
        _case(
            "parse-uppercase",
            "vpdq.parse_signal",
            {"signal": json.dumps([f"{_hash(0).upper()},100,0.0"])},
        ),
        _case("parse-empty", "vpdq.parse_signal", {"signal": "[]"}),
        _case("parse-not-json", "vpdq.parse_signal", {"signal": "{"}),
        _case("parse-two-fields", "vpdq.parse_signal", {"signal": json.dumps([f"{_hash(0)},100"])}),
        _case(
            "parse-bad-quality",
            "vpdq.parse_signal",
            {"signal": json.dumps([f"{_hash(0)},101,0.0"])},
        ),
        _case(
            "parse-time-goes-back",
            "vpdq.parse_signal",
            {"signal": _signal([(0, 100, 2.0), (1, 100, 1.0)])},
        ),
        _case("indexed", "vpdq.indexed_frames", {"signal": _signal(clip)}),
        _case("query", "vpdq.query_frames", {"signal": _signal(clip)}),
        _case("query-capped", "vpdq.query_frames", {"signal": _signal(clip), "max_frames": 3}),
        _case("query-cap-zero", "vpdq.query_frames", {"signal": _signal(clip), "max_frames": 0}),
    ]
    g1, g2 = "a1" * 8, "b2" * 8

    def conf(peer: str, item: int, frame: int, group: str, frames: int, band: int = 8) -> dict:
        return {
            "peer": peer,
            "item": f"{item:032x}",
            "variant": f"vframe/{frame}",
            "band": band,
            "release": {"signal": "vpdq", "group": group, "frames": frames},
        }

    # 10 query frames. Group 1 (12 indexed frames): 8 query frames confirmed (80%: a match).
    # Group 2 (4 indexed frames): 2 query frames, but 4 of its 4 frames (100%: a match, a clip
    # of the query). Group 1 at another peer: 7 frames, 7 of 20 indexed (no match).
    confs = [conf("hub", 100 + k, k, g1, 12) for k in range(8)]
    confs += [conf("hub", 200 + k, k % 2, g2, 4, 16) for k in range(4)]
    confs += [conf("hub-b", 300 + k, k, g1, 20) for k in range(7)]
    confs.append({**conf("hub", 999, 0, g1, 12), "variant": "g4c0r0"})  # a tile: not a frame
    confs.append({**conf("hub", 998, 9, g1, 12), "release": {"signal": "vpdq"}})  # no group
    out.append(_case("judge", "vpdq.judge", {"query_frames": 10, "confirmations": confs}))
    out.append(
        _case(
            "judge-80-exactly",
            "vpdq.judge",
            {
                "query_frames": 10,
                "confirmations": [conf("hub", 100 + k, k, g1, 100) for k in range(7)]
                + [conf("hub", 100, 7, g1, 100)],
            },
        )
    )
    return out


def generate() -> dict[str, object]:
    return {
        "video.json": {
            "name": "vPDQ video across the federation",
            "spec": "specs/signals-and-lsh.md#7-vpdq-video-across-the-federation",
            "version": 1,
            "cases": [{**c, "id": f"vpdq/{c['id']}"} for c in cases()],
        }
    }
