"""Unit tests for orchestrator.asl.intrinsics: parsing, static checks and every States.* function.

Where a behaviour is subtle the test docstring names its source:

* [GUIDE] AWS Step Functions developer guide, "Intrinsic functions for JSONPath states"
  (https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html).
* [SPEC] Amazon States Language spec, "Intrinsic Functions" and Appendix B
  (https://states-language.net/spec.html, awslabs/states-language spec/States.html).
* [LS] executions recorded on AWS in LocalStack's snapshots
  (localstack/localstack tests/aws/services/stepfunctions/v2/intrinsic_functions/*.snapshot.json).
* [TAM] executions recorded on AWS in gabrielmoreira/tiny-asl-machine
  (tests/conformance/cases/.snapshots/aws/States.*.json).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from orchestrator.asl import errors, intrinsics
from orchestrator.asl.errors import StatesError
from orchestrator.asl.intrinsics import IntrinsicSyntaxError, check, evaluate, is_intrinsic

EVAL_PREFIX = "There was an error while evaluating the intrinsic function: "


def run(
    expr: str,
    data: Any = None,
    *,
    context: Any = None,
    variables: dict[str, Any] | None = None,
    rng: random.Random | None = None,
    uuids: list[str] | None = None,
) -> Any:
    """Evaluate with deterministic randomness; UUIDs are handed out from `uuids`."""
    pool = iter(uuids or ["00000000-0000-4000-8000-000000000000"])
    return evaluate(
        expr,
        {} if data is None else data,
        context={} if context is None else context,
        variables=variables,
        rng=rng or random.Random(0),
        new_uuid=lambda: next(pool),
    )


def failure(expr: str, data: Any = None, **kwargs: Any) -> str:
    """Evaluate an expression that must fail as Step Functions fails it; return the cause."""
    with pytest.raises(StatesError) as info:
        run(expr, data, **kwargs)
    assert info.value.error == errors.RUNTIME
    return info.value.cause


def invalid_arguments(expr: str, data: Any = None, **kwargs: Any) -> None:
    """The function refuses its arguments with Step Functions' exact cause."""
    name = expr.split("(", 1)[0]
    assert failure(expr, data, **kwargs) == f"{EVAL_PREFIX}{expr}. Invalid arguments in {name}"


def refused(expr: str) -> str:
    with pytest.raises(IntrinsicSyntaxError) as info:
        check(expr)
    return str(info.value)


# --- is_intrinsic ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["States.UUID()", "States.Format('x {}', $.a)", "States.Array(States.Array(), $$.Execution.Id)", "States.Nope(1)"],
)
def test_is_intrinsic_accepts_call_shaped_strings(value: str) -> None:
    assert is_intrinsic(value)


@pytest.mark.parametrize(
    "value", ["$.a", "$$.Execution.Id", "States.Format", " States.UUID()", "States.UUID() ", "Format()", "", "States.()"]
)
def test_is_intrinsic_rejects_other_strings(value: str) -> None:
    assert not is_intrinsic(value)


# --- check: syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, message",
    [
        ("", "expected an intrinsic function name"),
        ("$.a", "expected an intrinsic function name"),
        ("States.Foo()", "unknown intrinsic function 'States.Foo'"),
        ("States.format('x')", "unknown intrinsic function 'States.format'"),
        ("States.Array", "expected '(' right after States.Array"),
        ("States.Array (1)", "expected '(' right after States.Array"),
        ("States .Array()", "expected an intrinsic function name"),
        ("States.Array(", "ends before its closing ')'"),
        ("States.Array(1", "expected ',' or ')' after argument 1"),
        ("States.Array(1 2)", "expected ',' or ')' after argument 1"),
        ("States.Array(1,)", "missing argument"),
        ("States.Array(,1)", "missing argument"),
        ("States.Array() x", "unexpected text ' x' after the closing ')'"),
        ("States.Array()States.Array()", "unexpected text"),
        ("States.Array('abc)", "unterminated string literal"),
        ('States.Array("abc")', "expected an argument"),
        ("States.Array('a\\nb')", "invalid escape '\\n'"),
        ("States.Array('trailing\\')", "unterminated string literal"),
        ("States.Array(1.)", "invalid number"),
        ("States.Array(.5)", "expected an argument"),
        ("States.Array(01)", "invalid number"),
        ("States.Array(+1)", "expected an argument"),
        ("States.Array(1e)", "invalid number"),
        ("States.Array(-)", "invalid number"),
        ("States.Array(True)", "expected an argument"),
        ("States.Array(nulls)", "expected an argument"),
        ("States.Array([1, 2])", "expected an argument"),
        ("States.Array({})", "expected an argument"),
        ("States.Array($.)", "invalid path argument '$.'"),
        ("States.Array($[)", "invalid path argument"),
        ("States.Array($.a b)", "expected ',' or ')' after argument 1"),
    ],
)
def test_check_refuses_bad_syntax(expr: str, message: str) -> None:
    assert message in refused(expr)


def test_check_refuses_escaped_double_quote_like_aws_validation() -> None:
    r"""`\"` is not one of the four escapes; AWS refuses such a definition [GUIDE "Reserved characters"].

    The conformance case ESCAPE_SEQUENCES_ILLEGAL_INTRINSIC_FUNCTION_2 records AWS answering
    SCHEMA_VALIDATION_FAILED for `States.Format('He said, \"Hello, {}!\"', ...)`.
    """
    assert "invalid escape '\\\"'" in refused("States.Format('He said, \\\"Hello, {}!\\\"', 'Test')")


def test_syntax_errors_also_come_from_evaluate() -> None:
    with pytest.raises(IntrinsicSyntaxError, match="unknown intrinsic function"):
        run("States.Nope()")


def test_check_allows_ten_functions_but_not_eleven() -> None:
    """[GUIDE] "You can nest up to 10 intrinsic functions within a field"; it counts calls."""
    ten = "States.Array(" * 10 + "1" + ")" * 10
    check(ten)
    assert "11 intrinsic functions in one expression" in refused("States.Array(" * 11 + "1" + ")" * 11)
    check("States.Array(" + ", ".join(["States.UUID()"] * 9) + ")")
    assert "at most 10" in refused("States.Array(" + ", ".join(["States.UUID()"] * 10) + ")")


@pytest.mark.parametrize(
    "expr",
    [
        # [GUIDE] the nine-function example, with its template fixed to two placeholders
        "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
        "States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem("
        "States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))",
        # [SPEC] escaped apostrophe
        "States.Format('Welcome to {} {}\\'s playlist.', $.firstName, $.lastName)",
        "States.Format('\\{\\} and \\\\ and {}', $.a)",
        "States.Array( $.a , $.b )",
        "States.Array(\n$.a,\t1)",
        "States.Array('multi\nline', '', -1, 0, 1.5, -2.5e3, 1E2, true, false, null)",
        "States.Array($$.Execution.Input, $$, $, $myVar, $myVar.field[0])",
        "States.Array($.items[?(@.name == 'a, b)')], $['key with, comma'], $..deep, $.a[1:2])",
        "States.StringToJson('{\"constant_in_literal\": \"false\"}')",
        "States.Hash(123, 'SHA-384')",
        "States.JsonMerge($.a, $.b, false)",
        "States.MathRandom(1, 10)",
        "States.MathRandom(1, 10, 42)",
        "States.UUID()",
    ],
)
def test_check_accepts_valid_expressions(expr: str) -> None:
    check(expr)


