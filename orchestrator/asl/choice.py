"""Choice rules in the JSONPath query language: what AWS refuses in one, and how one evaluates.

A Choice rule is a Boolean expression: And / Or over a non-empty array of nested rules, Not over
one nested rule, or a data test, which reads `Variable` (from the input, `$$` the context object,
or `$name` a workflow variable) and applies one comparison operator to it. Only top-level rules
carry `Next`. Sources for the semantics below: the ASL specification ("Choice Rules"), the Step
Functions developer guide ("Choice workflow state"), and executions recorded on real AWS
(`../shared/asl-conformance/cases/choice_operators`).

- A value of the wrong type never matches and is never an error: NumericEquals on "1" is false,
  booleans are not numbers, StringEquals on 1 is false. The same holds for the value a `...Path`
  operand reads.
- A Variable (or a `...Path` operand) that reads nothing is a States.Runtime error, except for
  IsPresent, which is exactly the test for that.
- Numbers compare by value whatever their JSON spelling (0 == 0.0).
- Strings order like Java's `String.compareTo` (UTF-16 code units), which the guide cites.
- Timestamps follow the ASL profile of RFC3339: uppercase `T`, and `Z` or a numeric offset
  (`+01:00`) is required; fractional seconds are allowed. They compare as instants, so
  `2016-03-14T01:59:00+01:00` equals `2016-03-14T00:59:00Z`.
- StringMatches: `*` matches any run of characters (including none), `\\*` a literal `*`,
  `\\\\` a literal backslash (a backslash before anything else stands for itself); nothing else
  is special, and the whole string must match.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from functools import lru_cache
from typing import Any

from orchestrator.asl import errors, jsonpath
from orchestrator.asl.errors import StatesError

# --- value predicates -------------------------------------------------------------------------


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python; in JSON (and on AWS) true is not the number 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_null(value: Any) -> bool:
    return value is None


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and _parse_timestamp(value) is not None


def _is_path(value: Any) -> bool:
    try:
        jsonpath.check(value)
    except jsonpath.PathSyntaxError:
        return False
    return True


# --- timestamps -------------------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?"
    r"(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@lru_cache(maxsize=4096)
def _parse_timestamp(text: str) -> Fraction | None:
    """Seconds since the epoch (exact, fractional part kept) or None when `text` is no timestamp."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:  # datetime rejects month 13, February 30, hour 24, second 60...
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None
    offset = _offset_seconds(match.group(8), match.group(9), match.group(10))
    if offset is None:
        return None
    fraction = match.group(7) or ""
    whole = (moment - _EPOCH) // timedelta(seconds=1) - offset
    return Fraction(whole) + Fraction(int(fraction or "0"), 10 ** len(fraction))


def _offset_seconds(sign: str | None, hours: str | None, minutes: str | None) -> int | None:
    if sign is None or hours is None or minutes is None:
        return 0  # "Z"
    if int(hours) > 23 or int(minutes) > 59:
        return None
    magnitude = int(hours) * 3600 + int(minutes) * 60
    return magnitude if sign == "+" else -magnitude


# --- strings ----------------------------------------------------------------------------------


def _java_order(text: str) -> bytes:
    # Big-endian UTF-16 bytes sort exactly like UTF-16 code units, i.e. like Java's compareTo.
    # Python compares code points, which differs for characters above U+FFFF vs U+E000-U+FFFF.
    return text.encode("utf-16-be", "surrogatepass")


_STAR = None  # a wildcard token in a compiled StringMatches pattern; every other token is a char


@lru_cache(maxsize=1024)
def _compile_pattern(pattern: str) -> tuple[str | None, ...]:
    tokens: list[str | None] = []
    chars = iter(pattern)
    for char in chars:
        if char == "*":
            tokens.append(_STAR)
        elif char == "\\":
            escaped = next(chars, None)
            if escaped in ("*", "\\"):
                tokens.append(escaped)
            else:  # a backslash before anything else stands for itself
                tokens.append("\\")
                if escaped is not None:
                    tokens.append(escaped)
        else:
            tokens.append(char)
    return tuple(tokens)


def _matches(text: str, pattern: str) -> bool:
    """Whole-string wildcard match in O(len(text) * len(pattern)), without regex backtracking."""
    tokens = _compile_pattern(pattern)
    t = p = 0
    star, resume = -1, 0  # the last `*` seen, and where in `text` it currently stops eating
    while t < len(text):
        if p < len(tokens) and tokens[p] is not _STAR and tokens[p] == text[t]:
            t, p = t + 1, p + 1
        elif p < len(tokens) and tokens[p] is _STAR:
            star, resume, p = p, t, p + 1
        elif star >= 0:  # let the last `*` eat one more character and retry
            resume += 1
            t, p = resume, star + 1
        else:
            return False
    return all(token is _STAR for token in tokens[p:])


# --- the operator table -----------------------------------------------------------------------

Test = Callable[[Any, Any], bool]  # (the Variable's value, the operand's value) -> matched?

_RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}


@dataclass(frozen=True)
class _Operator:
    test: Test
    operand_ok: Callable[[Any], bool]  # what validation accepts as the operand
    operand_kind: str  # that, in words, for problem messages
    operand_is_path: bool = False  # the operand is a path to read, not a literal
    when_absent: Callable[[Any], bool] | None = None  # result for a missing Variable; None: error


