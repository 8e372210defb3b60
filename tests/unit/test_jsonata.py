"""JSONata evaluation (QueryLanguage JSONata): expressions, bindings, results and AWS causes.

Sources cited below:
- [guide] AWS Step Functions developer guide, "Transforming data with JSONata in Step Functions"
  (docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html): the `{% %}` syntax,
  `$states`, variables as `$name`, and the functions Step Functions adds.
- [recorded] executions recorded on real AWS in ../shared/asl-conformance/cases (categories
  jsonata, scenarios_map, error_handling, variables_assign), and the LocalStack snapshot
  test_math_operations_jsonata.snapshot.json (validated against AWS) for the "threw an error"
  cause.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

import pytest

from orchestrator.asl import jsonata
from orchestrator.asl.errors import QUERY_EVALUATION_ERROR, StatesError
from orchestrator.asl.jsonata import (
    UNDEFINED,
    JsonataSyntaxError,
    check,
    evaluate,
    evaluate_template,
    is_expression,
)

CONTEXT = {
    "Execution": {"Id": "arn:exec", "StartTime": "2024-11-04T11:41:40.000Z"},
    "State": {"Name": "S", "EnteredTime": "2024-11-04T11:41:45.123Z"},
}


def ev(
    expression: str,
    states: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    *,
    seed: int = 7,
    field: str = "Output",
    allow_undefined: bool = False,
) -> Any:
    """Evaluate `{% expression %}` with `$states.input` defaulting to {} and a fixed context."""
    return evaluate(
        "{% " + expression + " %}",
        field=field,
        states={"input": {}, "context": CONTEXT} if states is None else states,
        variables=variables or {},
        rng=random.Random(seed),
        new_uuid=lambda: "00000000-0000-4000-8000-000000000000",
        allow_undefined=allow_undefined,
    )


def cause_of(expression: str, **kwargs: Any) -> str:
    with pytest.raises(StatesError) as caught:
        ev(expression, **kwargs)
    assert caught.value.error == QUERY_EVALUATION_ERROR
    return caught.value.cause


def template(value: Any, states: dict[str, Any] | None = None, field: str = "Output") -> Any:
    return evaluate_template(
        value, field=field, states=states or {"input": {}}, variables={},
        rng=random.Random(1), new_uuid=lambda: "u",
    )


# --- expression detection and syntax ----------------------------------------------------------


@pytest.mark.parametrize("value", ["{% $states.input %}", "{%1%}", "{%\n  $x\n%}", "{% %}"])
def test_is_expression(value: str) -> None:
    """[guide] A JSONata expression is a string written `{% <JSONata expression> %}`."""
    assert is_expression(value)


@pytest.mark.parametrize(
    "value", [" {% states.input %} ", "{% x", "x %}", "{%}", "$states.input", "", None, 1, ["{% 1 %}"]]
)
def test_is_not_expression(value: Any) -> None:
    """[recorded] jsonata/BASE_LITERALS: `" {% states.input %} "` (outer spaces) is copied as text."""
    assert not is_expression(value)


def test_check_accepts_a_valid_expression() -> None:
    check("{% $sum($states.input.items) + $var %}")


@pytest.mark.parametrize(
    ("value", "message"),
    [("{% a[1,2) %}", 'S0202: Expected "]", got ","'), ("{% %}", "S0207: Unexpected end of expression")],
)
def test_check_reports_jsonata_syntax_errors(value: str, message: str) -> None:
    with pytest.raises(JsonataSyntaxError, match=re.escape(message)):
        check(value)


def test_check_refuses_a_string_that_is_not_an_expression() -> None:
    with pytest.raises(JsonataSyntaxError):
        check("$states.input")


def test_evaluate_refuses_a_string_that_is_not_an_expression() -> None:
    with pytest.raises(ValueError):
        evaluate("$states.input", field="Output", states={}, variables={}, rng=random.Random(), new_uuid=str)


# --- bindings -----------------------------------------------------------------------------------


def test_states_binding() -> None:
    """[guide] `$states` carries input, result, errorOutput (in a Catch) and context."""
    states = {
        "input": {"a": 1},
        "result": {"Payload": [1, 2]},
        "errorOutput": {"Error": "E", "Cause": "c"},
        "context": CONTEXT,
    }
    assert ev("$states.input.a", states) == 1
    assert ev("$sum($states.result.Payload)", states) == 3
    assert ev("$states.errorOutput.Error", states) == "E"
    assert ev("$states.context.State.Name", states) == "S"
    assert ev("$states", states) == states


def test_variables_are_bound_by_name() -> None:
    """[recorded] jsonata/BASE_EXPR: `$sum($states.input.input_values) + $var_constant_1` is 7."""
    states = {"input": {"input_values": [1, 2, 3]}}
    assert ev("$sum($states.input.input_values) + $var_constant_1", states, {"var_constant_1": 1}) == 7
    assert ev("$v.list[1]", variables={"v": {"list": ["a", "b"]}}) == "b"


def test_states_cannot_be_shadowed_by_a_variable() -> None:
    assert ev("$states.input", {"input": 1}, {"states": {"input": 2}}) == 1


def test_null_variable_is_null_not_undefined() -> None:
    """[recorded] scenarios_map/..._variable_sampling_null: `$ItemsVar` assigned null is a null value."""
    assert ev("$v", variables={"v": None}) is None
    assert ev("$type($v)", variables={"v": None}) == "null"
    assert ev("$exists($states.input.a)", {"input": {"a": None}}) is True


def test_evaluation_does_not_mutate_bindings() -> None:
    data = {"arr": [3, 1, 2], "obj": {"b": 1}}
    result = ev("$states.input ~> |obj|{'z': 1}|", {"input": data})
    assert ev("$sort($states.input.arr)", {"input": data}) == [1, 2, 3]
    assert data == {"arr": [3, 1, 2], "obj": {"b": 1}}
    assert result == {"arr": [3, 1, 2], "obj": {"b": 1, "z": 1}}


# --- undefined versus null ----------------------------------------------------------------------


def test_null_is_a_value() -> None:
    assert ev("null") is None
    assert ev("$states.input.a", {"input": {"a": None}}) is None


def test_undefined_fails_the_field() -> None:
    """[recorded] variables_assign/BASE_UNDEFINED_OUTPUT and error_handling/MAP_CATCH_ERROR_OUTPUT."""
    assert cause_of("$doesNotExist") == (
        "The JSONata expression '$doesNotExist' specified for the field 'Output' returned nothing (undefined)."
    )
    assert cause_of("$stateError", field="Output/error") == (
        "The JSONata expression '$stateError' specified for the field 'Output/error' returned nothing (undefined)."
    )


def test_undefined_allowed_on_request() -> None:
    assert ev("$states.input.absent", allow_undefined=True) is UNDEFINED
    assert ev("null", allow_undefined=True) is None


# --- results ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("10/5", 2), ("2.0", 2), ("1e2", 100), ("$sum([1.5, 1.5])", 3), ("-0.0", 0), ("$parse('-0')", 0)],
)
def test_whole_numbers_come_out_as_int(expression: str, expected: int) -> None:
    """[recorded] json_manipulation `$parse("-0")` gives 0; JSON has one number type, AWS prints 2.0 as 2."""
    result = ev(expression)
    assert result == expected and type(result) is int


@pytest.mark.parametrize(("expression", "expected"), [("1/2", 0.5), ("0.1", 0.1), ("1e300", 1e300)])
def test_fractional_and_huge_numbers_stay_float(expression: str, expected: float) -> None:
    result = ev(expression)
    assert result == expected and type(result) is float


def test_results_are_plain_json() -> None:
    """Sequences, ranges and constructed objects come back as plain lists and dicts."""
    states = {"input": {"items": [{"k": 1}, {"k": 2}]}}
    result = ev("{'a': [1..3], 'b': $states.input.items.k, 'c': [null]}", states)
    assert result == {"a": [1, 2, 3], "b": [1, 2], "c": [None]}
    assert type(result["a"]) is list and type(result["b"]) is list


def test_singleton_sequences_collapse() -> None:
    """JSONata's sequence rule: a path matching one value gives the value itself."""
    assert ev("$states.input.items.k", {"input": {"items": [{"k": 1}]}}) == 1
    assert ev("[$states.input.items.k]", {"input": {"items": [{"k": 1}]}}) == [1]