# --- check: argument counts and literal types ----------------------------------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("States.Format()", "takes at least 1 argument(s), but 0"),
        ("States.StringToJson()", "exactly 1 argument(s), but 0"),
        ("States.JsonToString($.a, $.b)", "exactly 1 argument(s), but 2"),
        ("States.ArrayPartition($.a)", "exactly 2 argument(s), but 1"),
        ("States.ArrayContains($.a, 1, 2)", "exactly 2 argument(s), but 3"),
        ("States.ArrayRange(1, 2)", "exactly 3 argument(s), but 2"),
        ("States.ArrayGetItem($.a)", "exactly 2 argument(s), but 1"),
        ("States.ArrayLength()", "exactly 1 argument(s), but 0"),
        ("States.ArrayUnique($.a, $.b)", "exactly 1 argument(s), but 2"),
        ("States.Base64Encode()", "exactly 1 argument(s), but 0"),
        ("States.Base64Decode('a', 'b')", "exactly 1 argument(s), but 2"),
        ("States.Hash('a')", "exactly 2 argument(s), but 1"),
        ("States.JsonMerge($.a, $.b)", "exactly 3 argument(s), but 2"),
        ("States.MathRandom(1)", "2 to 3 arguments, but 1"),
        ("States.MathRandom(1, 2, 3, 4)", "2 to 3 arguments, but 4"),
        ("States.MathAdd(1)", "exactly 2 argument(s), but 1"),
        ("States.StringSplit($.a)", "exactly 2 argument(s), but 1"),
        ("States.UUID(1)", "exactly 0 argument(s), but 1"),
        ("States.Array(States.MathAdd(1))", "States.MathAdd takes exactly 2"),
    ],
)
def test_check_refuses_wrong_argument_counts(expr: str, expected: str) -> None:
    assert expected in refused(expr)


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("States.Format(1, 2)", "argument 1 of States.Format must be a string, not the literal 1"),
        ("States.StringToJson(null)", "must be a string, not the literal null"),
        ("States.ArrayPartition('not-array', 2)", "argument 1 of States.ArrayPartition must be an array"),
        ("States.ArrayPartition($.a, '2')", "argument 2 of States.ArrayPartition must be a number"),
        ("States.ArrayContains(1, 1)", "must be an array, not the literal 1"),
        ("States.ArrayRange(1, null, 1)", "argument 2 of States.ArrayRange must be a number, not the literal null"),
        ("States.ArrayGetItem($.a, '1')", "must be a number, not the literal '1'"),
        ("States.ArrayLength('not-array')", "must be an array"),
        ("States.ArrayUnique(true)", "must be an array, not the literal true"),
        ("States.Base64Encode(123)", "must be a string, not the literal 123"),
        ("States.Base64Decode(false)", "must be a string"),
        ("States.Hash('data', 123)", "argument 2 of States.Hash must be a string"),
        ("States.JsonMerge('a', $.b, false)", "argument 1 of States.JsonMerge must be a JSON object"),
        ("States.JsonMerge($.a, null, false)", "argument 2 of States.JsonMerge must be a JSON object"),
        ("States.MathRandom(1, 'b')", "argument 2 of States.MathRandom must be a number"),
        ("States.MathRandom(1, 10, null)", "argument 3 of States.MathRandom must be a number"),
        ("States.MathAdd('a', 1)", "argument 1 of States.MathAdd must be a number, not the literal 'a'"),
        ("States.MathAdd(true, 1)", "must be a number, not the literal true"),
        ("States.StringSplit($.a, 1)", "argument 2 of States.StringSplit must be a string"),
        ("States.Array(States.MathAdd(1, 'x'))", "argument 2 of States.MathAdd"),
    ],
)
def test_check_refuses_literals_of_the_wrong_type(expr: str, expected: str) -> None:
    assert expected in refused(expr)


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("States.Format('{} {}', $.a)", "has 2 '{}' placeholder(s) but 1 value(s) follow it"),
        ("States.Format('{}', $.a, $.b)", "has 1 '{}' placeholder(s) but 2 value(s)"),
        ("States.Format('no placeholder', 1)", "has 0 '{}' placeholder(s) but 1"),
        ("States.Format('Hello {', $.a)", "matching '}' not found for '{'"),
        ("States.Format('Hello {{}}', $.a)", "matching '}' not found for '{'"),
        ("States.Format('}')", "matching '{' not found for '}'"),
        ("States.Hash('data', 'sha-256')", "does not support the algorithm 'sha-256'"),
        ("States.Hash('data', 'SHA256')", "does not support the algorithm"),
        ("States.Hash('data', 'MD-5')", "does not support the algorithm"),
        ("States.Hash('data', '')", "does not support the algorithm"),
        ("States.JsonMerge($.a, $.b, true)", "only supports shallow merging"),
        ("States.JsonMerge($.a, $.b, 'TRUE')", "only supports shallow merging"),
    ],
)
def test_check_refuses_literal_values_no_call_can_accept(expr: str, expected: str) -> None:
    assert expected in refused(expr)


def test_check_leaves_path_templates_and_algorithms_to_runtime() -> None:
    check("States.Format($.template, $.a, $.b)")
    check("States.Hash($.data, $.algorithm)")
    check("States.JsonMerge($.a, $.b, $.deep)")


# --- Parsing details -------------------------------------------------------------------------


def test_literals_have_json_types() -> None:
    assert run("States.Array('x', '', 7, -7, 0, 1.5, 2.0, 1e2, -2.5E-1, true, false, null)") == [
        "x", "", 7, -7, 0, 1.5, 2.0, 100.0, -0.25, True, False, None,
    ]  # fmt: skip
    assert [type(v) for v in run("States.Array(7, 2.0, 1e2)")] == [int, float, float]


def test_string_escapes() -> None:
    """[SPEC] \\' \\{ \\} \\\\ stand for ' { } \\ inside a literal."""
    assert run("States.Array('it\\'s', '\\{x\\}', 'a\\\\b')") == ["it's", "{x}", "a\\b"]


def test_string_literals_keep_raw_newlines_and_unescaped_braces() -> None:
    """[LS] ESCAPE_SEQUENCE splits 'Hello<newline>World' on a newline literal; JSON_MERGE_ESCAPED_ARGUMENT
    passes '{"constant_in_literal": "false"}' with raw braces to States.StringToJson."""
    assert run("States.StringSplit('Hello\nWorld', '\n')") == ["Hello", "World"]
    assert run("States.StringToJson('{\"k\": \"v\"}')") == {"k": "v"}


