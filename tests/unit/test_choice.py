"""Choice rules (JSONPath query language): evaluation and validation.

Sources cited below:
- [guide] AWS Step Functions developer guide, "Choice workflow state" / "Choice Rules"
  (docs.aws.amazon.com/step-functions/latest/dg/state-choice.html).
- [spec] Amazon States Language specification, "Choice State" and "Timestamps"
  (states-language.net).
- [recorded] executions recorded on real AWS in ../shared/asl-conformance/cases/choice_operators.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.asl import errors
from orchestrator.asl.choice import COMPARISON_OPERATORS, evaluate_rule
from orchestrator.asl.validate.choice_rules import validate_rule
from orchestrator.asl.errors import Problem, StatesError

# --- helpers ----------------------------------------------------------------------------------


def ev(rule: dict[str, Any], data: Any, *, context: Any = None, variables: dict[str, Any] | None = None) -> bool:
    return evaluate_rule(rule, data, context=context, variables=variables)


def holds(op: str, operand: Any, value: Any) -> bool:
    """`{"Variable": "$.v", op: operand}` on `{"v": value}`."""
    return ev({"Variable": "$.v", op: operand}, {"v": value})


def holds_path(op: str, operand: Any, value: Any) -> bool:
    """The `...Path` variant of `op`, reading the operand from `$.o`."""
    return ev({"Variable": "$.v", op + "Path": "$.o"}, {"v": value, "o": operand})


def missing_cause(path: str) -> str:
    return f"Invalid path '{path}': The choice state's condition path references an invalid value."


def problems_of(rule: Any, *, top_level: bool = True) -> list[Problem]:
    return validate_rule(rule, "$.States.Check.Choices[0]", top_level=top_level)


def paths_of(rule: Any, *, top_level: bool = True) -> list[str]:
    return [p.path for p in problems_of(rule, top_level=top_level)]


# Values of every JSON type, for type-mismatch tables.
NON_STRINGS: list[Any] = [None, True, False, 0, 1.5, [], [""], {}, {"A": 0}]
NON_NUMBERS: list[Any] = [None, True, False, "", "1", "0", [], [0], {}, {"A": 0}]
NON_BOOLEANS: list[Any] = [None, 0, 1, 0.0, "", "true", "false", [], [True], {}]

T0 = "2016-03-14T01:59:00Z"
T1 = "2016-03-14T01:59:01Z"

# --- the operator set -------------------------------------------------------------------------


def test_comparison_operators_are_every_data_test_operator() -> None:
    typed = {
        f"{family}{relation}{suffix}"
        for family in ("String", "Numeric", "Timestamp")
        for relation in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
        for suffix in ("", "Path")
    }
    expected = typed | {
        "BooleanEquals",
        "BooleanEqualsPath",
        "IsNull",
        "IsPresent",
        "IsNumeric",
        "IsString",
        "IsBoolean",
        "IsTimestamp",
        "StringMatches",
    }
    assert COMPARISON_OPERATORS == expected
    assert not {"And", "Or", "Not", "Variable", "Next", "StringMatchesPath", "IsNullPath"} & COMPARISON_OPERATORS


# --- string comparisons -----------------------------------------------------------------------

STRING_CASES = [
    # (operator, value, operand, expected)
    ("StringEquals", "Hello", "Hello", True),
    ("StringEquals", "Hello", "hello", False),
    ("StringEquals", " ", "     ", False),  # [recorded] no trimming
    ("StringEquals", "\t\n", "\t\r\n", False),  # [recorded]
    ("StringEquals", "", "", True),
    ("StringLessThan", "A", "AB", True),  # [recorded] a prefix sorts first
    ("StringLessThan", "AB", "A", False),
    ("StringLessThan", "", "", False),
    ("StringLessThan", "B", "a", True),  # code units: uppercase before lowercase
    ("StringGreaterThan", "AB", "ABC", False),  # [recorded]
    ("StringGreaterThan", "A", "A ", False),  # [recorded]
    ("StringGreaterThan", "b", "a", True),
    ("StringGreaterThan", "", "", False),
    ("StringLessThanEquals", "", "", True),  # [recorded]
    ("StringLessThanEquals", "AB", "A", False),  # [recorded]
    ("StringLessThanEquals", "A", "AB", True),
    ("StringGreaterThanEquals", "AB", "A", True),  # [recorded]
    ("StringGreaterThanEquals", "A", "AB", False),
    ("StringGreaterThanEquals", "x", "x", True),
    ("StringEquals", T0, T0, True),  # [guide] timestamps are strings too
]


@pytest.mark.parametrize(("op", "value", "operand", "expected"), STRING_CASES)
def test_string_comparison(op: str, value: str, operand: str, expected: bool) -> None:
    assert holds(op, operand, value) is expected


@pytest.mark.parametrize(("op", "value", "operand", "expected"), STRING_CASES)
def test_string_comparison_path_variant(op: str, value: str, operand: str, expected: bool) -> None:
    assert holds_path(op, operand, value) is expected


@pytest.mark.parametrize("op", ["StringEquals", "StringLessThan", "StringGreaterThan", "StringLessThanEquals", "StringGreaterThanEquals"])
@pytest.mark.parametrize("value", NON_STRINGS)
def test_string_operators_never_match_a_non_string(op: str, value: Any) -> None:
    """[recorded] StringEquals "HelloWorld" on null, 0, 1.1, [], {}, false... goes to Default."""
    # "" is less than or equal to every string, "\U0010ffff" greater than or equal to all of them.
    assert holds(op, "", value) is False
    assert holds(op, "\U0010ffff", value) is False
    assert holds_path(op, "", value) is False


@pytest.mark.parametrize("operand", NON_STRINGS)
def test_string_path_operand_of_another_type_never_matches(operand: Any) -> None:
    for op in ("StringEquals", "StringLessThanEquals", "StringGreaterThanEquals"):
        assert holds_path(op, operand, "1") is False


def test_strings_order_by_utf16_code_units_like_java() -> None:
    """[guide] "To understand the behavior of string comparisons, see the Java compareTo
    documentation": compareTo compares UTF-16 code units. U+FFFF is the code unit 0xFFFF while
    U+10000 starts with the surrogate 0xD800, so Java puts U+FFFF after U+10000, unlike a
    code-point comparison."""
    assert holds("StringGreaterThan", "\U00010000", "\uffff") is True
    assert holds("StringLessThan", "\U00010000", "\uffff") is False
    assert holds("StringLessThan", "\uffff", "\U00010000") is True


# --- numeric comparisons ----------------------------------------------------------------------

NUMERIC_CASES = [
    ("NumericEquals", 0, 0, True),
    ("NumericEquals", 0.0, 0, True),  # [recorded] int and float compare by value
    ("NumericEquals", 1, 1.0, True),  # [recorded] NumericEqualsPath 1 vs 1.0
    ("NumericEquals", 2.22, 2.22, True),  # [recorded]
    ("NumericEquals", 1.1, 1, False),  # [recorded]
    ("NumericEquals", -3, -3.0, True),
    ("NumericLessThan", 0, 1, True),  # [recorded]
    ("NumericLessThan", 0.0, 0, False),  # [recorded]
    ("NumericLessThan", 1, 0, False),  # [recorded]
    ("NumericLessThan", -0.5, 0, True),
    ("NumericGreaterThan", 1, 0, True),  # [recorded]
    ("NumericGreaterThan", 0.0, 0, False),  # [recorded]
    ("NumericGreaterThan", 1, 1, False),  # [recorded]
    ("NumericLessThanEquals", 0.0, 0, True),  # [recorded]
    ("NumericLessThanEquals", 0, 1, True),  # [recorded]
    ("NumericLessThanEquals", 1, 0, False),  # [recorded]
    ("NumericGreaterThanEquals", 0.0, 0, True),  # [recorded]
    ("NumericGreaterThanEquals", 0, 1, False),  # [recorded]
    ("NumericGreaterThanEquals", 1, 1, True),  # [recorded]
    ("NumericGreaterThanEquals", 10**20, 10**20 - 1, True),
]


@pytest.mark.parametrize(("op", "value", "operand", "expected"), NUMERIC_CASES)
def test_numeric_comparison(op: str, value: float, operand: float, expected: bool) -> None:
    assert holds(op, operand, value) is expected


@pytest.mark.parametrize(("op", "value", "operand", "expected"), NUMERIC_CASES)
def test_numeric_comparison_path_variant(op: str, value: float, operand: float, expected: bool) -> None:
    assert holds_path(op, operand, value) is expected


NUMERIC_OPS = ["NumericEquals", "NumericLessThan", "NumericGreaterThan", "NumericLessThanEquals", "NumericGreaterThanEquals"]


@pytest.mark.parametrize("op", NUMERIC_OPS)
@pytest.mark.parametrize("value", NON_NUMBERS)
def test_numeric_operators_never_match_a_non_number(op: str, value: Any) -> None:
    """[guide] "Step Functions doesn't attempt to match a numeric field to a string value";
    [recorded] NumericEquals 0 / 1 on false / true, "", " ", [], {} all go to Default: booleans are
    not numbers."""
    for operand in (-1, 0, 1):
        assert holds(op, operand, value) is False
        assert holds_path(op, operand, value) is False


@pytest.mark.parametrize("operand", NON_NUMBERS)
def test_numeric_path_operand_of_another_type_never_matches(operand: Any) -> None:
    """A `...Path` operand is read at run time, so its type cannot be checked beforehand; a
    mismatch is a non-match, not an error."""
    for op in ("NumericEquals", "NumericLessThanEquals", "NumericGreaterThanEquals"):
        assert holds_path(op, operand, 0) is False
        assert holds_path(op, operand, 1) is False


# --- booleans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "operand", "expected"), [(True, True, True), (False, False, True), (True, False, False), (False, True, False)])
def test_boolean_equals(value: bool, operand: bool, expected: bool) -> None:
    """[recorded] BooleanEquals(Path) true/true and false/false match, the crossed pairs do not."""
    assert holds("BooleanEquals", operand, value) is expected
    assert holds_path("BooleanEquals", operand, value) is expected


@pytest.mark.parametrize("value", NON_BOOLEANS)
def test_boolean_equals_never_matches_a_non_boolean(value: Any) -> None:
    """[recorded] BooleanEquals on 0, 1, 0.0, "", "HelloWorld", [], {} goes to Default."""
    assert holds("BooleanEquals", True, value) is False
    assert holds("BooleanEquals", False, value) is False
    assert holds_path("BooleanEquals", True, value) is False
    assert holds_path("BooleanEquals", False, value) is False


@pytest.mark.parametrize("operand", NON_BOOLEANS)
def test_boolean_equals_path_operand_of_another_type_never_matches(operand: Any) -> None:
    assert holds_path("BooleanEquals", operand, True) is False
    assert holds_path("BooleanEquals", operand, False) is False


# --- timestamps -------------------------------------------------------------------------------

TIMESTAMP_CASES = [
    ("TimestampEquals", T0, T0, True),  # [recorded]
    ("TimestampEquals", T0, T1, False),  # [recorded]
    ("TimestampEquals", "2016-03-14T02:59:00+01:00", T0, True),  # same instant, other offset
    ("TimestampEquals", "2016-03-13T21:59:00-04:00", T0, True),
    ("TimestampEquals", "2016-03-14T01:59:00.000Z", T0, True),  # fraction of zero
    ("TimestampEquals", "2016-03-14T01:59:00.001Z", T0, False),  # fractions are kept
    ("TimestampLessThan", T0, T1, True),  # [recorded]
    ("TimestampLessThan", T1, T0, False),  # [recorded]
    ("TimestampLessThan", "2016-03-14T01:59:00.5Z", "2016-03-14T01:59:00.51Z", True),
    ("TimestampLessThan", "2016-03-14T02:59:00+01:00", T0, False),  # equal instants
    ("TimestampGreaterThan", T1, T0, True),  # [recorded]
    ("TimestampGreaterThan", T0, T1, False),  # [recorded]
    ("TimestampGreaterThan", "2016-03-14T01:59:00+01:00", T0, False),  # an hour earlier
    ("TimestampGreaterThan", "2016-03-14T01:59:00-01:00", T0, True),  # an hour later
    ("TimestampLessThanEquals", T0, T0, True),  # [recorded]
    ("TimestampLessThanEquals", T1, T0, False),  # [recorded]
    ("TimestampGreaterThanEquals", T0, T0, True),  # [recorded]
    ("TimestampGreaterThanEquals", T0, T1, False),  # [recorded]
    ("TimestampGreaterThanEquals", "2017-01-01T00:00:00Z", "2016-12-31T23:59:59.999999999Z", True),
]


@pytest.mark.parametrize(("op", "value", "operand", "expected"), TIMESTAMP_CASES)
def test_timestamp_comparison(op: str, value: str, operand: str, expected: bool) -> None:
    assert holds(op, operand, value) is expected


@pytest.mark.parametrize(("op", "value", "operand", "expected"), TIMESTAMP_CASES)
def test_timestamp_comparison_path_variant(op: str, value: str, operand: str, expected: bool) -> None:
    assert holds_path(op, operand, value) is expected


NOT_TIMESTAMPS: list[Any] = [
    None,
    True,
    0,
    1.5,
    [],
    {},
    [T0],
    "",
    "HelloWorld",
    "2016-03-14",  # a date alone
    "2016-03-14T01:59:00",  # [spec] "Z" MUST be present without a numeric offset
    "2016-03-14t01:59:00Z",  # [spec] an uppercase "T" MUST separate date and time
    "2016-03-14T01:59:00z",
    "2016-03-14 01:59:00Z",
    "2023-02-24 12:15:56.832957",  # [recorded] not a timestamp for TimestampEquals
    "2016-03-14T01:59Z",  # seconds are required
    "2016-13-05T21:29:29Z",  # month 13 ([recorded] refused as a Wait Timestamp)
    "2016-02-30T21:29:29Z",
    "2016-12-05T25:29:29Z",  # hour 25 ([recorded] refused as a Wait Timestamp)
    "2016-12-05T21:60:29Z",
    "2016-12-05T21:29:60Z",
    "05-12-2016T21:29:29Z",  # [recorded] refused as a Wait Timestamp
    "2016-03-14T01:59:00.Z",
    "2016-03-14T01:59:00+0100",  # RFC3339 offsets have a colon
    "2016-03-14T01:59:00+24:00",
    "2016-03-14T01:59:00Z ",
    " 2016-03-14T01:59:00Z",
]


TIMESTAMP_OPS = ["TimestampEquals", "TimestampLessThan", "TimestampGreaterThan", "TimestampLessThanEquals", "TimestampGreaterThanEquals"]


@pytest.mark.parametrize("op", TIMESTAMP_OPS)
@pytest.mark.parametrize("value", NOT_TIMESTAMPS)
def test_timestamp_operators_never_match_a_non_timestamp(op: str, value: Any) -> None:
    """[recorded] TimestampEquals on null, {}, false, 0, "", "2023-02-24 12:15:56.832957" goes to
    Default; the earliest and latest operands show that no ordering is attempted either."""
    for operand in ("0001-01-01T00:00:00Z", T0, "9999-12-31T23:59:59Z"):
        assert holds(op, operand, value) is False
        assert holds_path(op, operand, value) is False


@pytest.mark.parametrize("operand", NOT_TIMESTAMPS)
def test_timestamp_path_operand_that_is_no_timestamp_never_matches(operand: Any) -> None:
    for op in TIMESTAMP_OPS:
        assert holds_path(op, operand, T0) is False


# --- Is* type tests ---------------------------------------------------------------------------

TYPE_TEST_CASES: list[tuple[Any, set[str]]] = [
    # (value, the Is* tests it satisfies)  -- [recorded] for each row's operators
    (None, {"IsNull"}),
    (True, {"IsBoolean"}),
    (False, {"IsBoolean"}),
    (0, {"IsNumeric"}),
    (0.0, {"IsNumeric"}),
    (1.1, {"IsNumeric"}),
    ("", {"IsString"}),
    (" ", {"IsString"}),
    ("HelloWorld", {"IsString"}),
    ("2023-02-24", {"IsString"}),
    ("2012-10-09T19:00:55", {"IsString"}),
    ("2012-10-09T19:00:55Z", {"IsString", "IsTimestamp"}),
    ("2012-10-09T19:00:55+01:00", {"IsString", "IsTimestamp"}),
    ("2012-10-09T19:00:55.123456789Z", {"IsString", "IsTimestamp"}),
    ("2012-10-09t19:00:55z", {"IsString"}),
    ([], set()),
    ([""], set()),
    ({}, set()),
    ({"A": 0}, set()),
]
TYPE_TESTS = ["IsNull", "IsBoolean", "IsNumeric", "IsString", "IsTimestamp"]


@pytest.mark.parametrize("op", TYPE_TESTS)
@pytest.mark.parametrize(("value", "satisfied"), TYPE_TEST_CASES)
def test_type_tests(op: str, value: Any, satisfied: set[str]) -> None:
    """`IsX: true` holds when the value has the type; `IsX: false` when it has not."""
    assert holds(op, True, value) is (op in satisfied)
    assert holds(op, False, value) is (op not in satisfied)


def test_type_tests_have_no_path_variant() -> None:
    with pytest.raises(ValueError):
        ev({"Variable": "$.v", "IsNullPath": "$.o"}, {"v": None, "o": True})


# --- IsPresent, null versus absent ------------------------------------------------------------


@pytest.mark.parametrize("value", [None, False, 0, "", [], {}])
def test_is_present_on_a_present_value(value: Any) -> None:
    """[recorded] IsPresent true on null, "", [], {} matches: present-but-null is present."""
    assert ev({"Variable": "$.v", "IsPresent": True}, {"v": value}) is True
    assert ev({"Variable": "$.v", "IsPresent": False}, {"v": value}) is False


@pytest.mark.parametrize(
    ("variable", "data"),
    [
        ("$.v", {}),
        ("$.v", {"other": 1}),
        ("$.v.w", {"v": "a string has no fields"}),
        ("$.v.w", {"v": None}),
        ("$.v[3]", {"v": [0, 1]}),
        ("$.v", [1, 2]),
        ("$.v", None),
    ],
)
def test_is_present_on_an_absent_value_is_false_not_an_error(variable: str, data: Any) -> None:
    assert ev({"Variable": variable, "IsPresent": True}, data) is False
    assert ev({"Variable": variable, "IsPresent": False}, data) is True


def test_is_null_distinguishes_null_from_absent() -> None:
    """Null is present and IsNull; absent is no value at all, so IsNull cannot answer and the
    execution fails like any other test of a missing Variable."""
    assert ev({"Variable": "$.v", "IsNull": True}, {"v": None}) is True
    with pytest.raises(StatesError) as caught:
        ev({"Variable": "$.v", "IsNull": False}, {})
    assert caught.value.cause == missing_cause("$.v")


def test_is_present_on_context_and_variables() -> None:
    context = {"Execution": {"Id": "arn:x"}}
    assert ev({"Variable": "$$.Execution.Id", "IsPresent": True}, {}, context=context) is True
    assert ev({"Variable": "$$.Execution.Input", "IsPresent": True}, {}, context=context) is False
    assert ev({"Variable": "$count", "IsPresent": True}, {}, variables={"count": 0}) is True
    assert ev({"Variable": "$count", "IsPresent": True}, {}, variables={}) is False
    assert ev({"Variable": "$count", "IsPresent": False}, {}, variables=None) is True


# --- a Variable or a Path operand that reads nothing ------------------------------------------

VALID_OPERANDS: dict[str, Any] = {
    name: ("$.o" if name.endswith("Path") else T0 if name.startswith("Timestamp") else "x" if name.startswith("String") else 1 if name.startswith("Numeric") else True)
    for name in COMPARISON_OPERATORS
}


@pytest.mark.parametrize("op", sorted(COMPARISON_OPERATORS - {"IsPresent"}))
def test_missing_variable_is_a_runtime_error_for_every_operator_but_is_present(op: str) -> None:
    """A missing Variable fails the execution with States.Runtime; AWS's cause (after its
    "An error occurred while executing the state 'X' (entered at the event id #N). " prefix)
    is "Invalid path '$.v': The choice state's condition path references an invalid value."
    as seen in real execution histories. [guide] "If the state input doesn't contain the $.type
    field, the execution fails"."""
    rule = {"Variable": "$.missing", op: VALID_OPERANDS[op]}
    assert problems_of({**rule, "Next": "X"}) == []
    with pytest.raises(StatesError) as caught:
        ev(rule, {"o": VALID_OPERANDS[op], "v": 1})
    assert caught.value.error == errors.RUNTIME
    assert caught.value.cause == missing_cause("$.missing")


