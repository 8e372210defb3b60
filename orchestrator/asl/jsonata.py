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
import math
import random
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from jsonata import JException, Jsonata
from jsonata.parser import Parser
from jsonata.utils import Utils

from orchestrator.asl.errors import QUERY_EVALUATION_ERROR, StatesError
from orchestrator.asl.jsonata_functions import PURE_FUNCTIONS, impure_functions, render


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
    bindings: dict[str, Any] = {**PURE_FUNCTIONS, **impure_functions(states, rng, new_uuid)}
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
        return str(value) if slot.group().startswith("{{{") else render(value)

    return f"{exc.error}: {_PLACEHOLDER.sub(fill, template.replace('Object', 'function'))}"
