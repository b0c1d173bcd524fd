"""``blindmatch hma-adapter``: serve HMA's matching API in front of this node
(node/interop/hma_adapter.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from blindmatch.node import config as config_mod


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    h = sub.add_parser(
        "hma-adapter",
        help="let an HMA deployment look uploads up through this node (HMA's /m/lookup)",
        description="Serve HMA's matching API (GET/POST /m/lookup) answered by the federation"
        " through this node, and take HMA's opinions back (POST /blindmatch/opinion) as case"
        " decisions. Loopback only. The node must be running.",
    )
    config_mod.add_config_argument(h)
    h.add_argument("--listen", default="127.0.0.1:8720", help="HOST:PORT (loopback)")
    h.add_argument("--wait", type=float, default=30.0, help="seconds a lookup may take")
    h.set_defaults(func=cmd_hma_adapter)


def cmd_hma_adapter(args: argparse.Namespace) -> int:
    from blindmatch.node.api.client import BlindmatchClient
    from blindmatch.node.interop.hma_adapter import adapter_key, serve
    from blindmatch.node.runtime import api_token, configure_logging

    configure_logging()
    log = logging.getLogger("blindmatch.hma_adapter")
    try:
        cfg = config_mod.load_from_args(args)
        host, port = config_mod._hostport(args.listen, "--listen")
    except config_mod.ConfigError as exc:
        print(f"blindmatch hma-adapter: error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        node_api = f"http://{cfg.api_host}:{cfg.api_port}"
        async with BlindmatchClient(node_api, api_token(cfg.home)) as client:
            runner = await serve(client, adapter_key(cfg.home), host, port, args.wait)
            log.info("HMA adapter for node %s on %s:%d", cfg.node_id, host, port)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            await runner.cleanup()

    try:
        asyncio.run(run())
    except (config_mod.ConfigError, OSError) as exc:
        print(f"blindmatch hma-adapter: error: {exc}", file=sys.stderr)
        return 1
    return 0