@pytest.mark.parametrize("op", sorted(name for name in COMPARISON_OPERATORS if name.endswith("Path")))
def test_missing_path_operand_is_a_runtime_error(op: str) -> None:
    with pytest.raises(StatesError) as caught:
        ev({"Variable": "$.v", op: "$.nowhere.to.be.found"}, {"v": 1})
    assert caught.value.error == errors.RUNTIME
    assert caught.value.cause == missing_cause("$.nowhere.to.be.found")


def test_missing_variable_is_reported_before_the_operand_path() -> None:
    with pytest.raises(StatesError) as caught:
        ev({"Variable": "$.a", "NumericEqualsPath": "$.b"}, {})
    assert caught.value.cause == missing_cause("$.a")


def test_undefined_workflow_variable_and_missing_context_field_are_runtime_errors() -> None:
    with pytest.raises(StatesError) as caught:
        ev({"Variable": "$nope", "StringEquals": "x"}, {}, variables={"yes": 1})
    assert caught.value.cause == missing_cause("$nope")
    with pytest.raises(StatesError) as caught:
        ev({"Variable": "$$.State.Name", "StringEquals": "x"}, {}, context={})
    assert caught.value.cause == missing_cause("$$.State.Name")


def test_runtime_error_is_not_catchable() -> None:
    with pytest.raises(StatesError) as caught:
        ev({"Variable": "$.v", "NumericEquals": 1}, {})
    assert caught.value.error in errors.UNCATCHABLE


