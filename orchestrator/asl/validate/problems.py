"""Where a fault is and how it is worded: JSON paths of faults, field names in messages, and the
signature every value check shares."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from orchestrator.asl.errors import Problem
from orchestrator.asl.validate.tables import JSONATA, JSONPATH

# A value check: (value, JSON path of the value, query language of its state) -> its problems.
Check = Callable[[Any, str, str], list[Problem]]

_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def child(path: str, key: object) -> str:
    """The JSON path of `key` inside the object at `path`: `$.a.b`, or `$.a['b c']` when needed."""
    text = str(key)  # YAML may decode a key as a number
    if _PLAIN_KEY.fullmatch(text):
        return f"{path}.{text}"
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}['{escaped}']"


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def name_of(path: str) -> str:
    """The field name at the end of a path, for messages."""
    match = re.search(r"(?:\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\])$", path)
    if not match:
        return path
    return match.group(1) if match.group(1) is not None else re.sub(r"\\(.)", r"\1", match.group(2))


def listing(names: Any) -> str:
    return ", ".join(sorted(str(name) for name in names))


def wrong_language(key: str, language: str) -> str:
    """The message for a field of the other query language (wording after AWS's own)."""
    other = JSONPATH if language == JSONATA else JSONATA
    return f"field '{key}' is only supported in {other} states, and this state's QueryLanguage is {language}"

