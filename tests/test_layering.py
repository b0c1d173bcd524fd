"""crypto/ and protocol/ are pure: they import nothing that does I/O, and dependencies point one
way (node -> protocol -> crypto). Checked on the source's import statements."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Modules whose job is I/O, networking, processes, clocks or event loops.
FORBIDDEN = {
    "asyncio",
    "aiohttp",
    "aiosqlite",
    "asyncpg",
    "socket",
    "ssl",
    "http",
    "urllib",
    "requests",
    "subprocess",
    "os",
    "shutil",
    "pathlib",
    "io",
    "tempfile",
    "sqlite3",
    "time",
    "datetime",
    "threading",
    "multiprocessing",
    "selectors",
    "logging",
    "sys",
    "PIL",
    "cv2",
    "pdqhash",
    "vpdq",
    "glob",
    "signal",
    "select",
    "mmap",
    "pickle",
    "shelve",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", ["crypto", "protocol"])
def test_pure_packages_import_no_io(package: str) -> None:
    offenders = []
    for path in _sources(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    # crypto/sodium.py locates the shared library once at import: the one sanctioned exception.
    offenders = [o for o in offenders if not o.startswith("crypto/sodium.py imports ctypes")]
    offenders = [o for o in offenders if o != "crypto/sodium.py imports os"]
    assert not offenders, offenders


def test_dependencies_point_one_way() -> None:
    bad = []
    for package, banned in (
        ("crypto", ("blindmatch.protocol", "blindmatch.node")),
        ("protocol", ("blindmatch.node",)),
    ):
        for path in _sources(package):
            for name in _imports(path):
                if name.startswith(banned):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_no_bare_top_level_modules_are_installed() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    assert all(p == "blindmatch" or p.startswith("blindmatch.") for p in packages)
