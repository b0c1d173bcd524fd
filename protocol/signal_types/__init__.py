"""The signal-type registry: one entry per signal type, the one place that says what a type is.

:mod:`.base` says what an entry is and looks entries up; each type's entry is its own module
here (its pure parts beside it), registered by importing it below, in the order the registry
lists them. Adding a signal type is its entry module and its line here, its node adapter
(``node/signals``), its spec section and its vectors. Pure: no I/O.
"""

# ruff: noqa: I001  (the entries register as they are imported, in the registry's order)
from __future__ import annotations

from blindmatch.protocol.signal_types.base import (
    BASE_RELEASE_FIELDS,
    PROVENANCE_CLASSES,
    Exchange,
    SignalPeerExchange,
    SignalTypeEntry,
    UnknownSignalType,
    bank_signal_names,
    conformance_errors,
    conformance_ops,
    entries,
    for_variant,
    get,
    names,
    perceptual_bank_signal_names,
    probe_keys,
    register,
    release_schema,
)
from blindmatch.protocol.signal_types.pdq import PDQ
from blindmatch.protocol.signal_types.pdq_tiles import PDQ_TILES
from blindmatch.protocol.signal_types.vpdq import VPDQ
from blindmatch.protocol.signal_types.sha256 import SHA256
from blindmatch.protocol.signal_types.learned import LEARNED

__all__ = [
    "BASE_RELEASE_FIELDS",
    "LEARNED",
    "PDQ",
    "PDQ_TILES",
    "PROVENANCE_CLASSES",
    "SHA256",
    "VPDQ",
    "Exchange",
    "SignalPeerExchange",
    "SignalTypeEntry",
    "UnknownSignalType",
    "bank_signal_names",
    "conformance_errors",
    "conformance_ops",
    "entries",
    "for_variant",
    "get",
    "names",
    "perceptual_bank_signal_names",
    "probe_keys",
    "register",
    "release_schema",
]
