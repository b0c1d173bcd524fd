"""A walk-through of one private match between two in-process parties, printed step by step.

A hub holds the PDQ hash of a protected photo; a platform holds the hash of an edited upload.
Both run the real cryptography (RFC 9497 VOPRF, the ElGamal threshold test, signed envelopes);
the messages pass as bytes between two objects instead of over HTTP. Hashes are shown only as
short fingerprints, never in full, as a node's logs would.
"""

from __future__ import annotations

import hashlib
import os
import random
import time

from blindmatch.crypto import oprf, signing
from blindmatch.crypto import threshold as th
from blindmatch.protocol import envelope

BUCKET_TABLES = 4  # illustrative; the LSH chapter of the spec fixes the real scheme


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(b"demo-fingerprint" + data).hexdigest()[:8]


def _buckets(h: bytes) -> list[bytes]:
    # Four disjoint 16-bit slices; stands in for the published LSH scheme in this walk-through.
    return [b"demo-lsh/" + bytes([t]) + h[2 * t * 4 : 2 * t * 4 + 2] for t in range(BUCKET_TABLES)]


def _edit(h: bytes, flips: int, rng: random.Random) -> bytes:
    out = bytearray(h)
    # Flip bits outside the first table's slice, as a light edit would perturb some bits.
    for i in rng.sample(range(16, 256), flips):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


class Clock:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.last = self.t0

    def lap(self) -> str:
        now = time.perf_counter()
        out = f"{(now - self.last) * 1000:7.1f} ms"
        self.last = now
        return out


def main() -> int:
    rng = random.Random(2026)
    clock = Clock()
    say = print
    say("blindmatch demo: one private match between a hub and a platform")
    say("(two in-process parties, real crypto, messages passed as signed bytes)\n")

    hub_sign, platform_sign = signing.SigningKey.generate(), signing.SigningKey.generate()
    roster = {"hub": hub_sign.public_key, "platform": platform_sign.public_key}
    hub_oprf = oprf.generate_key_pair()
    protected = os.urandom(32)
    say(f"[{clock.lap()}] hub: holds one protected hash (fingerprint {_fingerprint(protected)})")

    index = {oprf.evaluate(hub_oprf, k, oprf.Mode.VOPRF) for k in _buckets(protected)}
    say(
        f"[{clock.lap()}] hub: publishes its blinded index: {len(index)} VOPRF outputs "
        "(no bucket key, no hash)"
    )

    upload = _edit(protected, flips=14, rng=rng)
    unrelated = os.urandom(32)
    for label, query in (("an edited copy", upload), ("an unrelated image", unrelated)):
        say(f"\nplatform: a user uploads {label} (fingerprint {_fingerprint(query)})")
        keys = _buckets(query)
        blinds, blinded = oprf.blind(keys, oprf.Mode.VOPRF)
        request = envelope.seal(
            platform_sign,
            "platform",
            "oprf.evaluate",
            {"key_id": b"hubkey01", "elements": blinded},
            int(time.time() * 1000),
            os.urandom(16),
        )
        say(
            f"[{clock.lap()}] platform -> hub: oprf.evaluate, {len(keys)} blinded bucket keys "
            f"({len(request)} bytes, signed)"
        )

        env = envelope.open_envelope(request, now_ms=int(time.time() * 1000), sender_key=roster.get)
        evaluated, proof = oprf.blind_evaluate(hub_oprf, env.body["elements"], oprf.Mode.VOPRF)
        assert proof is not None
        reply = envelope.seal(
            hub_sign,
            "hub",
            "oprf.evaluated",
            {"key_id": b"hubkey01", "elements": evaluated, "proof": proof},
            int(time.time() * 1000),
            os.urandom(16),
        )
        say(
            f"[{clock.lap()}] hub -> platform: evaluations + one batch DLEQ proof "
            f"({len(reply)} bytes); the hub saw only random-looking group elements"
        )

        env = envelope.open_envelope(reply, now_ms=int(time.time() * 1000), sender_key=roster.get)
        outputs = oprf.finalize(
            keys,
            blinds,
            env.body["elements"],
            oprf.Mode.VOPRF,
            blinded,
            env.body["proof"],
            hub_oprf.pk,
        )
        hits = sum(o in index for o in outputs)
        say(
            f"[{clock.lap()}] platform: proof verified; {hits} of {len(keys)} buckets hit the "
            "hub's index"
        )
        if not hits:
            say("          no candidate: nothing more is sent, nothing is learned about the hash")
            continue

        qkey = th.QuerierKey.generate()
        encrypted = th.encrypt_query(qkey, query, os.urandom(16))
        wire = encrypted.to_bytes()
        say(
            f"[{clock.lap()}] platform -> hub: threshold.query, 256 encrypted bits with "
            f"0-or-1 proofs ({len(wire):,} bytes; made once, reusable for every peer)"
        )

        verified = th.verify_query(th.EncryptedQuery.from_bytes(wire))
        answer = th.respond(verified, protected, bands=(8, 16, 31)).to_bytes()
        say(
            f"[{clock.lap()}] hub: all 256 proofs verified; answers with 32 blinded, shuffled "
            f"ciphertexts of (d - t), t = 0..31 ({len(answer):,} bytes)"
        )

        result = th.decide(qkey, th.ThresholdResponse.from_bytes(answer))
        true_d = sum(bin(a ^ b).count("1") for a, b in zip(query, protected, strict=True))
        if result.matched:
            low = {8: 0, 16: 9, 31: 17}[result.band or 31]
            say(
                f"[{clock.lap()}] platform: MATCH, distance in band {low}..{result.band} "
                f"(true distance {true_d}; the platform learns only the band)"
            )
        else:
            say(f"[{clock.lap()}] platform: bucket hit, but distance > 31: no match is reported")

    total = time.perf_counter() - clock.t0
    say(f"\ndone in {total:.2f} s. Next: ./dev test, and specs/protocol.md for how it works.")
    return 0
