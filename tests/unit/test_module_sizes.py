"""Small modules and functions, as the house style asks: a module over 400 lines says why at its
top (a docstring paragraph starting "(Over 400 lines:"), and no function is over 80 lines. Read
from the source with `ast`, over the same packages as the import-graph test."""

from __future__ import annotations

import ast

from tests.unit.test_architecture import PACKAGES, ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
REASON = "(Over 400 lines:"


def oversized(source: str, name: str) -> list[str]:
    """What in `source` breaks the rule: the module without a reason, each function too long."""
    tree = ast.parse(source, name)
    found = []
    if source.count("\n") > MAX_MODULE_LINES and REASON not in (ast.get_docstring(tree) or ""):
        found.append(f"{name}: {source.count(chr(10))} lines and no {REASON!r} reason in its docstring")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name} is {length} lines")
    return found


def test_modules_and_functions_are_small_or_say_why() -> None:
    found = [problem for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
             for problem in oversized(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []


def test_the_size_checks_can_fail() -> None:
    long_function = "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    assert oversized(long_function, "m.py") == [f"m.py:1 f is {MAX_FUNCTION_LINES + 1} lines"]
    long_module = '"""A module."""\n' + "x = 1\n" * MAX_MODULE_LINES
    assert len(oversized(long_module, "m.py")) == 1
    assert oversized(f'"""A module.\n\n{REASON} one table.)"""\n' + "x = 1\n" * MAX_MODULE_LINES, "m.py") == []
