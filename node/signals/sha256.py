"""``sha256``: exact file digests. Banked for exact-copy bookkeeping and exports; not in the
blinded index (the protocol's exact key, specs/signals-and-lsh.md 1.5, is not published yet),
so it publishes and answers nothing."""

from __future__ import annotations

from blindmatch.node.signals.base import SignalAdapter
from blindmatch.protocol import signal_types


class Sha256Adapter(SignalAdapter):
    entry = signal_types.SHA256
