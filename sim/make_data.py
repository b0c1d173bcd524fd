"""Regenerate ``sim/data/pdq_model.json`` from the signals evaluation's cached corpus hashes.

    .venv/bin/python -m blindmatch.sim.make_data      # needs the cache of ./dev bench signals

The simulator ships only this small file (the corpus and its cache are not part of the package):

* ``corpus_hashes``: the PDQ hashes of the distinct evaluation-corpus pictures (hex);
* ``mean`` and ``factor`` / ``residual_sd``: the Gaussian model of PDQ's normalised DCT values
  that ``bench/signals.py`` fits (its ``fit_bit_model``), stored as a rank-``RANK`` factor plus a
  diagonal so that it stays small; thresholding a draw at its median gives a synthetic hash with
  the corpus's per-bit marginals and (the main) pairwise bit correlations;
* ``edit_distances``: per transform of the signals evaluation, the measured PDQ distances of the
  edited copies of indexed pictures to their originals (minimum over the query variants, which is
  what a querier matching all variants sees).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

RANK = 24
OUT = Path(__file__).resolve().parent / "data" / "pdq_model.json"


def build() -> dict[str, object]:
    from bench import corpus, signals, signals_data  # bench is not installed; import late

    items = corpus.build()
    data = signals_data.collect(items, verbose=False)
    ev = signals.evaluate(data)
    mean, cov = signals.fit_bit_model(data["orig_float"])
    values, vectors = np.linalg.eigh(cov)
    top = np.argsort(values)[::-1][:RANK]
    factor = vectors[:, top] * np.sqrt(values[top])
    residual = np.clip(np.diag(cov) - (factor**2).sum(axis=1), 1e-6, None)
    orig_bits = signals.bits_from_floats(data["orig_float"])
    edit_distances = {}
    for t, name in enumerate(ev.names):
        pos = ev.q_positive & (ev.q_transform == t)
        edit_distances[str(name)] = sorted(int(d) for d in ev.d_ours[pos])
    return {
        "source": "bench/signals_data.py cache (signals evaluation corpus)",
        "rank": RANK,
        "corpus_hashes": [bytes(np.packbits(b)).hex() for b in orig_bits],
        "mean": [round(float(x), 4) for x in mean],
        "factor": [[round(float(x), 4) for x in row] for row in factor],
        "residual_sd": [round(float(x), 4) for x in np.sqrt(residual)],
        "edit_distances": edit_distances,
    }


def main(argv: list[str] | None = None) -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