@pytest.mark.parametrize("expression", ["$fn := function($x){$x}", "$sum", "{'f': function(){1}}", "/a/"])
def test_functions_are_an_unsupported_result(expression: str) -> None:
    """[recorded] scenarios_map/items_eval_jsonata_fail_function."""
    assert cause_of(expression, field="Items") == (
        f"The JSONata expression '{expression}' specified for the field 'Items' "
        "returned an unsupported result type."
    )


# --- error wrapping -----------------------------------------------------------------------------


def test_evaluation_error_cause() -> None:
    """[recorded] LocalStack test_math_random_seeded (AWS-validated): T1006 for an unknown function."""
    assert cause_of("$randomSeeded($states.input.FunctionInput.fst)", field="Output/FunctionResult") == (
        "The JSONata expression '$randomSeeded($states.input.FunctionInput.fst)' specified for the field "
        "'Output/FunctionResult' threw an error during evaluation. T1006: Attempted to invoke a non-function"
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("$range('0', 4, 1)", 'T0410: Argument 1 of function "range" does not match function signature'),
        ("$sum('a')", 'T0412: Argument 1 of function "sum" must be an array of "numbers"'),
        ("1 < 'a'", 'T2009: The values 1 and "a" either side of operator "<" must be of the same data type'),
        ("'a' + 1", 'T2001: The left side of the "+" operator must evaluate to a number'),
        ("$error('boom')", "D3137: boom"),
    ],
)
def test_library_messages_read_like_jsonata_js(expression: str, message: str) -> None:
    """AWS quotes JSONata's `CODE: message`; the port says "Object" for "function" and drops quotes."""
    assert cause_of(expression).endswith(f"threw an error during evaluation. {message}")