# --- where Variable and Path operands read from -----------------------------------------------


def test_variable_reads_input_context_and_workflow_variables() -> None:
    context = {"Execution": {"Name": "run-1"}}
    variables = {"limit": {"max": 10}}
    data = {"n": 7, "name": "run-1"}
    assert ev({"Variable": "$.n", "NumericLessThanPath": "$limit.max"}, data, context=context, variables=variables) is True
    assert ev({"Variable": "$$.Execution.Name", "StringEqualsPath": "$.name"}, data, context=context, variables=variables) is True
    assert ev({"Variable": "$limit.max", "NumericEquals": 10}, data, context=context, variables=variables) is True
    assert ev({"Variable": "$", "IsNumeric": True}, 5) is True
    assert ev({"Variable": "$", "StringEquals": "No messages"}, "No messages") is True


def test_nested_and_indexed_paths() -> None:
    data = {"a": {"b": [{"c": "x"}, {"c": "y"}]}}
    assert ev({"Variable": "$.a.b[1].c", "StringEquals": "y"}, data) is True
    assert ev({"Variable": "$.a.b[0].c", "StringEquals": "y"}, data) is False


# --- StringMatches ----------------------------------------------------------------------------

MATCH_CASES = [
    # (value, pattern, expected)  -- [spec] examples first
    ("foo23.log", "foo*.log", True),
    ("zebra.log", "*.log", True),
    ("foobar.zebra", "foo*.*", True),
    ("foo.log", "foo*.log", True),  # `*` may match nothing
    ("foo23.txt", "foo*.log", False),
    ("xfoo.log", "foo*.log", False),  # anchored at the start
    ("foo.logx", "foo*.log", False),  # and at the end
    ("", "*", True),
    ("anything at all", "*", True),
    ("", "", True),
    ("a", "", False),
    ("abc", "abc", True),
    ("ABC", "abc", False),  # case-sensitive
    ("a.c", "a.c", True),
    ("abc", "a.c", False),  # "." is not special
    ("abc", "a?c", False),  # nor "?"
    ("a?c", "a?c", True),
    ("[ab]", "[ab]", True),
    ("a", "[ab]", False),  # nor brackets
    ("a*b", "a\\*b", True),  # an escaped star is a literal star
    ("axb", "a\\*b", False),
    ("a\\b", "a\\\\b", True),  # an escaped backslash is a literal backslash
    ("a\\xb", "a\\\\*b", True),  # a literal backslash, then a wildcard
    ("a\\b", "a\\b", True),  # a backslash before anything else stands for itself
    ("ab", "a\\b", False),
    ("abcbd", "a*b*d", True),
    ("abcbc", "a*b*d", False),
    ("mississippi", "*sip*", True),
    ("mississippi", "m*iss*ppi", True),
    ("mississippi", "m*iss*ppix", False),
    ("line1\nline2", "line1*line2", True),  # `*` crosses newlines
    ("ß", "ß", True),
]


