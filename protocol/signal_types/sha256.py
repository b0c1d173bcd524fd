"""``sha256``: an exact file digest (specs/signals-and-lsh.md 1.5): one bucket key, equality."""

from __future__ import annotations

from blindmatch.protocol.signal_types.base import Exchange, SignalTypeEntry, register
from blindmatch.protocol.signals import SHA256_BYTES, SignalType

SHA256 = register(
    SignalTypeEntry(
        name=SignalType.SHA256.value,
        hash_bytes=SHA256_BYTES,
        exchange=Exchange.EXACT,
        lsh=None,
        bucket_signal=SignalType.SHA256.value,
        distance_threshold=0,
        match_rule="the same 32-byte digest",
        release_fields={},
        release_signal=SignalType.SHA256.value,
        spec="specs/signals-and-lsh.md#15-sha-256",
        vectors=("lsh.json",),
        bank_item=True,
        perceptual=False,
        threatexchange_name=SignalType.SHA256.threatexchange_name,
        threatexchange_indicator=SignalType.SHA256.threatexchange_indicator_type,
    )
)