def test_parse_is_cached() -> None:
    intrinsics._parse.cache_clear()
    run("States.MathAdd(1, 2)")
    run("States.MathAdd(1, 2)")
    info = intrinsics._parse.cache_info()
    assert (info.misses, info.hits) == (1, 1)


# --- Path arguments --------------------------------------------------------------------------


def test_path_arguments_read_input_context_and_variables() -> None:
    data = {"a": {"b": [10, 20]}, "n": None}
    context = {"Execution": {"Name": "exec-1"}}
    variables = {"total": 5, "obj": {"k": "v"}}
    assert run(
        "States.Array($.a.b[1], $$.Execution.Name, $total, $obj.k, $.n)", data, context=context, variables=variables
    ) == [20, "exec-1", 5, "v", None]


def test_root_paths_and_indefinite_paths() -> None:
    data = {"items": [{"x": 1}, {"x": 2}, {"y": 3}]}
    assert run("States.ArrayLength($.items[*].x)", data) == 2
    assert run("States.ArrayLength($.items[*].nope)", data) == 0  # wildcards yield a list, maybe empty
    assert run("States.JsonToString($)", {"other": 1}) == '{"other":1}'
    assert run("States.JsonToString($$)", context={"c": 1}) == '{"c":1}'


def test_missing_path_fails_with_aws_cause() -> None:
    """[TAM] States.Hash-029: States.Runtime, "The function '<expr>' had the following error: The
    JsonPath argument for the field '$.missing' could not be found in the input '{}'"."""
    expr = "States.Hash($.missing, 'SHA-256')"
    assert failure(expr, {}) == (
        f"The function '{expr}' had the following error: The JsonPath argument for the field "
        "'$.missing' could not be found in the input '{}'"
    )


def test_missing_path_names_the_whole_expression_and_the_compact_input() -> None:
    expr = "States.Format('{}', States.Format('{} {}', $.other, $.a.b))"
    assert failure(expr, {"other": 1, "x": [1.0, "é"]}) == (
        f"The function '{expr}' had the following error: The JsonPath argument for the field "
        "'$.a.b' could not be found in the input '{\"other\":1,\"x\":[1.0,\"é\"]}'"
    )


def test_missing_context_path_is_shown_relative_to_the_context_object() -> None:
    cause = failure("States.Format('{}', $$.Nope.Deep)", {"other": 1}, context={"State": {}})
    assert cause.endswith("the field '$.Nope.Deep' could not be found in the input '{\"other\":1}'")


@pytest.mark.parametrize("expr", ["States.Array($missing)", "States.Array($known.nope)", "States.Array($.items[5])"])
def test_missing_variables_and_out_of_range_indexes_fail(expr: str) -> None:
    cause = failure(expr, {"items": [1, 2]}, variables={"known": {"k": 1}})
    assert "could not be found in the input" in cause


def test_explicit_null_is_a_value_not_a_miss() -> None:
    assert run("States.Format('{}', $.nul)", {"nul": None}) == "null"


def test_runtime_errors_are_uncatchable_states_runtime() -> None:
    """[TAM] every intrinsic failure on AWS is States.Runtime, which Retry/Catch cannot match."""
    with pytest.raises(StatesError) as info:
        run("States.MathAdd('a', 1)")
    assert info.value.error == errors.RUNTIME
    assert info.value.error in errors.UNCATCHABLE


