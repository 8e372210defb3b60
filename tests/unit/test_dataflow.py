"""Input and output processing (`orchestrator.asl.dataflow`), alone and inside executions.

Sources cited below:
- [io] Step Functions developer guide, "Processing input and output in Step Functions"
  (docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html) and its
  pages "InputPath and Parameters", "ResultSelector", "ResultPath", "OutputPath".
- [spec] Amazon States Language specification (states-language.net), "Input and Output
  Processing", "Payload Template", "ResultPath", "Errors" (States.ResultPathMatchFailure).
- [recorded] executions recorded on real AWS in ../shared/asl-conformance/cases.
- [workshop] the AWS Step Functions workshop's error example, quoting AWS's cause
  "The JSONPath '$.application.address' specified for the field 'address.$' could not be found
  in the input '{\"flagged\":false}'" (compact JSON of the state input).
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.asl import errors
from orchestrator.asl.dataflow import (
    Scope,
    error_output,
    merge_result,
    read_path_field,
    resolve_template,
    select,
    to_json,
)
from orchestrator.asl.model import ABSENT
from tests.unit.conftest import EXECUTION_ARN, Harness, run, single, task_state

CONTEXT = {
    "Execution": {"Id": "arn:exec", "Input": {"in": 1}, "Name": "exec", "StartTime": "2024-06-01T12:00:00.000Z"},
    "State": {"Name": "S", "EnteredTime": "2024-06-01T12:00:00.000Z"},
    "StateMachine": {"Id": "arn:sm", "Name": "sm"},
}


def scope(context: dict[str, Any] | None = None, variables: dict[str, Any] | None = None) -> Scope:
    return Scope(copy.deepcopy(CONTEXT if context is None else context), variables or {}, random.Random(0),
                 lambda: "00000000-0000-4000-8000-000000000000")


def states_error(fn: Any, *args: Any) -> errors.StatesError:
    with pytest.raises(errors.StatesError) as info:
        fn(*args)
    return info.value


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


# --- InputPath / OutputPath ----------------------------------------------------------------------


class TestSelect:
    DATA = {"a": {"b": [10, 20, 30]}, "n": None, "s": "text"}

    def test_absent_is_the_whole_input(self) -> None:
        """[spec] "If InputPath is not provided, it has the default value $"."""
        assert select(ABSENT, self.DATA, scope()) == self.DATA

    def test_dollar_is_the_whole_input(self) -> None:
        assert select("$", self.DATA, scope()) == self.DATA
        assert select("$", "scalar", scope()) == "scalar"

    def test_null_is_an_empty_object(self) -> None:
        """[spec] "If the value of InputPath is null, that means that the raw input is discarded,
        and the effective input for the state is an empty JSON object, {}" (same for OutputPath)."""
        assert select(None, self.DATA, scope()) == {}
        assert select(None, [1, 2], scope()) == {}

    def test_reference_paths(self) -> None:
        assert select("$.a.b", self.DATA, scope()) == [10, 20, 30]
        assert select("$.a.b[1]", self.DATA, scope()) == 20
        assert select("$['a']['b'][2]", self.DATA, scope()) == 30
        assert select("$.s", self.DATA, scope()) == "text"

    def test_a_present_null_is_found(self) -> None:
        assert select("$.n", self.DATA, scope()) is None

    def test_indefinite_path_yields_a_list(self) -> None:
        """[io] "A path can yield a selection of values": `$.a[0:2]` on {"a": [1,2,3,4]} is [1, 2]."""
        assert select("$.a[0:2]", {"a": [1, 2, 3, 4]}, scope()) == [1, 2]
        assert select("$.x[*].b", {"x": [{"b": 1}, {"c": 2}, {"b": 3}]}, scope()) == [1, 3]

    def test_context_object_paths(self) -> None:
        """[recorded] context_object/test_input_path and test_output_path: InputPath/OutputPath
        "$$" select the whole context object, "$$.Execution.Input" the execution input."""
        assert select("$$", {"ignored": True}, scope()) == CONTEXT
        assert select("$$.Execution.Input", {"ignored": True}, scope()) == {"in": 1}
        assert select("$$.State.Name", {}, scope()) == "S"

    def test_missing_field_is_states_runtime_with_jayway_wording(self) -> None:
        """[recorded] scenarios_other/test_invalid_jsonpath[ST.INVALID_JSONPATH_IN_INPUTPATH]:
        cause "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"."""
        err = states_error(select, "$.NoSuchInputPath", {"int-literal": 0}, scope())
        assert err.error == errors.RUNTIME
        assert err.cause == "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"

    def test_missing_intermediate_property_wording(self) -> None:
        """[recorded] scenarios_other/test_catch_states_runtime: OutputPath "$.no.such.result.path"
        on {} gives "Invalid path '$.no.such.result.path' : Missing property in path $['no']"."""
        err = states_error(select, "$.no.such.result.path", {}, scope())
        assert err.error == errors.RUNTIME
        assert err.cause == "Invalid path '$.no.such.result.path' : Missing property in path $['no']"

    def test_missing_last_field_names_the_full_path(self) -> None:
        err = states_error(select, "$.a.missing", self.DATA, scope())
        assert err.cause == "Invalid path '$.a.missing' : No results for path: $['a']['missing']"

    def test_missing_context_path(self) -> None:
        err = states_error(select, "$$.Execution.Nope", {}, scope())
        assert err.error == errors.RUNTIME
        assert err.cause == "Invalid path '$$.Execution.Nope' : No results for path: $['Execution']['Nope']"

    def test_select_does_not_copy_or_mutate(self) -> None:
        data = copy.deepcopy(self.DATA)
        select("$.a", data, scope())
        assert data == self.DATA


