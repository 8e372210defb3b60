"""The house's import graph (docs/architecture.md): no cycle between modules, and every import
points down the layers. Read from the source with `ast` (imports inside functions count too), so
a new module, or a lazy import that points up, fails here before it confuses a reader."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "kafka_io", "infra", "orchestrator", "steps", "bench")

# Bottom to top. A module belongs to the longest prefix listed; it may import its own layer's
# modules and any layer below. Keep docs/architecture.md's picture in step with this table.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("contracts", ("schemas",)),
    ("plumbing", ("kafka_io", "infra", "orchestrator.settings")),
    ("core", ("orchestrator.asl", "orchestrator.quotas", "steps.sdk")),
    ("in-process runner, registry", ("orchestrator.local", "orchestrator.registry")),
    ("services", ("orchestrator.runtime", "steps.service", "steps.bookkeeping", "steps.testing", "steps.fn", "steps.http", "steps.llm",
                  "steps.mcp", "steps.retrieval", "steps.review", "steps.inprocess")),
    ("client", ("orchestrator.client",)),
    ("front ends", ("orchestrator", "steps", "bench")),
]


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # `from pkg import submodule` names the submodule, not the package's face (__init__).
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            names = [alias.name for alias in node.names if f"{base}.{alias.name}" not in known]
            targets = [*submodules, *([base] if names else [])]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _layer(module: str) -> int:
    best, level = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    assert level >= 0, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return level


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_is_in_an_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_every_import_points_down_the_layers() -> None:
    upward = sorted(f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
                    for a, imported in _graph().items() for b in imported if _layer(b) > _layer(a))
    assert upward == []


def test_steps_never_import_the_orchestrator() -> None:
    assert sorted((a, b) for a, imported in _graph().items() if a.startswith("steps")
                  for b in imported if b.startswith("orchestrator")) == []


def test_the_checks_can_fail() -> None:
    """The analysis sees a cycle and an upward import when there is one."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert _layer("orchestrator.runtime.service") > _layer("orchestrator.asl.decider") > _layer("schemas.steps")
    assert _layer("orchestrator.cli") == len(LAYERS) - 1
