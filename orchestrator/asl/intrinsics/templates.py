"""States.Format templates: the literal text around each `{}` placeholder."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from orchestrator.asl.intrinsics.syntax import Literal


@dataclass(frozen=True)
class Template:
    texts: tuple[str, ...]  # the literal text around each placeholder: placeholders + 1 items
    error: str | None = None

    @property
    def placeholders(self) -> int:
        return len(self.texts) - 1


def literal_template(node: Literal) -> Template:
    return parse_template(node.source[1:-1], escapes=True)


@lru_cache(maxsize=1024)
def parse_template(text: str, *, escapes: bool) -> Template:
    """Split a Format template at its `{}` placeholders; an unescaped lone brace is an error."""
    texts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if escapes and ch == "\\":
            i += 1
            current.append(text[i])
        elif ch == "{":
            if text[i + 1 : i + 2] != "}":
                return Template((), "matching '}' not found for '{'.")
            texts.append("".join(current))
            current = []
            i += 1
        elif ch == "}":
            return Template((), "matching '{' not found for '}'.")
        else:
            current.append(ch)
        i += 1
    texts.append("".join(current))
    return Template(tuple(texts))
