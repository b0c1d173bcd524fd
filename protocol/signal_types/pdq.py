"""``pdq``: a picture's PDQ hash (specs/signals-and-lsh.md 1.1). The picture type: it owns every
query variant no other type claims (the original, its dihedral and uncrop variants)."""

from __future__ import annotations

from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.schema import Field, text
from blindmatch.protocol.signal_types.base import (
    GROUP,
    SOURCE_CELLS,
    Exchange,
    SignalTypeEntry,
    register,
)
from blindmatch.protocol.signals import PDQ_BYTES, PDQ_MATCH_THRESHOLD, SignalType

# Which of a picture's banked off-centre crops matched (signals-and-lsh.md 3.5): the corner the
# crop keeps (c: centred) and the percentage cut off each dimension.
BANKED_CROP_PATTERN = r"crop/(tl|tr|bl|br|c)/[1-9][0-9]?"
BANKED_CROP = Field(text(16, pattern=BANKED_CROP_PATTERN), required=False)


def _picture_probe(query: QueryHash, budget: int | None) -> list[bytes]:
    return PDQ_LSH_1.probe_keys(query.hash, query.float_vector, budget)


PDQ = register(
    SignalTypeEntry(
        name=SignalType.PDQ.value,
        hash_bytes=PDQ_BYTES,
        exchange=Exchange.PICTURE,
        lsh=PDQ_LSH_1.name,
        bucket_signal=SignalType.PDQ.value,
        distance_threshold=PDQ_MATCH_THRESHOLD,
        match_rule="a query hash (or one of its variants) within the item's threshold (<= 31)",
        # A protected source's whole-picture item names its tiles' group too (derivatives 6);
        # a match through one of the picture's banked crops says which.
        release_fields={"group": GROUP, "source_cells": SOURCE_CELLS, "banked_crop": BANKED_CROP},
        release_signal=SignalType.PDQ.value,
        spec="specs/signals-and-lsh.md#11-pdq",
        vectors=("lsh.json",),
        bank_item=True,
        perceptual=True,
        threatexchange_name=SignalType.PDQ.threatexchange_name,
        threatexchange_indicator=SignalType.PDQ.threatexchange_indicator_type,
        probe_keys=_picture_probe,
    )
)
