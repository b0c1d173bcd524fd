"""Context on an upload: who uploaded it, how, and what the platform already knows.

A platform sends, with an upload, a pseudonymous **uploader reference** (its own opaque account
id, never an email), optional contact **identifier digests** (computed by the platform's client
from an email or phone number, specs/uploaders.md 3: used only, blinded, for repeat-uploader
signals) and optional **context**: account age, earlier confirmed strikes on this platform,
open reports against the account or the post, whether the uploader says they are the person
pictured (a self-upload), and the surface (public post, private message, profile picture).

All of it is validated here, stored with the upload (``upload_context``), shown to reviewers
with the case, and never sent to a peer. It moves review priority (:func:`priority`); it never
acts on its own, and a self-upload is never acted on without a person.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from blindmatch.node.errors import BlindmatchError
from blindmatch.node.storage.uploads import UploadStore
from blindmatch.protocol import uploaders as up

SURFACES = ("public-post", "private-message", "profile-picture")
_REF = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_COUNT = 100_000


class ContextError(BlindmatchError, ValueError):
    """A context field that is not what it should be; the message names the field."""

    code = "bad-request"


@dataclass(frozen=True)
class UploadContext:
    uploader_ref: str | None = None
    # (kind, digest) pairs: specs/uploaders.md 3.2, never the email or phone itself
    identifiers: tuple[tuple[str, bytes], ...] = ()
    account_age_days: int | None = None
    strikes: int | None = None  # earlier confirmed strikes on this platform, as it counts them
    open_reports: int | None = None
    self_upload: bool = False
    surface: str | None = None

    def for_reviewer(self) -> dict[str, Any]:
        """What a reviewer sees: everything but the identifier digests (only their kinds)."""
        out = {k: v for k, v in asdict(self).items() if k != "identifiers" and v is not None}
        out["identifiers"] = sorted({kind for kind, _ in self.identifiers})
        return out

    def to_json(self) -> str:
        d = asdict(self)
        d["identifiers"] = [[k, v.hex()] for k, v in self.identifiers]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UploadContext:
        d = json.loads(text)
        d["identifiers"] = tuple((k, bytes.fromhex(v)) for k, v in d.get("identifiers", []))
        return cls(**d)


def _count(raw: dict[str, Any], name: str, hi: int = MAX_COUNT) -> int | None:
    v = raw.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
        raise ContextError(f"context.{name}: an integer in 0..{hi}")
    return v


def parse(uploader: Any, context: Any) -> UploadContext:
    """Validate the ``uploader`` and ``context`` objects of an upload request (either may be
    None). ``uploader`` is ``{"ref": str, "identifiers": [{"kind", "digest"}]}`` with digests as
    64 hex digits (a client computes them with :func:`identifier`)."""
    ref: str | None = None
    idents: tuple[tuple[str, bytes], ...] = ()
    if uploader is not None:
        if not isinstance(uploader, dict) or set(uploader) - {"ref", "identifiers"}:
            raise ContextError("uploader: an object with ref and identifiers")
        ref = uploader.get("ref")
        if ref is not None and (not isinstance(ref, str) or not _REF.fullmatch(ref)):
            raise ContextError("uploader.ref: 1..128 characters of [A-Za-z0-9._:@/+=-]")
        raw_ids = uploader.get("identifiers", [])
        if not isinstance(raw_ids, list) or len(raw_ids) > up.MAX_IDENTIFIERS:
            raise ContextError(f"uploader.identifiers: a list of at most {up.MAX_IDENTIFIERS}")
        seen = []
        for i, x in enumerate(raw_ids):
            if (
                not isinstance(x, dict)
                or set(x) != {"kind", "digest"}
                or x["kind"] not in up.IDENTIFIER_KINDS
                or not isinstance(x["digest"], str)
                or not _DIGEST.fullmatch(x["digest"])
            ):
                raise ContextError(
                    f"uploader.identifiers[{i}]: {{kind: email|phone, digest: 64 hex digits}} "
                    "(the client computes the digest; never send the email or phone itself)"
                )
            pair = (x["kind"], bytes.fromhex(x["digest"]))
            if pair not in seen:
                seen.append(pair)
        idents = tuple(seen)
    if context is None:
        context = {}
    allowed = {"account_age_days", "strikes", "open_reports", "self_upload", "surface"}
    if not isinstance(context, dict) or set(context) - allowed:
        raise ContextError(f"context: an object with only {', '.join(sorted(allowed))}")
    self_upload = context.get("self_upload", False)
    if not isinstance(self_upload, bool):
        raise ContextError("context.self_upload: true or false")
    surface = context.get("surface")
    if surface is not None and surface not in SURFACES:
        raise ContextError(f"context.surface: one of {', '.join(SURFACES)}")
    return UploadContext(
        uploader_ref=ref,
        identifiers=idents,
        account_age_days=_count(context, "account_age_days", 36_500),
        strikes=_count(context, "strikes"),
        open_reports=_count(context, "open_reports"),
        self_upload=self_upload,
        surface=surface,
    )


def identifier(kind: str, value: str) -> dict[str, str]:
    """For clients: the request form of one contact identifier (its digest, never the value)."""
    return {"kind": kind, "digest": up.identifier_digest(kind, value).hex()}


# --- weighing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextWeights:
    """Review-priority weights of context signals (policy file ``[context]``). Safe defaults:
    each moves priority by a bounded amount; none of them can act on its own."""

    new_account_days: int = 30
    new_account_priority: int = 10
    strike_priority: int = 10  # per earlier confirmed strike the platform reports ...
    max_strikes_counted: int = 3  # ... up to this many
    recidivism_priority: int = 15  # per earlier actioned case of this uploader on this node
    max_recidivism_counted: int = 3
    open_report_priority: int = 15
    self_upload_priority: int = -45  # often the person's own post: reviewed, later, by a person
    surface_priority: dict[str, int] = field(
        default_factory=lambda: {"public-post": 5, "private-message": 0, "profile-picture": -10}
    )
    known_elsewhere_priority: int = 30  # specs/uploaders.md: "known elsewhere for this picture"


@dataclass(frozen=True)
class Signals:
    """What the node computed about an upload beyond the platform's context."""

    recidivism: int = 0  # earlier actioned cases of the same uploader reference here
    known_elsewhere: bool = False


