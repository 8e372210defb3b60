"""ASL intrinsic functions (`States.Format(...)` and friends) for JSONPath states.

An intrinsic is parsed once (cached) by a small hand-written recursive-descent parser and then
evaluated against the state input, the context object and the workflow variables. The grammar:

    call     := NAME "(" [ argument { "," argument } ] ")"        NAME = "States." [A-Za-z0-9_]+
    argument := call | path | 'string' | number | true | false | null

Semantics follow what Step Functions does, which is not always what the developer guide says.
Step Functions runs on the JVM and its behaviour shows it; recorded executions on real AWS
(LocalStack's snapshots and the tiny-asl-machine AWS snapshots) establish that:

* every runtime fault of an intrinsic is a `States.Runtime` error (not `States.IntrinsicFailure`),
  with the cause "There was an error while evaluating the intrinsic function: <expr>. Invalid
  arguments in States.<Name>"; a path argument that matches nothing is also `States.Runtime`;
* argument counts and types are checked when the function runs, not when the definition is
  created (`check` is stricter on purpose: it refuses calls that can never succeed);
* values are handled as Java objects: States.Format renders an object as `{a=1, b=[2, 3]}`
  (`String.valueOf`), States.ArrayContains compares those renderings, States.ArrayUnique keeps
  the iteration order of a `java.util.HashSet`, and a seeded States.MathRandom is
  `new java.util.Random(seed).nextInt(end - start) + start`;
* States.MathAdd rounds like `Math.round`, while ArrayRange, ArrayPartition, ArrayGetItem and
  MathRandom truncate fractional numbers toward zero.

The core is deterministic: randomness and UUIDs come only from the injected `rng`/`new_uuid`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from functools import lru_cache
from typing import Any, NoReturn

from . import errors, jsonpath

__all__ = ["IntrinsicSyntaxError", "check", "evaluate", "is_intrinsic"]

# Step Functions reports intrinsic faults as States.Runtime, which Retry/Catch cannot match.
FAILURE_ERROR = errors.RUNTIME

MAX_FUNCTIONS_PER_FIELD = 10  # developer guide: "You can nest up to 10 intrinsic functions"
MAX_RANGE_ITEMS = 1000  # States.ArrayRange
MAX_TEXT_LENGTH = 10_000  # States.Base64Encode, States.Base64Decode, States.Hash (Java chars)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_LOOKS_LIKE_CALL = re.compile(r"States\.[A-Za-z0-9_]+\(.*\)", re.DOTALL)
_NAME = re.compile(r"[A-Za-z0-9_.]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_KEYWORDS = {"true": True, "false": False, "null": None}
_KEYWORD = re.compile(r"(?:true|false|null)\b")
_STRING_ESCAPES = frozenset("'{}\\")
_HASHES: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5,
    "SHA-1": hashlib.sha1,
    "SHA-256": hashlib.sha256,
    "SHA-384": hashlib.sha384,
    "SHA-512": hashlib.sha512,
}


class IntrinsicSyntaxError(ValueError):
    """The string is not an intrinsic function call that a definition may contain."""


def is_intrinsic(value: str) -> bool:
    """True for strings shaped like an intrinsic call, `States.<Name>(...)`; `check` says if it is valid."""
    return isinstance(value, str) and _LOOKS_LIKE_CALL.fullmatch(value) is not None


def check(expr: str) -> None:
    """Raise IntrinsicSyntaxError unless `expr` is a well-formed call that can succeed.

    Refuses bad syntax, unknown function names, invalid escapes, invalid path arguments, more than
    10 functions in one expression, wrong argument counts, literal arguments of the wrong type
    and literal values no call can accept (e.g. an unknown hash algorithm or a Format template
    whose placeholders do not match its arguments).
    """
    call = _parse(expr)
    _check_call(call, expr)
    count = _count_calls(call)
    if count > MAX_FUNCTIONS_PER_FIELD:
        raise IntrinsicSyntaxError(
            f"{count} intrinsic functions in one expression; at most {MAX_FUNCTIONS_PER_FIELD} are allowed"
        )


def evaluate(
    expr: str,
    data: Any,
    *,
    context: Any,
    variables: Mapping[str, Any] | None,
    rng: random.Random,
    new_uuid: Callable[[], str],
) -> Any:
    """Evaluate the intrinsic `expr` against the state's data, the context object and variables.

    Raises IntrinsicSyntaxError when `expr` does not parse, and StatesError(States.Runtime) with
    the cause Step Functions gives when an argument path matches nothing or a function refuses
    its arguments (the caller adds the "An error occurred while executing the state" prefix).
    """
    env = _Env(expr, data, context, variables, rng, new_uuid)
    try:
        return _evaluate_call(_parse(expr), env)
    except _Fault as fault:
        raise errors.StatesError(
            FAILURE_ERROR,
            f"There was an error while evaluating the intrinsic function: {expr}. {fault.message}",
        ) from None


# --- Syntax tree and parser ------------------------------------------------------------------


@dataclass(frozen=True)
class _Literal:
    value: Any  # str, int, float, bool or None
    source: str  # as written; for strings the quoted text with its escapes intact


@dataclass(frozen=True)
class _Path:
    path: str


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]


_Node = _Literal | _Path | _Call


@lru_cache(maxsize=4096)
def _parse(expr: str) -> _Call:
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

    def call(self) -> _Call:
        match = _NAME.match(self.text, self.pos)
        name = match.group() if match else ""
        if not name.startswith("States."):
            self.fail("expected an intrinsic function name such as 'States.Format'")
        if name not in _FUNCTIONS:
            self.fail(f"unknown intrinsic function {name!r}")
        self.pos += len(name)
        if self.peek() != "(":
            self.fail(f"expected '(' right after {name}")
        self.pos += 1
        return _Call(name, self.arguments(name))

    def arguments(self, name: str) -> tuple[_Node, ...]:
        args: list[_Node] = []
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

    def argument(self) -> _Node:
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
            return _Literal(_KEYWORDS[keyword.group()], keyword.group())
        if first in (",", ")"):
            self.fail("missing argument")
        self.fail("expected an argument: a 'string', a number, true, false, null, a path or a function call")

    def string(self) -> _Literal:
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
        return _Literal("".join(chars), self.text[start : self.pos])

    def number(self) -> _Literal:
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            self.fail("invalid number")
        self.pos = match.end()
        source = match.group()
        if self.peek() not in ("", ",", ")") and not self.peek().isspace():
            self.fail(f"invalid number {source + self.peek()!r}...")
        is_float = match.group(1) is not None or match.group(2) is not None
        return _Literal(float(source) if is_float else int(source), source)

    def path(self) -> _Path:
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
        return _Path(text)


# --- Static checks (check) -----------------------------------------------------------------


class _Kind(Enum):
    """What a parameter accepts, and which literal arguments can satisfy it."""

    ANY = ("any value", frozenset({str, int, float, bool, type(None)}))
    STRING = ("a string", frozenset({str}))
    NUMBER = ("a number", frozenset({int, float}))
    ARRAY = ("an array", frozenset[type]())
    OBJECT = ("a JSON object", frozenset[type]())

    def __init__(self, description: str, literal_types: frozenset[type]) -> None:
        self.description = description
        self.literal_types = literal_types


def _check_call(call: _Call, expr: str) -> None:
    spec = _FUNCTIONS[call.name]
    if not spec.accepts(len(call.args)):
        raise IntrinsicSyntaxError(
            f"{call.name} takes {spec.arity_text()}, but {len(call.args)} were given in {expr!r}"
        )
    for index, arg in enumerate(call.args):
        if isinstance(arg, _Call):
            _check_call(arg, expr)
        elif isinstance(arg, _Literal):
            kind = spec.kind(index)
            if type(arg.value) not in kind.literal_types:
                raise IntrinsicSyntaxError(
                    f"argument {index + 1} of {call.name} must be {kind.description}, not the literal {arg.source}"
                )
    if spec.static_check:
        spec.static_check(call)


def _count_calls(call: _Call) -> int:
    return 1 + sum(_count_calls(arg) for arg in call.args if isinstance(arg, _Call))


def _check_format(call: _Call) -> None:
    template = call.args[0]
    if not isinstance(template, _Literal):
        return
    parsed = _literal_template(template)
    if parsed.error:
        raise IntrinsicSyntaxError(f"invalid States.Format template {template.source}: {parsed.error}")
    given = len(call.args) - 1
    if parsed.placeholders != given:
        raise IntrinsicSyntaxError(
            f"the States.Format template {template.source} has {parsed.placeholders} '{{}}' "
            f"placeholder(s) but {given} value(s) follow it"
        )


def _check_hash(call: _Call) -> None:
    algorithm = call.args[1]
    if isinstance(algorithm, _Literal) and algorithm.value not in _HASHES:
        raise IntrinsicSyntaxError(
            f"States.Hash does not support the algorithm {algorithm.source}; use one of {', '.join(_HASHES)}"
        )


def _check_json_merge(call: _Call) -> None:
    deep = call.args[2]
    if isinstance(deep, _Literal) and _is_deep_merge(deep.value):
        raise IntrinsicSyntaxError("States.JsonMerge only supports shallow merging: its third argument must be false")


# --- Evaluation ------------------------------------------------------------------------------


class _Fault(Exception):
    """A function refused its arguments; `message` is the text Step Functions puts in the cause."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _InvalidArguments(Exception):
    """Raised by a function body; turned into "Invalid arguments in States.<Name>"."""


