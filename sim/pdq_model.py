"""The PDQ edit model the simulator draws hash distances from (``data/pdq_model.json``, measured
on real photos by ``bench/signals.py``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "pdq_model.json"


@cache
def model() -> dict:
    return json.loads(DATA.read_text())


def edit_names() -> list[str]:
    return sorted(model()["edit_distances"])
