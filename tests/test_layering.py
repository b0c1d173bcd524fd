"""crypto/ and protocol/ are pure: they import nothing that does I/O, and dependencies point one
way (node -> protocol -> crypto). Checked on the source's import statements."""

from __future__ import annotations

import ast
import functools
import os
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


# --- the node's services ----------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = ["blindmatch", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _package_modules() -> dict[str, Path]:
    # Pruned walk: descending into .venv (thousands of site-packages files) once per node module
    # made this file the slowest in the suite.
    skip = {".venv", "tests", "bench", "examples", "build", ".git"}
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder) / name
                found[_module_name(path)] = path
    return found


def _internal_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of the package this file imports, wherever the import stands (inside a
    function or under TYPE_CHECKING too: a lazy import is still a dependency)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            # "from package import module" depends on the module, not on the package's face.
            names_only = any(m not in modules for m in submodules)
            targets = ([base] if names_only else []) + submodules
        else:
            continue
        found.update(t for t in targets if t in modules and t != module)
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _package_modules()
    return {name: _internal_imports(path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package() -> None:
    assert _cycles(_import_graph()) == []


def test_storage_imports_no_service() -> None:
    bad = [
        f"{name} imports {target}"
        for name, targets in _import_graph().items()
        if name.startswith("blindmatch.node.storage")
        for target in targets
        if target.startswith("blindmatch.node.")
        and not target.startswith(("blindmatch.node.storage", "blindmatch.node.errors"))
    ]
    assert not bad, bad


# The modules that serve HTTP (aiohttp.web): the API, the console, the survivor page, the
# federation endpoint, the log's endpoint; and what starts them (runtime, devtools, CLI).
HTTP_LAYER = (
    "blindmatch.node.api.",
    "blindmatch.node.console.",
    "blindmatch.node.survivor.",
    "blindmatch.node.federation.http",
    "blindmatch.node.federation.port_guard",
    "blindmatch.node.translog.http",
    "blindmatch.node.interop.hma_adapter",
    "blindmatch.node.runtime",
    "blindmatch.node.devtools.",
    "blindmatch.node.cli.",
)


def _is_http_layer(name: str) -> bool:
    return name.startswith(HTTP_LAYER) or name in {p.rstrip(".") for p in HTTP_LAYER}


def test_services_import_no_http_layer() -> None:
    graph = _import_graph()
    bad = []
    for name, targets in graph.items():
        if not name.startswith("blindmatch.node") or _is_http_layer(name):
            continue
        bad += [f"{name} imports {t}" for t in targets if _is_http_layer(t)]
        path = _package_modules()[name]
        bad += [f"{name} imports {m}" for m in _imports(path) if m.startswith("aiohttp.web")]
        bad += [
            f"{name} imports aiohttp.web"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom)
            and node.module == "aiohttp"
            and any(a.name == "web" for a in node.names)
        ]
    assert not bad, bad


def test_no_node_file_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "node").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, long


def test_node_errors_share_one_base() -> None:
    """Every exception class the node defines derives from the one base in node/errors.py
    (directly or through another such class), so every surface maps it to HTTP one way."""
    import importlib
    import inspect

    from blindmatch.node.errors import BlindmatchError

    stray = []
    for name in sorted(_package_modules()):
        if not name.startswith("blindmatch.node.") or name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or not issubclass(cls, BaseException):
                continue
            if not issubclass(cls, BlindmatchError):
                stray.append(f"{name}.{cls.__name__}")
    # The verifiable log's integrity error is the protocol's LogError (the log's own base).
    assert stray == ["blindmatch.node.translog.log.LogIntegrityError"], stray


def test_node_errors_are_built_one_way() -> None:
    """Every node error is built as ``Error(sentence, *, code=..., status_hint=...)``: the
    sentence is the one positional argument, anything else a class adds is by keyword."""
    import importlib
    import inspect

    from blindmatch.node.errors import BlindmatchError

    odd = []
    for name in sorted(_package_modules()):
        if not name.startswith("blindmatch.node.") or name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or not issubclass(cls, BlindmatchError):
                continue
            params = list(inspect.signature(cls.__init__).parameters.values())[1:]
            positional = [p.name for p in params if p.kind is not p.KEYWORD_ONLY]
            if positional not in (["message"], ["args", "kwargs"]):
                odd.append(f"{name}.{cls.__name__}{inspect.signature(cls.__init__)}")
    assert not odd, odd


# --- SQL lives in node/storage/ ---------------------------------------------------------------

SQL_VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "WITH", "DROP", "ALTER")
EXECUTE_LIKE = {
    "execute", "execute_many", "executemany", "executescript", "fetch_all", "fetch_one",
    "fetch_value", "fetch", "fetchrow", "fetchval", "fetchall", "fetchone",
}  # fmt: skip
# A signal type's adapter owns its rows (its declared storage, node/signals/): the seam keeps a
# type's SQL beside its adapter; nothing else outside node/storage/ may execute SQL text.
SQL_ALLOWED = ("node/storage/", "node/signals/")


def _sql_text(node: ast.AST, strings: dict[str, str]) -> str | None:
    """The statement text a call's argument starts with, if it is written in the module: a
    literal, an f-string, a concatenation, or a name bound to a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return _sql_text(node.values[0], strings)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _sql_text(node.left, strings)
    if isinstance(node, ast.Name | ast.Attribute):
        return strings.get(node.id if isinstance(node, ast.Name) else node.attr)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        return _sql_text(node.func.value, strings)  # "...".format(...), dialect.render("...")
    return None


def _sql_calls(source: str) -> list[tuple[int, str]]:
    """(line, first words) of every execute-like call whose statement is SQL text."""
    tree = ast.parse(source)
    strings = {
        target.id if isinstance(target, ast.Name) else target.attr: node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name | ast.Attribute)
    }
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name not in EXECUTE_LIKE:
            continue
        text = _sql_text(node.args[0], strings)
        words = (text or "").lstrip(" \n\t(").split(None, 1)
        if words and words[0].upper() in SQL_VERBS:
            found.append((node.lineno, " ".join((text or "").split()[:3])))
    return found


def test_the_sql_check_finds_sql_text_and_not_prose() -> None:
    source = '''
"""Docs may say SELECT * FROM cases; only statements passed to a database count."""
HEADS = "SELECT tree_size FROM log_tree_heads"
async def f(db, table):
    await db.execute("INSERT INTO t VALUES (?)", 1)
    await db.fetch_all(HEADS + " ORDER BY tree_size")
    await db.fetch_value(f"SELECT COUNT(*) FROM {table}")
    await db.execute_many(" update t SET x = ?", [(1,)])
    log.info("select the next peer")
    await db.execute(statement)  # built elsewhere: not SQL text here
    await runner.execute("selection")
'''
    assert [line for line, _ in _sql_calls(source)] == [5, 6, 7, 8]


def test_no_module_outside_storage_executes_sql_text() -> None:
    bad = []
    for path in sorted((ROOT / "node").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith(SQL_ALLOWED):
            continue
        bad += [f"{rel}:{line}: {words}" for line, words in _sql_calls(path.read_text())]
    assert not bad, bad