@pytest.mark.parametrize(("value", "pattern", "expected"), MATCH_CASES)
def test_string_matches(value: str, pattern: str, expected: bool) -> None:
    assert holds("StringMatches", pattern, value) is expected


@pytest.mark.parametrize("value", NON_STRINGS)
def test_string_matches_never_matches_a_non_string(value: Any) -> None:
    assert holds("StringMatches", "*", value) is False


def test_string_matches_has_no_exponential_backtracking() -> None:
    start = time.perf_counter()
    assert holds("StringMatches", "*a" * 30 + "*b", "a" * 5000) is False
    assert time.perf_counter() - start < 2


# --- And, Or, Not -----------------------------------------------------------------------------

IS_ONE = {"Variable": "$.v", "NumericEquals": 1}
IS_POSITIVE = {"Variable": "$.v", "NumericGreaterThan": 0}
IS_STRING = {"Variable": "$.v", "IsString": True}
MISSING = {"Variable": "$.missing", "NumericEquals": 1}


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"And": [IS_ONE, IS_POSITIVE]}, 1, True),
        ({"And": [IS_ONE, IS_POSITIVE]}, 2, False),
        ({"And": [IS_POSITIVE]}, 5, True),  # [recorded] a singleton And
        ({"Or": [IS_ONE, IS_STRING]}, "x", True),
        ({"Or": [IS_ONE, IS_STRING]}, 2, False),
        ({"Not": IS_ONE}, 2, True),
        ({"Not": IS_ONE}, 1, False),
        ({"Not": {"Not": IS_ONE}}, 1, True),
        ({"And": [{"Not": IS_ONE}, {"Or": [IS_STRING, IS_POSITIVE]}]}, 3, True),
        ({"And": [{"Not": IS_ONE}, {"Or": [IS_STRING, IS_POSITIVE]}]}, -3, False),
        ({"Or": [{"And": [IS_POSITIVE, {"Not": IS_ONE}]}, IS_STRING]}, 1, False),
        ({"Or": [{"And": [IS_POSITIVE, {"Not": IS_ONE}]}, IS_STRING]}, 9, True),
    ],
)
def test_boolean_expressions(rule: dict[str, Any], value: Any, expected: bool) -> None:
    assert ev(rule, {"v": value}) is expected


