"""What a reviewer sees of an upload's context and the node's signals about its uploader.

Names and counts only: the platform's uploader reference is shown (it is the platform's own
pseudonym), contact identifiers never are (only which kinds were given), and "known elsewhere"
says nothing about where. Rows are plain text: the case page's template escapes them.
"""

from __future__ import annotations

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


def context_rows(case: Any) -> list[tuple[str, str, str]]:
    """(term, value, note) rows for the case page's facts (none without context)."""
    ctx: dict[str, Any] = case.context or {}
    sig: dict[str, Any] = case.signals or {}
    rows: list[tuple[str, str, str]] = []
    if ctx.get("uploader_ref"):
        rows.append(("Uploader", str(ctx["uploader_ref"]), "(the platform's own reference)"))
    details = []
    if ctx.get("account_age_days") is not None:
        details.append(f"account {int(ctx['account_age_days'])} day(s) old")
    if ctx.get("strikes"):
        details.append(f"{int(ctx['strikes'])} earlier strike(s) here")
    if ctx.get("open_reports"):
        details.append(f"{int(ctx['open_reports'])} open report(s)")
    if ctx.get("surface"):
        details.append(_SURFACES.get(ctx["surface"], str(ctx["surface"])))
    if ctx.get("self_upload"):
        details.append("says they are the person pictured (self-upload)")
    if details:
        rows.append(("Upload context", ", ".join(details), ""))
    if sig.get("recidivism"):
        rows.append(
            ("This uploader here", f"{int(sig['recidivism'])} earlier upload(s) actioned", "")
        )
    if sig.get("known_elsewhere"):
        rows.append(
            (
                "Known elsewhere",
                "this uploader is known elsewhere for this picture",
                "(another platform actioned their upload of it; not who or where)",
            )
        )
    fired = [_SIGNALS.get(f.split(":")[0], f.split(":")[0]) for f in sig.get("fired", [])]
    if fired:
        rows.append(("Priority moved by", ", ".join(fired), ""))
    return rows
