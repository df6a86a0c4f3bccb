"""The layout rules of docs/architecture.md, checked from the code itself (no import cycle, no UI in the core)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel

from baldistill_core import config

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "baldistill_core"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every module of ``modules`` that ``path`` imports, at the top or inside a function."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # ``from pkg import mod`` names a module; ``from mod import func`` names its module.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != me and n != "baldistill_core":
                out.add(n)
    return out


def import_graph(folder: Path) -> dict[str, set[str]]:
    files = sorted(folder.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, modules) for f in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "baldistill_core"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "sub/__init__.py", "sub/a.py", "b.py"):
        (pkg / f).write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from baldistill_core import b\n    from . import c\n")
    mods = {"baldistill_core", "baldistill_core.b", "baldistill_core.sub", "baldistill_core.sub.c"}
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        assert _imports(pkg / "sub" / "a.py", mods) == {"baldistill_core.b", "baldistill_core.sub.c"}
    finally:
        ROOT = old


def test_no_import_cycle_in_the_core():
    graph = import_graph(CORE)
    assert len(graph) > 40  # the reader found the package
    assert "baldistill_core.runs.records" in graph["baldistill_core.runs.pipeline"]
    assert cycles(graph) == []


def test_the_core_never_imports_the_ui():
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                bad = [n for n in names if n.split(".")[0] in ("streamlit", "studio_ui", "pages", "plotly")]
                assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the core must not depend on the UI"


def test_pages_never_import_each_other():
    pages = {p.stem for p in (ROOT / "pages").glob("*.py")}
    for path in (ROOT / "pages").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] != "pages", f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] in pages | {"pages"} for a in node.names), path.name


def test_no_source_file_over_400_lines():
    files = [*CORE.rglob("*.py"), *(ROOT / "studio_ui").rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]
    long = {str(f.relative_to(ROOT)): n for f in files if (n := len(f.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    todo = [root]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.append(m)
        for f in m.model_fields.values():
            t = f.annotation
            for cand in (t, *getattr(t, "__args__", ())):
                if isinstance(cand, type) and issubclass(cand, BaseModel):
                    todo.append(cand)
    return seen


def fields_without_help(root: type[BaseModel]) -> list[str]:
    return [f"{m.__name__}.{name}" for m in _models(root) for name, f in m.model_fields.items()
            if not (f.description and f.description.strip())]


def test_every_config_field_has_help_text():
    assert len(_models(config.RunConfig)) >= 5  # run, teacher, student, ifd, eval ...
    assert fields_without_help(config.RunConfig) == []
    assert fields_without_help(config.DatasetSpec) == []


def test_the_help_check_catches_a_field_without_help():
    from pydantic import Field

    class Inner(BaseModel):
        a: int = Field(1, description="documented")
        b: int = 2

    class Outer(BaseModel):
        inner: Inner = Field(default_factory=Inner, description="nested")

    assert fields_without_help(Outer) == ["Inner.b"]


@pytest.mark.parametrize("module", ["baldistill_core.runs.pipeline"])
def test_the_pipeline_holds_no_sql(module):
    src = (ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    for word in ("SELECT ", "UPDATE ", "INSERT ", "DELETE FROM"):
        assert word not in src, f"{module} contains SQL ({word.strip()}): move it to the table's owner module"


def test_pages_take_the_database_from_the_bridge():
    for path in (ROOT / "pages").glob("*.py"):
        src = path.read_text(encoding="utf-8")
        for word in ("sqlite3", "open_workspace(", "store.connect("):
            assert word not in src, f"{path.name} uses {word}: take the connection from studio_ui.bridge.conn()"