@dataclass(frozen=True)
class _Env:
    expr: str
    data: Any
    context: Any
    variables: Mapping[str, Any] | None
    rng: random.Random
    new_uuid: Callable[[], str]

    def read(self, path: str) -> Any:
        try:
            return jsonpath.read(path, self.data, context=self.context, variables=self.variables)
        except jsonpath.PathNotFound:
            # Step Functions names a context path relative to the context object and shows the
            # state input, not the context object, in this message.
            shown = "$" + path[2:] if path.startswith("$$") else path
            raise errors.StatesError(
                FAILURE_ERROR,
                f"The function '{self.expr}' had the following error: The JsonPath argument for the "
                f"field '{shown}' could not be found in the input '{_json_text(self.data)}'",
            ) from None


def _evaluate(node: _Node, env: _Env) -> Any:
    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Path):
        return env.read(node.path)
    return _evaluate_call(node, env)


def _evaluate_call(call: _Call, env: _Env) -> Any:
    spec = _FUNCTIONS[call.name]
    if not spec.accepts(len(call.args)):
        raise _Fault(f"Invalid arguments in {call.name}{spec.arity_detail}")
    args = [_evaluate(arg, env) for arg in call.args]
    first = call.args[0] if call.args else None
    if spec.template_first and isinstance(first, _Literal) and isinstance(first.value, str):
        args[0] = _literal_template(first)  # remembers which braces the literal escaped
    try:
        return spec.impl(args, env)
    except _InvalidArguments:
        raise _Fault(f"Invalid arguments in {call.name}") from None