def test_aws_docs_example() -> None:
    """[guide] the ChoiceStateX example: {"type": "Private", "value": 22} goes to ValueInTwenties."""
    choices: list[dict[str, Any]] = [
        {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
        {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
        {"And": [{"Variable": "$.value", "NumericGreaterThanEquals": 20}, {"Variable": "$.value", "NumericLessThan": 30}], "Next": "ValueInTwenties"},
    ]
    data = {"type": "Private", "value": 22}
    assert [ev(rule, data) for rule in choices] == [False, False, True]
    assert [p for i, r in enumerate(choices) for p in validate_rule(r, f"$.States.X.Choices[{i}]", top_level=True)] == []


def test_and_or_stop_at_the_deciding_rule() -> None:
    """And stops at the first false rule and Or at the first true one, so a later rule that would
    fail on a missing Variable is not evaluated (lets `IsPresent` guard a comparison)."""
    guard = {"Variable": "$.missing", "IsPresent": True}
    assert ev({"And": [guard, MISSING]}, {}) is False
    assert ev({"Or": [{"Not": guard}, MISSING]}, {}) is True
    with pytest.raises(StatesError):
        ev({"And": [{"Not": guard}, MISSING]}, {})
    with pytest.raises(StatesError):
        ev({"Or": [guard, MISSING]}, {})


def test_not_propagates_runtime_errors() -> None:
    with pytest.raises(StatesError):
        ev({"Not": MISSING}, {})


def test_evaluating_a_rule_without_an_operator_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        ev({"Variable": "$.v", "Next": "X"}, {"v": 1})


# --- properties -------------------------------------------------------------------------------

finite_numbers = st.one_of(st.integers(min_value=-(2**60), max_value=2**60), st.floats(allow_nan=False, allow_infinity=False))
json_scalars = st.one_of(st.none(), st.booleans(), finite_numbers, st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)), max_leaves=8)
leaf_rules = st.sampled_from(
    [
        {"Variable": "$.v", "NumericLessThan": 0},
        {"Variable": "$.v", "IsString": True},
        {"Variable": "$.v", "IsNull": False},
        {"Variable": "$.v", "StringMatches": "*a*"},
        {"Variable": "$.v", "BooleanEquals": True},
        {"Variable": "$.w", "IsPresent": True},
    ]
)


