"""Every byte the nodes send each other in a demo-like scenario, captured by TCP relays in front
of every node: none of the raw PDQ hashes (as bytes, byte-reversed, hex in either case, or
bit-reversed) and none of the raw bucket keys appear in it."""

from __future__ import annotations

import os
import random
from pathlib import Path

from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import QueryHash


def flip(h: bytes, n: int, rng: random.Random) -> bytes:
    out = bytearray(h)
    for i in rng.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


def forms(h: bytes) -> list[bytes]:
    bitrev = bytes(int(f"{b:08b}"[::-1], 2) for b in h[::-1])
    return [
        h,
        h[::-1],
        bitrev,
        h.hex().encode(),
        h.hex().upper().encode(),
        h[::-1].hex().encode(),
        # any 12-byte window of the hash would already be a leak worth failing on
        h[:12],
        h[10:22],
        h[20:32],
    ]


async def test_no_hash_or_bucket_key_crosses_the_wire(tmp_path: Path) -> None:
    rng = random.Random(4)
    fed = await LocalFederation(tmp_path, background=False, record_wire=True).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform-a"), NodeSpec("platform-b")]
    )
    try:
        hub = fed["hub"]
        await hub.banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        held = [os.urandom(32) for _ in range(40)]
        for h in held:
            await hub.banks.add_item("ncii", "pdq", h)
        await hub.node.publisher.reconcile()
        # platform-a also holds hashes, so traffic flows both ways.
        pa = fed["platform-a"]
        await pa.banks.create_bank("local", provenance="moderator-confirmed", shared=True)
        pa_held = [os.urandom(32) for _ in range(10)]
        for h in pa_held:
            await pa.banks.add_item("local", "pdq", h)
        await pa.node.publisher.reconcile()
        queries = [flip(held[i], rng.randint(0, 20), rng) for i in range(8)]
        queries += [os.urandom(32) for _ in range(4)]
        results = 0
        for name in ("platform-a", "platform-b"):
            node = fed[name].node
            await node.sync.sync_all()
            floats = [rng.gauss(0, 1) for _ in range(256)]
            job = await node.querier.submit([QueryHash(q, floats) for q in queries])
            while await node.delivery.process_due():
                pass
            results += len((await node.querier.job_status(job)).results)
        assert results >= 16  # the scenario really matched things across the wire
        wire = fed.wire_bytes()
        assert len(wire) > 100_000
        secrets = [f for h in held + pa_held + queries for f in forms(h)]
        bucket_keys = [k for h in held + pa_held + queries for k in PDQ_LSH_1.index_keys(h)]
        bucket_keys += [k for q in queries for k in PDQ_LSH_1.probe_keys(q, floats)]
        leaked = [s for s in secrets if s in wire]
        assert not leaked, f"{len(leaked)} hash forms found on the wire"
        leaked_keys = [k for k in bucket_keys if k in wire]
        assert not leaked_keys, f"{len(leaked_keys)} bucket keys found on the wire"
        # Keys share a public prefix (the scheme tag); their secret part (table and sampled bits,
        # 6 bytes) must not appear either. A chance 6-byte match in ~1 MB is ~1e-8 per key.
        tails = {k[-6:] for k in bucket_keys}
        assert not [t for t in tails if t in wire]
    finally:
        await fed.stop()


def _pan_clip(tmp_path: Path, name: str, seed: int, extra: list[str] | None = None) -> Path:
    """A 4 s pan across a textured picture (H.264, 10 fps), optionally re-encoded after."""
    import subprocess

    import pytest
    from PIL import Image

    data = pytest.importorskip("skimage.data")
    photo = {21: data.coffee, 22: data.rocket}[seed]()
    picture = tmp_path / f"{name}.png"
    Image.fromarray(photo).save(picture)
    out = tmp_path / f"{name}.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-loop",
            "1",
            "-i",
            str(picture),
            "-vf",
            "crop=320:240:'45*t':'15*t',fps=10,format=yuv420p",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            str(out),
        ],
        check=True,
    )
    if extra:
        edited = tmp_path / f"{name}-edited.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(out),
                *extra,
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-pix_fmt",
                "yuv420p",
                str(edited),
            ],
            check=True,
        )
        return edited
    return out


async def test_a_video_matches_across_two_nodes_and_no_frame_hash_crosses_the_wire(
    tmp_path: Path,
) -> None:
    import pytest

    from blindmatch.node.cases.derivatives import PeerMatch, review_matches
    from blindmatch.node.signals.vpdq.hasher import (
        ffmpeg_available,
        hash_video_for_query,
        vpdq_available,
    )
    from blindmatch.node.signals.vpdq.items import VideoItems
    from blindmatch.protocol.signal_types.vpdq import video

    if not (ffmpeg_available() and vpdq_available()):
        pytest.skip("needs ffmpeg and vpdq")
    banked = hash_video_for_query(_pan_clip(tmp_path, "banked", 21))
    copy = hash_video_for_query(
        _pan_clip(tmp_path, "banked", 21, ["-vf", "scale=240:-2", "-crf", "30"])
    )
    unrelated = hash_video_for_query(_pan_clip(tmp_path, "other", 22))
    fed = await LocalFederation(tmp_path, background=False, record_wire=True).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform-a")]
    )
    try:
        hub = fed["hub"]
        await hub.banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        await VideoItems(hub.banks).add_video("ncii", banked.frames, categories=["ncii"])
        await hub.node.publisher.reconcile()
        node = fed["platform-a"].node
        await node.sync.sync_all()
        verdicts = {}
        for name, clip in (("copy", copy), ("unrelated", unrelated)):
            queries = clip.query_hashes()
            job = await node.querier.submit(queries)
            while await node.delivery.process_due():
                pass
            status = await node.querier.job_status(job)
            results = [
                PeerMatch(r.peer, r.item_ref, r.variant, r.band, r.release) for r in status.results
            ]
            verdicts[name] = review_matches(queries, results, node.roster.has_role)
        [match] = verdicts["copy"]  # one match for the video, however many frames confirmed
        assert match.holder == "hub" and match.release["signal"] == "vpdq"
        evidence = match.release["video"]
        assert max(evidence["query_match_percent"], evidence["compared_match_percent"]) >= 80
        assert match.release["categories"] == ["ncii"]
        assert verdicts["unrelated"] == []
        wire = fed.wire_bytes()
        frames = [f.pdq for v in (banked, copy, unrelated) for f in v.frames]
        leaked = [s for h in frames for s in forms(h) if s in wire]
        assert not leaked, f"{len(leaked)} frame hash forms found on the wire"
        keys = [k for h in frames for k in video.index_keys(h)]
        keys += [
            k for q in copy.query_hashes() + unrelated.query_hashes() for k in video.probe_keys(q)
        ]
        assert not [k for k in keys if k in wire]
        assert not [t for t in {k[-6:] for k in keys} if t in wire]
    finally:
        await fed.stop()
