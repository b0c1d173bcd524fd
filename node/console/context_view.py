"""What a reviewer sees of an upload's context and the node's signals about its uploader.

Names and counts only: the platform's uploader reference is shown (it is the platform's own
pseudonym), contact identifiers never are (only which kinds were given), and "known elsewhere"
says nothing about where.
"""

from __future__ import annotations

from html import escape as e
from typing import Any

_SURFACES = {
    "public-post": "a public post",
    "private-message": "a private message",
    "profile-picture": "a profile picture",
}
_SIGNALS = {
    "new-account": "new account",
    "earlier-strikes": "earlier strikes on this platform",
    "repeat-uploader-here": "this uploader's earlier uploads were actioned here",
    "open-reports": "open reports",
    "self-upload": "the uploader says they are the person pictured",
    "known-elsewhere": "known elsewhere for this picture",
}


def context_facts(case: Any) -> str:
    """``<dt>/<dd>`` rows for the case page's facts list (empty when there is no context)."""
    ctx: dict[str, Any] = case.context or {}
    sig: dict[str, Any] = case.signals or {}
    rows = []
    if ctx.get("uploader_ref"):
        rows.append(("Uploader (platform reference)", e(str(ctx["uploader_ref"]))))
    details = []
    if ctx.get("account_age_days") is not None:
        details.append(f"account {int(ctx['account_age_days'])} day(s) old")
    if ctx.get("strikes"):
        details.append(f"{int(ctx['strikes'])} earlier strike(s) here")
    if ctx.get("open_reports"):
        details.append(f"{int(ctx['open_reports'])} open report(s)")
    if ctx.get("surface"):
        details.append(e(_SURFACES.get(ctx["surface"], str(ctx["surface"]))))
    if ctx.get("self_upload"):
        details.append("<strong>says they are the person pictured (self-upload)</strong>")
    if details:
        rows.append(("Upload context", ", ".join(details)))
    if sig.get("recidivism"):
        rows.append(("This uploader here", f"{int(sig['recidivism'])} earlier upload(s) actioned"))
    if sig.get("known_elsewhere"):
        rows.append(
            (
                "Known elsewhere",
                "<strong>this uploader is known elsewhere for this picture</strong> "
                "<span class=muted>(another platform actioned their upload of it; not who or "
                "where)</span>",
            )
        )
    fired = [_SIGNALS.get(f.split(":")[0], f.split(":")[0]) for f in sig.get("fired", [])]
    if fired:
        rows.append(("Priority moved by", e(", ".join(fired))))
    return "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