def test_eval_is_disabled() -> None:
    """[guide] Use `$parse()` instead of `$eval`, which Step Functions does not support."""
    assert cause_of("$eval('1')").endswith("T1006: Attempted to invoke a non-function")


def test_python_errors_of_the_library_are_query_errors() -> None:
    assert "threw an error during evaluation." in cause_of("1/0")


def test_cause_quotes_the_trimmed_expression() -> None:
    """[recorded] scenarios_map: `"{% {'foo': 'bar'} %}"` is quoted as `'{'foo': 'bar'}'`."""
    with pytest.raises(StatesError) as caught:
        evaluate("{%   $nope\t%}", field="Items", states={}, variables={}, rng=random.Random(), new_uuid=str)
    assert caught.value.cause.startswith("The JSONata expression '$nope' specified for the field 'Items'")


# --- template walking ---------------------------------------------------------------------------


def test_template_evaluates_nested_expressions_and_copies_the_rest() -> None:
    """[recorded] jsonata/LIST_RICH and BASE_LITERALS: only whole `{% %}` strings are evaluated."""
    value = {
        "x": "{% $states.input.a %}",
        "list": [None, 0, 0.1, True, "$nosuchvar", " {% $states.input %} ", "{% $states.input %}",
                 {"k": "{% true %}"}],
        "path.$": "$",
        "text": "States.Format('{}', 1)",
    }
    assert template(value, {"input": {"a": 1}}) == {
        "x": 1,
        "list": [None, 0, 0.1, True, "$nosuchvar", " {% $states.input %} ", {"a": 1}, {"k": True}],
        "path.$": "$",
        "text": "States.Format('{}', 1)",
    }


def test_template_does_not_alias_its_input() -> None:
    value = {"a": [1, {"b": 2}]}
    result = template(value)
    assert result == value and result is not value and result["a"] is not value["a"]


def test_whole_template_expression_uses_the_field_itself() -> None:
    assert template("{% $states.input %}", {"input": [1]}) == [1]
    with pytest.raises(StatesError) as caught:
        template("{% $doesNotExist %}")
    assert "for the field 'Output' returned nothing" in caught.value.cause


