"""An upload through a platform node's API, as the loopback federation tests make it."""

from __future__ import annotations

from typing import Any

from blindmatch.node.api.client import BlindmatchClient
from blindmatch.node.devtools.localfed import LocalFederation


async def upload_media(
    fed: LocalFederation, data: bytes, content_ref: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Submit ``data`` as a match job on the ``platform`` node, run its delivery until nothing
    is due, and return the finished job and the cases opened on ``content_ref``."""
    platform = fed["platform"]
    async with BlindmatchClient(platform.api_url, platform.api_token) as api:
        job = await api.match_media(data, content_ref=content_ref)
        while await platform.node.delivery.process_due():
            pass
        status = await api.job(job["job"])
        assert status["complete"], status
        return status, await api.cases_for_content(content_ref)
