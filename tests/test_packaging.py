"""What a non-editable install ships: every subpackage of the import package and every data
file the node reads at run time (an editable install hides a package missing from the list)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_TREES = ("crypto", "protocol", "node", "sim")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_subpackage_is_listed() -> None:
    on_disk = {"blindmatch"} | {
        "blindmatch." + ".".join(init.parent.relative_to(ROOT).parts)
        for tree in SHIPPED_TREES
        for init in (ROOT / tree).rglob("__init__.py")
    }
    listed = set(_setuptools()["packages"])
    assert on_disk - listed == set(), "subpackages a wheel would leave out"
    assert listed - on_disk == set(), "listed packages that do not exist"


def test_every_package_data_pattern_matches_a_file() -> None:
    patterns = _setuptools()["package-data"]["blindmatch"]
    empty = [p for p in patterns if not any(ROOT.glob(p))]
    assert empty == []