@given(rule=leaf_rules, value=json_values)
def test_not_negates(rule: dict[str, Any], value: Any) -> None:
    data = {"v": value}
    assert ev({"Not": rule}, data) is (not ev(rule, data))


@given(a=leaf_rules, b=leaf_rules, value=json_values)
def test_de_morgan(a: dict[str, Any], b: dict[str, Any], value: Any) -> None:
    data = {"v": value}
    assert ev({"Not": {"And": [a, b]}}, data) is ev({"Or": [{"Not": a}, {"Not": b}]}, data)
    assert ev({"And": [a, b]}, data) is (ev(a, data) and ev(b, data))
    assert ev({"Or": [a, b]}, data) is (ev(a, data) or ev(b, data))


@given(value=finite_numbers, operand=finite_numbers)
def test_numeric_relations_are_complementary_and_consistent(value: float, operand: float) -> None:
    def r(op: str) -> bool:
        return holds(op, operand, value)

    assert r("NumericLessThan") is not r("NumericGreaterThanEquals")
    assert r("NumericGreaterThan") is not r("NumericLessThanEquals")
    assert r("NumericEquals") is (r("NumericLessThanEquals") and r("NumericGreaterThanEquals"))
    assert r("NumericEquals") is (value == operand)
    assert r("NumericLessThan") is (value < operand)
    assert holds_path("NumericLessThan", operand, value) is r("NumericLessThan")


@given(value=st.text(max_size=6), operand=st.text(max_size=6))
def test_string_relations_are_a_total_order(value: str, operand: str) -> None:
    def r(op: str) -> bool:
        return holds(op, operand, value)

    assert r("StringLessThan") is not r("StringGreaterThanEquals")
    assert r("StringGreaterThan") is not r("StringLessThanEquals")
    assert r("StringEquals") is (value == operand)
    assert [r("StringLessThan"), r("StringEquals"), r("StringGreaterThan")].count(True) == 1


@given(value=json_values.filter(lambda v: isinstance(v, bool) or not isinstance(v, (int, float))), operand=finite_numbers)
def test_non_numbers_never_satisfy_a_numeric_test(value: Any, operand: float) -> None:
    for op in NUMERIC_OPS:
        assert holds(op, operand, value) is False


moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timedelta(minutes=m))


def rfc3339(moment: datetime, offset: timedelta) -> str:
    local = moment + offset
    minutes = int(offset.total_seconds()) // 60
    zone = "Z" if minutes == 0 else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    fraction = f".{local.microsecond:06d}" if local.microsecond else ""
    return local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone


@given(a=moments, b=moments, offset_a=offsets, offset_b=offsets)
def test_timestamps_compare_as_instants(a: datetime, b: datetime, offset_a: timedelta, offset_b: timedelta) -> None:
    value, operand = rfc3339(a, offset_a), rfc3339(b, offset_b)
    assert holds("IsTimestamp", True, value) is True
    assert holds("TimestampEquals", operand, value) is (a == b)
    assert holds("TimestampLessThan", operand, value) is (a < b)
    assert holds("TimestampGreaterThanEquals", operand, value) is (a >= b)
    assert holds_path("TimestampGreaterThan", operand, value) is (a > b)
    assert holds_path("TimestampLessThanEquals", operand, value) is (a <= b)


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


@given(text=st.text(max_size=12), other=st.text(max_size=12))
def test_an_escaped_pattern_matches_only_itself(text: str, other: str) -> None:
    assert holds("StringMatches", escape(text), text) is True
    assert holds("StringMatches", escape(text), other) is (text == other)


@given(prefix=st.text(max_size=5), middle=st.text(max_size=5), suffix=st.text(max_size=5))
def test_a_star_matches_any_middle(prefix: str, middle: str, suffix: str) -> None:
    pattern = escape(prefix) + "*" + escape(suffix)
    assert holds("StringMatches", pattern, prefix + middle + suffix) is True
    assert holds("StringMatches", "*", middle) is True


@given(text=st.text(alphabet="ab*", max_size=8), pattern=st.text(alphabet="ab*", max_size=6))
def test_string_matches_agrees_with_a_reference_matcher(text: str, pattern: str) -> None:
    """Without backslashes, `*` is the only special character; compare with fnmatch-style
    matching done by a plain regular expression."""
    import re

    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    assert holds("StringMatches", pattern, text) is (re.fullmatch(regex, text, re.DOTALL) is not None)


