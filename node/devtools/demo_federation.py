"""The main demo: a small federation on this machine, real crypto, real HTTP, SQLite.

Three nodes start on loopback: a survivor-support hub whose bank holds the PDQ hashes of some
photographs, and two platforms. They sign in with a governance-signed roster and sync the hub's
blinded index. Platform A then receives uploads: edited copies of protected photos (mirrored,
cropped, recompressed, captioned, letterboxed, rotated) mixed with unrelated photos. Each upload
is hashed on the platform (all eight rotations/mirrors, border removed) and matched privately
against the hub. The demo prints what matched where, at what distance band, how many bytes
crossed the wire and how long each step took; then a survivor withdraws one photo and the
platform's next match of its copy comes back empty. Last, a survivor protects an ordinary photo
(whole-picture and tile hashes), an AI image service in the roster's ``generator`` role banks an
edit it made of it, and the other platform receives that edit and a plain copy: the edit is a
high-priority derivative case confirmed by the generator, the copy a low-priority copy case.
Then each signal type whose adapter has a demo step of its own (``demo_media``) runs it: the
hub banks that type's media and platform-a receives an edited copy and an unrelated one (for
video: a trimmed, downscaled, re-encoded copy of a clip, matched by the type's rule with each
frame confirmed privately, opening a case).

The photos are the real photographs that scikit-image ships, so the demo needs no download.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from blindmatch.node import signals
from blindmatch.node.api.client import BlindmatchClient
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.media import hashing
from blindmatch.protocol.signals import hamming

PROTECTED = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "hubble_deep_field",
             "retina", "immunohistochemistry")  # fmt: skip
UNRELATED = ("camera", "coins", "clock", "moon", "brick", "page")


def load_photo(name: str) -> Image.Image:
    import skimage.data

    data = getattr(skimage.data, name)()
    if isinstance(data, tuple):
        data = data[0]
    image = Image.fromarray(np.asarray(data))
    return image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _caption(image: Image.Image) -> Image.Image:
    w, h = image.size
    out = Image.new("RGB", (w, h + h // 6), "white")
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((10, h + 8), "lol look at this", fill="black")
    return out


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = int(w * fraction / 2), int(h * fraction / 2)
    return image.crop((dx, dy, w - dx, h - dy))


def _letterbox(image: Image.Image, fraction: float) -> Image.Image:
    pad = int(image.height * fraction)
    return ImageOps.expand(image, border=(0, pad, 0, pad), fill="black")


EDITS: list[tuple[str, str, Callable[[Image.Image], bytes]]] = [
    ("astronaut", "mirrored", lambda im: _jpeg(ImageOps.mirror(im), 85)),
    ("coffee", "cropped 5%", lambda im: _jpeg(_crop(im, 0.05), 85)),
    ("rocket", "resized 50%, JPEG q40", lambda im: _jpeg(im.resize((im.width // 2, im.height // 2)), 40)),  # noqa: E501
    ("chelsea", "caption strip", lambda im: _jpeg(_caption(im), 80)),
    ("stereo_motorcycle", "letterboxed 15%", lambda im: _jpeg(_letterbox(im, 0.15), 85)),
    ("hubble_deep_field", "rotated 90°", lambda im: _jpeg(im.rotate(90, expand=True), 85)),
]  # fmt: skip


@dataclass
class Step:
    name: str
    seconds: float
    bytes_on_wire: int


def _wire(fed: LocalFederation) -> int:
    return sum(
        sum(local.node.client.sent.values()) + sum(local.node.client.received.values())
        for local in fed.nodes.values()
    )


async def run_demo(home: Path, say: Callable[[str], None] = print) -> dict:
    steps: list[Step] = []
    t0 = time.perf_counter()
    say("blindmatch demo: a hub and two platforms on this machine (real crypto, HTTP, SQLite)\n")

    started = time.perf_counter()
    fed = await LocalFederation(home, background=True, sync_interval_s=0.5).start(
        [
            NodeSpec("hub", ("hub",)),
            NodeSpec("platform-a", ("platform",), holds_index=False),
            NodeSpec("platform-b", ("platform",), holds_index=False),
            NodeSpec("imagegen", ("generator",)),
        ]
    )
    steps.append(
        Step("start 4 nodes, sign and verify the roster", time.perf_counter() - started, 0)
    )
    say(
        "1. started hub, platform-a, platform-b and imagegen (an AI image service);"
        " roster signed by 2 of 3 governance keys"
    )
    try:
        hub, pa = fed["hub"], fed["platform-a"]
        photos = {n: load_photo(n) for n in PROTECTED + UNRELATED}

        started = time.perf_counter()
        async with BlindmatchClient(hub.api_url, hub.api_token) as bm:
            await bm.create_bank("survivor-reports", "survivor-submitted", shared=True,
                                 categories=["ncii"])  # fmt: skip
            held = [hashing.hash_image_bytes(_jpeg(photos[n], 92)).pdq.hex for n in PROTECTED]
            await bm.add_hashes("survivor-reports", held)
        refs = {
            item.hash.hex(): item.item_ref.hex()
            for item in await hub.banks.list_items("survivor-reports")
        }
        name_of_ref = {refs[h]: n for n, h in zip(PROTECTED, held, strict=True)}
        published = await hub.node.feeds.head("index")
        steps.append(
            Step("hub: hash 8 photos, publish blinded index", time.perf_counter() - started, 0)
        )
        say(
            f"2. hub banked {len(held)} protected photos (hashed on the hub; images not shared)"
            f" and published its blinded index ({hub.node.scheme.tables} OPRF-keyed entries"
            " per hash)"
        )

        started = time.perf_counter()
        before = _wire(fed)
        for name in ("platform-a", "platform-b"):
            await fed[name].node.sync.sync_all()
        entries = pa.node.replication.replica_indexes["hub"].entries
        steps.append(
            Step(
                "platforms: sync the hub's index",
                time.perf_counter() - started,
                _wire(fed) - before,
            )
        )
        say(
            f"3. both platforms replicated the hub's index: {entries} entries, "
            f"{(_wire(fed) - before) / 1024:.1f} KiB on the wire (feed index pages {published})"
        )

        say("\n4. platform-a receives uploads and matches each one privately against the hub:")
        uploads: list[tuple[str, str | None, bytes]] = [
            (f"{n} ({edit})", n, fn(photos[n])) for n, edit, fn in EDITS
        ]
        uploads += [(f"{n} (unrelated)", None, _jpeg(photos[n], 85)) for n in UNRELATED]
        rows = []
        async with BlindmatchClient(pa.api_url, pa.api_token) as bm:
            for label, source, data in uploads:
                before = _wire(fed)
                started = time.perf_counter()
                job = await bm.match_media(data, wait=60)
                seconds = time.perf_counter() - started
                wire = _wire(fed) - before
                found = sorted({(m["peer"], name_of_ref.get(m["item"], "?"), m["band"],
                                 m["variant"]) for m in job["matches"]})  # fmt: skip
                correct = (source is None and not found) or any(f[1] == source for f in found)
                note = ""
                if source is not None and not correct:
                    # The demo sees both sides, so it can say why: the plaintext distance.
                    variants = hashing.hash_image_bytes(data, query_variants=True).variants
                    original = bytes.fromhex(held[PROTECTED.index(source)])
                    best = min(hamming(v.pdq.hash32, original) for v in variants)
                    note = f"  (PDQ distance {best} > 31: beyond PDQ's reach)"
                rows.append((label, found, seconds, wire, correct))
                verdict = (
                    f"MATCH at {found[0][0]}: {found[0][1]}, band <= {min(f[2] for f in found)}"
                    f", via {found[0][3]}"
                    if found
                    else "no match"
                )
                say(f"   {label:<38} -> {verdict:<64} {seconds * 1000:5.0f} ms "
                    f"{wire / 1024:6.1f} KiB{note}")  # fmt: skip
        match_seconds = sum(r[2] for r in rows)
        steps.append(
            Step(f"platform-a: match {len(rows)} uploads", match_seconds, sum(r[3] for r in rows))
        )

        say("\n5. a survivor withdraws 'astronaut' at the hub; the platforms sync:")
        started = time.perf_counter()
        target = next(ref for ref, n in name_of_ref.items() if n == "astronaut")
        async with BlindmatchClient(hub.api_url, hub.api_token) as bm:
            await bm.withdraw(target, reason="survivor withdrew")
        before = _wire(fed)
        await pa.node.sync.sync_all()
        async with BlindmatchClient(pa.api_url, pa.api_token) as bm:
            again = await bm.match_media(EDITS[0][2](photos["astronaut"]), wait=60)
        withdrawn_ok = not again["matches"]
        steps.append(
            Step("withdraw, sync, match again", time.perf_counter() - started, _wire(fed) - before)
        )
        say(f"   astronaut (mirrored) now -> {'no match' if withdrawn_ok else 'STILL MATCHES'}")

        say(
            "\n6. a survivor protects an ordinary photo of a person ('astronaut') at the hub:"
            " its hash and\n   its tile hashes; an AI image service (a roster 'generator') banks"
            " an edit it made of it;\n   platform-b receives that edit (30% of the picture"
            " regenerated) and a plain copy:"
        )
        started = time.perf_counter()
        before = _wire(fed)
        derivative_result = await _derivative_step(fed, photos["astronaut"], say)
        steps.append(
            Step(
                "protect a photo, find an edit and a copy",
                time.perf_counter() - started,
                _wire(fed) - before,
            )
        )

        # Each signal type with a step of its own (a video): its result keys are
        # <key>_found and <key>_unrelated_clean, None when this machine cannot hash its media.
        signal_results: dict[str, bool | None] = {}
        number = 7
        for adapter in signals.ADAPTERS:
            if adapter.demo_key is None:
                continue
            say(f"\n{number}. {adapter.demo_intro}")
            number += 1
            started = time.perf_counter()
            before = _wire(fed)
            result = await _signal_step(fed, adapter, photos, say)
            if result is not None:
                steps.append(
                    Step(adapter.demo_step_name, time.perf_counter() - started, _wire(fed) - before)
                )
            key = adapter.demo_key
            signal_results[f"{key}_found"] = None if result is None else result["found"]
            signal_results[f"{key}_unrelated_clean"] = None if result is None else result["clean"]

        total_wire = _wire(fed)
        say("\nsteps:")
        for s in steps:
            say(f"   {s.name:<46} {s.seconds * 1000:8.0f} ms {s.bytes_on_wire / 1024:9.1f} KiB")
        copies = [r for r in rows if "unrelated" not in r[0]]
        unrelated = [r for r in rows if "unrelated" in r[0]]
        say(f"\n{sum(r[4] for r in copies)}/{len(copies)} edited copies matched, "
            f"{sum(not r[1] for r in unrelated)}/{len(unrelated)} unrelated photos unmatched, "
            f"withdrawal honoured: {withdrawn_ok}; {total_wire / 1024:.0f} KiB between nodes; "
            f"{time.perf_counter() - t0:.1f} s.")  # fmt: skip
        say(
            "No hash, bucket key or image crossed between nodes: only blinded group elements, "
            "OPRF-keyed index entries, encrypted bits and signed envelopes."
        )
        return {
            "copies_matched": sum(r[4] for r in copies),
            "copies": len(copies),
            "unrelated_clean": sum(not r[1] for r in unrelated),
            "unrelated": len(unrelated),
            "withdrawal_honoured": withdrawn_ok,
            "derivative_found": derivative_result["derivative_found"],
            "copy_found": derivative_result["copy_found"],
            **signal_results,
            "bytes": total_wire,
        }
    finally:
        await fed.stop()


async def _derivative_step(
    fed: LocalFederation, photo: Image.Image, say: Callable[[str], None]
) -> dict[str, bool]:
    from blindmatch.node.media import tiles as tile_hashing
    from blindmatch.sim import edits

    hub, gen, pb = fed["hub"], fed["imagegen"], fed["platform-b"]
    source = _jpeg(photo, 92)
    rgb = np.asarray(photo)
    edited = _jpeg(Image.fromarray(edits.edit(rgb, "telea", 0.30, np.random.default_rng(7))), 90)
    # On the survivor's device in real use (the hub's survivor page hashes in the browser).
    pdq, tiles = tile_hashing.protected_source(source)
    await hub.banks.create_bank("survivor-sources", provenance="protected-source", shared=True)
    await hub.banks.add_protected_source(
        "survivor-sources", pdq.hash32, quality=pdq.quality, tiles=tiles, categories=["ncii"]
    )
    await hub.node.publisher.reconcile()
    async with BlindmatchClient(gen.api_url, gen.api_token) as bm:
        await bm.create_bank("nudify-outputs", "generator", shared=True)
        await bm.add_hashes("nudify-outputs", [hashing.hash_image_bytes(edited).pdq.hex])
    await pb.node.sync.sync_all()
    say(
        f"   hub banked 1 protected photo: 1 whole-picture hash + {len(tiles)} tile hashes;"
        " imagegen banked 1 hash"
    )
    whole = hamming(pdq.hash32, hashing.hash_image_bytes(edited).pdq.hash32)
    out: dict[str, Any] = {}
    async with BlindmatchClient(pb.api_url, pb.api_token) as bm:
        for label, data, ref in (("AI-edited", edited, "demo-edit"), ("copy", source, "demo-copy")):
            started = time.perf_counter()
            await bm.match_media(data, wait=60, content_ref=ref)
            cases = await bm.cases_for_content(ref)
            seconds = time.perf_counter() - started
            case = next((c for c in cases if c["kind"]), None)
            if case is None:
                say(f"   {label:<10} -> no match  {seconds * 1000:5.0f} ms")
                out[label] = None
                continue
            ev = case["release"]["derivative"]
            gen_note = " + generator-confirmed" if "generator" in case["release"] else ""
            if ev["whole_image_match"] and not ev["matched_regions"]:
                # The whole picture decided it; no tile was asked (specs/derivatives.md 6.5).
                evidence = "the whole picture matched"
            else:
                evidence = f"{len(ev['matched_regions'])}/{ev['regions']} regions matched"
            say(
                f"   {label:<10} -> {case['kind'].upper()} of a protected photo at {case['holder']}"
                f"{gen_note}: {evidence},"
                f" review priority {case['priority']}  {seconds * 1000:5.0f} ms"
            )
            out[label] = case["kind"]
    say(f"   (whole-picture PDQ distance of the edit: {whole} bits, beyond PDQ's reach of 31)")
    return {
        "derivative_found": out.get("AI-edited") == "derivative",
        "copy_found": out.get("copy") == "copy",
    }


async def _signal_step(
    fed: LocalFederation,
    adapter: signals.SignalAdapter,
    photos: dict[str, Image.Image],
    say: Callable[[str], None],
) -> dict[str, bool] | None:
    """A signal type's own step: the hub banks its media, platform-a uploads a copy and an
    unrelated file; None when this machine cannot hash such media."""
    if not adapter.media_available():
        say(f"   (skipped: {adapter.demo_unavailable})")
        return None
    hub, pa = fed["hub"], fed["platform-a"]
    with tempfile.TemporaryDirectory(prefix=f"blindmatch-demo-{adapter.demo_key}-") as d:
        media = adapter.demo_media(Path(d), dict(photos))
        async with BlindmatchClient(hub.api_url, hub.api_token) as bm:
            await bm.create_bank(media.bank, "survivor-submitted", shared=True, categories=["ncii"])
            await bm.add_hashes(media.bank, [media.banked_value], signal_type=adapter.entry.name)
        await pa.node.sync.sync_all()
        say(media.banked_note)
        out: dict[str, bool] = {}
        async with BlindmatchClient(pa.api_url, pa.api_token) as bm:
            for label, path, ref in media.uploads:
                started = time.perf_counter()
                job = await bm.match_media(path.read_bytes(), wait=60, content_ref=ref)
                cases = await bm.cases_for_content(ref)
                ms = (time.perf_counter() - started) * 1000
                signal = adapter.entry.release_signal
                hit = next((m for m in job["matches"] if m.get("signal") == signal), None)
                if hit is None:
                    say(f"   {label:<10} -> no match  {ms:5.0f} ms")
                    out[label] = False
                    continue
                say(
                    f"   {label:<10} -> {adapter.demo_describe(hit)};"
                    f" {len(cases)} case opened  {ms:5.0f} ms"
                )
                out[label] = bool(cases)
    return {"found": out.get("copy", False), "clean": not out.get("unrelated", True)}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="blindmatch-demo-") as d:
        result = asyncio.run(run_demo(Path(d)))
    ok = (
        result["unrelated_clean"] == result["unrelated"]
        and result["withdrawal_honoured"]
        and result["derivative_found"]
        and result["copy_found"]
        and all(
            result[f"{a.demo_key}_{k}"] is not False
            for a in signals.ADAPTERS
            if a.demo_key is not None
            for k in ("found", "unrelated_clean")
        )
    )
    return 0 if ok else 1
