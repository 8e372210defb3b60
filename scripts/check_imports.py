#!/usr/bin/env python3
"""Check the arrows between Baton's packages, from the source alone (ast: nothing is imported).

Reports, and exits 1 if it finds any:

- every import from `steps/` into `orchestrator/` (at any level, even inside a function): the
  step services sit beside the orchestrator, on the plumbing and the contracts below both;
- every cycle of module-level imports across the tree (strongly connected components of the
  graph of imports run when a module loads; imports inside functions and under
  `if TYPE_CHECKING:` do not run then, so they are left out).

An import names its module: `from a.b import c` is an edge to `a.b.c` when that is a module of the
tree, else to `a.b`. A module's parent packages, which Python also initialises, are not edges
(every module would otherwise sit in a cycle with a package that re-exports it).

    python scripts/check_imports.py [ROOT]      # ROOT: the repository (default: this script's parent's)
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SKIPPED_DIRS = {".venv", "tests", "scripts", "docs", "build", "dist", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module of the tree
    line: int
    at_load: bool  # run when the source module loads (not inside a function, not type-only)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the tree's packages (folders with an __init__.py), by dotted name."""
    found: dict[str, Path] = {}
    for init in sorted(root.glob("*/__init__.py")):
        package = init.parent
        if package.name in SKIPPED_DIRS or package.name.startswith("."):
            continue
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(root).with_suffix("")
            if any(part in SKIPPED_DIRS or part.startswith(".") for part in relative.parts):
                continue
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(body: list[ast.stmt], at_load: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement, with whether it runs when the module loads."""
    for node in body:
        yield node, at_load
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _statements(node.body, False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _statements(node.body, False)
            yield from _statements(node.orelse, at_load)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    for child in children:
                        if isinstance(child, ast.stmt):
                            yield from _statements([child], at_load)
                        elif hasattr(child, "body"):  # except handlers, match cases
                            yield from _statements(child.body, at_load)


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """The imports of one module that name modules of the tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node, at_load in _statements(tree.body, True):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _within(alias.name, known)
                if target:
                    yield Import(name, target, node.lineno, at_load)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = _within(f"{base}.{alias.name}", known) if alias.name != "*" else None
                target = target if target == f"{base}.{alias.name}" else _within(base, known)
                if target:
                    yield Import(name, target, node.lineno, at_load)


def _within(dotted: str, known: dict[str, Path]) -> str | None:
    """The longest prefix of `dotted` that is a module of the tree."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    known = modules(root)
    every = sorted({found for name, path in known.items() for found in imports(name, path, known)},
                   key=lambda i: (i.source, i.line, i.target))
    upward = [i for i in every if i.source.split(".")[0] == "steps" and i.target.split(".")[0] == "orchestrator"]
    print(f"imports from steps/ into orchestrator/: {len(upward)}")
    for i in upward:
        where = "" if i.at_load else " (inside a function or type-only)"
        print(f"  {known[i.source].relative_to(root)}:{i.line}: {i.source} -> {i.target}{where}")
    edges: dict[str, set[str]] = {name: set() for name in known}
    for i in every:
        if i.at_load:
            edges[i.source].add(i.target)
    loops = cycles(edges)
    print(f"module-level import cycles: {len(loops)}")
    for component in loops:
        print(f"  {len(component)} modules: " + ", ".join(component))
    arrows: dict[tuple[str, str], int] = {}
    for i in every:
        ends = (i.source.split(".")[0], i.target.split(".")[0])
        if ends[0] != ends[1]:
            arrows[ends] = arrows.get(ends, 0) + 1
    print("arrows between top-level packages (imports, at any level):")
    for (source, target), count in sorted(arrows.items()):
        back = " <- and back" if (target, source) in arrows else ""
        print(f"  {source} -> {target}: {count}{back}")
    return 1 if upward or loops else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