# --- Parameters / ResultSelector / ItemSelector (payload templates) ------------------------------


class TestResolveTemplate:
    def test_static_values_are_copied(self) -> None:
        template: Any = {"a": 1, "b": [1, {"c": "$.not-a-path"}], "d": None, "e": "$.x"}
        out = resolve_template(template, {"x": 5}, scope())
        assert out == template
        out["b"][1]["c"] = "changed"
        assert template["b"][1]["c"] == "$.not-a-path", "the template must not share structure with the output"

    def test_dollar_keys_take_path_values_and_lose_the_suffix(self) -> None:
        """[io] "For key-value pairs where the value is selected using a path, the key name must end
        in .$"; the output key is the name without the suffix."""
        out = resolve_template({"v.$": "$.a", "all.$": "$", "k": "lit"}, {"a": [1, 2]}, scope())
        assert out == {"v": [1, 2], "all": {"a": [1, 2]}, "k": "lit"}

    def test_nested_objects_and_arrays_are_resolved(self) -> None:
        """[spec] "Payload Template": a field whose name ends in ".$", "however deeply nested"
        (inside objects and arrays), takes the value of its path."""
        template = {
            "outer": {"inner.$": "$.a", "deeper": {"x.$": "$.b[0]"}},
            "list": [{"item.$": "$.a"}, "plain", [{"y.$": "$.b"}]],
        }
        out = resolve_template(template, {"a": "A", "b": [7, 8]}, scope())
        assert out == {"outer": {"inner": "A", "deeper": {"x": 7}}, "list": [{"item": "A"}, "plain", [{"y": [7, 8]}]]}

    def test_context_object_paths(self) -> None:
        out = resolve_template({"name.$": "$$.State.Name", "input.$": "$$.Execution.Input"}, {}, scope())
        assert out == {"name": "S", "input": {"in": 1}}

    def test_variable_paths(self) -> None:
        out = resolve_template({"v.$": "$myVar.a"}, {}, scope(variables={"myVar": {"a": 3}}))
        assert out == {"v": 3}

    def test_intrinsic_functions(self) -> None:
        out = resolve_template({"msg.$": "States.Format('{} and {}', $.a, $.b)"}, {"a": "x", "b": 2}, scope())
        assert out == {"msg": "x and 2"}

    def test_selected_values_are_copies(self) -> None:
        data = {"a": {"deep": [1]}}
        out = resolve_template({"v.$": "$.a"}, data, scope())
        out["v"]["deep"].append(2)
        assert data == {"a": {"deep": [1]}}

    def test_non_object_templates(self) -> None:
        assert resolve_template([1, {"a.$": "$.x"}], {"x": 0}, scope()) == [1, {"a": 0}]
        assert resolve_template("plain", {"x": 0}, scope()) == "plain"

    def test_missing_path_cause(self) -> None:
        """[recorded] scenarios_other/test_invalid_jsonpath[INVALID_JSONPATH_IN_STRING_EXPR_JSONPATH]
        and [workshop]: "The JSONPath '<path>' specified for the field '<key>.$' could not be found
        in the input '<compact JSON input>'" (States.Runtime)."""
        err = states_error(resolve_template, {"value.$": "$.no_such_jsonpath"}, {"int-literal": 0}, scope())
        assert err.error == errors.RUNTIME
        assert err.cause == ("The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be "
                             "found in the input '{\"int-literal\":0}'")

    def test_missing_path_nested_names_the_nested_field(self) -> None:
        err = states_error(resolve_template, {"outer": [{"address.$": "$.application.address"}]},
                           {"flagged": False}, scope())
        assert err.cause == ("The JSONPath '$.application.address' specified for the field 'address.$' could not "
                             "be found in the input '{\"flagged\":false}'")

    def test_missing_context_path_cause(self) -> None:
        """[recorded] scenarios_other/test_invalid_jsonpath[INVALID_JSONPATH_IN_STRING_EXPR_CONTEXTPATH]."""
        err = states_error(resolve_template, {"value.$": "$$.Execution.Input.no_such_jsonpath"}, {"a": 1}, scope())
        assert err.error == errors.RUNTIME
        assert err.cause.startswith("The JSONPath '$$.Execution.Input.no_such_jsonpath' specified for the field "
                                    "'value.$' could not be found in the input '")


