"""Match policy: what happens to a confirmed match, from a readable TOML file validated at load.

    [auto_action]                 # all must hold for an action without a person
    max_band = 8                  # only very close matches
    provenance = ["moderator-confirmed", "survivor-submitted"]
    trusted_sources = ["hub"]     # node ids whose items may be auto-actioned
    min_confirmations = 1         # independent confirmations from other nodes
    max_disputes = 0

    [review]
    base_priority = 50
    band_priority = { 8 = 30, 16 = 20, 31 = 0 }
    provenance_priority = { "survivor-submitted" = 15, "protected-source" = 10, "generator" = 10 }
    disputed_penalty = 25         # a disputed item is still reviewed, but later
    derivative_priority = 40      # an edit of a protected source photo (specs/derivatives.md)
    protected_copy_priority = -45 # a near-exact copy of a protected source: often the person's
                                  # own harmless post; never auto-actioned, reviewed last
    generator_priority = 25       # a federation generator says it made the picture

    [allowlist]
    banks = ["allowlist"]         # a local match in these banks suppresses every other match

    [quarantine]                  # a hash that suddenly matches far too much is held for review
    window_s = 3600
    min_matches = 20
    factor = 10.0                 # ... and more than factor x its baseline per window

    [context]                     # the upload's context (node/cases/context.py) moves priority
    new_account_days = 30         # an account younger than this ...
    new_account_priority = 10     # ... is reviewed sooner
    strike_priority = 10          # per earlier confirmed strike the platform reports (max 3)
    recidivism_priority = 15      # per earlier actioned case of the same uploader here (max 3)
    open_report_priority = 15
    self_upload_priority = -45    # the uploader says they are pictured: later, never automatic
    surface_priority = { "public-post" = 5, "private-message" = 0, "profile-picture" = -10 }
    known_elsewhere_priority = 30 # specs/uploaders.md: known elsewhere for this picture

Anything not written takes the defaults below, which never act without a person. Context only
orders the review queue: it never acts on its own, and a self-upload is never acted on
automatically, whatever the match.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindmatch.node.cases.context import ContextWeights, Signals, UploadContext, parse_weights
from blindmatch.node.cases.context import priority as context_priority
from blindmatch.node.errors import BlindmatchError
from blindmatch.protocol.messages import PROVENANCE_CLASSES


class PolicyError(BlindmatchError, ValueError):
    code = "bad-policy"


@dataclass(frozen=True)
class AutoAction:
    enabled: bool = False
    max_band: int = 8
    provenance: tuple[str, ...] = ("moderator-confirmed",)
    trusted_sources: tuple[str, ...] = ()
    min_confirmations: int = 1
    max_disputes: int = 0


@dataclass(frozen=True)
class Review:
    base_priority: int = 50
    band_priority: dict[int, int] = field(default_factory=lambda: {8: 30, 16: 20, 31: 0})
    provenance_priority: dict[str, int] = field(
        default_factory=lambda: {"survivor-submitted": 15, "protected-source": 10, "generator": 10}
    )
    disputed_penalty: int = 25
    derivative_priority: int = 40
    protected_copy_priority: int = -45
    generator_priority: int = 25


@dataclass(frozen=True)
class Quarantine:
    window_s: int = 3600
    min_matches: int = 20
    factor: float = 10.0


@dataclass(frozen=True)
class Policy:
    auto_action: AutoAction = AutoAction()
    review: Review = Review()
    allowlist_banks: tuple[str, ...] = ("allowlist",)
    quarantine: Quarantine = Quarantine()
    context: ContextWeights = field(default_factory=ContextWeights)


@dataclass(frozen=True)
class Verdict:
    action: str  # "auto-action" | "review" | "quarantine" | "suppress"
    priority: int
    reason: str
    signals: tuple[str, ...] = ()  # the context signals that moved it (names, never values)


@dataclass(frozen=True)
class MatchFacts:
    holder: str
    band: int
    provenance: str | None
    confirmations: int
    disputes: int
    withdrawn: bool
    allowlisted: bool
    matches_this_window: int
    baseline_per_window: float
    kind: str | None = None  # "copy" / "derivative" of a protected source, else None
    generator_confirmed: bool = False  # a roster generator banked the picture
    context: UploadContext | None = None  # what the platform sent with the upload
    signals: Signals = field(default_factory=Signals)  # what the node computed


def decide(policy: Policy, f: MatchFacts) -> Verdict:
    """The policy's verdict on one confirmed match. Pure; every branch says why."""
    if f.allowlisted:
        return Verdict("suppress", 0, "the content matches a local allowlist bank")
    if f.withdrawn:
        return Verdict("suppress", 0, "the holder withdrew the item")
    # Context moves priority only: it is added below to a person's queue, never to a reason to
    # act; no branch that acts reads it, except that a self-upload stops automatic action.
    delta, fired = context_priority(policy.context, f.context, f.signals)
    signals = tuple(fired)
    because = f"; context: {', '.join(fired)}" if fired else ""
    q = policy.quarantine
    if f.matches_this_window >= q.min_matches and f.matches_this_window > q.factor * max(
        1.0, f.baseline_per_window
    ):
        return Verdict(
            "quarantine",
            max(0, policy.review.base_priority + 40 + delta),
            f"the item matched {f.matches_this_window} times this window against a baseline of "
            f"{f.baseline_per_window:.1f}: held for review, not acted on{because}",
            signals,
        )
    a = policy.auto_action
    protected_copy = f.provenance == "protected-source" and f.kind != "derivative"
    self_upload = f.context is not None and f.context.self_upload
    if (
        a.enabled
        and not self_upload  # the uploader says they are pictured: a person decides
        and not protected_copy  # specs/derivatives.md 6.3: never without a person
        and f.band <= a.max_band
        and f.provenance in a.provenance
        and f.holder in a.trusted_sources
        and f.confirmations >= a.min_confirmations
        and f.disputes <= a.max_disputes
    ):
        return Verdict(
            "auto-action",
            0,
            f"band <= {f.band}, {f.provenance} from trusted {f.holder}, "
            f"{f.confirmations} confirmation(s), {f.disputes} dispute(s)",
            signals,
        )
    r = policy.review
    priority = r.base_priority
    reason = _why_not_automatic(a, f)
    priority += next((v for b, v in sorted(r.band_priority.items()) if f.band <= b), 0)
    priority += r.provenance_priority.get(f.provenance or "", 0)
    if f.kind == "derivative":
        priority += r.derivative_priority
        reason = (
            "an edited version of a photo a person asked to protect: only a person can tell an"
            " abusive fake from an ordinary edit"
        )
    elif protected_copy:
        priority += r.protected_copy_priority
        reason = (
            "a near-exact copy of a photo a person asked to protect, which is often their own"
            " post: only a person can tell"
        )
    if f.generator_confirmed:
        priority += r.generator_priority
        reason += "; a federation generator says it made this picture"
    if f.disputes:
        priority -= r.disputed_penalty
    if self_upload:
        reason += "; the uploader says they are the person pictured (self-upload)"
    return Verdict("review", max(0, priority + delta), reason + because, signals)