# --- Value helpers: numbers, Java renderings, JSON text --------------------------------------


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _truncated(value: Any) -> int:
    """A numeric argument as an int, truncated toward zero as Java's intValue() does."""
    if not _is_number(value):
        raise _InvalidArguments
    return int(value)  # int() truncates toward zero


def _rounded(value: Any) -> int:
    """A numeric argument rounded like Java's Math.round: halves go toward positive infinity."""
    if not _is_number(value):
        raise _InvalidArguments
    return math.floor(Fraction(value) + Fraction(1, 2))


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _InvalidArguments
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _InvalidArguments
    return value


def _java_length(text: str) -> int:
    """String.length() in Java: UTF-16 code units, so characters outside the BMP count twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _java_double(value: float) -> str:
    """Double.toString: shortest digits, plain between 1e-3 and 1e7, else `d.dddE<n>`."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    minus = "-" if sign else ""
    if 1e-3 <= abs(value) < 1e7:
        plain = format(Decimal(repr(abs(value))).normalize(), "f")
        return minus + (plain if "." in plain else plain + ".0")
    return f"{minus}{digits[0]}.{digits[1:] or '0'}E{len(digits) + exponent - 1}"


def _java_str(value: Any) -> str:
    """String.valueOf of the Java object Step Functions holds for a JSON value (Map.toString etc.)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_java_str, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_java_str(item)}" for key, item in value.items()) + "}"
    return str(value)


# Jackson escapes quotes, backslashes and control characters (\uXXXX in upper-case hex).
_JSON_ESCAPES = {i: f"\\u{i:04X}" for i in range(0x20)} | {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("\b"): "\\b",
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\f"): "\\f",
    ord("\r"): "\\r",
}


def _json_text(value: Any) -> str:
    """Compact JSON text as Step Functions (Jackson) writes it: no spaces, doubles as Java prints them."""
    if isinstance(value, str):
        return '"' + value.translate(_JSON_ESCAPES) + '"'
    if value is None or isinstance(value, (bool, int, float)):
        return _java_double(value) if isinstance(value, float) else json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(map(_json_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json_text(str(k))}:{_json_text(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


# --- Java collections: equality, hashCode and HashSet order (States.ArrayUnique) --------------


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _java_hash(value: Any) -> int:
    """hashCode() of the Java object for a JSON value (Integer/Long, Double, String, List, Map)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1231 if value else 1237
    if isinstance(value, int):
        if INT32_MIN <= value <= INT32_MAX:
            return value
        bits = value & 0xFFFFFFFFFFFFFFFF  # Long.hashCode
        return _int32(bits ^ (bits >> 32))
    if isinstance(value, float):
        (bits,) = struct.unpack(">Q", struct.pack(">d", value))
        return _int32(bits ^ (bits >> 32))
    if isinstance(value, str):
        h = 0
        for unit in struct.unpack(f"<{len(value.encode('utf-16-le')) // 2}H", value.encode("utf-16-le")):
            h = (31 * h + unit) & 0xFFFFFFFF
        return _int32(h)
    if isinstance(value, list):
        h = 1
        for item in value:
            h = (31 * h + _java_hash(item)) & 0xFFFFFFFF
        return _int32(h)
    if isinstance(value, dict):
        return _int32(sum(_java_hash(str(k)) ^ _java_hash(v) for k, v in value.items()))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _java_key(value: Any) -> Any:
    """A hashable key equal for two JSON values exactly when their Java objects are equals()."""
    if isinstance(value, list):
        return ("list", tuple(map(_java_key, value)))
    if isinstance(value, dict):
        return ("map", frozenset((str(k), _java_key(v)) for k, v in value.items()))
    if isinstance(value, float):
        return ("double", struct.pack(">d", value))
    return (type(value).__name__, value)  # bool stays apart from int, 1 apart from 1.0