# --- States.Format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, rendered",
    [
        ("", ""),
        (" ", " "),
        ("HelloWorld", "HelloWorld"),
        ('{"Arg1": 1, "Arg2": []}', '{"Arg1": 1, "Arg2": []}'),
        (None, "null"),
        (1, "1"),
        (-7, "-7"),
        (1.1, "1.1"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_format_renders_scalars(value: Any, rendered: str) -> None:
    """[LS] test_format_1/2: strings verbatim, null as "null", numbers as written."""
    assert run("States.Format('Formatting argument {}.', $.v)", {"v": value}) == f"Formatting argument {rendered}."


@pytest.mark.parametrize(
    "value, rendered",
    [
        (1.0, "1.0"),
        (100.0, "100.0"),
        (0.001, "0.001"),
        (1234567.5, "1234567.5"),
        (1e7, "1.0E7"),
        (1e20, "1.0E20"),
        (0.0001, "1.0E-4"),
        (-1.5e-7, "-1.5E-7"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
    ],
)
def test_format_renders_doubles_as_java_does(value: float, rendered: str) -> None:
    """Floats keep their fraction (1.0 stays "1.0") and use Java's Double.toString notation."""
    assert run("States.Format('{}', $.v)", {"v": value}) == rendered


def test_format_renders_objects_and_arrays_as_java_collections() -> None:
    """[LS] test_format_2 resp_7: an object renders as "{Arg1=1, Arg2=[]}"; test_context_json_path:
    $$.StateMachine renders as "{Id=arn:..., Name=...}"."""
    data = {"o": {"Arg1": 1, "Arg2": []}, "l": [1, "a", None, [2.5, True], {"k": {}}]}
    assert run("States.Format('{} / {}', $.o, $.l)", data) == "{Arg1=1, Arg2=[]} / [1, a, null, [2.5, true], {k={}}]"
    context = {"StateMachine": {"Id": "arn:aws:states:r:1:stateMachine:sm", "Name": "sm"}}
    assert run("States.Format('{}', $$.StateMachine)", context=context) == "{Id=arn:aws:states:r:1:stateMachine:sm, Name=sm}"


def test_format_placeholders_templates_and_escapes() -> None:
    assert run("States.Format('{}-{}-{}', 1, 'b', $.c)", {"c": True}) == "1-b-true"
    assert run("States.Format('no placeholders')") == "no placeholders"
    assert run("States.Format('  {}  ', 'x')") == "  x  "
    assert run("States.Format($.template, $.name)", {"template": "Hello, my name is {}.", "name": "Arnav"}) == (
        "Hello, my name is Arnav."
    )
    assert run("States.Format('\\{\\} is literal, {} is not', 'this')") == "{} is literal, this is not"
    assert run("States.Format('it\\'s {}', 'me')") == "it's me"
    assert run("States.Format('a\\\\b{}', 'c')") == "a\\bc"
    assert run("States.Format('{}', States.JsonToString($.o))", {"o": {"k": 1}}) == '{"k":1}'


def test_format_template_from_a_path_has_no_escapes() -> None:
    assert run("States.Format($.t, 1)", {"t": "C:\\dir\\{}"}) == "C:\\dir\\1"


@pytest.mark.parametrize(
    "template, detail",
    [
        ("Hello {", "matching '}' not found for '{'."),
        ("Hello {{}}", "matching '}' not found for '{'."),
        ("}", "matching '{' not found for '}'."),
    ],
)
def test_format_invalid_templates_fail_with_aws_cause(template: str, detail: str) -> None:
    """[TAM] States.Format-018/019/020: "Invalid template in States.Format: matching '}' not found for '{'."."""
    expr = f"States.Format('{template}')"
    assert failure(expr) == f"{EVAL_PREFIX}{expr}. Invalid template in States.Format: {detail}"
    assert failure("States.Format($.t)", {"t": template}).endswith(detail)


@pytest.mark.parametrize(
    "expr, data",
    [
        ("States.Format('{} {}', $.a)", {"a": "x"}),
        ("States.Format('{}', $.a, $.b)", {"a": "x", "b": "y"}),
        ("States.Format($.t, $.a)", {"t": 123, "a": "x"}),
        ("States.Format($.t)", {"t": None}),
        ("States.Format()", {}),
    ],
)
def test_format_invalid_arguments(expr: str, data: Any) -> None:
    invalid_arguments(expr, data)


# --- States.StringToJson ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ('{"foo": "bar"}', {"foo": "bar"}),
        ('[1, 2, "HelloWorld"]', [1, 2, "HelloWorld"]),
        ('"HelloWorld"', "HelloWorld"),
        ("1", 1),
        ("-0", 0),
        ("1.1", 1.1),
        ("true", True),
        ("null", None),
        ("", None),
        (" ", None),
        (' {"a":1} ', {"a": 1}),
        ('{"a":"it\'s"}', {"a": "it's"}),
    ],
)
def test_string_to_json(text: str, value: Any) -> None:
    """[LS] test_string_to_json: "" and " " parse to null, "-0" to 0."""
    result = run("States.StringToJson($.s)", {"s": text})
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize("text", ["{bad json}", '{"a":1', "undefined", "NaN", "Infinity", "[1,]", "1 2", "'x'"])
def test_string_to_json_rejects_invalid_json(text: str) -> None:
    """[TAM] States.StringToJson-011/012/014: "Cannot convert String to Json in States.StringToJson,
    caused by: <parser message>"."""
    prefix = f"{EVAL_PREFIX}States.StringToJson($.s). Cannot convert String to Json in States.StringToJson, caused by: "
    assert failure("States.StringToJson($.s)", {"s": text}).startswith(prefix)


@pytest.mark.parametrize("value", [123, {"a": 1}, [1, 2], None, True])
def test_string_to_json_requires_a_string(value: Any) -> None:
    invalid_arguments("States.StringToJson($.s)", {"s": value})


def test_string_to_json_arity_is_checked_at_runtime() -> None:
    """[TAM] States.StringToJson-018: AWS accepts the definition and fails when it runs."""
    invalid_arguments("States.StringToJson()")


# --- States.JsonToString ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        ({"Arg1": 1, "Arg2": []}, '{"Arg1":1,"Arg2":[]}'),
        ({"nested": {"a": 1}, "arr": [True, None]}, '{"nested":{"a":1},"arr":[true,null]}'),
        ([1, 2, "HelloWorld"], '[1,2,"HelloWorld"]'),
        ("HelloWorld", '"HelloWorld"'),
        (None, "null"),
        (1, "1"),
        (1.1, "1.1"),
        (1.0, "1.0"),
        (1e20, "1.0E20"),
        (False, "false"),
        ({}, "{}"),
        ([], "[]"),
        ({"b": 1, "a": 2}, '{"b":1,"a":2}'),
    ],
)
def test_json_to_string_is_compact_json(value: Any, text: str) -> None:
    """[LS] test_json_to_string and [SPEC] Appendix B: no spaces, key order kept, 1.1 stays 1.1."""
    assert run("States.JsonToString($.v)", {"v": value}) == text


def test_json_to_string_escapes_like_jackson() -> None:
    value = 'q"b\\s/é😀\n\t\r\b\f\x01\x1f'
    assert run("States.JsonToString($.v)", {"v": value}) == '"q\\"b\\\\s/é😀\\n\\t\\r\\b\\f\\u0001\\u001F"'


def test_json_to_string_accepts_literals_and_nested_calls() -> None:
    assert run("States.JsonToString('x')") == '"x"'
    assert run("States.JsonToString(States.Array($.a, $.b))", {"a": 1, "b": 2}) == "[1,2]"
    assert run("States.JsonToString(States.StringToJson($.j))", {"j": '{"a": 1.50}'}) == '{"a":1.5}'


@pytest.mark.parametrize("expr", ["States.JsonToString()", "States.JsonToString($.a, $.b)"])
def test_json_to_string_arity_message(expr: str) -> None:
    """[TAM] States.JsonToString-013/014 add ": only a single argument is allowed."."""
    assert failure(expr, {"a": 1, "b": 2}) == (
        f"{EVAL_PREFIX}{expr}. Invalid arguments in States.JsonToString: only a single argument is allowed."
    )


# --- States.Array ----------------------------------------------------------------------------


def test_array() -> None:
    assert run("States.Array()") == []
    assert run("States.Array($.Id)", {"Id": 123456}) == [123456]
    assert run("States.Array('Foo', 2020, $.someJson, null)", {"someJson": {"random": "abcdefg"}}) == [
        "Foo", 2020, {"random": "abcdefg"}, None,
    ]  # fmt: skip
    assert run("States.Array(1, States.Array(2, 3))") == [1, [2, 3]]
    assert run("States.Array($.a, $.a)", {"a": None}) == [None, None]


# --- States.ArrayPartition -------------------------------------------------------------------


@pytest.mark.parametrize(
    "items, size, chunks",
    [
        ([], 3, []),
        ([0], 4, [[0]]),
        ([0, 1], 1, [[0], [1]]),
        ([0, 1, 2], 2, [[0, 1], [2]]),
        ([0, 1, 2, 3], 4, [[0, 1, 2, 3]]),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], 4, [[1, 2, 3, 4], [5, 6, 7, 8], [9]]),
        ([1, 2, 3], 2147483647, [[1, 2, 3]]),
        ([[1], {"a": 1}], 1, [[[1]], [{"a": 1}]]),
    ],
)
def test_array_partition(items: list[Any], size: int, chunks: list[Any]) -> None:
    assert run("States.ArrayPartition($.a, $.n)", {"a": items, "n": size}) == chunks


def test_array_partition_truncates_a_fractional_chunk_size() -> None:
    """[TAM] ArrayPartition-009 and the AWS note on AP-013: 2.6 and 2.4 both chunk by 2."""
    assert run("States.ArrayPartition($.a, 2.6)", {"a": [1, 2, 3, 4, 5]}) == [[1, 2], [3, 4], [5]]


