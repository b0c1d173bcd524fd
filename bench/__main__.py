"""Dispatch ``python -m bench NAME [args]`` to ``bench/NAME.py:main(argv)``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if not m.name.startswith("_") and m.name not in {"common"}
    )


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in available():
        print("usage: ./dev bench NAME [args]   where NAME is one of: " + ", ".join(available()))
        return 2
    module = importlib.import_module(f"bench.{sys.argv[1]}")
    return int(module.main(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
