"""Benchmarks. Run ``./dev bench NAME`` (or ``python -m bench NAME``); each writes its results
to ``bench/results/NAME.md`` (and ``.json``), which the README links."""
