#!/usr/bin/env python3
"""Generate every test vector in specs/vectors/ from fixed seeds.

This is the one script behind all vectors. Each ``specs/vectorgen_*.py`` module exposes
``generate() -> dict[str, object]`` mapping a file name (``something.json``) to its JSON
content; this script runs them all and writes the files. Re-running it must reproduce the
committed files byte for byte (the tests check that).

    python specs/generate_vectors.py          # write specs/vectors/*.json
    python specs/generate_vectors.py --check  # exit 1 if any committed file differs
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

SPECS = Path(__file__).resolve().parent
VECTORS = SPECS / "vectors"


def render(content: object) -> str:
    return json.dumps(content, indent=2, sort_keys=False, ensure_ascii=True) + "\n"


def generate_all() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(SPECS.glob("vectorgen_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, content in module.generate().items():
            if name in out:
                raise SystemExit(f"{path.name}: vector file {name} is produced twice")
            out[name] = render(content)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    files = generate_all()
    if args.check:
        bad = [n for n, text in files.items() if (VECTORS / n).read_text() != text]
        for n in bad:
            print(f"differs: specs/vectors/{n}")
        return 1 if bad else 0
    VECTORS.mkdir(exist_ok=True)
    for name, text in files.items():
        (VECTORS / name).write_text(text)
        print(f"wrote specs/vectors/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