def _hash_set_order(items: list[Any]) -> list[Any]:
    """The iteration order of `new ArrayList<>(new HashSet<>(items))` on a JVM (Java 8 to 18)."""
    capacity = 1
    while capacity < max(int(len(items) / 0.75) + 1, 16):
        capacity *= 2
    unique: dict[Any, Any] = {}
    for item in items:
        unique.setdefault(_java_key(item), item)

    def bucket(item: Any) -> int:
        h = _java_hash(item) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(unique.values(), key=bucket)  # sorted() is stable: insertion order within a bucket


def _java_random_int(seed: int, bound: int) -> int:
    """`new java.util.Random(seed).nextInt(bound)`, bit for bit."""
    multiplier, mask = 0x5DEECE66D, (1 << 48) - 1
    state = (seed ^ multiplier) & mask

    def next31() -> int:
        nonlocal state
        state = (state * multiplier + 0xB) & mask
        return state >> 17

    if bound & -bound == bound:
        return (bound * next31()) >> 31
    while True:
        bits = next31()
        value = bits % bound
        if bits - value + (bound - 1) <= INT32_MAX:  # Java rejects draws whose int sum overflows
            return value


# --- States.Format templates -----------------------------------------------------------------


@dataclass(frozen=True)
class _Template:
    texts: tuple[str, ...]  # the literal text around each placeholder: placeholders + 1 items
    error: str | None = None

    @property
    def placeholders(self) -> int:
        return len(self.texts) - 1


def _literal_template(node: _Literal) -> _Template:
    return _parse_template(node.source[1:-1], escapes=True)


@lru_cache(maxsize=1024)
def _parse_template(text: str, *, escapes: bool) -> _Template:
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
                return _Template((), "matching '}' not found for '{'.")
            texts.append("".join(current))
            current = []
            i += 1
        elif ch == "}":
            return _Template((), "matching '{' not found for '}'.")
        else:
            current.append(ch)
        i += 1
    texts.append("".join(current))
    return _Template(tuple(texts))