class TestReadPathField:
    def test_reads_a_value(self) -> None:
        assert read_path_field("SecondsPath", "$.s", {"s": 4}, scope()) == 4

    def test_missing_cause_names_the_field(self) -> None:
        """[recorded] scenarios_other/test_invalid_jsonpath[INVALID_JSONPATH_IN_ERRORPATH]: "The
        JSONPath '$.ErrorX' specified for the field 'ErrorPath' could not be found in the input ..."."""
        err = states_error(read_path_field, "ErrorPath", "$.ErrorX", {"Error": "E"}, scope())
        assert err.error == errors.RUNTIME
        assert err.cause == ("The JSONPath '$.ErrorX' specified for the field 'ErrorPath' could not be found in "
                             "the input '{\"Error\":\"E\"}'")

    def test_intrinsic(self) -> None:
        assert read_path_field("ErrorPath", "States.Format('E{}', $.n)", {"n": 1}, scope()) == "E1"


# --- ResultPath ------------------------------------------------------------------------------------


class TestMergeResult:
    def test_absent_and_dollar_replace_the_input(self) -> None:
        """[spec] "ResultPath": default `$` -- the result becomes the state output."""
        assert merge_result(ABSENT, {"a": 1}, {"r": 2}) == {"r": 2}
        assert merge_result("$", {"a": 1}, "r") == "r"

    def test_null_discards_the_result(self) -> None:
        """[spec] "If the value of ResultPath is null, that means that the state's result is
        discarded and its raw input becomes its result"."""
        assert merge_result(None, {"a": 1}, {"r": 2}) == {"a": 1}

    def test_sets_a_new_field(self) -> None:
        assert merge_result("$.r", {"a": 1}, [1, 2]) == {"a": 1, "r": [1, 2]}

    def test_overwrites_an_existing_field(self) -> None:
        """[spec] "If the raw input has a field at the location addressed by the ResultPath value
        then in the output that field is discarded and overwritten by the state's result"."""
        assert merge_result("$.a", {"a": {"old": True}, "b": 2}, "new") == {"a": "new", "b": 2}

    def test_creates_missing_intermediate_objects(self) -> None:
        """[spec] "Otherwise, a new field is created in the state output, with intervening fields
        constructed as necessary"."""
        assert merge_result("$.a.b.c", {"x": 1}, 5) == {"x": 1, "a": {"b": {"c": 5}}}
        assert merge_result("$.a.b", {"a": {"keep": 1}}, 5) == {"a": {"keep": 1, "b": 5}}

    def test_bracket_notation_and_array_index(self) -> None:
        assert merge_result("$['a b']", {"x": 1}, 5) == {"x": 1, "a b": 5}
        assert merge_result("$.list[1]", {"list": [0, 0, 0]}, 5) == {"list": [0, 5, 0]}

    def test_input_is_not_mutated(self) -> None:
        state_input = {"a": {"b": 1}, "c": [1]}
        before = copy.deepcopy(state_input)
        out = merge_result("$.a.new", state_input, {"r": 1})
        assert state_input == before
        out["c"].append(2)
        assert state_input == before, "the output must not share structure with the input"

    @pytest.mark.parametrize("state_input", ["a string", 42, True, [1, 2], None])
    def test_field_into_a_non_object_is_result_path_match_failure(self, state_input: Any) -> None:
        """[spec] "Errors": States.ResultPathMatchFailure -- "Raised when a state's ResultPath field
        cannot be applied to the input the state received"."""
        err = states_error(merge_result, "$.field", state_input, {"r": 1})
        assert err.error == errors.RESULT_PATH_MATCH_FAILURE
        assert "$.field" in err.cause

    def test_index_out_of_range_is_result_path_match_failure(self) -> None:
        err = states_error(merge_result, "$.list[3]", {"list": [1]}, 5)
        assert err.error == errors.RESULT_PATH_MATCH_FAILURE

    @settings(max_examples=150, deadline=None)
    @given(
        state_input=st.dictionaries(st.text(max_size=6), JSON, max_size=6),
        key=st.from_regex(r"k_[a-z0-9_]{0,6}", fullmatch=True),
        result=JSON,
    )
    def test_property_result_lands_at_key_and_nothing_else_changes(
        self, state_input: dict[str, Any], key: str, result: Any
    ) -> None:
        before = copy.deepcopy(state_input)
        out = merge_result(f"$.{key}", state_input, result)
        assert out[key] == result
        assert {k: v for k, v in out.items() if k != key} == {k: v for k, v in before.items() if k != key}
        assert set(out) == set(before) | {key}
        assert state_input == before

    @settings(max_examples=100, deadline=None)
    @given(state_input=st.dictionaries(st.text(max_size=6), JSON, max_size=5), result=JSON)
    def test_property_dollar_and_null(self, state_input: dict[str, Any], result: Any) -> None:
        assert merge_result("$", state_input, result) == result
        assert merge_result(None, state_input, result) == state_input


