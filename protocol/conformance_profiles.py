"""Conformance profiles: which ops an implementation must answer to claim a profile, and how a
run's outcomes certify one (specs/protocol.md, 9.3).

A profile's *required* ops must pass every one of their cases: a skipped case (the
implementation answered ``unsupported-op``) or a failed one withholds the profile. Its *optional*
ops may be skipped as a whole, but an optional op the implementation answers must pass every
case. A profile includes the profiles it ``extends``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from blindmatch.protocol import signal_types


@dataclass(frozen=True)
class Profile:
    name: str
    purpose: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    extends: tuple[str, ...] = ()


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "core",
            "the cryptographic wire core: blinded evaluation, the private threshold test, "
            "canonical encoding, signed envelopes and blinded-index entries",
            required=(
                "oprf.derive_key_pair",
                "oprf.blind",
                "oprf.blind_evaluate",
                "oprf.finalize",
                "threshold.encrypt",
                "threshold.verify",
                "threshold.respond",
                "threshold.decide",
                "canonical.decode",
                "group.decode",
                "envelope.seal",
                "envelope.open",
                "index.key_id",
                "index.entry",
            ),
        ),
        Profile(
            "node",
            "a federation member: core plus the roster, feedback records, PDQ signals and the "
            "LSH bucket keys every member must derive identically",
            required=(
                "roster.verify",
                "feedback.open",
                "feedback.aggregate",
                "pdq.bits",
                "pdq.distance",
                "lsh.table_positions",
                "lsh.index_keys",
                "lsh.probe_keys",
                "lsh.exact_key",
                "signal_types.entry",
                "signal_types.of_variant",
                "replication.pull",
                "replication.caps",
                "admission.decide",
                "admission.occupancy_limits",
                # per-table references and sealed releases (spec 8.5)
                "index.table_entry",
                "index.resolve",
                "threshold.seal",
                "threshold.open",
                "threshold.release_scalar",
            ),
            optional=(
                # Hashing images itself (a node may take hashes from an upstream hasher).
                "pdq.from_float",
                # A holder's index-feed entry ids (10.3): queriers store them, never derive them.
                "index.feed_entry_id",
                # A holder's delta ids and decoy buckets (10.3, 8.7): its own business.
                "index.delta_id",
                "index.decoy_keys",
                # The derivative signal pdq-tiles-1 (chapter 13) is served by choice.
                "derivative.tiles",
                "derivative.index_keys",
                "derivative.probe_keys",
                "derivative.classify",
                "derivative.cells_mask",
                # A signal type's own operations (e.g. a video type's) are
                # served by choice.
                *signal_types.conformance_ops(),
            ),
            extends=("core",),
        ),
        Profile(
            "uploaders",
            "a member taking part in repeat-uploader signals (chapter 14): the RFC 9497 POPRF, "
            "identifier digests, the two-stage tag and the keeper's feed",
            required=(
                "oprf.poprf_blind",
                "oprf.poprf_blind_evaluate",
                "oprf.poprf_finalize",
                "uploader.identifier",
                "uploader.tag",
                "uploader.lookup",
                "uploader.verify_holder_answer",
                "uploader.entry",
                "uploader.apply",
                "uploader.remove_after",
            ),
            extends=("node",),
        ),
        Profile(
            "log",
            "an auditor or monitor of the verifiable log (chapter 12); needs no group arithmetic",
            required=(
                "merkle.root",
                "merkle.inclusion",
                "merkle.verify_inclusion",
                "merkle.consistency",
                "merkle.verify_consistency",
                "sth.sign",
                "sth.verify",
                "sth.monitor",
                "log.encode_entry",
                "log.decode_entry",
                "log.audit",
            ),
        ),
    )
}


def required_ops(name: str) -> set[str]:
    p = PROFILES[name]
    ops = set(p.required)
    for parent in p.extends:
        ops |= required_ops(parent)
    return ops


def optional_ops(name: str) -> set[str]:
    p = PROFILES[name]
    ops = set(p.optional)
    for parent in p.extends:
        ops |= optional_ops(parent)
    return ops


def all_ops() -> set[str]:
    return {op for name in PROFILES for op in required_ops(name) | optional_ops(name)}


@dataclass
class Certification:
    profile: str
    certified: bool
    failed_ops: list[str] = field(default_factory=list)  # an answered case did not pass
    skipped_required: list[str] = field(default_factory=list)
    missing_vectors: list[str] = field(default_factory=list)  # a required op with no case
    optional_skipped: list[str] = field(default_factory=list)


def certify(name: str, outcomes: Iterable[tuple[str, str]]) -> Certification:
    """Judge one profile from ``(op, status)`` pairs, status ``pass``, ``fail`` or ``skip``."""
    required, optional = required_ops(name), optional_ops(name)
    statuses: dict[str, set[str]] = {}
    for op, status in outcomes:
        statuses.setdefault(op, set()).add(status)
    c = Certification(name, False)
    for op in sorted(required | optional):
        seen = statuses.get(op, set())
        if "fail" in seen:
            c.failed_ops.append(op)
        elif op in required and not seen:
            c.missing_vectors.append(op)
        elif op in required and "skip" in seen:
            c.skipped_required.append(op)
        elif op in optional and "skip" in seen:
            if "pass" in seen:  # an optional op is supported whole or not at all
                c.failed_ops.append(op)
            else:
                c.optional_skipped.append(op)
    c.certified = not (c.failed_ops or c.skipped_required or c.missing_vectors)
    return c


# Every error code an op may answer (specs/protocol.md 9.6): the code, the ops that use it and
# when. Each code except ``unsupported-op`` has at least one vector (tests/test_conformance.py).
ERROR_CODES: dict[str, str] = {
    "unsupported-op": "the implementation does not implement this op (reported as skipped)",
    "bad-request": "an input is not of the op's declared JSON type (9.4)",
    "oprf-input": "an OPRF input or batch the RFC refuses: too long, empty, mismatched counts",
    "oprf-deserialize": "a point or scalar that does not decode (section 1, RFC 9496 4.3.1)",
    "oprf-verify": "a VOPRF batch proof that does not verify, or is malformed",
    "threshold-invalid": "an encrypted query or response that does not parse or verify (5.4, 5.6)",
    "canonical": "bytes that are not the canonical msgpack of a protocol value (6.1)",
    "group-invalid": "group.decode of bytes that are not a valid point (section 1)",
    "index-invalid": "index.resolve of a candidate that is not 24 bytes (10.2)",
    "envelope:bad-envelope": "size, canonical form, shape, version, type, sender syntax, "
    "timestamp type, nonce or signature length (6.3)",
    "envelope:unknown-sender": "the sender is not in the roster (6.3)",
    "envelope:stale-timestamp": "the timestamp is outside the window (6.3)",
    "envelope:bad-signature": "the signature does not verify (6.3)",
    "envelope:bad-body": "the body does not match the type's schema (6.3, 7)",
    "envelope:replayed": "a (sender, nonce) pair the receiver accepted before (6.3)",
    "roster-invalid": "a roster document that does not verify (10.1)",
    "feedback:bad-body": "a feedback record whose body breaks its schema (10.7)",
    "feedback:unknown-sender": "a feedback record from an origin without a key (10.7)",
    "feedback:bad-signature": "a feedback record whose signature does not verify (10.7)",
    "signals:bad-hash": "a hash that is not 64 hex digits (chapter 11)",
    "signals:bad-float-vector": "a float vector that is not 256 numbers (chapter 11)",
    "signals:unknown-type": "a signal type the registry does not define (chapter 11)",
    **signal_types.conformance_errors(),
    "replication:bad-body": "a feed page the replication machine refuses (10.4)",
    "replication:over-cap": "a feed page that would pass the holder's feed-bytes cap (10.4)",
    "lsh:unknown-scheme": "an LSH scheme this version does not define (chapter 11)",
    "lsh:bad-signal": "a signal type the scheme does not bucket (chapter 11)",
    "lsh:bad-budget": "a probe budget out of range (chapter 11)",
    "derivative:unknown-scheme": "a derivative scheme this version does not define (chapter 13)",
    "derivative:bad-cell": "a cell label that is not canonical or not of the scheme (13)",
    "derivative:bad-size": "an image size out of range (chapter 13)",
    "derivative:bad-role": "a tile role other than query or index (chapter 13)",
    "derivative:bad-group": "a group reference that is not 8 bytes (chapter 13)",
    "derivative:bad-mask": "a cells mask out of range (chapter 13)",
    "uploader:bad-identifier": "an email or phone number that does not normalise (14, 3.1)",
    "uploader:bad-request": "a picture reference or digest list out of range (14, 4)",
    "uploader:bad-proof": "a holder's or keeper's evaluation that does not verify (14, 4)",
    "uploader:bad-entry": "an uploaders feed entry that breaks its rules (14, 7.2)",
    "log:out-of-range": "a proof or root for an index or size the log lacks (12, 9)",
    "log:bad-entry": "an entry that is not the canonical encoding of one schema (12, 3)",
    "log:bad-tree-head": "a signed tree head that does not parse (12, 6)",
    "log:bad-tree-head-signature": "a tree head whose signature does not verify (12, 6)",
    "log:inclusion-failed": "an inclusion proof that does not verify or is malformed (12, 4.2)",
    "log:consistency-failed": "a consistency proof that does not verify or is malformed (12, 5.2)",
    "log:fork": "two validly signed heads that cannot both be honest (12, 7)",
    "log:rollback": "a head older than one already presented (12, 7)",
    "log:truncated-log": "an export with fewer entries than its head covers (12, 8)",
    "log:tampered-entry": "an entry or stored leaf hash that was altered (12, 8)",
    "log:root-mismatch": "entries that do not hash to the signed root (12, 8)",
}
