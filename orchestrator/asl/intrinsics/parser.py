"""The intrinsic parser: a small hand-written recursive descent over the grammar in `syntax`,
cached per expression (a definition's intrinsics are parsed once, however often they run)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NoReturn

from orchestrator.asl import jsonpath
from orchestrator.asl.intrinsics.functions import FUNCTIONS
from orchestrator.asl.intrinsics.syntax import Call, IntrinsicSyntaxError, Literal, Node, Path

_LOOKS_LIKE_CALL = re.compile(r"States\.[A-Za-z0-9_]+\(.*\)", re.DOTALL)
_NAME = re.compile(r"[A-Za-z0-9_.]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_KEYWORDS = {"true": True, "false": False, "null": None}
_KEYWORD = re.compile(r"(?:true|false|null)\b")
_STRING_ESCAPES = frozenset("'{}\\")


def is_intrinsic(value: str) -> bool:
    """True for strings shaped like an intrinsic call, `States.<Name>(...)`; `check` says if it is valid."""
    return isinstance(value, str) and _LOOKS_LIKE_CALL.fullmatch(value) is not None


@lru_cache(maxsize=4096)
def parse(expr: str) -> Call:
    if not isinstance(expr, str):
        raise IntrinsicSyntaxError(f"an intrinsic function must be a string, not {type(expr).__name__}")
    parser = _Parser(expr)
    call = parser.call()
    if parser.pos != len(expr):
        parser.fail(f"unexpected text {expr[parser.pos:parser.pos + 20]!r} after the closing ')'")
    return call


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> NoReturn:
        raise IntrinsicSyntaxError(f"{message} (at position {self.pos} of {self.text!r})")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek().isspace():
            self.pos += 1

    def call(self) -> Call:
        match = _NAME.match(self.text, self.pos)
        name = match.group() if match else ""
        if not name.startswith("States."):
            self.fail("expected an intrinsic function name such as 'States.Format'")
        if name not in FUNCTIONS:
            self.fail(f"unknown intrinsic function {name!r}")
        self.pos += len(name)
        if self.peek() != "(":
            self.fail(f"expected '(' right after {name}")
        self.pos += 1
        return Call(name, self.arguments(name))

    def arguments(self, name: str) -> tuple[Node, ...]:
        args: list[Node] = []
        self.skip_spaces()
        if self.peek() == ")":
            self.pos += 1
            return ()
        while True:
            self.skip_spaces()
            args.append(self.argument())
            self.skip_spaces()
            separator = self.peek()
            if separator == ")":
                self.pos += 1
                return tuple(args)
            if separator != ",":
                self.fail(f"expected ',' or ')' after argument {len(args)} of {name}")
            self.pos += 1

    def argument(self) -> Node:
        first = self.peek()
        if not first:
            self.fail("the expression ends before its closing ')'")
        if first == "'":
            return self.string()
        if first == "$":
            return self.path()
        if first == "-" or first.isdigit():
            return self.number()
        if self.text.startswith("States.", self.pos):
            return self.call()
        if keyword := _KEYWORD.match(self.text, self.pos):
            self.pos = keyword.end()
            return Literal(_KEYWORDS[keyword.group()], keyword.group())
        if first in (",", ")"):
            self.fail("missing argument")
        self.fail("expected an argument: a 'string', a number, true, false, null, a path or a function call")

    def string(self) -> Literal:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while (ch := self.peek()) != "'":
            if not ch:
                self.pos = start
                self.fail("unterminated string literal")
            if ch == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if escaped == "" or escaped not in _STRING_ESCAPES:
                    self.fail(
                        f"invalid escape '\\{escaped}' in a string literal; only \\', \\{{, \\}} and \\\\ are allowed"
                    )
                ch = escaped
                self.pos += 1
            chars.append(ch)
            self.pos += 1
        self.pos += 1
        return Literal("".join(chars), self.text[start : self.pos])

    def number(self) -> Literal:
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            self.fail("invalid number")
        self.pos = match.end()
        source = match.group()
        if self.peek() not in ("", ",", ")") and not self.peek().isspace():
            self.fail(f"invalid number {source + self.peek()!r}...")
        is_float = match.group(1) is not None or match.group(2) is not None
        return Literal(float(source) if is_float else int(source), source)

    def path(self) -> Path:
        start, depth, quote = self.pos, 0, ""
        while ch := self.peek():
            if quote:
                if ch == "\\":
                    self.pos += 1
                elif ch == quote:
                    quote = ""
            elif ch in "'\"" and depth:
                quote = ch
            elif ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            elif depth == 0 and (ch in ",)" or ch.isspace()):
                break
            self.pos += 1
        text = self.text[start : self.pos]
        try:
            jsonpath.check(text)
        except jsonpath.PathSyntaxError as exc:
            self.pos = start
            self.fail(f"invalid path argument {text!r}: {exc}")
        return Path(text)
