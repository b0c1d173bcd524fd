"""The matching exchange between a querier and one holder, as plain functions ("sans-I/O").

Querier, per peer and match job:

    ex = PeerExchange(peer_id, peer_key, scheme, queries)
    body = ex.evaluate_request()                     # -> oprf.evaluate
    ex.on_evaluated(reply_body, replica)             # verify proof, unblind, look up buckets
    while batch := ex.next_threshold_requests(encryptions):  # -> threshold.query, one per hash
        for body in batch:
            ex.on_answer(body, reply_body, encryptions)
    ex.confirmed                                     # matches, each confirmed privately

``next_threshold_requests`` hands out the threshold queries in rounds: a plain exchange asks
about every candidate in its first round; a tile exchange (``protocol/derivative.py``) asks
only as many as the derivative rule needs (``specs/derivatives.md`` 6.5), because each query
hash it asks about costs the holder the verification of 256 bit proofs.

Holder:

    reply = answer_evaluate(server_key, body)
    reply = answer_threshold(verified_query, items, body, default_bands)

A bucket hit is a **candidate**: the 24 bytes ``tag || table reference`` of the entry it found
(``protocol.index``), different for the same item in every table and key epoch, so the querier
cannot tell two hits on one item from hits on two. The holder resolves candidates itself and
answers each with a sealed release (``crypto.release``): the item's reference and metadata are
readable only when the threshold test says ``HD <= T`` (spec 8.5).

The node wraps these in signed envelopes, sends them, charges budgets and stores state; every
step here can be driven from a test with byte strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from blindmatch.crypto import oprf, sodium
from blindmatch.crypto import release as sealed_release
from blindmatch.crypto import threshold as th
from blindmatch.protocol import canonical, schema
from blindmatch.protocol.index import ITEM_REF_BYTES, HolderReferences, Lookup

Body = dict[str, Any]
MAX_CONFIRMED_TOKENS = 16  # tokens a threshold.query may show (7.3)


def query_ref(wire: bytes) -> bytes:
    """How a later ``threshold.query`` names an encrypted query the holder keeps (7.3): the
    SHA-256 of its 49,200 bytes (``threshold.encrypt``'s ``query_sha256``)."""
    return hashlib.sha256(wire).digest()


class ExchangeError(ValueError):
    """The peer's reply breaks the protocol (bad proof, wrong size, unexpected item...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # raised in worker processes too
        return (type(self), (self.code, self.message))


@dataclass(frozen=True)
class QueryHash:
    """One hash a querier matches: an upload's PDQ hash or one of its dihedral variants."""

    hash: bytes
    float_vector: Any = None  # PDQ's float vector, for multi-probe; None for base keys only
    variant: str = "original"


@dataclass(frozen=True)
class Confirmation:
    """A match confirmed by the private threshold test."""

    peer: str
    item_ref: bytes
    query_index: int
    variant: str
    band: int
    release: Mapping[str, Any]


class EncryptionCache:
    """Encrypted queries are made once per query hash and reused for every peer."""

    def __init__(
        self,
        random_bytes: Callable[[int], bytes],
        make_key: Callable[[], th.QuerierKey] | None = None,
    ) -> None:
        self._random_bytes = random_bytes
        self._make_key = make_key or th.QuerierKey.generate
        self._cache: dict[bytes, tuple[th.QuerierKey, th.EncryptedQuery, bytes]] = {}

    def get(self, query_hash: bytes) -> tuple[th.QuerierKey, th.EncryptedQuery, bytes]:
        """Not safe to call from two threads at once for a new hash: a caller running peers
        concurrently serialises the calls that may encrypt (the node holds a per-job lock)."""
        if query_hash not in self._cache:
            key = self._make_key()
            query_id = self._random_bytes(th.QUERY_ID_BYTES)
            encrypted = th.encrypt_query(key, query_hash, query_id)
            self._cache[query_hash] = (key, encrypted, encrypted.to_bytes())
        return self._cache[query_hash]

    def __len__(self) -> int:
        return len(self._cache)


@dataclass
class PeerExchange:
    peer: str
    peer_voprf_key: bytes
    scheme: Any  # a protocol.lsh scheme: index_keys(), probe_keys(), name
    queries: Sequence[QueryHash]
    probe_budget: int | None = None
    # state
    _keys: list[bytes] = field(default_factory=list)
    _owner: list[int] = field(default_factory=list)
    _blinds: list[bytes] = field(default_factory=list)
    _blinded: list[bytes] = field(default_factory=list)
    candidates: dict[int, list[bytes]] = field(default_factory=dict)
    confirmed: list[Confirmation] = field(default_factory=list)
    probes_sent: int = 0
    asked: set[int] = field(default_factory=set)  # query indices with candidates asked
    first_round: int | None = 1  # candidates per query hash in its first round (None: all)
    # per query index: the tokens of the items its answers confirmed (8.5), token -> item
    tokens: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    _asked_upto: dict[int, int] = field(default_factory=dict)
    # Later rounds name a query the holder already answered by its digest (``query_ref``,
    # 7.3) instead of sending its 49,200 bytes again; off by default, for holders driven
    # in memory that keep nothing between requests (the node turns it on).
    refer_by_digest: bool = False
    # The holder refused a field of the rounds (``confirmed``, ``query_ref``) as an older
    # version does (``bad-body``): from then on, whole queries, no tokens, the rest at once.
    legacy_holder: bool = False
    _held: set[int] = field(default_factory=set)  # query indices the holder answered whole
    # the query index each request handed out asks for: two query hashes may be the same
    # bytes (a tile of two cells, two variants of a symmetric picture), so their requests
    # carry the same encrypted query and only the request itself says whose answers they are
    _owners: list[tuple[Body, int]] = field(default_factory=list)

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(b"blindmatch-v1 key id" + self.peer_voprf_key).digest()[:8]

    def release_fields(self) -> Mapping[str, schema.Field] | None:
        """The schema a matched item's release must follow (None: the item reference only; the
        signal registry's exchange names every registered type's fields)."""
        return None

    def probe_keys(self, query: QueryHash) -> list[bytes]:
        """The bucket keys one query hash probes (a subclass may key some hashes otherwise)."""
        return self.scheme.probe_keys(query.hash, query.float_vector, self.probe_budget)

    def evaluate_request(self) -> Body:
        """Probe keys of every query hash, blinded, in one batch (one round trip per peer)."""
        keys: list[bytes] = []
        owner: list[int] = []
        for qi, q in enumerate(self.queries):
            probes = self.probe_keys(q)
            keys += probes
            owner += [qi] * len(probes)
        self._keys, self._owner = keys, owner
        self._blinds, self._blinded = oprf.blind(keys, oprf.Mode.VOPRF)
        self.probes_sent = len(keys)
        return {"key_id": self.key_id, "elements": self._blinded}

    def on_evaluated(self, body: Body, replica: Lookup) -> dict[int, list[bytes]]:
        if body["key_id"] != self.key_id:
            raise ExchangeError("bad-body", "reply names another VOPRF key")
        if len(body["elements"]) != len(self._blinded):
            raise ExchangeError("bad-body", "reply has a different number of evaluations")
        try:
            outputs = oprf.finalize(
                self._keys,
                self._blinds,
                body["elements"],
                oprf.Mode.VOPRF,
                self._blinded,
                body["proof"],
                self.peer_voprf_key,
            )
        except oprf.OprfError as exc:
            raise ExchangeError("bad-proof", f"VOPRF proof from {self.peer} fails: {exc}") from exc
        per_query: dict[int, list[bytes]] = {}
        for qi, found in zip(self._owner, replica.lookup_many(outputs), strict=True):
            for ref in found:
                refs = per_query.setdefault(qi, [])
                if ref not in refs:
                    refs.append(ref)
        self.candidates = per_query
        return per_query

    def threshold_requests(self, encryptions: EncryptionCache, max_items: int = 64) -> list[Body]:
        """Requests for every candidate of every query hash at once (no staging)."""
        return self._requests_for(
            [(qi, len(self.unasked(qi))) for qi in sorted(self.candidates)], encryptions, max_items
        )

    def unasked(self, qi: int) -> list[bytes]:
        """The candidates of query hash ``qi`` not asked about yet, best probe first."""
        return self.candidates.get(qi, [])[self._asked_upto.get(qi, 0) :]

    def mark_asked(self, qi: int, n: int) -> list[bytes]:
        """Take the next ``n`` unasked candidates of query hash ``qi`` as asked; returns them."""
        refs = self.unasked(qi)[:n]
        if refs:
            self.asked.add(qi)
            self._asked_upto[qi] = self._asked_upto.get(qi, 0) + len(refs)
        return refs

    def next_round(self) -> list[tuple[int, int]]:
        """``(query index, how many of its unasked candidates)`` to ask next; empty when no
        more are needed. Each query hash's first ``first_round`` candidates (its best probes)
        first, then the rest in one more round, showing the tokens of what the first round
        confirmed, so the holder answers that item's other candidates ``same`` instead of
        with a threshold answer each (8.5); ``first_round = None`` asks everything at once.
        A subclass may ask fewer when its rule needs fewer."""
        out = []
        for qi in sorted(self.candidates):
            rest = len(self.unasked(qi))
            if not rest:
                continue
            first = self.first_round is not None and qi not in self.asked and not self.legacy_holder
            out.append((qi, min(rest, self.first_round) if first and self.first_round else rest))
        return out

    def next_threshold_requests(
        self, encryptions: EncryptionCache, max_items: int = 64
    ) -> list[Body]:
        """The next round of threshold queries, decided on the answers so far; [] when done.
        Call it again after feeding every answer of the round to :meth:`on_answer`."""
        return self._requests_for(self.next_round(), encryptions, max_items)

    def _requests_for(
        self, chosen: Sequence[tuple[int, int]], encryptions: EncryptionCache, max_items: int
    ) -> list[Body]:
        requests = []
        for qi, n in chosen:
            refs = self.mark_asked(qi, n)
            if not refs:
                continue
            _, _, wire = encryptions.get(self.queries[qi].hash)
            shown = [] if self.legacy_holder else sorted(self.tokens.get(qi, {}))
            by_ref = self.refer_by_digest and not self.legacy_holder and qi in self._held
            for start in range(0, len(refs), max_items):
                req: Body = {"items": refs[start : start + max_items]}
                if by_ref:
                    req["query_ref"] = query_ref(wire)
                else:
                    req["query"] = wire
                if shown:
                    req["confirmed"] = shown[:MAX_CONFIRMED_TOKENS]
                requests.append(req)
                self._owners.append((req, qi))
        return requests

    def query_index_of(self, request: Body, encryptions: EncryptionCache) -> int:
        for sent, qi in self._owners:
            if sent is request:
                return qi
        # a request this exchange did not hand out as is (a caller's copy): by its query
        for qi in self.candidates:
            wire = encryptions.get(self.queries[qi].hash)[2]
            if "query" in request and wire == request["query"]:
                return qi
            if "query_ref" in request and query_ref(wire) == request["query_ref"]:
                return qi
        raise ExchangeError("internal", "request does not belong to this exchange")

    def on_refused(self, request: Body, code: str, encryptions: EncryptionCache) -> Body | None:
        """The request to send instead of one the holder refused with ``code``, or None when
        the refusal stands (the caller raises it). ``unknown-query``: the holder no longer
        keeps the query the request named by digest (evicted, expired, restarted), so it is
        sent whole. ``bad-body`` to a request using a field of the rounds (``query_ref``,
        ``confirmed``, 7.3): the holder runs an older version that refuses them, so the
        request goes again in the older form, and the rest of this exchange asks in it (whole
        queries, no tokens, every remaining candidate at once): the same candidates, answered
        in full, so a match is still found, at the older price."""
        uses_rounds = "query_ref" in request or "confirmed" in request
        if code == "unknown-query" and "query_ref" in request:
            qi = self.query_index_of(request, encryptions)
            self._held.discard(qi)
            retry = {k: v for k, v in request.items() if k != "query_ref"}
            retry["query"] = encryptions.get(self.queries[qi].hash)[2]
            self._owners.append((retry, qi))
            return retry
        if code == "bad-body" and uses_rounds and not self.legacy_holder:
            qi = self.query_index_of(request, encryptions)
            self.legacy_holder = True
            retry = {"query": encryptions.get(self.queries[qi].hash)[2], "items": request["items"]}
            self._owners.append((retry, qi))
            return retry
        return None

    def on_answer(
        self, request: Body, body: Body, encryptions: EncryptionCache
    ) -> list[Confirmation]:
        """Open every answer; a match is an answer whose sealed release opens (8.5). The holder
        answers every candidate, in request order."""
        qi = self.query_index_of(request, encryptions)
        self._owners = [(r, q) for r, q in self._owners if r is not request]
        key, encrypted, _ = encryptions.get(self.queries[qi].hash)
        if body["query_id"] != encrypted.query_id:
            raise ExchangeError("bad-body", "answer is for another query")
        if "query" in request:
            self._held.add(qi)  # it answered the whole query: later rounds may name it
        asked = list(request["items"])
        answers = body["answers"]
        if [a["item"] for a in answers] != asked:
            raise ExchangeError("bad-body", "answers must name every candidate asked, in order")
        shown = set(request.get("confirmed") or ())
        found: list[Confirmation] = []
        for answer in answers:
            candidate = answer["item"]
            if "same" in answer:
                # an item this query already confirmed, named through another table (8.5)
                if set(answer) != {"item", "same"} or answer["same"] not in shown:
                    raise ExchangeError("bad-body", "a 'same' answer names a token not shown")
                continue
            if "response" not in answer or "sealed" not in answer:
                raise ExchangeError("bad-body", "an answer needs a response and a sealed release")
            try:
                opened = sealed_release.open_sealed(
                    key,
                    encrypted.query_id,
                    candidate,
                    th.ThresholdResponse.from_bytes(answer["response"]),
                    answer["sealed"],
                )
            except (th.ThresholdError, sealed_release.ReleaseError) as exc:
                raise ExchangeError("bad-body", f"threshold response: {exc}") from exc
            if opened is None:
                continue
            release = decode_release(opened.release, self.release_fields())
            item_ref = release.pop("item")
            self.tokens.setdefault(qi, {})[opened.token] = item_ref
            if any(c.item_ref == item_ref and c.query_index == qi for c in self.confirmed + found):
                continue  # the same item through another table: one confirmation
            found.append(
                Confirmation(
                    peer=self.peer,
                    item_ref=item_ref,
                    query_index=qi,
                    variant=self.queries[qi].variant,
                    band=opened.band,
                    release=release,
                )
            )
        self.confirmed += found
        return found


# --- holder -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HolderItem:
    """What the holder knows about one of its items when a querier asks about it."""

    item_ref: bytes  # the item's stable reference, released (sealed) with a match
    hash: bytes
    bands: tuple[int, ...]  # the holder's policy: band bounds, the last is the bank threshold
    release: Mapping[str, Any]  # what the policy releases to a querier about a match


@dataclass(frozen=True)
class DecoyItem:
    """A candidate that names one of the holder's decoys, or an item it no longer answers for
    (spec 8.7): answered as a decoy, with the bands of the policy it was published under, so
    its answers look like those of the entries it hides among."""

    bands: tuple[int, ...]


_RELEASE_ITEM = {"item": schema.Field(schema.blob(exact=ITEM_REF_BYTES))}


def encode_release(item_ref: bytes, release: Mapping[str, Any]) -> bytes:
    """The sealed plaintext: the canonical map of the release with the item's reference."""
    return canonical.encode({**dict(release), "item": item_ref})


def decode_release(data: bytes, fields: Mapping[str, schema.Field] | None = None) -> dict[str, Any]:
    """The opened release: a canonical map with the item's reference and, when ``fields`` is
    given (the signal registry's release schema), exactly those optional fields."""
    try:
        value = canonical.decode(data)
        if fields is not None:
            return schema.check({**_RELEASE_ITEM, **fields}, value, "release")
        if not isinstance(value, dict):
            raise schema.SchemaError("release", "must be a map")
        schema.check(_RELEASE_ITEM, {"item": value.get("item")}, "release")
        return dict(value)
    except (canonical.CanonicalError, schema.SchemaError) as exc:
        raise ExchangeError("bad-body", f"sealed release: {exc}") from exc


def answer_evaluate(key: oprf.ServerKey, key_id: bytes, body: Body) -> Body:
    if body["key_id"] != key_id:
        raise ExchangeError("not-allowed", "unknown or retired VOPRF key id")
    try:
        evaluated, proof = oprf.blind_evaluate(key, body["elements"], oprf.Mode.VOPRF)
    except oprf.OprfError as exc:
        raise ExchangeError("bad-body", str(exc)) from exc
    assert proof is not None
    return {"key_id": key_id, "elements": evaluated, "proof": proof}


def verify_threshold_query(body: Body) -> th.VerifiedQuery:
    try:
        return th.verify_query(th.EncryptedQuery.from_bytes(body["query"]))
    except th.ThresholdError as exc:
        raise ExchangeError("bad-proof", str(exc)) from exc


def resolve_in_memory(
    refs: HolderReferences, items: Mapping[bytes, HolderItem], body: Body
) -> dict[bytes, HolderItem | None]:
    """What each candidate of a ``threshold.query`` names, for a holder whose items are in
    memory (simulations, benchmarks, tests; the node resolves against its database)."""
    out: dict[bytes, HolderItem | None] = {}
    for c in body["items"]:
        ref = refs.resolve(c)
        out[c] = items.get(ref) if ref is not None else None
    return out


def answer_threshold(
    verified: th.VerifiedQuery,
    items: Mapping[bytes, HolderItem | DecoyItem | None],
    body: Body,
    default_bands: Sequence[int],
    scalar_key: bytes | None = None,
) -> Body:
    """One answer per named candidate, in order (8.5). ``items``: what each candidate resolved
    to (None: unknown, withdrawn or forged). Every answer is a full, sealed threshold answer of
    the same cost: for a candidate naming an item, against the item's hash (a second candidate
    naming the same item gets its own fresh answer); for one naming nothing, a **decoy**
    against a fresh random hash with the holder's ``default_bands``. So neither what the
    querier receives nor how long the holder takes tells two hits on one item from hits on
    two, or a withdrawn item from a far one.

    With the holder's ``scalar_key`` (``crypto.release.scalar_key``), the release point of
    every answer about one item to this very query is the same ``M`` (``release_scalar``), so
    a querier whose test matched that item can show its token (``confirmed``) in a later
    round: a candidate naming an item whose token it shows is answered ``{item, same: token}``
    without a threshold answer. Only a match reveals ``M``, so only a confirmed item's other
    candidates are ever linked, and the querier already links those by opening them."""
    query_bytes = verified.query.to_bytes() if scalar_key is not None else b""
    shown = set(body.get("confirmed") or ())
    mus: dict[bytes, tuple[bytes, bytes]] = {}  # item_ref -> (mu, token)

    def scalar_of(item: HolderItem) -> tuple[bytes, bytes] | None:
        if scalar_key is None:
            return None
        if item.item_ref not in mus:
            mu = sealed_release.release_scalar(scalar_key, query_bytes, item.item_ref)
            token = sealed_release.confirmation_token(
                verified.query.query_id, sodium.scalarmult_base(mu)
            )
            mus[item.item_ref] = (mu, token)
        return mus[item.item_ref]

    answers: list[Body] = []
    for candidate in body["items"]:
        item = items.get(candidate)
        if item is None or isinstance(item, DecoyItem):
            bands = default_bands if item is None else item.bands
            answer = sealed_release.seal(
                verified, sodium.random_bytes(th.HASH_BYTES), bands, candidate, b""
            )
        else:
            derived = scalar_of(item)
            if derived is not None and derived[1] in shown:
                answers.append({"item": candidate, "same": derived[1]})
                continue
            answer = sealed_release.seal(
                verified,
                item.hash,
                item.bands,
                candidate,
                encode_release(item.item_ref, item.release),
                mu=derived[0] if derived is not None else None,
            )
        answers.append(
            {"item": candidate, "response": answer.response.to_bytes(), "sealed": answer.sealed}
        )
    return {"query_id": verified.query.query_id, "answers": answers}