@pytest.mark.parametrize(
    "expr, data",
    [
        ("States.ArrayPartition($.a, 0)", {"a": [1]}),
        ("States.ArrayPartition($.a, -1)", {"a": [1]}),
        ("States.ArrayPartition($.a, 0.6)", {"a": [1]}),
        ("States.ArrayPartition($.a, -0.4)", {"a": [1]}),
        ("States.ArrayPartition($.a, $.n)", {"a": [1], "n": "2"}),
        ("States.ArrayPartition($.a, $.n)", {"a": [1], "n": None}),
        ("States.ArrayPartition($.a, $.n)", {"a": [1], "n": True}),
        ("States.ArrayPartition($.a, 2)", {"a": "not-array"}),
        ("States.ArrayPartition($.a, 2)", {"a": {"k": 1}}),
    ],
)
def test_array_partition_invalid_arguments(expr: str, data: Any) -> None:
    """[TAM] States.ArrayPartition-011..019: zero, negative, fractional-below-1 and non-number sizes."""
    invalid_arguments(expr, data)


# --- States.ArrayContains --------------------------------------------------------------------


@pytest.mark.parametrize(
    "items, value, found",
    [
        ([], [], False),
        ([], 1, False),
        ([[1, 2, 3], 2], [1, 2, 3], True),
        ([{"1": 2, "2": []}], {"1": 2, "2": []}, True),
        ([True, False], False, True),
        ([1, None, 3], None, True),
        ([[1, 2, 3], 2], None, False),
        ([0, 1, -1, -1.5], False, False),
        ([{"a": 1}], {"a": 1, "extra": None}, False),
        ([1.0], 1, False),
    ],
)
def test_array_contains(items: list[Any], value: Any, found: bool) -> None:
    """[LS] test_array_contains and [TAM] ArrayContains-018/012 (no bool/number coercion)."""
    assert run("States.ArrayContains($.a, $.v)", {"a": items, "v": value}) is found


def test_array_contains_compares_java_renderings() -> None:
    """[TAM] notes on AC-009/026/028, recorded on AWS: objects with reordered keys do not match, while
    true matches "true" and a number matches its decimal string."""
    assert run("States.ArrayContains($.a, $.v)", {"a": [{"a": 1, "b": 2}], "v": {"b": 2, "a": 1}}) is False
    assert run("States.ArrayContains($.a, true)", {"a": ["true", "false"]}) is True
    assert run("States.ArrayContains($.a, $.v)", {"a": ["9007199254740991"], "v": 9007199254740991}) is True


@pytest.mark.parametrize("haystack", ["not-array", {"a": 1}, None, 3])
def test_array_contains_requires_an_array(haystack: Any) -> None:
    invalid_arguments("States.ArrayContains($.a, 'x')", {"a": haystack})


# --- States.ArrayRange -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, items",
    [
        ((0, 9, 3), [0, 3, 6, 9]),
        ((0, 10, 3), [0, 3, 6, 9]),
        ((1, 9, 9), [1]),
        ((1, 9, 2), [1, 3, 5, 7, 9]),
        ((-2, 2, 2), [-2, 0, 2]),
        ((3, 3, 1), [3]),
        ((3, 3, -1), [3]),
        ((5, 1, -2), [5, 3, 1]),
        ((5, 1, 1), []),
        ((1, 5, -1), []),
    ],
)
def test_array_range(args: tuple[int, int, int], items: list[int]) -> None:
    """[LS] test_array_range and [TAM] ArrayRange-001..009: the end is included when reached."""
    result = run("States.ArrayRange($.a, $.b, $.c)", dict(zip("abc", args)))
    assert result == items and all(type(i) is int for i in result)


@pytest.mark.parametrize(
    "expr, items",
    [
        ("States.ArrayRange(1.4, 5.6, 2.2)", [1, 3, 5]),
        ("States.ArrayRange(1.6, 1.4, 1)", [1]),
        ("States.ArrayRange(5.4, -0.6, -2.4)", [5, 3, 1]),
    ],
)
def test_array_range_truncates_fractions(expr: str, items: list[int]) -> None:
    """[TAM] ArrayRange-004/010/011: AWS truncates toward zero (the guide says it rounds)."""
    assert run(expr) == items


def test_array_range_allows_exactly_1000_items() -> None:
    """[GUIDE] "The new array can contain up to 1000 elements"; [TAM] ArrayRange-017/019."""
    assert run("States.ArrayRange(1, 1000, 1)") == list(range(1, 1001))
    assert run("States.ArrayRange(1000, 1, -1)") == list(range(1000, 0, -1))


@pytest.mark.parametrize(
    "expr, data",
    [
        ("States.ArrayRange(1, 1001, 1)", {}),
        ("States.ArrayRange(1001, 1, -1)", {}),
        ("States.ArrayRange(0, 2147483647, 1)", {}),
        ("States.ArrayRange(1, 10, 0)", {}),
        ("States.ArrayRange(1, 10, 0.49)", {}),
        ("States.ArrayRange($.a, 5, 1)", {"a": "1"}),
        ("States.ArrayRange(1, $.b, 1)", {"b": None}),
        ("States.ArrayRange(1, 5, $.c)", {"c": [1]}),
    ],
)
def test_array_range_invalid_arguments(expr: str, data: Any) -> None:
    """[TAM] States.ArrayRange-018: "Invalid arguments in States.ArrayRange" past 1000 items."""
    invalid_arguments(expr, data)


# --- States.ArrayGetItem ---------------------------------------------------------------------


def test_array_get_item() -> None:
    assert run("States.ArrayGetItem($.a, $.i)", {"a": [1, 2, 3, 4, 5, 6, 7, 8, 9], "i": 5}) == 6
    assert run("States.ArrayGetItem($.a, 0)", {"a": [None]}) is None
    assert run("States.ArrayGetItem($.a, 1)", {"a": [{"a": 1}, {"b": 2}]}) == {"b": 2}
    assert run("States.ArrayGetItem(States.Array('x', 'y', 'z'), 1)") == "y"


def test_array_get_item_truncates_a_fractional_index() -> None:
    """[TAM] note on AGI-015: AWS answers 20 for index 1.2 of [10, 20, 30]."""
    assert run("States.ArrayGetItem($.a, 1.2)", {"a": [10, 20, 30]}) == 20


@pytest.mark.parametrize(
    "index, items",
    [(3, [10, 20, 30]), (-1, [10, 20, 30]), ("1", [10, 20, 30]), (None, [1]), (True, [1, 2])],
)
def test_array_get_item_invalid_index(index: Any, items: list[Any]) -> None:
    """[TAM] States.ArrayGetItem-010/011: an index past the end or negative is refused."""
    invalid_arguments("States.ArrayGetItem($.a, $.i)", {"a": items, "i": index})


def test_array_get_item_requires_an_array() -> None:
    invalid_arguments("States.ArrayGetItem($.a, 0)", {"a": "not-array"})


# --- States.ArrayLength ----------------------------------------------------------------------


