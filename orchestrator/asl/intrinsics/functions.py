"""The intrinsic functions, their parameters and the static checks of their literal arguments.

Each function takes its evaluated arguments and refuses bad ones with InvalidArguments (the cause
"Invalid arguments in States.<Name>") or a Fault with Step Functions' own wording. Arguments are
handled as the JVM would (see `java`): States.MathAdd rounds like `Math.round`, while ArrayRange,
ArrayPartition, ArrayGetItem and MathRandom truncate fractional numbers toward zero.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn

from orchestrator.asl.intrinsics.java import (
    INT32_MAX,
    INT32_MIN,
    hash_set_order,
    java_length,
    java_random_int,
    java_str,
    json_text,
)
from orchestrator.asl.intrinsics.syntax import Call, IntrinsicSyntaxError, Literal
from orchestrator.asl.intrinsics.templates import Template, literal_template, parse_template
from orchestrator.asl.intrinsics.values import Env, Fault, InvalidArguments, as_array, as_string, rounded, truncated

MAX_RANGE_ITEMS = 1000  # States.ArrayRange
MAX_TEXT_LENGTH = 10_000  # States.Base64Encode, States.Base64Decode, States.Hash (Java chars)
HASHES: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5,
    "SHA-1": hashlib.sha1,
    "SHA-256": hashlib.sha256,
    "SHA-384": hashlib.sha384,
    "SHA-512": hashlib.sha512,
}


class Kind(Enum):
    """What a parameter accepts, and which literal arguments can satisfy it."""

    ANY = ("any value", frozenset({str, int, float, bool, type(None)}))
    STRING = ("a string", frozenset({str}))
    NUMBER = ("a number", frozenset({int, float}))
    ARRAY = ("an array", frozenset[type]())
    OBJECT = ("a JSON object", frozenset[type]())

    def __init__(self, description: str, literal_types: frozenset[type]) -> None:
        self.description = description
        self.literal_types = literal_types


def check_format(call: Call) -> None:
    template = call.args[0]
    if not isinstance(template, Literal):
        return
    parsed = literal_template(template)
    if parsed.error:
        raise IntrinsicSyntaxError(f"invalid States.Format template {template.source}: {parsed.error}")
    given = len(call.args) - 1
    if parsed.placeholders != given:
        raise IntrinsicSyntaxError(
            f"the States.Format template {template.source} has {parsed.placeholders} '{{}}' "
            f"placeholder(s) but {given} value(s) follow it"
        )


def check_hash(call: Call) -> None:
    algorithm = call.args[1]
    if isinstance(algorithm, Literal) and algorithm.value not in HASHES:
        raise IntrinsicSyntaxError(
            f"States.Hash does not support the algorithm {algorithm.source}; use one of {', '.join(HASHES)}"
        )


def check_json_merge(call: Call) -> None:
    deep = call.args[2]
    if isinstance(deep, Literal) and _is_deep_merge(deep.value):
        raise IntrinsicSyntaxError("States.JsonMerge only supports shallow merging: its third argument must be false")


# --- The functions -----------------------------------------------------------------------------


def _format(args: list[Any], env: Env) -> str:
    template, values = args[0], args[1:]
    if isinstance(template, str):
        template = parse_template(template, escapes=False)
    if not isinstance(template, Template):
        raise InvalidArguments
    if template.error:
        raise Fault(f"Invalid template in States.Format: {template.error}")
    if template.placeholders != len(values):
        raise InvalidArguments
    parts = [template.texts[0]]
    for value, text in zip(values, template.texts[1:]):
        parts += [java_str(value), text]
    return "".join(parts)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _string_to_json(args: list[Any], env: Env) -> Any:
    text = as_string(args[0])
    if not text.strip():
        return None  # Step Functions turns an empty or blank string into null
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise Fault(f"Cannot convert String to Json in States.StringToJson, caused by: {exc}") from None


def _json_to_string(args: list[Any], env: Env) -> str:
    return json_text(args[0])


def _array_of(args: list[Any], env: Env) -> list[Any]:
    return list(args)


def _array_partition(args: list[Any], env: Env) -> list[list[Any]]:
    items, size = as_array(args[0]), truncated(args[1])
    if size < 1:
        raise InvalidArguments
    return [items[i : i + size] for i in range(0, len(items), size)]


def _array_contains(args: list[Any], env: Env) -> bool:
    # Step Functions compares the Java renderings: "true" matches true, {a,b} misses {b,a}.
    needle = java_str(args[1])
    return any(java_str(item) == needle for item in as_array(args[0]))


def _array_range(args: list[Any], env: Env) -> list[int]:
    start, end, step = (truncated(arg) for arg in args)
    if step == 0:
        raise InvalidArguments
    count = max(0, (end - start) // step + 1)
    if count > MAX_RANGE_ITEMS:
        raise InvalidArguments
    return [start + i * step for i in range(count)]


def _array_get_item(args: list[Any], env: Env) -> Any:
    items, index = as_array(args[0]), truncated(args[1])
    if not 0 <= index < len(items):
        raise InvalidArguments
    return items[index]


def _array_length(args: list[Any], env: Env) -> int:
    return len(as_array(args[0]))


def _array_unique(args: list[Any], env: Env) -> list[Any]:
    return hash_set_order(as_array(args[0]))


def _limited_text(value: Any) -> str:
    text = value if isinstance(value, str) else java_str(value)
    if java_length(text) > MAX_TEXT_LENGTH:
        raise InvalidArguments
    return text


def _base64_encode(args: list[Any], env: Env) -> str:
    return base64.b64encode(_limited_text(as_string(args[0])).encode("utf-8")).decode("ascii")


_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_decode(args: list[Any], env: Env) -> str:
    # Lenient like Step Functions: characters outside the alphabet are skipped, decoding stops
    # at the first '=', missing padding is fine and a lone trailing character is dropped.
    text = _limited_text(as_string(args[0])).split("=", 1)[0].translate({ord("-"): "+", ord("_"): "/"})
    symbols = "".join(ch for ch in text if ch in _BASE64_ALPHABET)
    if len(symbols) % 4 == 1:
        symbols = symbols[:-1]
    try:
        raw = base64.b64decode(symbols + "=" * (-len(symbols) % 4))
    except binascii.Error:
        raise InvalidArguments from None
    return raw.decode("utf-8", errors="replace")


def _hash(args: list[Any], env: Env) -> str:
    algorithm = args[1]
    if not isinstance(algorithm, str) or algorithm not in HASHES:
        raise InvalidArguments
    return str(HASHES[algorithm](_limited_text(args[0]).encode("utf-8")).hexdigest())


def _is_deep_merge(flag: Any) -> bool:
    # Boolean.parseBoolean(String.valueOf(flag)): only a (case-insensitive) "true" asks for it.
    return java_str(flag).lower() == "true"


def _json_merge(args: list[Any], env: Env) -> dict[str, Any]:
    first, second, deep = args
    if not isinstance(first, dict) or not isinstance(second, dict) or _is_deep_merge(deep):
        raise InvalidArguments
    return {**first, **second}  # shallow: the second object's keys win


def _math_random(args: list[Any], env: Env) -> int:
    start, end = truncated(args[0]), truncated(args[1])
    if not INT32_MIN <= start < end <= INT32_MAX or end - start > INT32_MAX:
        raise InvalidArguments
    if len(args) == 3:
        return start + java_random_int(truncated(args[2]), end - start)
    return env.rng.randrange(start, end)


def _math_add(args: list[Any], env: Env) -> int:
    first, second = rounded(args[0]), rounded(args[1])
    if not all(INT32_MIN <= n <= INT32_MAX for n in (first, second, first + second)):
        raise InvalidArguments
    return first + second


def _string_split(args: list[Any], env: Env) -> list[str]:
    # java.util.StringTokenizer: every character of the second argument is a delimiter and
    # empty tokens are dropped.
    text, delimiters = as_string(args[0]), as_string(args[1])
    tokens, current = [], ""
    for ch in text:
        if ch in delimiters:
            tokens.append(current)
            current = ""
        else:
            current += ch
    tokens.append(current)
    return [token for token in tokens if token]


def _uuid(args: list[Any], env: Env) -> str:
    return env.new_uuid()


# --- The function table ------------------------------------------------------------------------

_Impl = Callable[[list[Any], Env], Any]


@dataclass(frozen=True)
class Spec:
    impl: _Impl
    params: tuple[Kind, ...] = ()
    required: int | None = None  # how many of `params` are required; default: all
    rest: Kind | None = None  # the kind of any further arguments, for variadic functions
    static_check: Callable[[Call], None] | None = None
    template_first: bool = False
    arity_detail: str = ""  # appended to "Invalid arguments in States.X" for a wrong count

    def accepts(self, count: int) -> bool:
        required = len(self.params) if self.required is None else self.required
        return count >= required and (self.rest is not None or count <= len(self.params))

    def kind(self, index: int) -> Kind:
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


_A, _S, _N = Kind.ANY, Kind.STRING, Kind.NUMBER
FUNCTIONS: dict[str, Spec] = {
    "States.Format": Spec(_format, (_S,), rest=_A, static_check=check_format, template_first=True),
    "States.StringToJson": Spec(_string_to_json, (_S,)),
    "States.JsonToString": Spec(
        _json_to_string, (_A,), arity_detail=": only a single argument is allowed."
    ),
    "States.Array": Spec(_array_of, rest=_A),
    "States.ArrayPartition": Spec(_array_partition, (Kind.ARRAY, _N)),
    "States.ArrayContains": Spec(_array_contains, (Kind.ARRAY, _A)),
    "States.ArrayRange": Spec(_array_range, (_N, _N, _N)),
    "States.ArrayGetItem": Spec(_array_get_item, (Kind.ARRAY, _N)),
    "States.ArrayLength": Spec(_array_length, (Kind.ARRAY,)),
    "States.ArrayUnique": Spec(_array_unique, (Kind.ARRAY,)),
    "States.Base64Encode": Spec(_base64_encode, (_S,)),
    "States.Base64Decode": Spec(_base64_decode, (_S,)),
    "States.Hash": Spec(_hash, (_A, _S), static_check=check_hash),
    "States.JsonMerge": Spec(_json_merge, (Kind.OBJECT, Kind.OBJECT, _A), static_check=check_json_merge),
    "States.MathRandom": Spec(_math_random, (_N, _N, _N), required=2),
    "States.MathAdd": Spec(_math_add, (_N, _N)),
    "States.StringSplit": Spec(_string_split, (_S, _S)),
    "States.UUID": Spec(_uuid),
}
