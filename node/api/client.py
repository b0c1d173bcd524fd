"""A small Python client for a node's local platform API.

async with BlindmatchClient("http://127.0.0.1:8710", token) as bm:
    job = await bm.match_media(
        open("upload.jpg", "rb").read(), wait=30, content_ref="post-123",
        uploader=uploader("acct-42", emails=["someone@example.net"]),  # digests, computed here
        context={"account_age_days": 3, "surface": "public-post"},
    )
    for m in job["matches"]:
        ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import aiohttp

from blindmatch.node.cases.context import identifier
from blindmatch.node.errors import BlindmatchError

# The media endpoint's body is the picture: an upload's uploader and context ride in a header.
UPLOAD_HEADER = "Blindmatch-Upload"


def uploader(
    ref: str | None, emails: Iterable[str] = (), phones: Iterable[str] = ()
) -> dict[str, Any]:
    """The ``uploader`` of an upload: the platform's pseudonymous account reference and, for
    repeat-uploader signals, digests of the account's emails and phone numbers (normalised and
    hashed here: the node never receives the email or phone itself)."""
    ids = [identifier("email", e) for e in emails] + [identifier("phone", p) for p in phones]
    return {"identifiers": ids} if ref is None else {"ref": ref, "identifiers": ids}


class ApiClientError(BlindmatchError):
    """The node's API refused a request: its status, code and sentence."""

    def __init__(self, message: str, *, code: str, status_hint: int) -> None:
        super().__init__(message, code=code, status_hint=status_hint)
        self.args = (f"{status_hint} {code}: {message}",)
        self.status = status_hint


class BlindmatchClient:
    def __init__(self, base_url: str, token: str, timeout: float = 150.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BlindmatchClient:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        assert self._session is not None, "use 'async with BlindmatchClient(...)'"
        async with self._session.request(method, self.base_url + path, **kw) as resp:
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                raise ApiClientError(
                    body.get("message", ""), code=body.get("error", "?"), status_hint=resp.status
                )
            return body

    async def status(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/status")

    async def match_hashes(
        self,
        hashes: list[str] | list[dict[str, Any]],
        wait: float | None = None,
        content_ref: str | None = None,
        uploader: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Match PDQ hashes; with ``content_ref`` the node opens review cases for matches.
        ``uploader`` (see :func:`uploader`) and ``context`` (account_age_days, strikes,
        open_reports, self_upload, surface) are stored with the cases and never leave the node.
        """
        items = [h if isinstance(h, dict) else {"hash": h} for h in hashes]
        params = {"wait": str(wait)} if wait else {}
        if content_ref is not None:
            params["content_ref"] = content_ref
        body: dict[str, Any] = {"hashes": items}
        if uploader is not None:
            body["uploader"] = uploader
        if context is not None:
            body["context"] = context
        return await self._request("POST", "/api/v1/match/hashes", json=body, params=params)

    async def match_media(
        self,
        data: bytes,
        wait: float | None = None,
        content_ref: str | None = None,
        uploader: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Match a picture (its whole-picture hashes and, if the node searches derivatives,
        its tiles); with ``content_ref`` the node opens review cases for what matched."""
        params = {"wait": str(wait)} if wait else {}
        if content_ref is not None:
            params["content_ref"] = content_ref
        headers = {"Content-Type": "application/octet-stream"}
        if uploader is not None or context is not None:
            upload = {"uploader": uploader, "context": context}
            headers[UPLOAD_HEADER] = json.dumps({k: v for k, v in upload.items() if v})
        return await self._request(
            "POST", "/api/v1/match/media", data=data, params=params, headers=headers
        )

    async def cases_for_content(self, content_ref: str) -> list[dict[str, Any]]:
        return (await self._request("GET", f"/api/v1/content/{content_ref}/cases"))["cases"]

    async def decide(
        self, case: str, outcome: str, reason: str = "", by: str = "platform"
    ) -> dict[str, Any]:
        """Decide a case (``actioned``, ``dismissed`` or ``escalated``) as the platform."""
        return await self._request(
            "POST",
            f"/api/v1/cases/{case}/decision",
            json={"outcome": outcome, "reason": reason, "by": by},
        )

    async def job(self, job: str) -> dict[str, Any]:
        return await self._request("GET", f"/api/v1/match/{job}")

    async def banks(self) -> list[dict[str, Any]]:
        return (await self._request("GET", "/api/v1/banks"))["banks"]

    async def create_bank(self, name: str, provenance: str, **settings: Any) -> None:
        await self._request(
            "POST", "/api/v1/banks", json={"name": name, "provenance": provenance, **settings}
        )

    async def add_hashes(self, bank: str, hashes: list[str], signal_type: str = "pdq") -> dict:
        return await self._request(
            "POST",
            f"/api/v1/banks/{bank}/hashes",
            json={"hashes": hashes, "signal_type": signal_type},
        )

    async def withdraw(self, item: str, reason: str = "") -> dict[str, Any]:
        return await self._request(
            "POST", f"/api/v1/items/{item}/withdraw", json={"reason": reason}
        )