# --- validation: accepted rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"Variable": "$.foo", "NumericEquals": 1, "Next": "A"},
        {"Variable": "$.foo", "NumericEquals": 1.5, "Next": "A"},
        {"Variable": "$.foo", "StringEquals": "", "Next": "A"},
        {"Variable": "$.foo", "BooleanEquals": False, "Next": "A"},
        {"Variable": "$.foo", "TimestampEquals": "2001-01-01T12:00:00Z", "Next": "A"},
        {"Variable": "$.foo", "TimestampLessThan": "2001-01-01T12:00:00.123+05:30", "Next": "A"},
        {"Variable": "$.foo", "StringMatches": "log-*.txt", "Next": "A"},
        {"Variable": "$.foo", "StringMatches": "", "Next": "A"},
        {"Variable": "$.foo", "NumericEqualsPath": "$.bar", "Next": "A"},
        {"Variable": "$.foo", "TimestampLessThanPath": "$$.Execution.StartTime", "Next": "A"},
        {"Variable": "$.foo", "StringEqualsPath": "$expected", "Next": "A"},
        {"Variable": "$$.Execution.Input.x", "IsPresent": True, "Next": "A"},
        {"Variable": "$counter", "IsNumeric": False, "Next": "A"},
        {"Variable": "$", "IsString": True, "Next": "A"},
        {"Variable": "$.a[0]['b c']", "IsNull": True, "Next": "A"},
        {"Variable": "$.foo", "IsTimestamp": True, "Next": "A", "Comment": "why"},
        {"Variable": "$.foo", "IsBoolean": True, "Next": "A", "Assign": {"seen": True}},
        {"And": [{"Variable": "$.a", "IsPresent": True}, {"Variable": "$.a", "NumericGreaterThan": 0}], "Next": "A"},
        {"Or": [{"Variable": "$.a", "IsNull": True, "Comment": "nested comment"}], "Next": "A"},
        {"Not": {"Not": {"And": [{"Variable": "$.a", "StringEquals": "x"}]}}, "Next": "A"},
    ],
)
def test_valid_rules_have_no_problems(rule: dict[str, Any]) -> None:
    assert problems_of(rule) == []


def test_every_operator_with_a_valid_operand_is_accepted() -> None:
    for op in COMPARISON_OPERATORS:
        assert problems_of({"Variable": "$.v", op: VALID_OPERANDS[op], "Next": "A"}) == [], op
        assert problems_of({"Variable": "$.v", op: VALID_OPERANDS[op]}, top_level=False) == [], op


# --- validation: refused rules ----------------------------------------------------------------

ROOT = "$.States.Check.Choices[0]"


@pytest.mark.parametrize("rule", [None, "x", 1, True, [], [{"Variable": "$.a", "IsNull": True}]])
def test_a_rule_must_be_an_object(rule: Any) -> None:
    problems = problems_of(rule)
    assert [p.path for p in problems] == [ROOT]
    assert "object" in problems[0].message


def test_top_level_rule_needs_next() -> None:
    problems = problems_of({"Variable": "$.a", "IsNull": True})
    assert problems == [Problem(f"{ROOT}.Next", "a top-level Choice rule needs Next")]


@pytest.mark.parametrize("next_", ["", 1, None, ["A"], {"A": 1}])
def test_next_must_be_a_non_empty_string(next_: Any) -> None:
    problems = problems_of({"Variable": "$.a", "IsNull": True, "Next": next_})
    assert [p.path for p in problems] == [f"{ROOT}.Next"]
    assert "state name" in problems[0].message


def test_nested_rules_must_not_have_next() -> None:
    """[guide] the rules inside And / Or / Not "must not themselves contain Next fields"."""
    rule = {
        "And": [{"Variable": "$.a", "IsNull": True, "Next": "B"}],
        "Next": "A",
    }
    problems = problems_of(rule)
    assert [p.path for p in problems] == [f"{ROOT}.And[0].Next"]
    assert "top-level" in problems[0].message
    assert paths_of({"Not": {"Variable": "$.a", "IsNull": True, "Next": "B"}, "Next": "A"}) == [f"{ROOT}.Not.Next"]
    assert paths_of({"Variable": "$.a", "IsNull": True, "Next": "B"}, top_level=False) == [f"{ROOT}.Next"]


def test_a_rule_needs_an_operator() -> None:
    problems = problems_of({"Variable": "$.a", "Next": "A"})
    assert [p.path for p in problems] == [ROOT]
    assert "exactly one of" in problems[0].message
    assert paths_of({"Next": "A"}) == [ROOT]


@pytest.mark.parametrize(
    ("rule", "found"),
    [
        ({"Variable": "$.a", "IsNull": True, "IsString": True, "Next": "A"}, "IsNull, IsString"),
        ({"Variable": "$.a", "NumericEquals": 1, "NumericEqualsPath": "$.b", "Next": "A"}, "NumericEquals, NumericEqualsPath"),
        ({"And": [{"Variable": "$.a", "IsNull": True}], "Not": {"Variable": "$.a", "IsNull": True}, "Next": "A"}, "And, Not"),
    ],
)
def test_a_rule_takes_only_one_operator(rule: dict[str, Any], found: str) -> None:
    problems = problems_of(rule)
    assert [p.path for p in problems] == [ROOT]
    assert problems[0].message.endswith(f"found {found}")


def test_a_comparison_mixed_with_a_boolean_operator() -> None:
    rule = {"Variable": "$.a", "IsNull": True, "Or": [{"Variable": "$.b", "IsNull": True}], "Next": "A"}
    assert paths_of(rule) == [ROOT]


@pytest.mark.parametrize("operand", [[], {}, None, "x", {"Variable": "$.a", "IsNull": True}])
@pytest.mark.parametrize("kind", ["And", "Or"])
def test_and_or_take_a_non_empty_array(kind: str, operand: Any) -> None:
    problems = problems_of({kind: operand, "Next": "A"})
    assert problems == [Problem(f"{ROOT}.{kind}", f"{kind} takes a non-empty array of Choice rules")]