def test_array_length() -> None:
    assert run("States.ArrayLength($.a)", {"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]}) == 9
    assert run("States.ArrayLength($.a)", {"a": []}) == 0
    assert run("States.ArrayLength($.a)", {"a": [[1], [2, 3]]}) == 2
    assert run("States.ArrayLength(States.Array())") == 0


@pytest.mark.parametrize("value", ["not-array", {"k": 1}, None, 7])
def test_array_length_requires_an_array(value: Any) -> None:
    invalid_arguments("States.ArrayLength($.a)", {"a": value})


# --- States.ArrayUnique ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "items, unique",
    [
        ([1, 2, 2, 3, 3, 4], [1, 2, 3, 4]),
        (["a", "b", "a", "c", "b"], ["a", "b", "c"]),
        ([], []),
        ([None, None, 1, None], [None, 1]),
        ([1, "1", 1, "01"], [1, "1", "01"]),
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], [{"a": 1, "b": 2}]),
        ([{"nested": {"x": 1}}, {"nested": {"x": 1}}], [{"nested": {"x": 1}}]),
    ],
)
def test_array_unique(items: list[Any], unique: list[Any]) -> None:
    """[TAM] States.ArrayUnique-001..012, recorded on AWS."""
    assert run("States.ArrayUnique($.a)", {"a": items}) == unique


def test_array_unique_uses_java_hash_set_order() -> None:
    """[TAM] notes on AUNIQ-004/010: AWS answers [false, true] for [true, false, true, false] and
    [[2, 1], [1, 2]] for [[1, 2], [1, 2], [2, 1]]: the order of a java.util.HashSet."""
    assert run("States.ArrayUnique($.a)", {"a": [True, False, True, False]}) == [False, True]
    assert run("States.ArrayUnique($.a)", {"a": [[1, 2], [1, 2], [2, 1]]}) == [[2, 1], [1, 2]]
    assert run("States.ArrayUnique($.a)", {"a": [3, 1, 2, 1]}) == [1, 2, 3]
    assert run("States.ArrayUnique($.a)", {"a": [17, 1, 16]}) == [16, 17, 1]  # 17 and 1 share a bucket


def test_array_unique_keeps_ints_and_doubles_apart() -> None:
    """Integer 1 and Double 1.0 are not equals() in Java; the double hashes to bucket 0, so it comes first."""
    result = run("States.ArrayUnique($.a)", {"a": [1, 1.0, 1]})
    assert [(type(v), v) for v in result] == [(float, 1.0), (int, 1)]


@pytest.mark.parametrize("value", ["not-array", {"a": 1}])
def test_array_unique_requires_an_array(value: Any) -> None:
    invalid_arguments("States.ArrayUnique($.a)", {"a": value})


# --- States.Base64Encode / States.Base64Decode ------------------------------------------------


@pytest.mark.parametrize(
    "text, encoded",
    [
        ("Data to encode", "RGF0YSB0byBlbmNvZGU="),
        ("", ""),
        (" ", "IA=="),
        ("✓", "4pyT"),
        ("こんにちは", "44GT44KT44Gr44Gh44Gv"),
        ("🚀", "8J+agA=="),
        ("abc\x00def", "YWJjAGRlZg=="),
        ("line1\nline2", "bGluZTEKbGluZTI="),
    ],
)
def test_base64_round_trip(text: str, encoded: str) -> None:
    """[LS] test_base_64_encode and [TAM] Base64Encode/Decode: UTF-8, padded, no line breaks."""
    assert run("States.Base64Encode($.s)", {"s": text}) == encoded
    assert run("States.Base64Decode($.s)", {"s": encoded}) == text


def test_base64_encode_limit_is_10000_java_characters() -> None:
    """[GUIDE] input limit 10,000 characters; [TAM] Base64Encode-009/010. Java counts UTF-16 units."""
    assert run("States.Base64Encode($.s)", {"s": "a" * 10000}) == "YWFh" * 3333 + "YQ=="
    invalid_arguments("States.Base64Encode($.s)", {"s": "a" * 10001})
    run("States.Base64Encode($.s)", {"s": "😀" * 5000})
    invalid_arguments("States.Base64Encode($.s)", {"s": "😀" * 5000 + "a"})


def test_base64_decode_limit_is_10000_characters() -> None:
    """[TAM] Base64Decode-006/008: 9,999 'A's decode; 10,001 are refused."""
    assert run("States.Base64Decode($.s)", {"s": "A" * 10000}) == "\x00" * 7500
    invalid_arguments("States.Base64Decode($.s)", {"s": "A" * 10001})


@pytest.mark.parametrize(
    "encoded, text",
    [
        (" YWJjZA== ", "abcd"),
        ("YWJj\nZA==", "abcd"),
        ("abc", "i\ufffd"),
        ("ab==cd", "i"),
        ("!!!aGVsbG8=!!!", "hello"),
        ("YWJjZA", "abcd"),
        ("YWJjZ", "abc"),
        ("-_8", "\ufffd\ufffd"),
    ],
)
def test_base64_decode_is_lenient(encoded: str, text: str) -> None:
    """[TAM] notes on B64D-015/017/019/024: AWS decodes malformed input instead of failing: it skips
    characters outside the alphabet, stops at the first '=' and accepts missing padding."""
    assert run("States.Base64Decode($.s)", {"s": encoded}) == text


@pytest.mark.parametrize("expr", ["States.Base64Encode($.v)", "States.Base64Decode($.v)"])
@pytest.mark.parametrize("value", [123, {}, ["x"], None])
def test_base64_requires_a_string(expr: str, value: Any) -> None:
    invalid_arguments(expr, {"v": value})