# --- The functions -----------------------------------------------------------------------------


def _format(args: list[Any], env: _Env) -> str:
    template, values = args[0], args[1:]
    if isinstance(template, str):
        template = _parse_template(template, escapes=False)
    if not isinstance(template, _Template):
        raise _InvalidArguments
    if template.error:
        raise _Fault(f"Invalid template in States.Format: {template.error}")
    if template.placeholders != len(values):
        raise _InvalidArguments
    parts = [template.texts[0]]
    for value, text in zip(values, template.texts[1:]):
        parts += [_java_str(value), text]
    return "".join(parts)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _string_to_json(args: list[Any], env: _Env) -> Any:
    text = _string(args[0])
    if not text.strip():
        return None  # Step Functions turns an empty or blank string into null
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise _Fault(f"Cannot convert String to Json in States.StringToJson, caused by: {exc}") from None


def _json_to_string(args: list[Any], env: _Env) -> str:
    return _json_text(args[0])


def _array_of(args: list[Any], env: _Env) -> list[Any]:
    return list(args)


def _array_partition(args: list[Any], env: _Env) -> list[list[Any]]:
    items, size = _array(args[0]), _truncated(args[1])
    if size < 1:
        raise _InvalidArguments
    return [items[i : i + size] for i in range(0, len(items), size)]


def _array_contains(args: list[Any], env: _Env) -> bool:
    # Step Functions compares the Java renderings: "true" matches true, {a,b} misses {b,a}.
    needle = _java_str(args[1])
    return any(_java_str(item) == needle for item in _array(args[0]))