def _why_not_automatic(a: Any, f: MatchFacts) -> str:
    """Why this match was not acted on automatically, in words a reviewer can check."""
    if not a.enabled:
        return "this service's policy never removes anything without a person"
    gaps = []
    if f.band > a.max_band:
        gaps.append(f"the match is looser (within {f.band} bits) than the {a.max_band} allowed")
    if f.provenance not in a.provenance:
        gaps.append(f"hashes from {f.provenance or 'an unknown source'} are always reviewed")
    if f.holder not in a.trusted_sources:
        gaps.append(f"{f.holder} is not among the holders trusted for automatic action")
    if f.confirmations < a.min_confirmations:
        gaps.append(
            f"{f.confirmations} other service(s) confirmed this item; {a.min_confirmations} needed"
        )
    if f.disputes > a.max_disputes:
        gaps.append(f"{f.disputes} service(s) disputed this item")
    return "not removed automatically: " + "; ".join(gaps) if gaps else "review required"


def _ints(value: Any, what: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise PolicyError(f"{what}: an integer in {lo}..{hi}")
    return value


def _number(value: Any, what: str, lo: float, hi: float) -> float:
    """A finite number in lo..hi (NaN compares false with everything, so a plain range check
    would let ``nan`` through and silently switch the rule off)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PolicyError(f"{what}: a number in {lo:g}..{hi:g}")
    try:
        number = float(value)
    except OverflowError:
        raise PolicyError(f"{what}: a number in {lo:g}..{hi:g}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise PolicyError(f"{what}: a number in {lo:g}..{hi:g}")
    return number


def _names(value: Any, what: str, choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{what}: a list of strings")
    if choices is not None and set(value) - set(choices):
        raise PolicyError(f"{what}: unknown value(s) {sorted(set(value) - set(choices))}")
    return tuple(value)


def _only(section: Any, what: str, allowed: set[str]) -> None:
    if not isinstance(section, dict):
        raise PolicyError(f"[{what}]: a table of settings")
    extra = set(section) - allowed
    if extra:
        raise PolicyError(f"[{what}]: unknown setting(s) {', '.join(sorted(extra))}")


def parse(raw: dict[str, Any]) -> Policy:
    _only(raw, "policy", {"auto_action", "review", "allowlist", "quarantine", "context"})
    c_raw = raw.get("context", {})
    if not isinstance(c_raw, dict):
        raise PolicyError("[context]: a table")
    try:
        context = parse_weights(c_raw)
    except ValueError as exc:
        raise PolicyError(str(exc)) from exc
    a_raw = raw.get("auto_action", {})
    _only(
        a_raw,
        "auto_action",
        {
            "enabled",
            "max_band",
            "provenance",
            "trusted_sources",
            "min_confirmations",
            "max_disputes",
        },
    )
    d = AutoAction()
    enabled = a_raw.get("enabled", bool(a_raw))
    if not isinstance(enabled, bool):
        raise PolicyError("auto_action.enabled: true or false")
    auto = AutoAction(
        enabled=enabled,
        max_band=_ints(a_raw.get("max_band", d.max_band), "auto_action.max_band", 0, 31),
        provenance=_names(
            a_raw.get("provenance", list(d.provenance)),
            "auto_action.provenance",
            PROVENANCE_CLASSES,
        ),
        trusted_sources=_names(a_raw.get("trusted_sources", []), "auto_action.trusted_sources"),
        min_confirmations=_ints(
            a_raw.get("min_confirmations", d.min_confirmations),
            "auto_action.min_confirmations",
            0,
            1000,
        ),
        max_disputes=_ints(a_raw.get("max_disputes", 0), "auto_action.max_disputes", 0, 1000),
    )
    r_raw = raw.get("review", {})
    _only(
        r_raw,
        "review",
        {
            "base_priority",
            "band_priority",
            "provenance_priority",
            "disputed_penalty",
            "derivative_priority",
            "protected_copy_priority",
            "generator_priority",
        },
    )
    rd = Review()
    bands = r_raw.get("band_priority", {str(k): v for k, v in rd.band_priority.items()})
    if not isinstance(bands, dict):
        raise PolicyError("review.band_priority: a table of band = priority")
    band_priority = {}
    for k, v in bands.items():
        if not isinstance(k, str) or not k.isdigit() or not 0 <= int(k) <= 256:
            raise PolicyError("review.band_priority: keys are band bounds (integers 0..256)")
        band_priority[int(k)] = _ints(v, f"review.band_priority.{k}", -100, 100)
    prov = r_raw.get("provenance_priority", dict(rd.provenance_priority))
    if not isinstance(prov, dict) or set(prov) - set(PROVENANCE_CLASSES):
        raise PolicyError(f"review.provenance_priority: keys among {', '.join(PROVENANCE_CLASSES)}")
    review = Review(
        base_priority=_ints(
            r_raw.get("base_priority", rd.base_priority), "review.base_priority", 0, 1000
        ),
        band_priority=band_priority,
        provenance_priority={
            k: _ints(v, f"review.provenance_priority.{k}", -100, 100) for k, v in prov.items()
        },
        disputed_penalty=_ints(
            r_raw.get("disputed_penalty", rd.disputed_penalty), "review.disputed_penalty", 0, 1000
        ),
        derivative_priority=_ints(
            r_raw.get("derivative_priority", rd.derivative_priority),
            "review.derivative_priority",
            -1000,
            1000,
        ),
        protected_copy_priority=_ints(
            r_raw.get("protected_copy_priority", rd.protected_copy_priority),
            "review.protected_copy_priority",
            -1000,
            1000,
        ),
        generator_priority=_ints(
            r_raw.get("generator_priority", rd.generator_priority),
            "review.generator_priority",
            -1000,
            1000,
        ),
    )
    al = raw.get("allowlist", {})
    _only(al, "allowlist", {"banks"})
    q_raw = raw.get("quarantine", {})
    _only(q_raw, "quarantine", {"window_s", "min_matches", "factor"})
    qd = Quarantine()
    factor = _number(q_raw.get("factor", qd.factor), "quarantine.factor", 1, 1e6)
    return Policy(
        auto_action=auto,
        review=review,
        allowlist_banks=_names(al.get("banks", ["allowlist"]), "allowlist.banks"),
        quarantine=Quarantine(
            window_s=_ints(q_raw.get("window_s", qd.window_s), "quarantine.window_s", 60, 604800),
            min_matches=_ints(
                q_raw.get("min_matches", qd.min_matches), "quarantine.min_matches", 1, 10**9
            ),
            factor=factor,
        ),
        context=context,
    )


def load(path: Path) -> Policy:
    try:
        return parse(tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: the policy is not UTF-8 text") from None