def priority(w: ContextWeights, ctx: UploadContext | None, s: Signals) -> tuple[int, list[str]]:
    """The priority change and the signals that caused it (names only, for the reason and
    the transparency report's counts)."""
    if ctx is None:
        ctx = UploadContext()
    delta, fired = 0, []
    if ctx.account_age_days is not None and ctx.account_age_days < w.new_account_days:
        delta += w.new_account_priority
        fired.append("new-account")
    if ctx.strikes:
        delta += w.strike_priority * min(ctx.strikes, w.max_strikes_counted)
        fired.append("earlier-strikes")
    if s.recidivism:
        delta += w.recidivism_priority * min(s.recidivism, w.max_recidivism_counted)
        fired.append("repeat-uploader-here")
    if ctx.open_reports:
        delta += w.open_report_priority
        fired.append("open-reports")
    if ctx.surface is not None and w.surface_priority.get(ctx.surface, 0):
        delta += w.surface_priority[ctx.surface]
        fired.append(f"surface:{ctx.surface}")
    if ctx.self_upload:
        delta += w.self_upload_priority
        fired.append("self-upload")
    if s.known_elsewhere:
        delta += w.known_elsewhere_priority
        fired.append("known-elsewhere")
    return delta, fired


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"{what}: an integer in {lo}..{hi}")
    return v


def parse_weights(raw: dict[str, Any]) -> ContextWeights:
    """The policy file's ``[context]`` table; raises ValueError naming the setting."""
    d = ContextWeights()
    extra = set(raw) - set(ContextWeights.__dataclass_fields__)
    if extra:
        raise ValueError(f"[context]: unknown setting(s) {', '.join(sorted(extra))}")
    surfaces = raw.get("surface_priority", dict(d.surface_priority))
    if not isinstance(surfaces, dict) or set(surfaces) - set(SURFACES):
        raise ValueError(f"context.surface_priority: keys among {', '.join(SURFACES)}")
    # Bounded so that no weight, nor all together, can lift a case into action: priority only
    # orders the queue.
    return ContextWeights(
        **{
            name: _int(raw.get(name, getattr(d, name)), f"context.{name}", lo, hi)
            for name, lo, hi in (
                ("new_account_days", 0, 36_500),
                ("new_account_priority", -100, 100),
                ("strike_priority", -100, 100),
                ("max_strikes_counted", 0, 10),
                ("recidivism_priority", -100, 100),
                ("max_recidivism_counted", 0, 10),
                ("open_report_priority", -100, 100),
                ("self_upload_priority", -100, 0),
                ("known_elsewhere_priority", -100, 100),
            )
        },
        surface_priority={
            k: _int(v, f"context.surface_priority.{k}", -100, 100) for k, v in surfaces.items()
        },
    )


# --- storage ------------------------------------------------------------------------------


class ContextStore:
    """An upload's context, by the platform's content reference, over its store."""

    def __init__(self, store: UploadStore) -> None:
        self.store = store

    async def save(self, content_ref: str, ctx: UploadContext, now: int) -> None:
        await self.store.save_context(content_ref, ctx.uploader_ref, ctx.to_json(), now)

    async def get(self, content_ref: str) -> UploadContext | None:
        stored = await self.store.context(content_ref)
        return UploadContext.from_json(stored) if stored is not None else None

    async def recidivism(self, uploader_ref: str | None, content_ref: str) -> int:
        """Earlier uploads of the same uploader reference on this node that a case actioned
        (by a person or the policy), not counting this content and not reversed."""
        if not uploader_ref:
            return 0
        return await self.store.actioned_elsewhere(uploader_ref, content_ref)
