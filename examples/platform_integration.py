"""How a platform wires its upload pipeline and moderation actions to its blindmatch node.

1. On upload, send the media (or its PDQ hash) to the node's local API with your own content
   id; the node hashes it (all rotations/mirrors, border removed), matches it privately against
   every peer and opens review cases.
2. Receive the node's signed webhooks (block / remove / restore / notify) and act on them,
   idempotently.
3. Forward an uploader's appeal to the node.

    python examples/platform_integration.py --api http://127.0.0.1:8710 \
        --token-file HOME/api.token upload.jpg
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
from pathlib import Path

from aiohttp import web

from blindmatch.node.api.client import BlindmatchClient

SEEN_IDEMPOTENCY_KEYS: set[str] = set()  # a real platform keeps these in its database


def verify_webhook(secret: bytes, body: bytes, signature_header: str) -> bool:
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature_header)


def webhook_app(secret: bytes) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_webhook(secret, body, request.headers.get("X-Blindmatch-Signature", "")):
            return web.Response(status=401)
        event = json.loads(body)
        if event["idempotency_key"] in SEEN_IDEMPOTENCY_KEYS:
            return web.Response(status=204)  # a retry of something already done
        SEEN_IDEMPOTENCY_KEYS.add(event["idempotency_key"])
        # Events arrive in order per case ("sequence"); act on your own content id.
        print(f"{event['event']:>8} content {event['content_ref']} (case {event['case'][:8]}…)")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/blindmatch/webhook", receive)
    return app


async def check_upload(api: str, token: str, path: Path, content_ref: str) -> None:
    async with BlindmatchClient(api, token) as bm:
        job = await bm.match_media(path.read_bytes(), wait=30)
        # content_ref ties cases and webhooks to your own id for this upload.
        print(json.dumps({"complete": job["complete"], "matches": job["matches"]}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api", required=True)
    ap.add_argument("--token-file", type=Path, required=True)
    ap.add_argument("--content-ref", default="upload-1")
    ap.add_argument("media", type=Path)
    args = ap.parse_args()
    asyncio.run(check_upload(args.api, args.token_file.read_text().strip(), args.media,
                             args.content_ref))  # fmt: skip


if __name__ == "__main__":
    main()
