"""The floor plan: module sizes, an acyclic import graph per package, powercrud's boundary.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a
function-level import is how a cycle hides. powercrud may import from
async_queue only its public face (the package, ``models`` and ``exceptions``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("async_queue", "powercrud")
MAX_LINES = 500
PUBLIC = {"async_queue", "async_queue.models", "async_queue.exceptions"}


def modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path) -> set[str]:
    """Every module name ``path`` imports (and ``module.name`` for each imported name)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def owner(name: str, known: dict[str, Path]) -> str | None:
    """The module of ``known`` that ``name`` (a module or a module's attribute) is in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def graph(package: str) -> dict[str, set[str]]:
    known = modules(package)
    edges = {}
    for name, path in known.items():
        targets = {owner(target, known) for target in imported(name, path)}
        edges[name] = {t for t in targets if t and t not in (name, package)}
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``edges`` (empty if there is none)."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_the_size_limit(package):
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules(package).items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_the_import_graph_is_acyclic(package):
    assert cycle(graph(package)) == []


def test_powercrud_uses_only_the_public_api_of_async_queue():
    known = modules("async_queue")
    used = set()
    for name, path in modules("powercrud").items():
        for target in imported(name, path):
            if target == "async_queue" or target.startswith("async_queue."):
                used.add((name, owner(target, known)))
    assert {(name, module) for name, module in used if module not in PUBLIC} == set()


def test_the_checks_find_what_they_look_for():
    """A cycle and a boundary crossing are caught: the tests above can fail."""
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []
    known = modules("async_queue")
    assert owner("async_queue.sql.dialect", known) == "async_queue.sql"
    assert owner("async_queue.hold", known) == "async_queue"
    runner = known["async_queue.contrib.tasks.runner"]
    assert "async_queue.models" in imported("async_queue.contrib.tasks.runner", runner)


def test_the_runtime_packages_ship_no_benchmark():
    assert not list((ROOT / "async_queue").rglob("bench*.py"))
