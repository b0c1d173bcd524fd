"""vPDQ across the federation as plain calls: a holder's video item (one item, its frames each
indexed under the ``vpdq`` buckets), a querier's per-frame private matching through the real
VOPRF and threshold test, and vPDQ's rule at the querier; ThreatExchange signal strings."""

from __future__ import annotations

import json
import os
import random

import pytest

from blindmatch.crypto import oprf
from blindmatch.protocol import index, matching, signal_types
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.roster import voprf_key_id
from blindmatch.protocol.signal_types.vpdq import video
from blindmatch.protocol.signal_types.vpdq.frames import VpdqFrame, vpdq_match


def _flip(h: bytes, n: int, rng: random.Random) -> bytes:
    out = bytearray(h)
    for i in rng.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


def _video(hashes: list[bytes]) -> list[VpdqFrame]:
    return [VpdqFrame(i, h, 90, float(i)) for i, h in enumerate(hashes)]


class VideoHolder:
    """A holder with video items: each indexed frame gets a frame reference and its buckets."""

    def __init__(self, videos: list[list[VpdqFrame]]) -> None:
        self.key = oprf.generate_key_pair()
        self.key_id = voprf_key_id(self.key.pk)
        self.frames: dict[bytes, matching.HolderItem] = {}
        self.refs = index.HolderReferences(self.key, self.key_id)
        entries = []
        for frames in videos:
            group, indexed = os.urandom(8), video.indexed_frames(frames)
            release = video.release_for_frame(group, len(indexed), "survivor-submitted")
            for f in indexed:
                ref = os.urandom(16)
                self.frames[ref] = matching.HolderItem(ref, f.pdq, (8, 16, 31), release)
                entries += self.refs.publish(ref, video.index_keys(f.pdq))
        self.replica = index.ReplicaIndex(PDQ_LSH_1.name, self.key_id)
        self.replica.add(index.pack_entries(entries))


def _match(holder: VideoHolder, queries: list[matching.QueryHash]):
    ex = signal_types.SignalPeerExchange("hub", holder.key.pk, PDQ_LSH_1, queries)
    reply = matching.answer_evaluate(holder.key, holder.key_id, ex.evaluate_request())
    ex.on_evaluated(reply, holder.replica)
    cache = matching.EncryptionCache(os.urandom)
    for req in ex.threshold_requests(cache):
        items = matching.resolve_in_memory(holder.refs, holder.frames, req)
        answer = matching.answer_threshold(
            matching.verify_threshold_query(req), items, req, (8, 16, 31)
        )
        ex.on_answer(req, answer, cache)
    return ex, video.judge(queries, ex.confirmed)


def test_a_reencoded_copy_and_a_clip_match_privately_and_an_unrelated_video_does_not() -> None:
    rng = random.Random(7)
    original = [rng.randbytes(32) for _ in range(6)]
    other = [rng.randbytes(32) for _ in range(5)]
    holder = VideoHolder([_video(original), _video(other)])

    edited = [_flip(h, 6, rng) for h in original]
    copy = _video([*edited, edited[0]])  # a repeated frame is asked about once
    ex, verdicts = _match(holder, video.query_frames(copy))
    assert ex.probes_sent == 6 * len(PDQ_LSH_1.index_keys(original[0]))  # base keys, 6 frames
    assert [v.is_match for v in verdicts] == [True]
    v = verdicts[0]
    assert (v.query_frames, v.compared_frames, v.query_matched, v.compared_matched) == (6, 6, 6, 6)
    plain = vpdq_match(copy, _video(original))
    assert (plain.query_match_percent, plain.compared_match_percent) == (100.0, 100.0)

    clip = _video(original[2:4])  # two seconds of it: every query frame is found
    _, verdicts = _match(holder, video.query_frames(clip))
    assert verdicts[0].is_match and verdicts[0].query_match_percent == 100.0
    assert round(verdicts[0].compared_match_percent, 1) == 33.3

    unrelated = _video([rng.randbytes(32) for _ in range(4)])
    ex, verdicts = _match(holder, video.query_frames(unrelated))
    assert verdicts == [] and ex.confirmed == []


def test_frames_are_deduplicated_quality_gated_and_capped() -> None:
    h = [bytes([i]) * 32 for i in range(5)]
    frames = [
        VpdqFrame(0, h[0], 100, 0.0),
        VpdqFrame(1, h[0], 100, 1.0),
        VpdqFrame(2, h[1], 49, 2.0),
        VpdqFrame(3, h[2], 50, 3.0),
        VpdqFrame(4, h[3], 80, 4.0),
    ]
    queries = video.query_frames(frames, {3: [0.5] * 256})
    assert [(q.hash, q.variant) for q in queries] == [
        (h[0], "vframe/0"),
        (h[2], "vframe/1"),
        (h[3], "vframe/2"),
    ]
    assert queries[1].float_vector == [0.5] * 256 and queries[0].float_vector is None
    assert len(video.query_frames(frames, max_frames=2)) == 2
    assert [f.frame_number for f in video.indexed_frames(frames)] == [0, 3, 4]


def test_threatexchange_signal_strings_round_trip_and_bad_ones_are_refused() -> None:
    frames = _video([bytes([i]) * 32 for i in range(3)])
    text = video.format_signal_string(frames)
    assert json.loads(text)[1] == ("01" * 32) + ",90,1.000"
    assert video.parse_signal_string(text) == frames
    # python-threatexchange writes 3 significant digits: "1.23e+02" is read too.
    te = json.dumps([f"{'ab' * 32},100,0.0", f"{'cd' * 32},100,1.23e+02"])
    assert video.parse_signal_string(te)[1].timestamp == 123.0
    for bad in (
        "",
        "[]",
        "{}",
        "[1]",
        json.dumps(["ab,1,0"]),
        json.dumps([f"{'ab' * 32},100,-1"]),
        json.dumps([f"{'ab' * 32},100,nan"]),
        json.dumps([f"{'ab' * 32},100"]),
        json.dumps([f"{'zz' * 32},100,0"]),
    ):
        with pytest.raises(video.VideoError):
            video.parse_signal_string(bad)
