"""JSONata evaluation for states whose QueryLanguage is JSONata (pure: no I/O, no clock).

A field value written `{% expression %}` is evaluated with `$states` (input, result, errorOutput,
context) and every workflow variable as `$name` in scope, plus the six functions Step Functions
adds to JSONata: `$partition`, `$range`, `$hash`, `$random`, `$uuid` and `$parse` (developer guide,
"Transforming data with JSONata in Step Functions",
docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html).

The language itself is the `jsonata-python` library, a port of jsonata-java. This module adds what
Step Functions puts around it: the bindings, the added functions, randomness only from the
injected `rng`/`new_uuid` (and `$now()` from the state's entered time) so a replayed decision is
the same decision, plain JSON results, and AWS's `States.QueryEvaluationError` causes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from jsonata import Functions, JException, Jsonata
from jsonata.parser import Parser
from jsonata.utils import Utils

from orchestrator.asl.errors import QUERY_EVALUATION_ERROR, StatesError


class _Undefined:
    """JSONata's "nothing": what `$states.input.absent` evaluates to, unlike JSON `null`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final[object] = _Undefined()


class JsonataSyntaxError(ValueError):
    """The expression inside `{% %}` does not parse; the message is JSONata's code and text."""


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def is_expression(value: Any) -> bool:
    """A JSONata expression: a string starting with `{%` and ending with `%}`.

    Whitespace counts only inside the delimiters: AWS copies `" {% x %} "` as a literal string.
    """
    return isinstance(value, str) and len(value) >= 4 and value.startswith("{%") and value.endswith("%}")


def check(value: str) -> None:
    """Raise `JsonataSyntaxError` unless `value` is a `{% %}` string whose expression parses."""
    if not is_expression(value):
        raise JsonataSyntaxError(f"not a JSONata expression (must be '{{% ... %}}'): {value!r}")
    try:
        _compile(_inner(value))
    except Exception as exc:  # the port raises JException, and on some inputs plain errors
        raise JsonataSyntaxError(_describe(exc)) from exc


def states_members(value: str) -> frozenset[str]:
    """The members of `$states` that a `{% %}` expression reads by name: `{'result'}` for
    `{% $states.result.Payload %}`. Validation uses it to refuse `$states.result` and
    `$states.errorOutput` where Step Functions does not provide them.

    Only direct paths count (`$states.result`, not a string `'$states.result'`, nor a variable
    bound to `$states`). Raises `JsonataSyntaxError` if the expression does not parse.
    """
    check(value)
    members: set[str] = set()
    pending: list[Any] = [_compile(_inner(value)).ast]
    seen: set[int] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, (list, tuple)):
            pending.extend(node)
            continue
        if not isinstance(node, Parser.Symbol) or id(node) in seen:
            continue
        seen.add(id(node))
        steps = node.steps if node.type == "path" else None
        if steps and len(steps) > 1 and steps[0].type == "variable" and steps[0].value == "states" \
                and steps[1].type == "name" and isinstance(steps[1].value, str):
            members.add(steps[1].value)
        # Every child node hangs off some attribute; the parser instance itself is not a child.
        pending.extend(child for key, child in vars(node).items() if key != "_outer_instance")
    return frozenset(members)


def evaluate(
    expression: str,
    *,
    field: str,
    states: Mapping[str, Any],
    variables: Mapping[str, Any],
    rng: random.Random,
    new_uuid: Callable[[], str],
    allow_undefined: bool = False,
) -> Any:
    """Evaluate one `{% expression %}` string and return plain JSON (or `UNDEFINED` if allowed).

    `field` is the slash path of the field within the state (`Output/error`, `Items`, ...) and is
    only used in causes. Raises `StatesError(States.QueryEvaluationError)` when the expression
    throws, returns nothing (unless `allow_undefined`) or returns a function or regex.
    """
    text = _inner(expression)
    try:
        raw = _compile(text).evaluate(None, _bindings(states, variables, rng, new_uuid))
    except Exception as exc:  # library errors, and bugs of the port (e.g. ZeroDivisionError)
        raise _failure(text, field, f"threw an error during evaluation. {_describe(exc)}") from exc
    if raw is None:
        if allow_undefined:
            return UNDEFINED
        raise _failure(text, field, "returned nothing (undefined).")
    try:
        return _to_json(raw)
    except _UnsupportedResult:
        raise _failure(text, field, "returned an unsupported result type.") from None