@pytest.mark.parametrize("operand", [[{"Variable": "$.a", "IsNull": True}], [], None, "x", 1])
def test_not_takes_one_rule_object(operand: Any) -> None:
    problems = problems_of({"Not": operand, "Next": "A"})
    assert [p.path for p in problems] == [f"{ROOT}.Not"]
    assert "one Choice rule" in problems[0].message


def test_a_non_object_inside_and() -> None:
    assert paths_of({"And": [{"Variable": "$.a", "IsNull": True}, 3], "Next": "A"}) == [f"{ROOT}.And[1]"]


def test_a_comparison_needs_variable() -> None:
    problems = problems_of({"NumericEquals": 1, "Next": "A"})
    assert [p.path for p in problems] == [f"{ROOT}.Variable"]
    assert "needs Variable" in problems[0].message


@pytest.mark.parametrize("variable", ["foo", "", "$.", "$[", "$.a[", 5, None, ["$.a"]])
def test_variable_must_be_a_valid_path(variable: Any) -> None:
    problems = problems_of({"Variable": variable, "StringEquals": "x", "Next": "A"})
    assert [p.path for p in problems] == [f"{ROOT}.Variable"]
    assert "JSONPath" in problems[0].message


def test_variable_is_refused_next_to_and_or_not() -> None:
    problems = problems_of({"Variable": "$.a", "Not": {"Variable": "$.a", "IsNull": True}, "Next": "A"})
    assert [p.path for p in problems] == [f"{ROOT}.Variable"]


@pytest.mark.parametrize(
    ("op", "operand", "wanted"),
    [
        ("StringEquals", 1, "a string"),
        ("StringLessThan", None, "a string"),
        ("StringGreaterThanEquals", ["a"], "a string"),
        ("NumericEquals", "1", "a number"),
        ("NumericLessThan", True, "a number"),  # a boolean is not a number
        ("NumericGreaterThan", None, "a number"),
        ("BooleanEquals", "true", "a boolean"),
        ("BooleanEquals", 1, "a boolean"),
        ("TimestampEquals", "2016-03-14T01:59:00", "RFC3339"),  # no Z
        ("TimestampLessThan", "2016-13-05T21:29:29Z", "RFC3339"),
        ("TimestampGreaterThan", "2016-12-05T25:29:29Z", "RFC3339"),
        ("TimestampLessThanEquals", "05-12-2016T21:29:29Z", "RFC3339"),
        ("TimestampGreaterThanEquals", 1457920740, "RFC3339"),
        ("IsNull", "true", "a boolean"),
        ("IsPresent", 1, "a boolean"),
        ("IsNumeric", None, "a boolean"),
        ("IsString", "yes", "a boolean"),
        ("IsBoolean", 0, "a boolean"),
        ("IsTimestamp", [], "a boolean"),
        ("StringMatches", 5, "a string pattern"),
        ("StringEqualsPath", "foo", "JSONPath"),
        ("NumericEqualsPath", 1, "JSONPath"),
        ("BooleanEqualsPath", True, "JSONPath"),
        ("TimestampEqualsPath", "2016-03-14T01:59:00Z", "JSONPath"),
        ("NumericLessThanPath", "$.", "JSONPath"),
    ],
)
def test_operand_types(op: str, operand: Any, wanted: str) -> None:
    problems = problems_of({"Variable": "$.a", op: operand, "Next": "A"})
    assert [p.path for p in problems] == [f"{ROOT}.{op}"]
    assert wanted in problems[0].message
    assert problems[0].message.startswith(f"{op} takes")


@pytest.mark.parametrize(
    ("field", "value", "top_level", "message"),
    [
        ("Default", "A", True, "unknown field 'Default'"),
        ("Output", {}, True, "unknown field 'Output'"),
        ("stringequals", "x", True, "unknown field 'stringequals'"),
        ("Condition", "{% true %}", True, "JSONata"),
        ("Assign", {"x": 1}, False, "top-level"),
        ("Comment", 5, True, "Comment must be a string"),
        ("Comment", None, False, "Comment must be a string"),
    ],
)
def test_other_fields(field: str, value: Any, top_level: bool, message: str) -> None:
    rule: dict[str, Any] = {"Variable": "$.a", "IsNull": True, field: value}
    if top_level:
        rule["Next"] = "A"
    problems = problems_of(rule, top_level=top_level)
    assert [p.path for p in problems] == [f"{ROOT}.{field}"]
    assert message in problems[0].message


def test_every_problem_is_reported_recursively_with_its_path() -> None:
    rule = {
        "And": [
            {"Variable": "$.a", "NumericEquals": "1"},
            {"Not": {"Variable": "nope", "IsNull": True, "Next": "B"}},
            {"Or": []},
            {"Or": [{"Variable": "$.t", "TimestampEquals": "yesterday", "Extra": 1}]},
        ],
        "Comment": 3,
    }
    assert paths_of(rule) == [
        f"{ROOT}.Next",
        f"{ROOT}.And[0].NumericEquals",
        f"{ROOT}.And[1].Not.Next",
        f"{ROOT}.And[1].Not.Variable",
        f"{ROOT}.And[2].Or",
        f"{ROOT}.And[3].Or[0].TimestampEquals",
        f"{ROOT}.And[3].Or[0].Extra",
        f"{ROOT}.Comment",
    ]


def test_problems_render_as_path_and_message() -> None:
    (problem,) = problems_of({"Variable": "$.a", "NumericEquals": "1", "Next": "A"})
    assert str(problem) == f"{ROOT}.NumericEquals: NumericEquals takes a number, not '1'"


def test_validation_does_not_mutate_or_need_json_roundtrip() -> None:
    rule = {"Variable": "$.a", "And": "x", "Next": 1}
    before = json.dumps(rule, sort_keys=True)
    assert len(problems_of(rule)) == 3
    assert json.dumps(rule, sort_keys=True) == before
