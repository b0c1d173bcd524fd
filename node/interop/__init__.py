"""Bridges to the tools platforms already run: Meta's Hasher-Matcher-Actioner (HMA) and
python-threatexchange. The hash-list formats themselves live in ``node/banks/formats.py``."""
