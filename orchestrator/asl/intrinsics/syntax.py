"""The syntax tree of an intrinsic call, and the error for text that is not one.

    call     := NAME "(" [ argument { "," argument } ] ")"        NAME = "States." [A-Za-z0-9_]+
    argument := call | path | 'string' | number | true | false | null
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class IntrinsicSyntaxError(ValueError):
    """The string is not an intrinsic function call that a definition may contain."""


@dataclass(frozen=True)
class Literal:
    value: Any  # str, int, float, bool or None
    source: str  # as written; for strings the quoted text with its escapes intact


@dataclass(frozen=True)
class Path:
    path: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Literal | Path | Call


def count_calls(call: Call) -> int:
    return 1 + sum(count_calls(arg) for arg in call.args if isinstance(arg, Call))
