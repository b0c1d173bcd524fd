"""The console's plain language: how a variant, a band, a state, an event and a time read."""

from __future__ import annotations

import datetime
from typing import Any

from blindmatch.node.cases.decisions import Case

_VARIANTS = {
    "identity": "as uploaded",
    "flip_h": "mirrored left to right",
    "flip_v": "upside down",
    "rotate180": "rotated 180°",
    "flip_plus1": "transposed",
    "flip_h+transpose": "rotated 90°",
    "flip_v+transpose": "rotated 90°",
    "identity+transpose": "transposed",
    "rotate180+transpose": "transposed and rotated",
}


_STATES = {
    "queued": "Waiting for review",
    "quarantined": "Quarantined (matched unusually often)",
    "escalated": "Escalated",
    "actioned": "Actioned",
    "dismissed": "Dismissed",
    "closed": "Closed",
}


_OPINIONS = {
    "none": "No feedback yet",
    "confirmed": "Confirmed by other services",
    "disputed": "Disputed (a service found it wrong, or an appeal was upheld)",
    "withdrawn": "Withdrawn by the holder",
}


def short(ref: bytes | str, n: int = 8) -> str:
    text = ref.hex() if isinstance(ref, bytes) else ref
    return text[:n] + "…"


def case_label(case_ref: bytes) -> str:
    return f"Case {case_ref.hex()[:8]}"


_PREFIXES = {
    "trimmed": "with its border removed",
    "content": "the picture inside the upload (a caption or background cut away)",
    "framed": "the picture inside a frame in the upload",
    "nested": "the picture inside several layers of an app's screen in the upload",
}


def variant_text(variant: str) -> str:
    """How the upload had to be turned or cut to match, in words (never a raw variant name)."""
    import re

    cell = re.fullmatch(r"g([1-9][0-9]?)c([0-9]{1,2})r([0-9]{1,2})", variant)
    if cell:
        grid, col, row = (int(x) for x in cell.groups())
        return f"one part of the picture (row {row + 1}, column {col + 1} of a {grid}×{grid} grid)"
    head, _, rest = variant.partition("/")
    if head == "cell" and rest.isdigit():
        return "one picture of a collage in the upload"
    if head == "uncrop" and rest.endswith("+flip_h") and rest[: -len("+flip_h")].isdigit():
        return f"mirrored, with about {rest[: -len('+flip_h')]}% cropped off its edges"
    if head == "uncrop" and rest.isdigit():
        return f"with about {rest}% cropped off its edges"
    if head in _PREFIXES and rest:
        inner = variant_text(rest)
        return _PREFIXES[head] if inner == "as uploaded" else f"{_PREFIXES[head]}, {inner}"
    return _VARIANTS.get(variant, variant.replace("_", " ").replace("+", " and "))


_CORNERS = {"tl": "top left", "tr": "top right", "bl": "bottom left", "br": "bottom right"}


def banked_crop_text(crop: object) -> str:
    """How a match through one of the holder's banked crops (specs/signals-and-lsh.md 3.5)
    reads: the upload is the banked picture cut down from one corner."""
    import re

    found = (
        re.fullmatch(r"crop/(tl|tr|bl|br|c)/([1-9][0-9]?)", crop) if isinstance(crop, str) else None
    )
    if not found:
        return ""
    corner, percent = found.groups()
    if corner == "c":
        return f"the banked picture cropped about its centre (about {percent}% cut off)"
    return (
        f"an off-centre crop of the banked picture (its {_CORNERS[corner]} part, about"
        f" {percent}% cut off two edges)"
    )


def match_text(variant: str, release: dict | None = None) -> str:
    """How it matched: the upload's variant, and the banked crop it met, if any."""
    text = variant_text(variant)
    crop = banked_crop_text((release or {}).get("banked_crop"))
    return f"{text}; against {crop}" if crop else text


_MATCHED = {
    "survivor-submitted": "a picture a survivor reported to {holder}",
    "moderator-confirmed": "a picture {holder}'s moderators confirmed as abuse",
    "peer-sourced": "a picture {holder} received from another service",
    "protected-source": "a photo a person asked {holder} to protect",
    "generator": "a picture an AI generator ({holder}) says it made",
}


def matched_text(case: Case) -> str:
    """What the upload matched, in plain words: never 'the protected picture', which the
    reviewer does not see."""
    provenance = str(case.release.get("provenance") or "")
    what = _MATCHED.get(provenance, "a picture held by {holder}").format(holder=case.holder)
    kind = (case.release.get("derivative") or {}).get("kind")
    if kind == "derivative":
        return f"an edited version of {what}"
    return what


def band_text(band: int) -> str:
    if band <= 8:
        closeness = "very close"
    elif band <= 16:
        closeness = "close"
    else:
        closeness = "similar"
    return f"{closeness}: differs in at most {band} of 256 bits"


def when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


def age(seconds: int) -> str:
    seconds = max(0, seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} days"


def event_text(event: str, actor: str, detail: dict[str, Any]) -> str:
    """A case event in words (plain text: the templates escape it)."""
    kind, _, arg = event.partition(":")
    who = str(actor)
    reason = detail.get("reason") if isinstance(detail, dict) else None
    because = f" — “{reason}”" if reason else ""
    if kind == "opened":
        return f"Opened by the policy, {_STATES.get(arg, arg).lower()}{because}"
    if kind == "decided":
        return f"Decision: {arg} by {who}{because}"
    if kind == "media" and arg == "revealed":
        return f"Original image revealed to {who}"
    if kind == "appeal":
        text = {"opened": "Appeal opened by the uploader", "upheld": "Appeal upheld",
                "denied": "Appeal denied"}.get(arg, f"Appeal {arg}")  # fmt: skip
        return f"{text}{'' if arg == 'opened' else ' by ' + who}{because}"
    if kind == "re-review":
        return f"Re-review requested: {arg} reported by {who}"
    if kind == "closed":
        return f"Closed ({arg}) by {who}"
    return f"{event} by {who}{because}"