class TestErrorOutput:
    def test_error_and_cause(self) -> None:
        """[spec] "Fallback states": the error output is a JSON object with "Error" and "Cause"."""
        assert error_output("E", "C") == {"Error": "E", "Cause": "C"}

    def test_cause_omitted_when_none(self) -> None:
        assert error_output("E", None) == {"Error": "E"}

    def test_to_json_is_compact_and_unicode(self) -> None:
        assert to_json({"a": [1, "é"]}) == '{"a":[1,"é"]}'


# --- the whole pipeline inside executions ---------------------------------------------------------


class TestPipelineInExecutions:
    def test_order_inputpath_parameters_resultselector_resultpath_outputpath(self) -> None:
        """[io] "InputPath -> Parameters -> ResultSelector -> ResultPath -> OutputPath"."""
        definition = single(task_state(
            InputPath="$.sub",
            Parameters={"p.$": "$.v", "ctx.$": "$$.State.Name"},
            ResultSelector={"picked.$": "$.body.value"},
            ResultPath="$.out",
            OutputPath="$.out",
        ))
        h = Harness(definition)
        h.start({"sub": {"v": 1}, "other": 2})
        task = h.only_task()
        assert task.parameters == {"p": 1, "ctx": "S"}
        h.succeed(task, {"body": {"value": "V", "noise": 0}})
        assert h.status == "SUCCEEDED"
        assert h.output == {"picked": "V"}

    def test_result_path_is_applied_to_the_raw_input_not_the_effective_input(self) -> None:
        """[io] ResultPath "combines the result with the original state input" (the raw input, not
        what InputPath selected)."""
        definition = single(task_state(InputPath="$.sub", ResultPath="$.r"))
        h = run(definition, {"sub": {"v": 1}, "keep": True})
        assert h.output == {"sub": {"v": 1}, "keep": True, "r": {"v": 1}}

    def test_null_input_and_output_paths(self) -> None:
        """[recorded] base/test_state_pass_result_null_input_output_paths: InputPath null gives
        Parameters an empty input; OutputPath null makes the output {}."""
        definition = {
            "StartAt": "State0",
            "States": {
                "State0": {"Type": "Pass", "Parameters": {"Arg1": "argument1", "FromInput.$": "$"}, "Next": "State1"},
                "State1": {"Type": "Pass", "InputPath": None, "Parameters": {"Arg2": "argument2", "FromInput.$": "$"},
                           "Next": "State2"},
                "State2": {"Type": "Pass", "OutputPath": None, "End": True},
            },
        }
        h = run(definition, {"InputValue": 0})
        assert h.events_of("PassStateExited")[0].details["output"] == {"Arg1": "argument1",
                                                                         "FromInput": {"InputValue": 0}}
        assert h.events_of("PassStateExited")[1].details["output"] == {"Arg2": "argument2", "FromInput": {}}
        assert h.output == {}

    def test_input_path_missing_fails_with_prefixed_cause(self) -> None:
        """[recorded] test_invalid_jsonpath[ST.INVALID_JSONPATH_IN_INPUTPATH]: the cause is prefixed
        "An error occurred while executing the state 'pass' (entered at the event id #2). "."""
        h = run(single({"Type": "Pass", "InputPath": "$.NoSuchInputPath", "End": True}, "pass"), {"int-literal": 0})
        assert h.status == "FAILED"
        assert h.finished is not None
        assert h.finished.error == errors.RUNTIME
        assert h.finished.cause == ("An error occurred while executing the state 'pass' (entered at the event id "
                                    "#2). Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']")
        assert h.history_types == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]

    def test_output_path_missing_is_not_caught_even_by_a_states_runtime_catcher(self) -> None:
        """[recorded] scenarios_other/test_catch_states_runtime."""
        definition = {
            "StartAt": "RaiseRuntime",
            "States": {
                "RaiseRuntime": task_state(OutputPath="$.no.such.result.path",
                                           Catch=[{"ErrorEquals": ["States.Runtime"], "Next": "CaughtRuntime"}],
                                           Next="Final"),
                "CaughtRuntime": {"Type": "Pass", "End": True},
                "Final": {"Type": "Pass", "End": True},
            },
        }
        h = run(definition, {})
        assert h.status == "FAILED"
        assert h.finished is not None
        assert h.finished.cause == ("An error occurred while executing the state 'RaiseRuntime' (entered at the "
                                    "event id #2). Invalid path '$.no.such.result.path' : Missing property in path "
                                    "$['no']")
        assert "CaughtRuntime" not in str([e.details for e in h.history])

    def test_parameters_missing_path_fails_the_execution(self) -> None:
        h = run(single({"Type": "Pass", "Parameters": {"value.$": "$.no_such_jsonpath"}, "End": True}, "pass"),
                {"int-literal": 0})
        assert h.finished is not None
        assert (h.finished.error, h.finished.cause) == (
            errors.RUNTIME,
            "An error occurred while executing the state 'pass' (entered at the event id #2). The JSONPath "
            "'$.no_such_jsonpath' specified for the field 'value.$' could not be found in the input "
            "'{\"int-literal\":0}'",
        )

    def test_result_path_match_failure_is_catchable(self) -> None:
        """[errors] States.ResultPathMatchFailure is an ordinary error: States.ALL catches it."""
        definition = {
            "StartAt": "T",
            "States": {
                "T": task_state(ResultPath="$.r", Catch=[{"ErrorEquals": ["States.ALL"], "Next": "H"}], Next="X"),
                "H": {"Type": "Pass", "End": True},
                "X": {"Type": "Pass", "End": True},
            },
        }
        h = run(definition, "a string input")
        assert h.status == "SUCCEEDED"
        assert h.output["Error"] == errors.RESULT_PATH_MATCH_FAILURE

    def test_pass_result_with_result_path(self) -> None:
        """[spec] "Pass State": Result is the state's result, placed by ResultPath."""
        h = run(single({"Type": "Pass", "Result": {"x": [1]}, "ResultPath": "$.deep.er", "End": True}), {"a": 1})
        assert h.output == {"a": 1, "deep": {"er": {"x": [1]}}}

    def test_pass_parameters_see_the_context_object(self) -> None:
        h = run(single({"Type": "Pass", "Parameters": {"id.$": "$$.Execution.Id", "list": [{"n.$": "$.n"}]},
                        "End": True}), {"n": 3})
        assert h.output == {"id": EXECUTION_ARN, "list": [{"n": 3}]}