@pytest.mark.parametrize(
    ("value", "field", "path"),
    [
        ({"result": "{% $doesNotExist %}"}, "Output", "Output/result"),
        ({"Payload": {"x": "{% $doesNotExist %}"}}, "Arguments", "Arguments/Payload/x"),
        ({"myVar": "{% $doesNotExist %}"}, "Assign", "Assign/myVar"),
        ({"a": {"b": [0, "{% $doesNotExist %}"]}}, "Output", "Output/a/b[1]"),
        (["{% $doesNotExist %}"], "Output", "Output[0]"),
    ],
)
def test_template_field_paths(value: Any, field: str, path: str) -> None:
    """[recorded] variables_assign/BASE_UNDEFINED_OUTPUT_FIELD names `Output/result`; arrays add `[i]`."""
    with pytest.raises(StatesError) as caught:
        template(value, field=field)
    assert caught.value.cause == (
        f"The JSONata expression '$doesNotExist' specified for the field '{path}' returned nothing (undefined)."
    )


def test_scalars_pass_through() -> None:
    """[recorded] jsonata/output_any_non_dict: literal null, numbers and strings are the output."""
    values: list[Any] = [None, 0.1, "string literal", [], {}]
    for value in values:
        assert template(value) == value


# --- the functions Step Functions adds ([guide] "JSONata functions provided by Step Functions") --


@pytest.mark.parametrize(
    ("array", "size", "expected"),
    [
        ([0], 1, [[0]]),
        ([0], 5, [[0]]),
        ([0, 1, 2], 2, [[0, 1], [2]]),
        ([0, 1, 2, 3], 2, [[0, 1], [2, 3]]),
        ([0, 1, 2, 3], 4, [[0, 1, 2, 3]]),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], 3, [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
        ([1, 2, 3], 2.9, [[1, 2], [3]]),
    ],
)
def test_partition(array: list[int], size: float, expected: list[list[int]]) -> None:
    """[guide] `$partition(array, chunkSize)`; [recorded] jsonata/test_array_partition."""
    assert ev("$partition($states.input.a, $states.input.n)", {"input": {"a": array, "n": size}}) == expected


@pytest.mark.parametrize("expression", ["$partition([], 1)", "$partition([1], 0)"])
def test_partition_of_nothing_is_undefined(expression: str) -> None:
    assert ev(expression, allow_undefined=True) is UNDEFINED


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("0, 10, 2", [0, 2, 4, 6, 8, 10]),
        ("0, 10, 3", [0, 3, 6, 9]),
        ("1, 9, 9", 1),
        ("10, 0, -3", [10, 7, 4, 1]),
        ("-1.7, 2, 1", [-1, 0, 1, 2]),
    ],
)
def test_range(args: str, expected: Any) -> None:
    """[guide] `$range(start, end, step)`; [recorded] jsonata/test_array_range: a single value is bare."""
    assert ev(f"$range({args})") == expected


@pytest.mark.parametrize("args", ["0, 4, 0", "3, 1, 1", "1, 3, -1", "$nope, 3, 1"])
def test_range_without_values_is_undefined(args: str) -> None:
    assert ev(f"$range({args})", allow_undefined=True) is UNDEFINED


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"])
def test_hash(algorithm: str) -> None:
    """[guide] `$hash(data, hashAlgorithm)` with MD5, SHA-1, SHA-256, SHA-384 or SHA-512: hex digest."""
    expected = hashlib.new(algorithm.replace("-", "").lower(), "input data é".encode()).hexdigest()
    assert ev(f"$hash('input data é', '{algorithm}')") == expected
    assert ev("$hash('abc', 'SHA-256')") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hash_refuses_other_algorithms() -> None:
    assert "Hash algorithm 'sha-256' must be one of MD5, SHA-1" in cause_of("$hash('abc', 'sha-256')")


def test_random_without_seed_draws_from_the_injected_rng() -> None:
    """[guide] `$random()` returns a number n, 0 <= n < 1, here from the decider's rng only."""
    assert ev("$random()", seed=3) == random.Random(3).random()
    assert ev("[$random(), $random()]", seed=3) == [random.Random(3).random(), _second(3)]


def _second(seed: int) -> float:
    rng = random.Random(seed)
    rng.random()
    return rng.random()


