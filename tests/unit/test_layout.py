"""The tree reads like the architecture, and stays that way.

Why: `shared/` is grouped by stage (README, "Where things are"): core <- ingest, load <- operate.
A newcomer trusts that layering to know where a change belongs, so it is checked here, with
the two other rules a move would otherwise erode: no import circles anywhere in the code (an
import inside a function counts: it is the same dependency, only later), and modules short
enough to read in one sitting, each named for one responsibility.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

CODE_ROOTS = ("shared", "functions", "local", "chaos", "bench", "main.py")
# shared's stages, each with what it may import from inside shared/.
LAYERS = {
    "core": {"core"},
    "ingest": {"core", "ingest"},
    "load": {"core", "load"},
    "operate": {"core", "ingest", "load", "operate"},
}
OUTSIDE_SHARED = ("functions", "local", "chaos", "bench", "tests", "main")
MAX_MODULE_LINES = 300


def _modules(roots=CODE_ROOTS) -> dict[str, Path]:
    """Dotted module name -> file, for every Python file under the code roots."""
    found = {}
    for root in roots:
        path = REPO / root
        files = [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
        for file in files:
            parts = list(file.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = file
    return found


def imports_of(name: str, file: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports, anywhere in its body; `from pkg import mod` names the module."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    known = set(modules)
    # A package's __init__ is imported with each of its modules; it holds no code that imports
    # back, so edges to packages themselves would only hide the module-level picture.
    packages = {m for m, f in modules.items() if f.name == "__init__.py"}
    return {m: imports_of(m, f, known) - packages for m, f in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in sorted(graph.items()):
        parts = module.split(".")
        if parts[0] != "shared":
            continue
        stage = parts[1] if len(parts) > 2 else None  # shared.<stage>.<module>
        for target in sorted(targets):
            tparts = target.split(".")
            if tparts[0] in OUTSIDE_SHARED:
                wrong.append(f"{module} imports {target}: shared/ is imported by the rest, never the reverse")
            elif tparts[0] == "shared" and stage and len(tparts) > 2 and tparts[1] not in LAYERS[stage]:
                wrong.append(f"{module} imports {target}: {stage} may import only {sorted(LAYERS[stage])}")
    return wrong


def test_the_checks_can_fail():
    """A circle, a layer break and an import from outside shared/ are each seen."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    bad = {
        "shared.core.paths": {"shared.ingest.lake"},
        "shared.load.bigquery": {"shared.operate.status"},
        "shared.ingest.day": {"local.tlc_data"},
        "shared.operate.status": {"shared.load.postgres"},
    }
    assert [v.split(":")[0] for v in layer_violations(bad)] == [
        "shared.core.paths imports shared.ingest.lake",
        "shared.ingest.day imports local.tlc_data",
        "shared.load.bigquery imports shared.operate.status",
    ]


def test_imports_inside_functions_and_from_packages_are_edges(tmp_path):
    file = tmp_path / "m.py"
    file.write_text("def f():\n    from shared.core import ledger, paths\n    import shared.load.bigquery\n")
    known = {"shared.core.ledger", "shared.core.paths", "shared.load.bigquery", "shared.core"}
    assert imports_of("shared.operate.x", file, known) == {
        "shared.core.ledger",
        "shared.core.paths",
        "shared.load.bigquery",
    }


def test_shared_is_one_folder_per_stage():
    stages = sorted(p.name for p in (REPO / "shared").iterdir() if p.is_dir() and p.name != "__pycache__")
    assert stages == sorted(LAYERS)
    loose = sorted(p.name for p in (REPO / "shared").glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules outside a stage folder: {loose}"


def test_no_import_circles():
    graph = import_graph(_modules())
    assert len(graph) > 60, "the walk found too few modules to be the project"
    assert not circles(graph), f"import circles: {circles(graph)}"


def test_shared_stages_import_downwards_only():
    assert not layer_violations(import_graph(_modules())), "\n".join(layer_violations(import_graph(_modules())))


@pytest.mark.parametrize("name,file", sorted(_modules().items()))
def test_modules_are_short(name, file):
    lines = len(file.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines: split it by responsibility"