# --- States.Hash -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, algorithm, digest",
    [
        ("input data", "SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
        ("input data", "SHA-256", "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        (
            "input data",
            "SHA-512",
            "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce"
            "2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4",
        ),
        ("hello", "MD5", "5d41402abc4b2a76b9719d911017c592"),
        (
            "hello",
            "SHA-384",
            "59e1748777448c69de6b800d7a33bbfb9ff1b463e44354c3553bcdb9c666fa90125a3c79f90397bdf5f6a13de828684f",
        ),
        ("", "SHA-256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("✓", "SHA-256", "1dabba21cdad44541f6b15796f8d22978fc7ea10c46aeceeeeb66c23b3ac7604"),
        ("abc\x00def", "MD5", "a5e4d5963ae44c1f4bfb37b1a3d55a3c"),
        ("Hash this string", "SHA-256", "1cac63f39fd68d8c531f27b807610fb3d50f0fc3f186995767fb6316e7200a3e"),
    ],
)
def test_hash(data: str, algorithm: str, digest: str) -> None:
    """[LS] test_hash and [TAM] States.Hash-001..010: lower-case hex of the UTF-8 bytes."""
    assert run("States.Hash($.d, $.a)", {"d": data, "a": algorithm}) == digest


def test_hash_stringifies_non_string_data() -> None:
    """[TAM] notes on HASH-014/017: AWS hashes a number or object instead of refusing it."""
    assert run("States.Hash(123, 'MD5')") == run("States.Hash('123', 'MD5')")
    assert run("States.Hash($.o, 'MD5')", {"o": {"a": 1}}) == run("States.Hash('\\{a=1\\}', 'MD5')")


def test_hash_limit_is_10000_characters() -> None:
    """[TAM] States.Hash-012/013."""
    assert len(run("States.Hash($.s, 'SHA-256')", {"s": "a" * 10000})) == 64
    invalid_arguments("States.Hash($.s, 'SHA-256')", {"s": "a" * 10001})


@pytest.mark.parametrize("algorithm", ["UNSUPPORTED", "sha-256", "SHA256", "MD-5", "", 123, None])
def test_hash_refuses_unknown_algorithms_at_runtime(algorithm: Any) -> None:
    """[TAM] States.Hash-020: "Invalid arguments in States.Hash"."""
    invalid_arguments("States.Hash('data', $.a)", {"a": algorithm})


# --- States.JsonMerge --------------------------------------------------------------------------


def test_json_merge_is_shallow() -> None:
    """[LS] test_json_merge: nested objects are replaced, not merged; the second object wins."""
    data = {"a": {"a": {"a1": 1, "a2": 2}, "b": 2, "d": 3}, "b": {"a": {"a3": 1, "a4": 2}, "c": 3, "d": 4}}
    merged = run("States.JsonMerge($.a, $.b, false)", data)
    assert merged == {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3, "d": 4}
    assert list(merged) == ["a", "b", "d", "c"]
    assert data["a"] == {"a": {"a1": 1, "a2": 2}, "b": 2, "d": 3}  # inputs untouched


def test_json_merge_with_nested_calls_and_context() -> None:
    """[LS] test_json_merge_escaped_argument."""
    expr = "States.JsonMerge(States.StringToJson('{\"constant_in_literal\": \"false\"}'), $$.Execution.Input.f, false)"
    context = {"Execution": {"Input": {"f": {"constant_input_field": "constant_value"}}}}
    assert run(expr, context=context) == {"constant_in_literal": "false", "constant_input_field": "constant_value"}


def test_json_merge_overrides_with_null_and_other_types() -> None:
    data = {"a": {"n": {"left": True}, "keep": 1, "x": [1]}, "b": {"n": None, "x": -1.5}}
    assert run("States.JsonMerge($.a, $.b, false)", data) == {"n": None, "keep": 1, "x": -1.5}


def test_json_merge_accepts_a_non_boolean_false_flag() -> None:
    """[TAM] note on JMG-13: AWS treats the string 'false' as a shallow merge."""
    assert run("States.JsonMerge($.a, $.b, $.d)", {"a": {}, "b": {"x": 1}, "d": "false"}) == {"x": 1}


@pytest.mark.parametrize(
    "data",
    [
        {"a": {}, "b": {}, "d": True},
        {"a": {}, "b": {}, "d": "true"},
        {"a": None, "b": {}, "d": False},
        {"a": {}, "b": None, "d": False},
        {"a": [], "b": {}, "d": False},
        {"a": {}, "b": "x", "d": False},
    ],
)
def test_json_merge_invalid_arguments(data: Any) -> None:
    """[GUIDE] only shallow merging is supported: the third argument must be false."""
    invalid_arguments("States.JsonMerge($.a, $.b, $.d)", data)


# --- States.MathRandom -------------------------------------------------------------------------


def test_math_random_without_seed_draws_from_the_injected_rng() -> None:
    expected = random.Random(7).randrange(1, 999)
    assert run("States.MathRandom(1, 999)", rng=random.Random(7)) == expected
    values = {run("States.MathRandom($.a, $.b)", {"a": -99999, "b": -9999}, rng=random.Random(s)) for s in range(50)}
    assert all(-99999 <= v < -9999 and type(v) is int for v in values) and len(values) > 1


def test_math_random_end_is_exclusive() -> None:
    """[TAM] MRAND-001: "inclusive-start, exclusive-end semantics"."""
    assert {run("States.MathRandom(1, 3)", rng=random.Random(s)) for s in range(200)} == {1, 2}


@pytest.mark.parametrize(
    "expr, data, value",
    [
        ("States.MathRandom(1, 100, 42)", {}, 63),
        ("States.MathRandom(1, 1000, 1)", {}, 106),
        ("States.MathRandom(1, 1000, 2)", {}, 806),
        ("States.MathRandom(1, 10, -10)", {}, 1),
        ("States.MathRandom(1, 10, 0)", {}, 7),
        ("States.MathRandom(-5, 5, 42)", {}, -5),
        ("States.MathRandom(States.MathAdd($.base, 1), States.MathAdd($.base, 5), 42)", {"base": 0}, 3),
        ("States.MathRandom($.s, $.e, $.seed)", {"s": 2147483640, "e": 2147483647, "seed": 1}, 2147483644),
    ],
)
def test_math_random_with_seed_matches_aws(expr: str, data: Any, value: int) -> None:
    """[TAM] States.MathRandom-002/003/015/016/019/022 and the note on MRAND-026, recorded on AWS:
    a seeded draw is `new java.util.Random(seed).nextInt(end - start) + start`."""
    assert run(expr, data, rng=random.Random(123)) == value


def test_math_random_with_seed_ignores_the_rng() -> None:
    rng = random.Random(5)
    state = rng.getstate()
    assert run("States.MathRandom(0, 999, 3)", rng=rng) == run("States.MathRandom(0, 999, 3)")
    assert rng.getstate() == state


def test_math_random_truncates_bounds() -> None:
    """[TAM] note on MRAND-008/009: 1.6 behaves as 1 and (1.4, 1.6) is refused."""
    assert {run("States.MathRandom(1.9, 2.9)", rng=random.Random(s)) for s in range(20)} == {1}
    invalid_arguments("States.MathRandom(1.4, 1.6)")


@pytest.mark.parametrize(
    "expr, data",
    [
        ("States.MathRandom(1, 1)", {}),
        ("States.MathRandom(10, 5)", {}),
        ("States.MathRandom(1.49, 1.49)", {}),
        ("States.MathRandom($.a, 10)", {"a": "a"}),
        ("States.MathRandom($.a, $.b)", {"a": None, "b": 10}),
        ("States.MathRandom($.a, $.b)", {"a": 1, "b": None}),
        ("States.MathRandom(1, 10, $.seed)", {"seed": "seed"}),
        ("States.MathRandom(1, 10, $.seed)", {"seed": None}),
        ("States.MathRandom(-2147483648, 2147483647)", {}),
        ("States.MathRandom(0, 2147483648)", {}),
    ],
)
def test_math_random_invalid_arguments(expr: str, data: Any) -> None:
    """[TAM] States.MathRandom-004/005/010..013/018: "Invalid arguments in States.MathRandom"."""
    invalid_arguments(expr, data)


# --- States.MathAdd ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, total",
    [
        (-9, 3, -6),
        (1.49, 1.5, 3),
        (-1.49, -1.5, -2),
        (-1.5, -1.51, -3),
        (1.49, 0, 1),
        (1.49, -1.49, 0),
        (1.5, 0, 2),
        (1.51, 0, 2),
        (-1.51, 0, -2),
        (0.5, 0, 1),
        (2.5, 0, 3),
        (3.5, 0, 4),
        (-0.5, 0.5, 1),
        (-0.5, 0, 0),
        (-2.5, 0, -2),
        (-3.5, 0, -3),
        (1.6, 2.7, 5),
        (0.1, 0.2, 0),
        (111, -1, 110),
    ],
)
def test_math_add_rounds_each_operand_like_java(a: float, b: float, total: int) -> None:
    """[LS] test_math_add: each operand is rounded with Math.round (halves toward +infinity)."""
    result = run("States.MathAdd($.a, $.b)", {"a": a, "b": b})
    assert result == total and type(result) is int


