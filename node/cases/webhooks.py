"""Signed webhooks to the platform: block, remove, restore, notify.

A case's events are sequenced, so delivery holds a later event while an earlier one is still
pending and a platform never sees "restore" overtake "remove". The signature is HMAC-SHA256
over the body with the node's webhook secret; the idempotency key is stable across retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable

import aiohttp

from blindmatch.node.errors import NodeError
from blindmatch.node.storage import Outbox

WEBHOOK_KIND = "webhook"
WEBHOOK_PEER = "platform-webhook"  # the outbox's "peer" for webhooks


def webhook_message_id(case_ref: bytes, sequence: int) -> bytes:
    return case_ref + sequence.to_bytes(4, "big") + b"webhook"


def webhook_body(
    event: str, case_ref: bytes, content_ref: str, sequence: int, reason: str, node_id: str
) -> bytes:
    key = hashlib.sha256(case_ref + sequence.to_bytes(4, "big") + event.encode()).digest()
    return json.dumps(
        {"event": event, "case": case_ref.hex(), "content_ref": content_ref,
         "sequence": sequence, "reason": reason[:200], "idempotency_key": key[:16].hex(),
         "node": node_id},
        sort_keys=True,
    ).encode()  # fmt: skip


def signature(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


async def earlier_pending(outbox: Outbox, case_ref: bytes, sequence: int) -> bool:
    """Whether an earlier webhook of the case is still waiting in the outbox."""
    # A case's webhook ids are case_ref || sequence: the earlier ones are a key range.
    return bool(
        await outbox.pending_between(WEBHOOK_KIND, case_ref, webhook_message_id(case_ref, sequence))
    )


class WebhookSender:
    """Posts one queued webhook to the platform (the outbox retries a failure)."""

    def __init__(
        self,
        outbox: Outbox,
        settings: Callable[[], tuple[str | None, bytes]],
        session: Callable[[], Awaitable[aiohttp.ClientSession]],
    ) -> None:
        self.outbox = outbox
        self.settings = settings  # (url, secret) as configured now
        self.session = session

    async def deliver(self, body: bytes) -> None:
        url, secret = self.settings()
        if not url:
            return
        event = json.loads(body)
        if await earlier_pending(self.outbox, bytes.fromhex(event["case"]), event["sequence"]):
            raise NodeError("an earlier event for this case is not delivered yet", code="deferred")
        session = await self.session()
        headers = {
            "Content-Type": "application/json",
            "X-Blindmatch-Signature": "sha256=" + signature(secret, body),
            "Idempotency-Key": event["idempotency_key"],
        }
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                if resp.status >= 300:
                    raise NodeError(f"webhook answered {resp.status}", code="unreachable")
        except aiohttp.ClientError as exc:
            raise NodeError(f"webhook: {exc.__class__.__name__}", code="unreachable") from exc
