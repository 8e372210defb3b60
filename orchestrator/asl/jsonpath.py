"""JSONPath as ASL uses it: read a value from the input, the context object (`$$`) or a variable (`$name`).

Step Functions evaluates paths with Jayway JsonPath semantics: a *definite* path (only field names
and single indexes) yields one value and fails when nothing is there; an *indefinite* path
(wildcards, slices, filters, deep scan, unions) yields a list of every match, possibly empty.
Parsing is done by `jsonpath-ng` (its extended grammar, for filters); definiteness and the
context/variable prefixes are ours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jsonpath_ng import jsonpath as jp
from jsonpath_ng.ext.parser import parse as _parse
from jsonpath_ng.ext.filter import Filter

_VARIABLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)(.*)$", re.DOTALL)


class PathSyntaxError(ValueError):
    """The string is not a JSONPath that ASL accepts."""


class PathNotFound(LookupError):
    """A definite path matched nothing in the document it was applied to."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class _Compiled:
    __slots__ = ("expr", "definite", "root")

    def __init__(self, expr: jp.JSONPath, definite: bool, root: bool) -> None:
        self.expr = expr
        self.definite = definite
        self.root = root  # the path is just "$": the whole document


def _is_definite(node: jp.JSONPath) -> bool:
    if isinstance(node, jp.Root):
        return True
    if isinstance(node, jp.Child):
        return _is_definite(node.left) and _is_definite(node.right)
    if isinstance(node, jp.Fields):
        return len(node.fields) == 1 and node.fields[0] != "*"
    if isinstance(node, jp.Index):
        return len(node.indices) == 1
    return False


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-$@]+$")
_PARSER_KEYWORDS = frozenset({"where", "wherenot"})


def _quote_dotted_names(path: str) -> str:
    """Rewrite `.name` as `['name']` where jsonpath-ng's lexer would refuse a name Jayway accepts
    (its keywords `where`/`wherenot`, non-ASCII letters, ...); brackets and filters are left alone."""
    out: list[str] = []
    i, depth, quote = 0, 0, ""
    while i < len(path):
        ch = path[i]
        if quote:
            out.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch in "[(":
            depth += 1
            out.append(ch)
        elif ch in ")]":
            depth -= 1
            out.append(ch)
        elif ch == "." and depth == 0:
            dots = "." if not path.startswith("..", i) else ".."
            j = i + len(dots)
            k = j
            while k < len(path) and path[k] not in ".[":
                k += 1
            name = path[j:k]
            if name and name != "*" and (not _SAFE_NAME.match(name) or name in _PARSER_KEYWORDS):
                escaped = name.replace("'", "\\'")
                out.append(("..['" if dots == ".." else "['") + escaped + "']")
            else:
                out.append(dots + name)
            i = k
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def _compile(body: str) -> _Compiled:
    """Compile a path that starts with `$` (the prefix `$$` or `$var` already stripped to `$`)."""
    if not body.startswith("$"):
        raise PathSyntaxError(f"a JSONPath must start with '$': {body!r}")
    if body == "$":
        return _Compiled(jp.Root(), True, True)
    try:
        expr = _parse(_quote_dotted_names(body))
    except Exception as exc:  # jsonpath-ng raises plain Exception subclasses from its lexer/parser
        raise PathSyntaxError(f"invalid JSONPath {body!r}: {exc}") from None
    if not isinstance(expr, (jp.Root, jp.Child, jp.Descendants, jp.Where, Filter)) and not _starts_at_root(expr):
        raise PathSyntaxError(f"invalid JSONPath {body!r}")
    return _Compiled(expr, _is_definite(expr), False)


def _starts_at_root(node: Any) -> bool:
    while isinstance(node, (jp.Child, jp.Descendants, jp.Where)):
        node = node.left
    return isinstance(node, jp.Root)


def split_prefix(path: str) -> tuple[str, str | None, str]:
    """Split a path into (kind, variable name, path from `$`): kind is "input", "context" or "variable"."""
    if path.startswith("$$"):
        return "context", None, "$" + path[2:]
    m = _VARIABLE.match(path)
    if m:
        return "variable", m.group(1), "$" + m.group(2)
    return "input", None, path


def check(path: str) -> None:
    """Raise PathSyntaxError unless `path` is a JSONPath ASL accepts (input, `$$` or `$var`)."""
    if not isinstance(path, str):
        raise PathSyntaxError(f"a JSONPath must be a string, not {type(path).__name__}")
    _compile(split_prefix(path)[2])


def is_definite(path: str) -> bool:
    """True when the path names at most one location (a Reference Path in the ASL spec)."""
    return _compile(split_prefix(path)[2]).definite


def read_document(path: str, document: Any) -> Any:
    """Apply a `$`-rooted path to one document."""
    compiled = _compile(path)
    if compiled.root:
        return document
    matches = compiled.expr.find(document)
    if compiled.definite:
        if not matches:
            raise PathNotFound(path)
        return matches[0].value
    return [m.value for m in matches]


def read(
    path: str,
    data: Any,
    *,
    context: Any = None,
    variables: Mapping[str, Any] | None = None,
) -> Any:
    """Read `path` from the state's data, from the context object (`$$...`) or a variable (`$name...`).

    Raises PathNotFound when a definite path matches nothing (callers turn it into the ASL error
    their field calls for), PathSyntaxError when the path is malformed.
    """
    kind, name, body = split_prefix(path)
    if kind == "context":
        return read_document(body, context)
    if kind == "variable":
        assert name is not None
        if variables is None or name not in variables:
            raise PathNotFound(path)
        return read_document(body, variables[name])
    return read_document(body, data)


def reference_segments(path: str) -> list[str | int]:
    """The field names and indexes of a definite `$`-rooted path, for writing (ResultPath).

    Raises PathSyntaxError when the path is not a Reference Path.
    """
    compiled = _compile(path)
    if not compiled.definite:
        raise PathSyntaxError(f"{path!r} is not a reference path (no wildcards, slices or filters)")
    segments: list[str | int] = []

    def walk(node: jp.JSONPath) -> None:
        if isinstance(node, jp.Child):
            walk(node.left)
            walk(node.right)
        elif isinstance(node, jp.Fields):
            segments.append(node.fields[0])
        elif isinstance(node, jp.Index):
            segments.append(node.indices[0])

    walk(compiled.expr)
    return segments