def _array_range(args: list[Any], env: _Env) -> list[int]:
    start, end, step = (_truncated(arg) for arg in args)
    if step == 0:
        raise _InvalidArguments
    count = max(0, (end - start) // step + 1)
    if count > MAX_RANGE_ITEMS:
        raise _InvalidArguments
    return [start + i * step for i in range(count)]


def _array_get_item(args: list[Any], env: _Env) -> Any:
    items, index = _array(args[0]), _truncated(args[1])
    if not 0 <= index < len(items):
        raise _InvalidArguments
    return items[index]


def _array_length(args: list[Any], env: _Env) -> int:
    return len(_array(args[0]))


def _array_unique(args: list[Any], env: _Env) -> list[Any]:
    return _hash_set_order(_array(args[0]))


def _limited_text(value: Any) -> str:
    text = value if isinstance(value, str) else _java_str(value)
    if _java_length(text) > MAX_TEXT_LENGTH:
        raise _InvalidArguments
    return text


def _base64_encode(args: list[Any], env: _Env) -> str:
    return base64.b64encode(_limited_text(_string(args[0])).encode("utf-8")).decode("ascii")


_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_decode(args: list[Any], env: _Env) -> str:
    # Lenient like Step Functions: characters outside the alphabet are skipped, decoding stops
    # at the first '=', missing padding is fine and a lone trailing character is dropped.
    text = _limited_text(_string(args[0])).split("=", 1)[0].translate({ord("-"): "+", ord("_"): "/"})
    symbols = "".join(ch for ch in text if ch in _BASE64_ALPHABET)
    if len(symbols) % 4 == 1:
        symbols = symbols[:-1]
    try:
        raw = base64.b64decode(symbols + "=" * (-len(symbols) % 4))
    except binascii.Error:
        raise _InvalidArguments from None
    return raw.decode("utf-8", errors="replace")


def _hash(args: list[Any], env: _Env) -> str:
    algorithm = args[1]
    if not isinstance(algorithm, str) or algorithm not in _HASHES:
        raise _InvalidArguments
    return str(_HASHES[algorithm](_limited_text(args[0]).encode("utf-8")).hexdigest())


def _is_deep_merge(flag: Any) -> bool:
    # Boolean.parseBoolean(String.valueOf(flag)): only a (case-insensitive) "true" asks for it.
    return _java_str(flag).lower() == "true"


def _json_merge(args: list[Any], env: _Env) -> dict[str, Any]:
    first, second, deep = args
    if not isinstance(first, dict) or not isinstance(second, dict) or _is_deep_merge(deep):
        raise _InvalidArguments
    return {**first, **second}  # shallow: the second object's keys win


def _math_random(args: list[Any], env: _Env) -> int:
    start, end = _truncated(args[0]), _truncated(args[1])
    if not INT32_MIN <= start < end <= INT32_MAX or end - start > INT32_MAX:
        raise _InvalidArguments
    if len(args) == 3:
        return start + _java_random_int(_truncated(args[2]), end - start)
    return env.rng.randrange(start, end)


def _math_add(args: list[Any], env: _Env) -> int:
    first, second = _rounded(args[0]), _rounded(args[1])
    if not all(INT32_MIN <= n <= INT32_MAX for n in (first, second, first + second)):
        raise _InvalidArguments
    return first + second


def _string_split(args: list[Any], env: _Env) -> list[str]:
    # java.util.StringTokenizer: every character of the second argument is a delimiter and
    # empty tokens are dropped.
    text, delimiters = _string(args[0]), _string(args[1])
    tokens, current = [], ""
    for ch in text:
        if ch in delimiters:
            tokens.append(current)
            current = ""
        else:
            current += ch
    tokens.append(current)
    return [token for token in tokens if token]


def _uuid(args: list[Any], env: _Env) -> str:
    return env.new_uuid()


# --- The function table ------------------------------------------------------------------------

_Impl = Callable[[list[Any], _Env], Any]


@dataclass(frozen=True)
class _Spec:
    impl: _Impl
    params: tuple[_Kind, ...] = ()
    required: int | None = None  # how many of `params` are required; default: all
    rest: _Kind | None = None  # the kind of any further arguments, for variadic functions
    static_check: Callable[[_Call], None] | None = None
    template_first: bool = False
    arity_detail: str = ""  # appended to "Invalid arguments in States.X" for a wrong count

    def accepts(self, count: int) -> bool:
        required = len(self.params) if self.required is None else self.required
        return count >= required and (self.rest is not None or count <= len(self.params))

    def kind(self, index: int) -> _Kind:
        if index < len(self.params):
            return self.params[index]
        assert self.rest is not None
        return self.rest

    def arity_text(self) -> str:
        required = len(self.params) if self.required is None else self.required
        if self.rest is not None:
            return f"at least {required} argument(s)"
        if required == len(self.params):
            return f"exactly {required} argument(s)"
        return f"{required} to {len(self.params)} arguments"


_A, _S, _N = _Kind.ANY, _Kind.STRING, _Kind.NUMBER
_FUNCTIONS: dict[str, _Spec] = {
    "States.Format": _Spec(_format, (_S,), rest=_A, static_check=_check_format, template_first=True),
    "States.StringToJson": _Spec(_string_to_json, (_S,)),
    "States.JsonToString": _Spec(
        _json_to_string, (_A,), arity_detail=": only a single argument is allowed."
    ),
    "States.Array": _Spec(_array_of, rest=_A),
    "States.ArrayPartition": _Spec(_array_partition, (_Kind.ARRAY, _N)),
    "States.ArrayContains": _Spec(_array_contains, (_Kind.ARRAY, _A)),
    "States.ArrayRange": _Spec(_array_range, (_N, _N, _N)),
    "States.ArrayGetItem": _Spec(_array_get_item, (_Kind.ARRAY, _N)),
    "States.ArrayLength": _Spec(_array_length, (_Kind.ARRAY,)),
    "States.ArrayUnique": _Spec(_array_unique, (_Kind.ARRAY,)),
    "States.Base64Encode": _Spec(_base64_encode, (_S,)),
    "States.Base64Decode": _Spec(_base64_decode, (_S,)),
    "States.Hash": _Spec(_hash, (_A, _S), static_check=_check_hash),
    "States.JsonMerge": _Spec(_json_merge, (_Kind.OBJECT, _Kind.OBJECT, _A), static_check=_check_json_merge),
    "States.MathRandom": _Spec(_math_random, (_N, _N, _N), required=2),
    "States.MathAdd": _Spec(_math_add, (_N, _N)),
    "States.StringSplit": _Spec(_string_split, (_S, _S)),
    "States.UUID": _Spec(_uuid),
}
