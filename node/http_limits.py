"""Reading an HTTP body with a hard cap, so a peer cannot make the node buffer without end."""

from __future__ import annotations

import aiohttp


async def read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Read to EOF, stopping once more than ``limit`` bytes have arrived."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