def evaluate_template(
    template: Any,
    *,
    field: str,
    states: Mapping[str, Any],
    variables: Mapping[str, Any],
    rng: random.Random,
    new_uuid: Callable[[], str],
) -> Any:
    """Copy a JSON template, evaluating every `{% %}` string in it (at any depth).

    Object members extend the field path with `/key` and array elements with `[index]`, so an
    error names e.g. `Output/error` or `Arguments/items[1]`. Keys are never evaluated.
    """

    def walk(value: Any, path: str) -> Any:
        if is_expression(value):
            return evaluate(value, field=path, states=states, variables=variables, rng=rng, new_uuid=new_uuid)
        if isinstance(value, Mapping):
            return {key: walk(item, f"{path}/{key}" if path else str(key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value

    return walk(template, field)


# ---------------------------------------------------------------------------------------------
# Parsing, bindings, results, causes
# ---------------------------------------------------------------------------------------------


def _inner(expression: str) -> str:
    """The expression between the delimiters, trimmed: what AWS quotes in its causes."""
    if not is_expression(expression):
        raise ValueError(f"not a JSONata expression (must be '{{% ... %}}'): {expression!r}")
    return expression[2:-2].strip()


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> Any:
    """Parse once per expression text; each evaluation gets a fresh frame for its bindings."""
    compiled = Jsonata(text)
    # Keep JSON null (Utils.NULL_VALUE) apart from undefined (None) in results.
    compiled.set_output_convert_nulls(False)
    return compiled


def _bindings(
    states: Mapping[str, Any], variables: Mapping[str, Any], rng: random.Random, new_uuid: Callable[[], str]
) -> dict[str, Any]:
    """Functions first, then variables, then `$states`, which no variable may shadow."""
    bindings: dict[str, Any] = {**_PURE_FUNCTIONS, **_impure_functions(states, rng, new_uuid)}
    # AWS disables $eval (use $parse); an unbound name makes a call fail with T1006.
    bindings["eval"] = None
    # The library reads a top-level None as undefined; nested None is already JSON null.
    bindings.update({name: Utils.NULL_VALUE if value is None else value for name, value in variables.items()})
    bindings["states"] = dict(states)
    return bindings


class _UnsupportedResult(Exception):
    """A result JSON cannot carry: a function, a regex, or a non-finite number."""


# A whole number is an int, the way AWS prints it (1.0 -> 1), while it fits a long.
_LONG_LIMIT: Final = 2**63


def _to_json(value: Any) -> Any:
    """The library's value as plain JSON: its null marker to None, its lists to lists, 2.0 to 2."""
    if value is None or value is Utils.NULL_VALUE:
        return None  # inside a result None can only be a JSON null from the data
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        # Indexing, not iteration: the library's RangeList iterates one element short.
        return [_to_json(value[index]) for index in range(len(value))]
    raise _UnsupportedResult


def _number(value: int | float) -> int | float:
    """An int while the value is whole and fits a long (the port parses `1e300` as an int)."""
    if isinstance(value, int) and abs(value) < _LONG_LIMIT:
        return value
    try:
        number = float(value)
    except OverflowError:
        raise _UnsupportedResult from None
    if not math.isfinite(number):
        raise _UnsupportedResult
    return int(number) if number.is_integer() and abs(number) < _LONG_LIMIT else number


def _failure(text: str, field: str, what: str) -> StatesError:
    """AWS's cause, without the "An error occurred while executing the state ..." prefix."""
    return StatesError(
        QUERY_EVALUATION_ERROR, f"The JSONata expression '{text}' specified for the field '{field}' {what}"
    )


_PLACEHOLDER: Final = re.compile(r"\{\{\{\w+\}\}\}|\{\{\w+\}\}")
# jsonata-js names the element type T0412 expected; the port passes the signature letter.
_ARRAY_OF: Final = {
    "a": "arrays", "b": "booleans", "f": "functions", "n": "numbers", "o": "objects", "s": "strings",
}


def _describe(exc: Exception) -> str:
    """`CODE: message` as jsonata-js words it, e.g. `T0410: Argument 1 of function "range" ...`.

    The port's catalog says "Object" where jsonata-js says "function" and inserts values raw;
    jsonata-js JSON-quotes `{{value}}` slots and inserts `{{{value}}}` slots raw.
    """
    if not isinstance(exc, JException):
        return str(exc) or type(exc).__name__
    template = JException.error_codes.get(exc.error)
    if template is None:  # a code the catalog lacks carries its whole message
        return str(exc.error)
    extra = _ARRAY_OF.get(exc.extra, exc.extra) if exc.error == "T0412" else exc.extra
    values = iter((exc.current, exc.expected, extra))

    def fill(slot: re.Match[str]) -> str:
        value = next(values, None)
        return str(value) if slot.group().startswith("{{{") else _render(value)

    return f"{exc.error}: {_PLACEHOLDER.sub(fill, template.replace('Object', 'function'))}"


def _render(value: Any) -> str:
    """JSON.stringify-like rendering of a value inserted into an error message."""
    if value is Utils.NULL_VALUE:
        return "null"
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return "function" if Utils.is_function(value) else type(value).__name__


# ---------------------------------------------------------------------------------------------
# The functions Step Functions adds (developer guide, "Transforming data with JSONata")
# ---------------------------------------------------------------------------------------------


class _Native:
    """Adapts a Python callable to the library's function protocol (`call(input, args)`)."""

    def __init__(self, implementation: Callable[..., Any]) -> None:
        self._implementation = implementation

    def call(self, focus: Any, args: Any) -> Any:
        return self._implementation(*(args or ()))


def _function(implementation: Callable[..., Any], signature: str) -> Any:
    """A JSONata function value; the signature gives the library's argument checks (T0410)."""
    return Jsonata.JFunction(_Native(implementation), signature)


def _error(message: str) -> JException:
    """A JSONata dynamic error with our own message (D3137 renders its message verbatim)."""
    return JException("D3137", -1, message)


def _items(array: Any) -> list[Any]:
    return [array[index] for index in range(len(array))]


def _partition(array: Any, size: Any) -> Any:
    """`$partition(array, chunkSize)`: consecutive chunks, the last holding the remainder.

    The size is truncated towards zero; an empty array or a size below 1 gives undefined.
    """
    if array is None or size is None:
        return None
    items, chunk = _items(array), math.trunc(size)
    if not items or chunk < 1:
        return None
    return [items[start : start + chunk] for start in range(0, len(items), chunk)]


# Like JSONata's own range operator (D2014), refuse to allocate absurd sequences.
_RANGE_LIMIT: Final = 1_000_000


def _range(start: Any, end: Any, step: Any) -> Any:
    """`$range(start, end, step)`: start, start+step, ... up to end inclusive.

    Arguments are truncated towards zero. A zero step, or one pointing away from `end`, gives
    undefined; a single value comes back bare, not as a one-element array (recorded on AWS:
    `$range(1, 9, 9)` is `1`).
    """
    if start is None or end is None or step is None:
        return None
    first, last, delta = math.trunc(start), math.trunc(end), math.trunc(step)
    if delta == 0 or (delta > 0 and first > last) or (delta < 0 and first < last):
        return None
    count = (last - first) // delta + 1
    if count > _RANGE_LIMIT:
        raise _error(
            f"The size of the sequence allocated by $range must not exceed 1e6. Attempted to allocate {count}."
        )
    values = list(range(first, first + count * delta, delta))
    return values[0] if count == 1 else values


_HASH_ALGORITHMS: Final = {
    "MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512",
}


def _hash(value: Any, algorithm: Any) -> Any:
    """`$hash(data, algorithm)`: lowercase hex digest of the UTF-8 string; names are exact-case."""
    if value is None or algorithm is None:
        return None
    name = _HASH_ALGORITHMS.get(algorithm)
    if name is None:
        raise _error(f"Hash algorithm '{algorithm}' must be one of {', '.join(_HASH_ALGORITHMS)}")
    return hashlib.new(name, value.encode("utf-8")).hexdigest()


def _parse(text: Any) -> Any:
    """`$parse(jsonString)`: the JSON value of a string (AWS's replacement for `$eval`)."""
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        raise _error(f"Invalid JSON passed to $parse: {_render(text)}") from None
    return Utils.NULL_VALUE if value is None else value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# java.util.Random's generator: $random(seed) is reproducible from the seed alone, and AWS is
# reported to draw seeded values from it ($random(42) = 0.7275636800328681).
_JAVA_MULTIPLIER: Final = 0x5DEECE66D
_JAVA_MASK: Final = (1 << 48) - 1


def _seeded_random(seed: Any) -> float:
    """`new java.util.Random(seed).nextDouble()` with the seed truncated to a long."""
    long_seed: int = max(-(2**63), min(math.trunc(seed), 2**63 - 1))
    state = (long_seed ^ _JAVA_MULTIPLIER) & _JAVA_MASK

    def next_bits(bits: int) -> int:
        nonlocal state
        state = (state * _JAVA_MULTIPLIER + 0xB) & _JAVA_MASK
        return state >> (48 - bits)

    return ((next_bits(26) << 27) + next_bits(27)) * 2.0**-53


_PURE_FUNCTIONS: Final[dict[str, Any]] = {
    "partition": _function(_partition, "<an:a>"),
    "range": _function(_range, "<nnn:x>"),
    "hash": _function(_hash, "<ss:s>"),
    "parse": _function(_parse, "<s:x>"),
}


def _impure_functions(
    states: Mapping[str, Any], rng: random.Random, new_uuid: Callable[[], str]
) -> dict[str, Any]:
    """Functions drawing on the injected sources: fresh for each evaluation."""

    def random_(seed: Any = None) -> float:
        return rng.random() if seed is None else _seeded_random(seed)

    def shuffle(array: Any) -> Any:
        if array is None:
            return None
        items = _items(array)
        rng.shuffle(items)
        return items

    def millis() -> int:
        entered = _entered_millis(states)
        if entered is None:
            raise _error("$now() and $millis() need $states.context.State.EnteredTime")
        return entered

    def now(picture: Any = None, zone: Any = None) -> Any:
        return Functions.datetime_from_millis(millis(), picture, zone)

    return {
        "random": _function(random_, "<n?:n>"),
        "uuid": _function(new_uuid, "<:s>"),
        "shuffle": _function(shuffle, "<a:a>"),
        "now": _function(now, "<s?s?:s>"),
        "millis": _function(millis, "<:n>"),
    }


def _entered_millis(states: Mapping[str, Any]) -> int | None:
    """The state's entered time (else the execution's start) in epoch milliseconds.

    `$now()` and `$millis()` read this instead of the clock, so replaying a decision gives the
    same values; on AWS they read the clock during the state, a few milliseconds later at most
    for a Pass or Choice, later for a Task's Output.
    """
    context = states.get("context")
    for section, key in (("State", "EnteredTime"), ("Execution", "StartTime")):
        part = context.get(section) if isinstance(context, Mapping) else None
        stamp = part.get(key) if isinstance(part, Mapping) else None
        if isinstance(stamp, str):
            try:
                moment = datetime.fromisoformat(stamp)
            except ValueError:
                continue
            if moment.tzinfo is None:  # context times are UTC; never read the host's zone
                moment = moment.replace(tzinfo=timezone.utc)
            return round(moment.timestamp() * 1000)
    return None