def test_random_with_seed_is_determined_by_the_seed() -> None:
    """[guide] `$random(seed)` is reproducible; the values are java.util.Random's (nextDouble)."""
    assert ev("$random(42)", seed=1) == ev("$random(42)", seed=2) == 0.7275636800328681
    assert ev("$random(42.9)") == 0.7275636800328681
    assert 0 <= ev("$random(-5)") < 1
    assert ev("$random(1)") != ev("$random(2)")


def test_uuid_comes_from_new_uuid() -> None:
    """[guide] `$uuid()` returns a v4 UUID; the decider injects the generator."""
    counter = iter(range(10))
    result = evaluate(
        "{% [$uuid(), $uuid()] %}", field="Output", states={}, variables={},
        rng=random.Random(), new_uuid=lambda: f"uuid-{next(counter)}",
    )
    assert result == ["uuid-0", "uuid-1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("1.1", 1.1),
        ("true", True),
        ('"HelloWorld"', "HelloWorld"),
        ('[1, 2, "HelloWorld"]', [1, 2, "HelloWorld"]),
        ('{"Arg1": 1, "Arg2": []}', {"Arg1": 1, "Arg2": []}),
        ("null", None),
    ],
)
def test_parse(text: str, expected: Any) -> None:
    """[guide] `$parse(jsonString)`; [recorded] jsonata/test_parse."""
    assert ev("$parse($states.input.s)", {"input": {"s": text}}) == expected


@pytest.mark.parametrize("text", ["{", "NaN", ""])
def test_parse_refuses_invalid_json(text: str) -> None:
    assert "Invalid JSON passed to $parse" in cause_of("$parse($states.input.s)", states={"input": {"s": text}})


def test_functions_work_as_values() -> None:
    assert ev("$map([[1, 2, 3]], function($a){ $partition($a, 2) })") == [[1, 2], [3]]
    assert ev("$map(['1', '[2]'], $parse)") == [1, [2]]


# --- determinism --------------------------------------------------------------------------------


def test_seeded_rng_makes_evaluation_repeatable() -> None:
    expression = "{'r': $random(), 's': $shuffle([1, 2, 3, 4, 5, 6, 7, 8])}"
    first, second = ev(expression, seed=11), ev(expression, seed=11)
    assert first == second
    assert sorted(first["s"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert ev(expression, seed=12) != first


def test_now_and_millis_read_the_state_entered_time() -> None:
    """No clock: `$now()`/`$millis()` are `$states.context.State.EnteredTime`, replayable."""
    assert ev("$now()") == "2024-11-04T11:41:45.123Z"
    assert ev("$millis()") == 1730720505123
    assert ev("$fromMillis($millis() + 1000)") == "2024-11-04T11:41:46.123Z"
    started = {"input": {}, "context": {"Execution": {"StartTime": "2024-11-04T11:41:40Z"}}}
    assert ev("$millis()", started) == 1730720500000
    assert "EnteredTime" in cause_of("$now()", states={"input": {}})


def test_parsed_expressions_are_cached() -> None:
    ev("1 + 41")
    before = jsonata._compile.cache_info().hits
    assert ev("1 + 41") == 42
    assert jsonata._compile.cache_info().hits == before + 1


# --- $states members an expression reads (validation uses them) -------------------------------


@pytest.mark.parametrize(
    ("expression", "members"),
    [
        ("$states.result.Payload", {"result"}),
        ("$states.input.a & $f($states.errorOutput)", {"input", "errorOutput"}),
        ("{'a': $states.result}", {"result"}),
        ("$states.input[$.x = $states.result]", {"input", "result"}),
        ("function($v) { $states.context.Task.Token }(1)", {"context"}),
        ("$x ? $states.result : $states.errorOutput.Cause", {"result", "errorOutput"}),
        ("'$states.result'", set()),  # a string literal is not a reference
        ("($s := $states; $s.result)", set()),  # only direct paths count
        ("$states", set()),
        ("$statesX.result", set()),
    ],
)
def test_states_members(expression: str, members: set[str]) -> None:
    assert jsonata.states_members("{% " + expression + " %}") == members


def test_states_members_of_an_expression_that_does_not_parse() -> None:
    with pytest.raises(JsonataSyntaxError, match="S0203"):
        jsonata.states_members("{% $states.input[ %}")