def test_math_add_accepts_the_int32_range() -> None:
    """[TAM] States.MathAdd-009/010/015/016."""
    assert run("States.MathAdd(2147483647, 0)") == 2147483647
    assert run("States.MathAdd(-2147483648, 0)") == -2147483648
    assert run("States.MathAdd(-2147483647, -1)") == -2147483648
    assert run("States.MathAdd(States.MathAdd($.x, 1), 2)", {"x": 5}) == 8


@pytest.mark.parametrize(
    "expr, data",
    [
        ("States.MathAdd(2147483647, 1)", {}),
        ("States.MathAdd(-2147483648, -1)", {}),
        ("States.MathAdd(3000000000, 1)", {}),
        ("States.MathAdd(-3000000000, 1)", {}),
        ("States.MathAdd($.a, 1)", {"a": "1"}),
        ("States.MathAdd($.a, 1)", {"a": True}),
        ("States.MathAdd($.a, 1)", {"a": None}),
        ("States.MathAdd(-1, $.a)", {"a": [1]}),
        ("States.MathAdd(1, 2, 999)", {}),
        ("States.MathAdd(1)", {}),
    ],
)
def test_math_add_invalid_arguments(expr: str, data: Any) -> None:
    """[TAM] States.MathAdd-011..022: overflow, non-numbers and wrong counts fail at runtime."""
    invalid_arguments(expr, data)


# --- States.StringSplit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, delimiter, parts",
    [
        (" ", ",", [" "]),
        (" , ", ",", [" ", " "]),
        (",,,,", ",", []),
        ("1,2,3,4,5", ",", ["1", "2", "3", "4", "5"]),
        ("split on T and \nnew line", "T\n", ["split on ", " and ", "new line"]),
        ("1+2,3.4", ".+,", ["1", "2", "3", "4"]),
        ("a,,b", ",", ["a", "b"]),
        (",a,b,", ",", ["a", "b"]),
        ("", ",", []),
        ("abc", "", ["abc"]),
        ("a.b|c", ".|", ["a", "b", "c"]),
    ],
)
def test_string_split_tokenizes_on_each_delimiter_character(text: str, delimiter: str, parts: list[str]) -> None:
    """[LS] test_string_split and [TAM] StringSplit notes: every delimiter character splits and empty
    tokens are dropped, as java.util.StringTokenizer does."""
    assert run("States.StringSplit($.s, $.d)", {"s": text, "d": delimiter}) == parts


def test_string_split_from_context() -> None:
    """[LS] test_string_split_context_object."""
    text = "Value1,Value2,Value3\nValue4,Value5,Value6\n,,,\ntrue,1,'HelloWorld'\nNull,None,\n   \n"
    assert run("States.StringSplit($$.Execution.Input.v, ',')", context={"Execution": {"Input": {"v": text}}}) == [
        "Value1", "Value2", "Value3\nValue4", "Value5", "Value6\n", "\ntrue", "1", "'HelloWorld'\nNull", "None",
        "\n   \n",
    ]  # fmt: skip


@pytest.mark.parametrize("data", [{"s": 123, "d": ","}, {"s": "a,b", "d": 1}, {"s": None, "d": ","}, {"s": "a", "d": [","]}])
def test_string_split_requires_strings(data: Any) -> None:
    invalid_arguments("States.StringSplit($.s, $.d)", data)


# --- States.UUID -------------------------------------------------------------------------------


def test_uuid_comes_from_the_injected_factory() -> None:
    first, second = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    assert run("States.UUID()", uuids=[first]) == first
    assert run("States.Array(States.UUID(), States.UUID())", uuids=[first, second]) == [first, second]


def test_uuid_refuses_arguments_at_runtime() -> None:
    invalid_arguments("States.UUID(1)")


# --- Nesting and determinism -------------------------------------------------------------------


def test_nested_calls_from_the_context_object() -> None:
    """[LS] test_nested_calls_1/2 (with a made-up state machine name)."""
    context = {"StateMachine": {"Name": "orders-prod-v2"}}
    assert run("States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), 0)", context=context) == "orders"
    last = (
        "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), "
        "States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))"
    )
    assert run(last, context=context) == "v2"


GUIDE_EXAMPLE = (
    "States.Format('{}.{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
    "States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem("
    "States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))"
)
RECIPE = {"ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:1:image-recipe/my-recipe/1.0.2"}}


def test_guide_example_with_nine_functions() -> None:
    """[GUIDE] "myArn.$" example. Its template has three placeholders for two values, so it can only
    fail (AWS accepts the definition and fails at runtime); `check` refuses it up front."""
    assert "has 3 '{}' placeholder(s) but 2 value(s)" in refused(GUIDE_EXAMPLE)
    invalid_arguments(GUIDE_EXAMPLE, RECIPE)
    assert run(GUIDE_EXAMPLE.replace("'{}.{}.{}'", "'{}.{}'"), RECIPE) == "1.0"


def test_functions_see_variables() -> None:
    """Variables work like the conformance case BASE_REFERENCE_IN_INTRINSIC_FUNCTION."""
    variables = {"value1": 5, "value2": 3, "name": "John", "place": "LocalStack", "json1": {"a": 1}, "json2": {"c": 3}}
    assert run("States.MathAdd($value1, $value2)", variables=variables) == 8
    assert run("States.Format('Hello {}, welcome to {}!', $name, $place)", variables=variables) == (
        "Hello John, welcome to LocalStack!"
    )
    assert run("States.JsonMerge($json1, $json2, false)", variables=variables) == {"a": 1, "c": 3}


def test_evaluation_does_not_use_global_randomness() -> None:
    random.seed(1)
    first = run("States.Array(States.MathRandom(0, 1000000), States.UUID())", rng=random.Random(9), uuids=["u"])
    random.seed(2)
    second = run("States.Array(States.MathRandom(0, 1000000), States.UUID())", rng=random.Random(9), uuids=["u"])
    assert first == second


def test_evaluate_does_not_mutate_its_input() -> None:
    data = {"a": [3, 1, 3], "o": {"k": 1}}
    run("States.Array(States.ArrayUnique($.a), States.JsonMerge($.o, $.o, false), States.ArrayPartition($.a, 1))", data)
    assert data == {"a": [3, 1, 3], "o": {"k": 1}}