@dataclass(frozen=True)
class _Family:
    """Typed comparisons (StringEquals, NumericLessThan...): both sides must have the type."""

    name: str
    accepts: Callable[[Any], bool]
    key: Callable[[Any], Any]  # what to compare once both sides are accepted
    relations: tuple[str, ...]
    operand_kind: str

    def test(self, relation: Callable[[Any, Any], bool]) -> Test:
        def compare(value: Any, operand: Any) -> bool:
            if not (self.accepts(value) and self.accepts(operand)):
                return False
            return relation(self.key(value), self.key(operand))

        return compare


_FAMILIES = (
    _Family("String", _is_string, _java_order, tuple(_RELATIONS), "a string"),
    _Family("Numeric", _is_number, lambda n: n, tuple(_RELATIONS), "a number"),
    _Family("Boolean", _is_boolean, lambda b: b, ("Equals",), "a boolean"),
    _Family(
        "Timestamp",
        _is_timestamp,
        _parse_timestamp,
        tuple(_RELATIONS),
        "an RFC3339 timestamp such as 2016-03-14T01:59:00Z",
    ),
)

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": _is_null,
    "IsBoolean": _is_boolean,
    "IsNumeric": _is_number,
    "IsString": _is_string,
    "IsTimestamp": _is_timestamp,
}


def _type_test(predicate: Callable[[Any], bool]) -> Test:
    """IsNull, IsString...: the operand says whether the value is expected to have the type."""

    def test(value: Any, expected: Any) -> bool:
        return predicate(value) is expected

    return test


def _build_operators() -> dict[str, _Operator]:
    table: dict[str, _Operator] = {}
    for family in _FAMILIES:
        for relation in family.relations:
            name = family.name + relation
            test = family.test(_RELATIONS[relation])
            table[name] = _Operator(test, family.accepts, family.operand_kind)
            table[name + "Path"] = _Operator(test, _is_path, "a JSONPath", operand_is_path=True)
    for name, predicate in _TYPE_TESTS.items():
        table[name] = _Operator(_type_test(predicate), _is_boolean, "a boolean")
    table["IsPresent"] = _Operator(
        lambda _value, expected: expected is True,
        _is_boolean,
        "a boolean",
        when_absent=lambda expected: expected is False,
    )
    table["StringMatches"] = _Operator(
        lambda value, pattern: _is_string(value) and _is_string(pattern) and _matches(value, pattern),
        _is_string,
        "a string pattern",
    )
    return table


OPERATORS = _build_operators()

COMPARISON_OPERATORS: frozenset[str] = frozenset(OPERATORS)
"""Every data-test operator name: typed comparisons, their `...Path` variants, Is* and StringMatches."""

BOOLEAN_OPERATORS = ("And", "Or", "Not")


# --- evaluation -------------------------------------------------------------------------------


class _Absent(Exception):
    """A path read nothing."""


def _read(path: str, data: Any, context: Any, variables: Mapping[str, Any] | None) -> Any:
    try:
        return jsonpath.read(path, data, context=context, variables=variables)
    except (jsonpath.PathNotFound, jsonpath.PathSyntaxError):
        raise _Absent(path) from None


def _invalid_path(path: str) -> StatesError:
    # AWS's cause after "An error occurred while executing the state 'X' (entered at the event
    # id #N). ", as seen in real execution histories.
    return StatesError(
        errors.RUNTIME,
        f"Invalid path '{path}': The choice state's condition path references an invalid value.",
    )


def evaluate_rule(
    rule: Mapping[str, Any],
    data: Any,
    *,
    context: Any,
    variables: Mapping[str, Any] | None,
) -> bool:
    """Whether a (validated) Choice rule holds for the state's data.

    And / Or stop at the first rule that decides them. Raises StatesError(States.Runtime) when the
    Variable, or the path of a `...Path` operand, reads nothing (IsPresent excepted).
    """
    if "And" in rule:
        return all(evaluate_rule(r, data, context=context, variables=variables) for r in rule["And"])
    if "Or" in rule:
        return any(evaluate_rule(r, data, context=context, variables=variables) for r in rule["Or"])
    if "Not" in rule:
        return not evaluate_rule(rule["Not"], data, context=context, variables=variables)
    name = _operator_name(rule)
    return _evaluate_comparison(rule, name, data, context, variables)


def _operator_name(rule: Mapping[str, Any]) -> str:
    for key in rule:
        if key in OPERATORS:
            return str(key)
    raise ValueError(f"not a valid Choice rule (no comparison operator, And, Or or Not): {rule!r}")


def _evaluate_comparison(
    rule: Mapping[str, Any],
    name: str,
    data: Any,
    context: Any,
    variables: Mapping[str, Any] | None,
) -> bool:
    op = OPERATORS[name]
    operand = rule[name]
    variable = rule["Variable"]
    try:
        value = _read(variable, data, context, variables)
    except _Absent:
        if op.when_absent is None:
            raise _invalid_path(variable) from None
        return op.when_absent(operand)
    if op.operand_is_path:
        try:
            operand = _read(operand, data, context, variables)
        except _Absent:
            raise _invalid_path(operand) from None
    return op.test(value, operand)
