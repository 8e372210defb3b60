"""Unit tests of orchestrator.asl.validate: one test per rule, the problem and its path exact.

Sources cited below:
- "spec": the Amazon States Language specification, states-language.net (2024-11-22 revision).
- "conformance": ../shared/asl-conformance/cases/validation, definitions real AWS refused.
- "floci": validate-state-machine-definition runs against real AWS recorded in floci-io/floci
  issues #2735 and #2968 and pull request #2786 (third-party measurements).
- "statelint": awslabs/statelint, AWS's own linter (its schema and spec tests).
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.asl.errors import Problem
from orchestrator.asl.validate import validate

END = {"Type": "Succeed"}
TASK = {"Type": "Task", "Resource": "baton:llm", "End": True}


def machine(states: dict[str, Any], start: str = "A", **top: Any) -> dict[str, Any]:
    return {"StartAt": start, "States": states, **top}


def single(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A machine whose only state is `A`."""
    return machine({"A": state}, **top)


def problem(path: str, message: str) -> list[Problem]:
    return [Problem(path, message)]


# ---------------------------------------------------------------------------------------------
# Valid definitions: every state type, both query languages
# ---------------------------------------------------------------------------------------------

JSONPATH_MACHINE: dict[str, Any] = {
    "Comment": "every JSONPath state type",
    "Version": "1.0",
    "TimeoutSeconds": 3600,
    "QueryLanguage": "JSONPath",
    "StartAt": "Prepare",
    "States": {
        "Prepare": {
            "Type": "Pass",
            "InputPath": "$.order",
            "Parameters": {
                "id.$": "$.id",
                "context.$": "$$.Execution.Id",
                "greeting.$": "States.Format('Hello {}', $.name)",
                "items": [{"sku.$": "$.sku"}, 3, "$.literal"],
            },
            "ResultPath": "$.prepared",
            "OutputPath": "$",
            "Assign": {"orderId.$": "$.id", "count": 1, "nested": {"x.$": "$.x"}},
            "Next": "Call",
        },
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123:function:Name", "Payload.$": "$"},
            "ResultSelector": {"body.$": "$.Payload"},
            "ResultPath": "$.result",
            "TimeoutSeconds": 300,
            "HeartbeatSeconds": 60,
            "Credentials": {"RoleArn.$": "$.role"},
            "Retry": [
                {"ErrorEquals": ["States.Timeout", "Lambda.Unknown"], "IntervalSeconds": 2, "MaxAttempts": 0},
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 1,
                    "MaxAttempts": 3,
                    "BackoffRate": 2.0,
                    "MaxDelaySeconds": 10,
                    "JitterStrategy": "FULL",
                },
            ],
            "Catch": [
                {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Assign": {"failed": True}, "Next": "Failed"},
                {"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "Failed"},
            ],
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.result.ok", "BooleanEquals": True, "Assign": {"route": "fan"}, "Next": "Fan"},
                {"Variable": "$orderId", "IsPresent": True, "Next": "Pause"},
            ],
            "Default": "Failed",
            "Assign": {"route": "default"},
        },
        "Pause": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Until"},
        "Until": {"Type": "Wait", "Timestamp": "2016-03-14T01:59:00.123+01:00", "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Wait", "Seconds": 0, "End": True}}},
                {"Comment": "right", "StartAt": "Right", "States": {"Right": {"Type": "Pass", "Result": 1, "End": True}}},
            ],
            "ResultSelector": {"left.$": "$[0]"},
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"value.$": "$$.Map.Item.Value"},
            "MaxConcurrency": 0,
            "ToleratedFailurePercentage": 12.5,
            "ToleratedFailureCountPath": "$.tolerated",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Work",
                "States": {"Work": {"Type": "Task", "Resource": "baton:fn:work", "End": True}},
            },
            "Next": "Done",
        },
        "Done": {"Type": "Succeed", "OutputPath": "$.result"},
        "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "States.Format('failed: {}', $.why)"},
    },
}

JSONATA_MACHINE: dict[str, Any] = {
    "QueryLanguage": "JSONata",
    "StartAt": "Prepare",
    "States": {
        "Prepare": {
            "Type": "Pass",
            "Output": {"total": "{% $states.input.total %}"},
            "Assign": {"total": "{% $states.input.total %}"},
            "Next": "Call",
        },
        "Call": {
            "Type": "Task",
            "Resource": "baton:http.sync",
            "Arguments": {"url": "{% $states.input.url %}"},
            "Output": "{% $states.result %}",
            "TimeoutSeconds": "{% $timeout %}",
            "HeartbeatSeconds": 5,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}", "Next": "Failed"}],
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Condition": "{% $total > 10 %}", "Output": {"big": True}, "Next": "Pause"},
                {"Condition": True, "Assign": {"small": True}, "Next": "Fan"},
            ],
            "Default": "Failed",
            "Output": "{% $states.input %}",
        },
        "Pause": {"Type": "Wait", "Seconds": "{% $total %}", "Next": "Until"},
        "Until": {"Type": "Wait", "Timestamp": "{% $states.input.when %}", "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Arguments": {"n": "{% $total %}"},
            "Branches": [{"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}}],
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "Items": "{% $states.input.items %}",
            "ItemSelector": {"value": "{% $states.context.Map.Item.Value %}"},
            "MaxConcurrency": "{% $limit %}",
            "ToleratedFailureCount": 1,
            "ItemProcessor": {"StartAt": "Work", "States": {"Work": {"Type": "Succeed", "Output": 1}}},
            "Next": "Done",
        },
        "Done": {"Type": "Succeed", "Output": "{% $total %}"},
        "Failed": {"Type": "Fail", "Error": "{% $states.input.error %}", "Cause": "failed"},
    },
}


@pytest.mark.parametrize("definition", [JSONPATH_MACHINE, JSONATA_MACHINE], ids=["JSONPath", "JSONata"])
def test_a_definition_using_every_state_type_is_valid(definition: dict[str, Any]) -> None:
    assert validate(definition) == []


@pytest.mark.parametrize(
    "state",
    [
        {"Type": "Pass", "End": True},
        {"Type": "Task", "Resource": "baton:llm", "End": True},
        {"Type": "Task", "Resource": "baton:fn:summarise", "End": True},
        {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123:function:Name", "End": True},
        {"Type": "Task", "Resource": "baton:llm", "TimeoutSecondsPath": "$.t", "HeartbeatSecondsPath": "$.h", "End": True},
        {"Type": "Wait", "Seconds": 10, "End": True},
        {"Type": "Wait", "TimestampPath": "$.when", "End": True},
        {"Type": "Wait", "Timestamp": "2016-03-14T01:59:00Z", "End": True},
        {"Type": "Succeed"},
        {"Type": "Succeed", "InputPath": None, "OutputPath": None},
        {"Type": "Fail"},
        {"Type": "Fail", "Error": "Oops", "Cause": "because"},
        {"Type": "Map", "Iterator": {"StartAt": "I", "States": {"I": END}}, "Parameters": {"v.$": "$$.Map.Item.Value"}, "End": True},
        {"Type": "Map", "ItemsPath": "$$.Execution.Input.items", "ItemProcessor": {"StartAt": "I", "States": {"I": END}}, "End": True},
        {"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": END}}], "End": True},
        {"Type": "Pass", "Result": {"x": 1}, "ResultPath": None, "End": True},
        {"Type": "Pass", "Next": "B", "End": False},
    ],
    ids=lambda state: "-".join(sorted(state)),
)
def test_valid_states(state: dict[str, Any]) -> None:
    definition = machine({"A": state, "B": END} if state.get("Next") == "B" else {"A": state})
    assert validate(definition) == []


def test_a_jsonata_state_inside_a_jsonpath_machine_is_allowed() -> None:
    """spec, "Query Languages": a state's QueryLanguage overrides the machine's default."""
    definition = machine({"A": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% 1 %}", "End": True}})
    assert validate(definition) == []


def test_variable_and_context_paths_are_allowed_where_paths_are() -> None:
    definition = single({"Type": "Pass", "InputPath": "$$.Execution.Input", "OutputPath": "$myVar.field", "End": True})
    assert validate(definition) == []


@pytest.mark.parametrize("error", ["States.Runtime", "States.Http.Socket", "States.Http.StatusCode.429", "Custom.Error", "State.ALL"])
def test_defined_and_custom_error_names_are_accepted(error: str) -> None:
    """AWS accepted `States.Runtime` and `State.ALL` (conformance, error_handling); only `States.` is reserved."""
    definition = single({**TASK, "Retry": [{"ErrorEquals": [error]}]})
    assert validate(definition) == []


# ---------------------------------------------------------------------------------------------
# Top level
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("definition", [None, " ", "not a definition", [], 3])
def test_definition_must_be_an_object(definition: Any) -> None:
    """conformance: AWS refused " " and "not a definition" ("Definition must be a valid JSON object")."""
    assert validate(definition) == problem("$", "the definition must be a JSON object with 'StartAt' and 'States'")


def test_states_is_required() -> None:
    """conformance: "These fields are required: [States] at /"."""
    assert validate({"StartAt": "A"}) == problem("$", "'States' is required: an object of the state machine's states")


def test_start_at_is_required() -> None:
    """conformance: "These fields are required: [StartAt]"."""
    definition = {"States": {"A": END}}
    assert validate(definition) == problem("$", "'StartAt' is required: the name of the first state of the state machine")


def test_start_at_must_be_a_string() -> None:
    assert validate(machine({"A": END}, start=1)) == problem("$.StartAt", "'StartAt' must be a string naming a state")  # type: ignore[arg-type]


def test_start_at_must_name_a_state() -> None:
    """AWS reports the missing target and, since nothing can be reached, each state (serverless-step-functions#250)."""
    assert validate(machine({"A": END}, start="Nope")) == [
        Problem("$.StartAt", "'StartAt' names 'Nope', which is not a state of this scope; states: A"),
        Problem("$.States.A", "state 'A' is not reachable from 'StartAt' 'Nope'; remove it or transition to it"),
    ]


@pytest.mark.parametrize("states", [{}, [], "A"])
def test_states_must_be_a_non_empty_object(states: Any) -> None:
    assert validate(machine(states)) == problem("$.States", "'States' must be a non-empty JSON object mapping state names to states")


def test_unknown_top_level_fields_are_refused() -> None:
    assert validate(single(END, Timeout=5)) == problem(
        "$.Timeout",
        "field 'Timeout' is not supported in a state machine; allowed: Comment, QueryLanguage, StartAt, States, TimeoutSeconds, Version",
    )


def test_version_must_be_1_0() -> None:
    assert validate(single(END, Version="2.0")) == problem("$.Version", "'Version' must be \"1.0\", not '2.0'")


@pytest.mark.parametrize("timeout", [0, -1, 1.5, "60", True])
def test_machine_timeout_seconds_must_be_a_positive_integer(timeout: Any) -> None:
    assert validate(single(END, TimeoutSeconds=timeout)) == problem(
        "$.TimeoutSeconds", f"'TimeoutSeconds' must be a positive integer below 99999999, not {timeout!r}"
    )


def test_machine_query_language_must_be_jsonpath_or_jsonata() -> None:
    assert validate(single(END, QueryLanguage="XPath")) == problem(
        "$.QueryLanguage", "'QueryLanguage' must be 'JSONPath' or 'JSONata', not 'XPath'"
    )


def test_machine_comment_must_be_a_string() -> None:
    assert validate(single(END, Comment=5)) == problem("$.Comment", "'Comment' must be a string")


# ---------------------------------------------------------------------------------------------
# State names
# ---------------------------------------------------------------------------------------------


def test_a_state_name_cannot_be_empty() -> None:
    assert validate(machine({"": END}, start="")) == problem("$.States['']", "a state name cannot be empty")


def test_a_state_name_is_at_most_80_characters() -> None:
    """spec, "States": a state name's length MUST be at most 80 Unicode characters."""
    name = "x" * 81
    assert validate(machine({name: END}, start=name)) == problem(
        f"$.States.{name}", "state name is 81 characters long; the limit is 80"
    )
    name80 = "é" * 80
    assert validate(machine({name80: END}, start=name80)) == []


def test_state_names_are_unique_across_parallel_branches() -> None:
    """spec, "States": a state name MUST be unique within the scope of the entire state machine."""
    definition = machine({
        "A": {"Type": "Parallel", "Branches": [{"StartAt": "A", "States": {"A": END}}], "End": True},
    })
    assert validate(definition) == problem(
        "$.States.A.Branches[0].States.A",
        "state name 'A' is already used at $.States.A; state names must be unique in the whole definition",
    )


def test_state_names_are_unique_across_map_processors() -> None:
    definition = machine({
        "A": {"Type": "Map", "ItemProcessor": {"StartAt": "Work", "States": {"Work": END}}, "Next": "B"},
        "B": {"Type": "Map", "ItemProcessor": {"StartAt": "Work", "States": {"Work": END}}, "End": True},
    })
    assert validate(definition) == problem(
        "$.States.B.ItemProcessor.States.Work",
        "state name 'Work' is already used at $.States.A.ItemProcessor.States.Work; state names must be unique in the whole definition",
    )


def test_names_needing_quotes_get_bracket_paths() -> None:
    definition = machine({"Say hi": {"Type": "Pass", "Next": "it's"}}, start="Say hi")
    assert validate(definition) == [
        Problem("$.States['Say hi'].Next", "no state named \"it's\" in this scope (a transition cannot enter or leave a Parallel branch or Map processor)"),
        Problem("$.States", "no state ends the workflow: give a state \"End\": true, or add a Succeed or Fail state"),
    ]


# ---------------------------------------------------------------------------------------------
# Type and the fields each type allows
# ---------------------------------------------------------------------------------------------


def test_a_state_must_be_an_object() -> None:
    assert validate(machine({"A": "Pass", "B": END}, start="B")) == [
        Problem("$.States.A", "a state must be a JSON object with a 'Type'"),
        Problem("$.States.A", "state 'A' is not reachable from 'StartAt' 'B'; remove it or transition to it"),
    ]


def test_type_is_required() -> None:
    assert validate(machine({"A": {"End": True}, "B": END}, start="B"))[0] == Problem(
        "$.States.A", "'Type' is required: one of Choice, Fail, Map, Parallel, Pass, Succeed, Task, Wait"
    )


def test_type_must_be_known() -> None:
    assert validate(single({"Type": "Sleep", "End": True})) == problem(
        "$.States.A.Type", "unknown state type 'Sleep'; use one of Choice, Fail, Map, Parallel, Pass, Succeed, Task, Wait"
    )


PASS_ALLOWED = "Assign, Comment, End, InputPath, Next, Output, OutputPath, Parameters, QueryLanguage, Result, ResultPath, Type"


@pytest.mark.parametrize(
    ("state", "field", "kind", "allowed"),
    [
        # floci (#2735): TimeoutSeconds is refused on every type but Task, Retry/Catch off Task/Parallel/Map.
        ({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": END}}, "TimeoutSeconds": 5, "End": True}, "TimeoutSeconds", "Map", None),
        ({"Type": "Parallel", "Branches": [{"StartAt": "I", "States": {"I": END}}], "TimeoutSeconds": 5, "End": True}, "TimeoutSeconds", "Parallel", None),
        ({"Type": "Pass", "Retry": [], "End": True}, "Retry", "Pass", PASS_ALLOWED),
        ({"Type": "Pass", "Catch": [], "End": True}, "Catch", "Pass", PASS_ALLOWED),
        ({"Type": "Pass", "Resource": "baton:llm", "End": True}, "Resource", "Pass", PASS_ALLOWED),
        # statelint: ResultSelector only on Task, Parallel and Map.
        ({"Type": "Pass", "ResultSelector": {}, "End": True}, "ResultSelector", "Pass", PASS_ALLOWED),
        ({"Type": "Wait", "Seconds": 1, "Catch": [], "End": True}, "Catch", "Wait", None),
        # statelint: Parameters / ResultPath not on Choice, Wait, Succeed or Fail.
        ({"Type": "Wait", "Seconds": 1, "ResultPath": "$.x", "End": True}, "ResultPath", "Wait", None),
        ({"Type": "Succeed", "Parameters": {}}, "Parameters", "Succeed", "Comment, InputPath, Output, OutputPath, QueryLanguage, Type"),
        ({"Type": "Succeed", "Next": "A"}, "Next", "Succeed", "Comment, InputPath, Output, OutputPath, QueryLanguage, Type"),
        ({"Type": "Succeed", "Assign": {}}, "Assign", "Succeed", "Comment, InputPath, Output, OutputPath, QueryLanguage, Type"),
        # spec: a Fail state has no InputPath/OutputPath.
        ({"Type": "Fail", "InputPath": "$"}, "InputPath", "Fail", "Cause, CausePath, Comment, Error, ErrorPath, QueryLanguage, Type"),
        ({"Type": "Fail", "End": True}, "End", "Fail", "Cause, CausePath, Comment, Error, ErrorPath, QueryLanguage, Type"),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_fields_a_type_does_not_support_are_refused(state: dict[str, Any], field: str, kind: str, allowed: str | None) -> None:
    problems = validate(single(state))
    assert [p.path for p in problems] == [f"$.States.A.{field}"]
    assert problems[0].message.startswith(f"field '{field}' is not supported on a {kind} state; allowed: ")
    if allowed is not None:
        assert problems[0].message.endswith(f"allowed: {allowed}")


def test_choice_state_cannot_end() -> None:
    """spec: "A Choice State MUST NOT be an End state"."""
    definition = machine({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "B"}], "End": True}, "B": END})
    assert [(p.path, p.message.split(";")[0]) for p in validate(definition)] == [
        ("$.States.A.End", "field 'End' is not supported on a Choice state"),
    ]


@pytest.mark.parametrize(
    ("state", "required"),
    [
        ({"Type": "Task", "End": True}, "Resource"),
        ({"Type": "Choice"}, "Choices"),
        ({"Type": "Parallel", "End": True}, "Branches"),
    ],
)
def test_required_fields(state: dict[str, Any], required: str) -> None:
    definition = machine({"A": state, "B": END}, start="B")
    assert validate(definition)[0] == Problem("$.States.A", f"a {state['Type']} state requires '{required}'")


def test_map_requires_an_item_processor() -> None:
    assert validate(single({"Type": "Map", "End": True})) == problem(
        "$.States.A", "a Map state requires 'ItemProcessor' (the state machine run for each item)"
    )


def test_state_comment_must_be_a_string() -> None:
    assert validate(single({"Type": "Succeed", "Comment": ["x"]})) == problem("$.States.A.Comment", "'Comment' must be a string")


# ---------------------------------------------------------------------------------------------
# Next / End and the transition graph
# ---------------------------------------------------------------------------------------------


def test_a_flowing_state_needs_next_or_end() -> None:
    definition = machine({"A": {"Type": "Pass"}, "B": END}, start="B")
    assert validate(definition)[0] == Problem("$.States.A", "a Pass state needs 'Next' (the state to run next) or \"End\": true")


def test_end_false_is_not_an_end() -> None:
    definition = machine({"A": {"Type": "Wait", "Seconds": 1, "End": False}, "B": END}, start="B")
    assert validate(definition)[0] == Problem("$.States.A", "a Wait state needs 'Next' (the state to run next) or \"End\": true")


def test_next_and_end_are_exclusive() -> None:
    definition = machine({"A": {"Type": "Pass", "Next": "B", "End": True}, "B": END})
    assert validate(definition) == problem("$.States.A", "a state may have 'Next' or \"End\": true, not both")


def test_end_must_be_a_boolean() -> None:
    definition = machine({"A": {"Type": "Pass", "End": "yes"}, "B": END}, start="B")
    assert validate(definition)[:2] == [
        Problem("$.States.A.End", "'End' must be true or false"),
        Problem("$.States.A", "a Pass state needs 'Next' (the state to run next) or \"End\": true"),
    ]


def test_next_must_be_a_string() -> None:
    definition = machine({"A": {"Type": "Pass", "Next": ["B"]}, "B": END})
    assert validate(definition)[0] == Problem("$.States.A.Next", "'Next' must be a string naming a state")


def test_next_must_name_a_state() -> None:
    """AWS: "MISSING_TRANSITION_TARGET: Missing 'Next' target: pass3 at /States/pass1/Next" (localstack#11978)."""
    definition = machine({"A": {"Type": "Pass", "Next": "Nope"}, "B": END}, start="B")
    assert validate(definition) == [
        Problem("$.States.A.Next", "no state named 'Nope' in this scope (a transition cannot enter or leave a Parallel branch or Map processor)"),
        Problem("$.States.A", "state 'A' is not reachable from 'StartAt' 'B'; remove it or transition to it"),
    ]


def test_next_cannot_leave_a_parallel_branch() -> None:
    """spec, "Parallel State": a branch's states can transition only to each other."""
    definition = machine({
        "A": {"Type": "Parallel", "Branches": [{"StartAt": "In", "States": {"In": {"Type": "Pass", "Next": "B"}}}], "Next": "B"},
        "B": END,
    })
    assert validate(definition) == [
        Problem("$.States.A.Branches[0].States.In.Next", "no state named 'B' in this scope (a transition cannot enter or leave a Parallel branch or Map processor)"),
        Problem("$.States.A.Branches[0].States", "no state ends the workflow: give a state \"End\": true, or add a Succeed or Fail state"),
    ]


def test_next_cannot_enter_a_map_processor() -> None:
    """spec, "Map State": no state outside an ItemProcessor's States can transition into it."""
    definition = machine({
        "A": {"Type": "Map", "ItemProcessor": {"StartAt": "In", "States": {"In": END}}, "Next": "In"},
    })
    assert validate(definition) == [
        Problem("$.States.A.Next", "no state named 'In' in this scope (a transition cannot enter or leave a Parallel branch or Map processor)"),
        Problem("$.States", "no state ends the workflow: give a state \"End\": true, or add a Succeed or Fail state"),
    ]


def test_unreachable_states_are_refused() -> None:
    """AWS: "MISSING_TRANSITION_TARGET: State "pass2" is not reachable." (localstack#11978, cfn-lint#4073)."""
    definition = machine({"A": {"Type": "Pass", "Next": "C"}, "B": {"Type": "Pass", "Next": "C"}, "C": END})
    assert validate(definition) == problem("$.States.B", "state 'B' is not reachable from 'StartAt' 'A'; remove it or transition to it")


def test_catch_default_and_choice_targets_make_states_reachable() -> None:
    definition = machine({
        "A": {"Type": "Task", "Resource": "baton:llm", "Next": "C", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}]},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "D"}], "Default": "E"},
        "D": END,
        "E": END,
        "F": {"Type": "Fail"},
    })
    assert validate(definition) == []


def test_a_scope_with_no_terminal_state_is_refused() -> None:
    """floci (#2735): a loop gives only MISSING_END_STATE "Workflow has no terminal state", no reachability."""
    definition = machine({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}, "C": {"Type": "Pass", "Next": "A"}})
    assert validate(definition) == problem("$.States", "no state ends the workflow: give a state \"End\": true, or add a Succeed or Fail state")


def test_a_loop_with_an_unreachable_terminal_reports_the_unreachable_state() -> None:
    """floci (#2735): adding an unreachable terminal C to the loop gives "State "C" is not reachable."."""
    definition = machine({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}, "C": {"Type": "Pass", "End": True}})
    assert validate(definition) == problem("$.States.C", "state 'C' is not reachable from 'StartAt' 'A'; remove it or transition to it")


def test_a_branch_with_no_terminal_state_is_refused() -> None:
    branch = {"StartAt": "L", "States": {"L": {"Type": "Pass", "Next": "L"}}}
    definition = single({"Type": "Parallel", "Branches": [branch], "End": True})
    assert validate(definition) == problem(
        "$.States.A.Branches[0].States", "no state ends the workflow: give a state \"End\": true, or add a Succeed or Fail state"
    )


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


def test_input_path_must_be_a_path() -> None:
    """statelint: an intrinsic function is not allowed in InputPath."""
    problems = validate(single({"Type": "Pass", "InputPath": "States.Array($.a)", "End": True}))
    assert [p.path for p in problems] == ["$.States.A.InputPath"]
    assert problems[0].message.startswith("'InputPath' must be a JSONPath or null: ")


def test_output_path_must_be_a_string_or_null() -> None:
    assert validate(single({"Type": "Pass", "OutputPath": 3, "End": True})) == problem(
        "$.States.A.OutputPath", "'OutputPath' must be a JSONPath or null, not 3"
    )


def test_result_path_must_be_a_reference_path() -> None:
    """spec, "Reference Paths": ResultPath names one node, so no wildcards or filters."""
    assert validate(single({"Type": "Pass", "ResultPath": "$.items[*]", "End": True})) == problem(
        "$.States.A.ResultPath",
        "'ResultPath' must be a reference path (no wildcards, filters or slices) or null: '$.items[*]' can select several values",
    )


def test_result_path_cannot_write_into_the_context_object() -> None:
    """spec: "The value of "ResultPath" MUST NOT begin with "$$"."""
    assert validate(single({"Type": "Pass", "ResultPath": "$$.Execution", "End": True})) == problem(
        "$.States.A.ResultPath",
        "'ResultPath' cannot write into the context object ($$); it must be a path into the state input starting with '$'",
    )


def test_result_path_cannot_write_into_a_variable() -> None:
    """spec: "In a JSONPath state, the "ResultPath" field MUST NOT reference a variable"."""
    assert validate(single({"Type": "Pass", "ResultPath": "$total", "End": True})) == problem(
        "$.States.A.ResultPath",
        "'ResultPath' cannot write into a variable; it must be a path into the state input starting with '$'",
    )


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"Type": "Wait", "SecondsPath": "$.a[*]", "End": True}, "SecondsPath"),
        ({"Type": "Wait", "TimestampPath": "$..when", "End": True}, "TimestampPath"),
        ({"Type": "Task", "Resource": "baton:llm", "TimeoutSecondsPath": "$.t[0:2]", "End": True}, "TimeoutSecondsPath"),
        ({"Type": "Task", "Resource": "baton:llm", "HeartbeatSecondsPath": "$.h[*]", "End": True}, "HeartbeatSecondsPath"),
        ({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": END}}, "MaxConcurrencyPath": "$.m[*]", "End": True}, "MaxConcurrencyPath"),
        ({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": END}}, "ToleratedFailureCountPath": "$.c[*]", "End": True}, "ToleratedFailureCountPath"),
        ({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": END}}, "ToleratedFailurePercentagePath": "$.p[*]", "End": True}, "ToleratedFailurePercentagePath"),
        ({"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": END}}, "ItemsPath": "$.i[*]", "End": True}, "ItemsPath"),
        ({"Type": "Fail", "ErrorPath": "$.e[*]"}, "ErrorPath"),
    ],
)
def test_path_fields_must_be_reference_paths(state: dict[str, Any], field: str) -> None:
    problems = validate(single(state))
    assert [p.path for p in problems] == [f"$.States.A.{field}"]
    assert problems[0].message.startswith(f"'{field}' must be a reference path (no wildcards, filters or slices)")


def test_items_path_cannot_be_null() -> None:
    """statelint: "should not allow null value in Map state ItemsPath"."""
    state = {"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": END}}, "ItemsPath": None, "End": True}
    assert validate(single(state)) == problem(
        "$.States.A.ItemsPath", "'ItemsPath' must be a reference path (no wildcards, filters or slices), not None"
    )


def test_seconds_path_must_parse() -> None:
    problems = validate(single({"Type": "Wait", "SecondsPath": "delay", "End": True}))
    assert [p.path for p in problems] == ["$.States.A.SecondsPath"]
    assert problems[0].message.startswith("'SecondsPath' must be a reference path (no wildcards, filters or slices): ")


def test_cause_path_must_be_a_path_or_an_intrinsic_call() -> None:
    assert validate(single({"Type": "Fail", "CausePath": "because"})) == problem(
        "$.States.A.CausePath", "the value of 'CausePath' must be a valid JSONPath or a valid intrinsic function call, not 'because'"
    )


# ---------------------------------------------------------------------------------------------
# Payload templates
# ---------------------------------------------------------------------------------------------


def test_a_dollar_field_must_hold_a_path_or_intrinsic() -> None:
    assert validate(single({"Type": "Pass", "Parameters": {"a": {"b.$": "hello"}}, "End": True})) == problem(
        "$.States.A.Parameters.a['b.$']",
        "the value of 'b.$' must be a valid JSONPath or a valid intrinsic function call, not 'hello'",
    )


def test_a_dollar_field_must_hold_a_string() -> None:
    assert validate(single({"Type": "Pass", "Parameters": {"list": [{"n.$": 3}]}, "End": True})) == problem(
        "$.States.A.Parameters.list[0]['n.$']",
        "the value of 'n.$' must be a valid JSONPath or a valid intrinsic function call, not 3",
    )


def test_a_dollar_field_with_a_broken_path_is_refused() -> None:
    problems = validate(single({"Type": "Task", "Resource": "baton:llm", "ResultSelector": {"x.$": "$.a["}, "End": True}))
    assert [p.path for p in problems] == ["$.States.A.ResultSelector['x.$']"]
    assert problems[0].message.startswith("the value of 'x.$' must be a valid JSONPath or a valid intrinsic function call: ")


def test_a_dollar_field_with_a_broken_intrinsic_is_refused() -> None:
    problems = validate(single({"Type": "Pass", "Parameters": {"x.$": "States.Format('a', "}, "End": True}))
    assert [p.path for p in problems] == ["$.States.A.Parameters['x.$']"]
    assert problems[0].message.startswith("the value of 'x.$' must be a valid JSONPath or a valid intrinsic function call: ")


def test_an_intrinsic_with_an_illegal_escape_is_refused() -> None:
    """conformance (ESCAPE_SEQUENCES_ILLEGAL_INTRINSIC_FUNCTION_2): AWS refused `\\"` inside an intrinsic's string."""
    value = "States.Format('He said, \\\"Hello, {}!\\\"', 'Test \\\"Name\\\" Here')"
    problems = validate(single({"Type": "Pass", "Parameters": {"parsed.$": value}, "End": True}))
    assert [p.path for p in problems] == ["$.States.A.Parameters['parsed.$']"]


def test_dollar_fields_clash_once_stripped() -> None:
    """spec, "Payload Template": no duplicate field names after the ".$" suffix is removed."""
    assert validate(single({"Type": "Pass", "Parameters": {"a": 1, "a.$": "$.a"}, "End": True})) == problem(
        "$.States.A.Parameters", "field 'a' appears twice once the '.$' suffix is removed; keep one"
    )


@pytest.mark.parametrize("field", ["Parameters", "ResultSelector"])
def test_payload_templates_must_be_objects(field: str) -> None:
    """spec: "A Payload Template MUST be a JSON object"."""
    state = {"Type": "Task", "Resource": "baton:llm", field: ["x"], "End": True}
    assert validate(single(state)) == problem(f"$.States.A.{field}", f"'{field}' must be a JSON object (a payload template)")


def test_map_item_selector_is_a_payload_template() -> None:
    state = {"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": END}}, "ItemSelector": {"v.$": "item"}, "End": True}
    assert validate(single(state)) == problem(
        "$.States.A.ItemSelector['v.$']", "the value of 'v.$' must be a valid JSONPath or a valid intrinsic function call, not 'item'"
    )


def test_credentials_must_be_an_object() -> None:
    assert validate(single({**TASK, "Credentials": "role"})) == problem("$.States.A.Credentials", "'Credentials' must be a JSON object")


# ---------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["", "llm", "baton: llm", 5, None])
def test_task_resource_must_be_a_uri(resource: Any) -> None:
    assert validate(single({**TASK, "Resource": resource})) == problem(
        "$.States.A.Resource",
        f"'Resource' must be a URI such as 'arn:aws:states:::lambda:invoke' or 'baton:fn:NAME', not {resource!r}",
    )


@pytest.mark.parametrize("field", ["TimeoutSeconds", "HeartbeatSeconds"])
@pytest.mark.parametrize("value", [0, -5, 2.5, "10", 99999999])
def test_task_timeouts_are_positive_integers(field: str, value: Any) -> None:
    """spec, "Timeouts": TimeoutSeconds and HeartbeatSeconds MUST be positive integers (statelint: below 99999999)."""
    assert validate(single({**TASK, field: value})) == problem(
        f"$.States.A.{field}", f"'{field}' must be a positive integer below 99999999, not {value!r}"
    )


def test_task_timeout_and_its_path_are_exclusive() -> None:
    """spec and statelint: not both TimeoutSeconds and TimeoutSecondsPath."""
    assert validate(single({**TASK, "TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t"})) == problem(
        "$.States.A", "a Task state may have 'TimeoutSeconds' or 'TimeoutSecondsPath', not both"
    )


def test_task_heartbeat_and_its_path_are_exclusive() -> None:
    assert validate(single({**TASK, "HeartbeatSeconds": 5, "HeartbeatSecondsPath": "$.h"})) == problem(
        "$.States.A", "a Task state may have 'HeartbeatSeconds' or 'HeartbeatSecondsPath', not both"
    )


@pytest.mark.parametrize("heartbeat", [60, 61])
def test_heartbeat_must_be_smaller_than_timeout(heartbeat: int) -> None:
    """spec: "the HeartbeatSeconds interval MUST be smaller than the TimeoutSeconds value"."""
    assert validate(single({**TASK, "TimeoutSeconds": 60, "HeartbeatSeconds": heartbeat})) == problem(
        "$.States.A.HeartbeatSeconds", f"'HeartbeatSeconds' ({heartbeat}) must be smaller than 'TimeoutSeconds' (60)"
    )


def test_heartbeat_alone_is_not_compared_with_a_default_timeout() -> None:
    """AWS accepted HeartbeatSeconds without TimeoutSeconds (conformance, jsonata category)."""
    assert validate(single({**TASK, "HeartbeatSeconds": 3600})) == []


# ---------------------------------------------------------------------------------------------
# Wait
# ---------------------------------------------------------------------------------------------


def test_wait_needs_a_duration() -> None:
    assert validate(single({"Type": "Wait", "End": True})) == problem(
        "$.States.A", "a Wait state needs exactly one of 'Seconds', 'SecondsPath', 'Timestamp' or 'TimestampPath'; it has none"
    )


def test_wait_takes_only_one_duration() -> None:
    assert validate(single({"Type": "Wait", "Seconds": 5, "TimestampPath": "$.t", "End": True})) == problem(
        "$.States.A",
        "a Wait state needs exactly one of 'Seconds', 'SecondsPath', 'Timestamp' or 'TimestampPath'; it has Seconds, TimestampPath",
    )


@pytest.mark.parametrize("seconds", [-1, 1.5, "5", True, None])
def test_wait_seconds_is_a_non_negative_integer(seconds: Any) -> None:
    assert validate(single({"Type": "Wait", "Seconds": seconds, "End": True})) == problem(
        "$.States.A.Seconds", f"'Seconds' must be a non-negative integer, not {seconds!r}"
    )


@pytest.mark.parametrize(
    "timestamp",
    [
        "2016-13-05T21:29:29Z",  # conformance INVALID_DATE
        "05-12-2016T21:29:29Z",  # conformance INVALID_ISO
        "2016-12-05T25:29:29Z",  # conformance INVALID_TIME
        "2016-12-05T21:29:29",  # conformance NO_Z
        "{% '2016-03-14T01:59:00Z' %}",  # conformance JSONATA: no JSONata in a JSONPath state
        "2016-03-14t01:59:00Z",  # spec: an uppercase "T"
        "2016-03-14T01:59:00z",  # spec: an uppercase "Z"
        "2016-02-30T01:59:00Z",
        "2016-03-14T01:59:00+24:00",
    ],
)
def test_wait_timestamp_must_be_rfc3339(timestamp: str) -> None:
    """conformance: AWS refused each with "String does not match RFC3339 timestamp" at /States/WaitUntil/Timestamp."""
    assert validate(single({"Type": "Wait", "Timestamp": timestamp, "End": True})) == problem(
        "$.States.A.Timestamp", f"'Timestamp' must be an RFC 3339 timestamp such as '2016-03-14T01:59:00Z', not {timestamp!r}"
    )


@pytest.mark.parametrize("timestamp", ["2016-03-14T01:59:00Z", "2016-03-14T01:59:00.5-07:30", "2024-02-29T23:59:59.123456Z"])
def test_wait_timestamp_accepts_rfc3339(timestamp: str) -> None:
    assert validate(single({"Type": "Wait", "Timestamp": timestamp, "End": True})) == []


# ---------------------------------------------------------------------------------------------
# Fail
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("literal", "path"), [("Error", "ErrorPath"), ("Cause", "CausePath")])
def test_fail_literal_and_path_are_exclusive(literal: str, path: str) -> None:
    """spec: "A Fail state MUST NOT include both "Error" and "ErrorPath" or both "Cause" and "CausePath"."""
    assert validate(single({"Type": "Fail", literal: "x", path: "$.x"})) == problem(
        "$.States.A", f"a Fail state may have '{literal}' or '{path}', not both"
    )


def test_fail_error_must_be_a_string() -> None:
    assert validate(single({"Type": "Fail", "Error": 42})) == problem("$.States.A.Error", "'Error' must be a string")


# ---------------------------------------------------------------------------------------------
# Parallel and Map
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("branches", [[], {}, "x"])
def test_parallel_branches_must_be_a_non_empty_array(branches: Any) -> None:
    assert validate(single({"Type": "Parallel", "Branches": branches, "End": True})) == problem(
        "$.States.A.Branches", "'Branches' must be a non-empty array of state machines, each with 'StartAt' and 'States'"
    )


def test_a_branch_is_validated_as_a_state_machine() -> None:
    definition = single({"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": END}}, {"States": {"C": END}}, 7], "End": True})
    assert validate(definition) == [
        Problem("$.States.A.Branches[1]", "'StartAt' is required: the name of the first state of the Parallel branch"),
        Problem("$.States.A.Branches[2]", "a Parallel branch must be a JSON object with 'StartAt' and 'States'"),
    ]


def test_a_branch_cannot_set_its_query_language() -> None:
    branch = {"QueryLanguage": "JSONata", "StartAt": "B", "States": {"B": END}}
    assert validate(single({"Type": "Parallel", "Branches": [branch], "End": True})) == problem(
        "$.States.A.Branches[0].QueryLanguage", "field 'QueryLanguage' is not supported in a Parallel branch; allowed: Comment, StartAt, States"
    )


def test_an_item_processor_cannot_set_its_query_language() -> None:
    """floci (#2968): "Field 'QueryLanguage' is not supported" at /States/M/ItemProcessor."""
    processor = {"QueryLanguage": "JSONata", "StartAt": "B", "States": {"B": END}}
    assert validate(single({"Type": "Map", "ItemProcessor": processor, "End": True})) == problem(
        "$.States.A.ItemProcessor.QueryLanguage",
        "field 'QueryLanguage' is not supported in a Map item processor; allowed: Comment, ProcessorConfig, StartAt, States",
    )


def test_a_retry_inside_a_branch_has_a_nested_path() -> None:
    branch_state = {**TASK, "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": []}]}
    definition = machine({"Fan": {"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": branch_state}}], "End": True}}, start="Fan")
    assert validate(definition) == [
        Problem("$.States.Fan.Branches[0].States.B.Retry[0].ErrorEquals", "'States.ALL' may only appear in the last retrier or catcher"),
        Problem("$.States.Fan.Branches[0].States.B.Retry[1].ErrorEquals", "'ErrorEquals' must be a non-empty array of error names"),
    ]


MAP_PROCESSOR = {"StartAt": "I", "States": {"I": END}}


def test_map_item_processor_and_iterator_are_exclusive() -> None:
    """statelint: map-with-itemprocessor-and-iterator is refused; Iterator is the deprecated name."""
    state = {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "Iterator": {"StartAt": "J", "States": {"J": END}}, "End": True}
    assert validate(single(state)) == problem("$.States.A", "a Map state may have 'ItemProcessor' or 'Iterator', not both")


def test_map_item_selector_and_parameters_are_exclusive() -> None:
    """statelint: map-with-parameters-and-itemselector is refused; Parameters is the deprecated name."""
    state = {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "ItemSelector": {}, "Parameters": {}, "End": True}
    assert validate(single(state)) == problem("$.States.A", "a Map state may have 'ItemSelector' or 'Parameters', not both")


@pytest.mark.parametrize(
    ("field", "path_field"),
    [("MaxConcurrency", "MaxConcurrencyPath"), ("ToleratedFailureCount", "ToleratedFailureCountPath"), ("ToleratedFailurePercentage", "ToleratedFailurePercentagePath")],
)
def test_map_literals_and_their_paths_are_exclusive(field: str, path_field: str) -> None:
    """spec, "Map State": a Map State MUST NOT include both a value and its ...Path."""
    state = {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, field: 1, path_field: "$.x", "End": True}
    assert validate(single(state)) == problem("$.States.A", f"a Map state may have '{field}' or '{path_field}', not both")


@pytest.mark.parametrize(("field", "value"), [("MaxConcurrency", -1), ("MaxConcurrency", 1.5), ("ToleratedFailureCount", -1)])
def test_map_counts_are_non_negative_integers(field: str, value: Any) -> None:
    state = {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, field: value, "End": True}
    assert validate(single(state)) == problem(f"$.States.A.{field}", f"'{field}' must be a non-negative integer, not {value!r}")


@pytest.mark.parametrize("value", [-1, 100.5, "5", True])
def test_map_tolerated_failure_percentage_is_0_to_100(value: Any) -> None:
    state = {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "ToleratedFailurePercentage": value, "End": True}
    assert validate(single(state)) == problem(
        "$.States.A.ToleratedFailurePercentage", f"'ToleratedFailurePercentage' must be a number from 0 to 100, not {value!r}"
    )


def test_map_processor_config_mode() -> None:
    processor = {**MAP_PROCESSOR, "ProcessorConfig": {"Mode": "PARALLEL", "Workers": 3}}
    assert validate(single({"Type": "Map", "ItemProcessor": processor, "End": True})) == [
        Problem("$.States.A.ItemProcessor.ProcessorConfig.Mode", "'Mode' must be one of DISTRIBUTED, INLINE, not 'PARALLEL'"),
        Problem("$.States.A.ItemProcessor.ProcessorConfig.Workers", "field 'Workers' is not supported in 'ProcessorConfig'; allowed: ExecutionType, Mode"),
    ]


def test_map_item_reader_names_a_resource() -> None:
    state = {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "ItemReader": {"ReaderConfig": {}}, "End": True}
    assert validate(single(state)) == problem("$.States.A.ItemReader", "'ItemReader' requires a 'Resource'")


# ---------------------------------------------------------------------------------------------
# Retry and Catch
# ---------------------------------------------------------------------------------------------


def retry(*retriers: Any) -> dict[str, Any]:
    return single({**TASK, "Retry": list(retriers)})


def test_retry_must_be_an_array() -> None:
    assert validate(single({**TASK, "Retry": {"ErrorEquals": ["X"]}})) == problem("$.States.A.Retry", "'Retry' must be an array of retriers")


def test_a_retrier_must_be_an_object() -> None:
    assert validate(retry("States.ALL")) == problem("$.States.A.Retry[0]", "a retrier must be a JSON object with 'ErrorEquals'")


@pytest.mark.parametrize("error_equals", [None, [], "States.ALL"])
def test_error_equals_is_a_non_empty_array(error_equals: Any) -> None:
    """statelint: "should reject empty ErrorEquals clauses"."""
    retrier = {} if error_equals is None else {"ErrorEquals": error_equals}
    assert validate(retry(retrier)) == problem("$.States.A.Retry[0].ErrorEquals", "'ErrorEquals' must be a non-empty array of error names")


def test_error_names_are_strings() -> None:
    assert validate(retry({"ErrorEquals": ["X", 3]})) == problem("$.States.A.Retry[0].ErrorEquals[1]", "an error name must be a string, not 3")


def test_states_all_must_be_alone() -> None:
    """spec, "Retrying after error": States.ALL MUST appear alone in ErrorEquals."""
    assert validate(retry({"ErrorEquals": ["States.Timeout", "States.ALL"]})) == problem(
        "$.States.A.Retry[0].ErrorEquals", "'States.ALL' must appear alone in 'ErrorEquals'"
    )


def test_states_all_must_be_in_the_last_retrier() -> None:
    assert validate(retry({"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]})) == problem(
        "$.States.A.Retry[0].ErrorEquals", "'States.ALL' may only appear in the last retrier or catcher"
    )


def test_reserved_error_names_must_be_defined() -> None:
    """spec, "Error representation": names other than the predefined ones MUST NOT begin with "States."."""
    assert validate(retry({"ErrorEquals": ["States.Oops"]})) == problem(
        "$.States.A.Retry[0].ErrorEquals[0]",
        "'States.Oops' is not an error name Step Functions defines; the 'States.' prefix is reserved (e.g. States.ALL, States.TaskFailed, States.Timeout)",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("IntervalSeconds", 0, "'IntervalSeconds' must be a positive integer below 99999999, not 0"),
        ("MaxAttempts", -1, "'MaxAttempts' must be a non-negative integer below 99999999, not -1"),
        ("BackoffRate", 0.5, "'BackoffRate' must be a number of at least 1.0, not 0.5"),
        ("BackoffRate", "2", "'BackoffRate' must be a number of at least 1.0, not '2'"),
        ("MaxDelaySeconds", 0, "'MaxDelaySeconds' must be a positive integer, not 0"),
        ("JitterStrategy", "RANDOM", "'JitterStrategy' must be 'FULL' or 'NONE', not 'RANDOM'"),
        ("JitterStrategy", ["FULL"], "'JitterStrategy' must be 'FULL' or 'NONE', not ['FULL']"),
    ],
)
def test_retrier_fields(field: str, value: Any, message: str) -> None:
    """spec, "Retrying after error"; statelint tests backoff-with-backoffrate-between-0-and-1 and invalid jitter."""
    assert validate(retry({"ErrorEquals": ["X"], field: value})) == problem(f"$.States.A.Retry[0].{field}", message)


def test_max_attempts_zero_is_legal() -> None:
    """spec: "a MaxAttempts field whose value is 0 is legal"."""
    assert validate(retry({"ErrorEquals": ["X"], "MaxAttempts": 0, "BackoffRate": 1})) == []


def test_unknown_retrier_fields_are_refused() -> None:
    assert validate(retry({"ErrorEquals": ["X"], "Next": "A"})) == problem(
        "$.States.A.Retry[0].Next",
        "field 'Next' is not supported in a retrier; allowed: BackoffRate, Comment, ErrorEquals, IntervalSeconds, JitterStrategy, MaxAttempts, MaxDelaySeconds",
    )


def catch(*catchers: Any, **state: Any) -> dict[str, Any]:
    return machine({"A": {**TASK, "Catch": list(catchers), **state}, "H": END})


def test_catch_must_be_an_array() -> None:
    assert validate(single({**TASK, "Catch": {}})) == problem("$.States.A.Catch", "'Catch' must be an array of catchers")


def test_a_catcher_needs_next() -> None:
    assert validate(catch({"ErrorEquals": ["States.ALL"]})) == [
        Problem("$.States.A.Catch[0]", "a catcher requires 'Next': the state to go to when it matches"),
        Problem("$.States.H", "state 'H' is not reachable from 'StartAt' 'A'; remove it or transition to it"),
    ]


def test_a_catcher_next_must_exist_in_scope() -> None:
    assert validate(catch({"ErrorEquals": ["States.ALL"], "Next": "H"}, {"ErrorEquals": ["X"], "Next": "Nope"})) == [
        Problem("$.States.A.Catch[0].ErrorEquals", "'States.ALL' may only appear in the last retrier or catcher"),
        Problem("$.States.A.Catch[1].Next", "no state named 'Nope' in this scope (a transition cannot enter or leave a Parallel branch or Map processor)"),
    ]


def test_a_catcher_result_path_is_a_reference_path() -> None:
    assert validate(catch({"ErrorEquals": ["X"], "ResultPath": "$.e[*]", "Next": "H"})) == problem(
        "$.States.A.Catch[0].ResultPath",
        "'ResultPath' must be a reference path (no wildcards, filters or slices) or null: '$.e[*]' can select several values",
    )


def test_unknown_catcher_fields_are_refused() -> None:
    assert validate(catch({"ErrorEquals": ["X"], "Default": "H", "Next": "H"})) == problem(
        "$.States.A.Catch[0].Default", "field 'Default' is not supported in a catcher; allowed: Assign, Comment, ErrorEquals, Next, Output, ResultPath"
    )


def test_a_catcher_output_is_jsonata_only() -> None:
    """spec, "JSONata Catchers": Output belongs to JSONata states."""
    assert validate(catch({"ErrorEquals": ["X"], "Output": {}, "Next": "H"})) == problem(
        "$.States.A.Catch[0].Output", "field 'Output' is only supported in JSONata states, and this state's QueryLanguage is JSONPath"
    )


def test_a_catcher_result_path_is_jsonpath_only() -> None:
    assert validate(catch({"ErrorEquals": ["X"], "ResultPath": "$.e", "Next": "H"}, QueryLanguage="JSONata")) == problem(
        "$.States.A.Catch[0].ResultPath", "field 'ResultPath' is only supported in JSONPath states, and this state's QueryLanguage is JSONata"
    )


def test_a_catcher_assign_is_checked() -> None:
    assert validate(catch({"ErrorEquals": ["X"], "Assign": {"bad-name": 1}, "Next": "H"})) == problem(
        "$.States.A.Catch[0].Assign['bad-name']",
        "'bad-name' is not a valid variable name: use a letter or '_' then letters, digits or '_', at most 80 characters, and not the reserved name 'states'",
    )


# ---------------------------------------------------------------------------------------------
# Choice
# ---------------------------------------------------------------------------------------------


def choice_machine(*rules: Any, **state: Any) -> dict[str, Any]:
    return machine({"A": {"Type": "Choice", "Choices": list(rules), **state}, "B": END})


@pytest.mark.parametrize("choices", [[], {}, "x"])
def test_choices_is_a_non_empty_array(choices: Any) -> None:
    definition = machine({"A": {"Type": "Choice", "Choices": choices, "Default": "B"}, "B": END})
    assert validate(definition) == problem("$.States.A.Choices", "'Choices' must be a non-empty array of choice rules")


def test_each_rule_is_checked_by_the_choice_module() -> None:
    problems = validate(choice_machine({"Variable": "$.x", "NumericEquals": "1", "Next": "B"}, {"Variable": "$.x", "IsNull": True}))
    assert [p.path for p in problems] == ["$.States.A.Choices[0].NumericEquals", "$.States.A.Choices[1].Next"]


def test_a_rule_next_must_exist_in_scope() -> None:
    assert validate(choice_machine({"Variable": "$.x", "IsNull": True, "Next": "Nope"}, Default="B")) == problem(
        "$.States.A.Choices[0].Next", "no state named 'Nope' in this scope (a transition cannot enter or leave a Parallel branch or Map processor)"
    )


def test_default_must_exist_in_scope() -> None:
    assert validate(choice_machine({"Variable": "$.x", "IsNull": True, "Next": "B"}, Default="Nope")) == problem(
        "$.States.A.Default", "no state named 'Nope' in this scope (a transition cannot enter or leave a Parallel branch or Map processor)"
    )


def test_default_must_be_a_string() -> None:
    assert validate(choice_machine({"Variable": "$.x", "IsNull": True, "Next": "B"}, Default=["B"])) == problem(
        "$.States.A.Default", "'Default' must be a string naming a state"
    )


def test_a_rule_must_be_an_object() -> None:
    assert validate(choice_machine({"Variable": "$.x", "IsNull": True, "Next": "B"}, "B")) == problem(
        "$.States.A.Choices[1]", "a choice rule must be a JSON object"
    )


def test_a_jsonpath_rule_cannot_have_output_or_condition() -> None:
    problems = validate(choice_machine({"Condition": True, "Output": {}, "Next": "B"}))
    assert Problem("$.States.A.Choices[0].Output", "field 'Output' is only supported in JSONata states, and this state's QueryLanguage is JSONPath") in problems
    assert "$.States.A.Choices[0].Condition" in [p.path for p in problems]


def test_a_rule_assign_is_checked() -> None:
    assert validate(choice_machine({"Variable": "$.x", "IsNull": True, "Assign": {"states": 1}, "Next": "B"})) == problem(
        "$.States.A.Choices[0].Assign.states",
        "'states' is not a valid variable name: use a letter or '_' then letters, digits or '_', at most 80 characters, and not the reserved name 'states'",
    )


def test_a_jsonata_rule_needs_a_condition() -> None:
    """spec, "JSONata Choice Rules": each Choice Rule MUST have a "Condition" field."""
    assert validate(choice_machine({"Next": "B"}, QueryLanguage="JSONata")) == problem(
        "$.States.A.Choices[0]", "a JSONata choice rule requires 'Condition' (true/false or a JSONata expression '{% ... %}')"
    )


def test_a_jsonata_condition_is_a_boolean_or_expression() -> None:
    assert validate(choice_machine({"Condition": "$.x", "Next": "B"}, QueryLanguage="JSONata")) == problem(
        "$.States.A.Choices[0].Condition", "'Condition' must be true/false or a JSONata expression '{% ... %}'"
    )


def test_a_jsonata_rule_cannot_use_jsonpath_operators() -> None:
    assert validate(choice_machine({"Condition": True, "Variable": "$.x", "Next": "B"}, QueryLanguage="JSONata")) == problem(
        "$.States.A.Choices[0].Variable", "field 'Variable' is not supported in a JSONata choice rule; allowed: Assign, Comment, Condition, Next, Output"
    )


def test_a_jsonata_rule_needs_next() -> None:
    definition = machine({"A": {"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [{"Condition": True}], "Default": "B"}, "B": END})
    assert validate(definition) == problem("$.States.A.Choices[0]", "a choice rule in 'Choices' requires 'Next'")


# ---------------------------------------------------------------------------------------------
# Query languages
# ---------------------------------------------------------------------------------------------


def test_a_state_query_language_must_be_known() -> None:
    assert validate(single({"Type": "Succeed", "QueryLanguage": "jsonata"})) == problem(
        "$.States.A.QueryLanguage", "'QueryLanguage' must be 'JSONPath' or 'JSONata', not 'jsonata'"
    )


def test_a_jsonata_machine_cannot_hold_a_jsonpath_state() -> None:
    """conformance (INVALID_DOWNGRADE_QUERY_LANGUAGE): "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine"."""
    definition = single({"Type": "Pass", "End": True, "QueryLanguage": "JSONPath"}, QueryLanguage="JSONata")
    assert validate(definition) == problem(
        "$.States.A.QueryLanguage", "'QueryLanguage' cannot be 'JSONPath' when the whole state machine is set to 'JSONata'"
    )


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"Type": "Pass", "InputPath": "$", "End": True}, "InputPath"),
        ({"Type": "Pass", "Parameters": {}, "End": True}, "Parameters"),
        ({"Type": "Pass", "Result": 1, "End": True}, "Result"),
        ({"Type": "Pass", "ResultPath": "$.x", "End": True}, "ResultPath"),
        ({"Type": "Succeed", "OutputPath": "$"}, "OutputPath"),
        ({**TASK, "ResultSelector": {}}, "ResultSelector"),
        ({**TASK, "TimeoutSecondsPath": "$.t"}, "TimeoutSecondsPath"),
        ({"Type": "Wait", "SecondsPath": "$.s", "End": True}, "SecondsPath"),
        ({"Type": "Fail", "ErrorPath": "$.e"}, "ErrorPath"),
        ({"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "ItemsPath": "$.i", "End": True}, "ItemsPath"),
    ],
)
def test_jsonpath_fields_are_refused_in_jsonata_states(state: dict[str, Any], field: str) -> None:
    """spec, "JSONata Concepts": JSONata states use Arguments/Output, not the five JSONPath fields."""
    definition = single({**state, "QueryLanguage": "JSONata"})
    assert validate(definition) == problem(
        f"$.States.A.{field}", f"field '{field}' is only supported in JSONPath states, and this state's QueryLanguage is JSONata"
    )


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({**TASK, "Arguments": {}}, "Arguments"),
        ({"Type": "Pass", "Output": {}, "End": True}, "Output"),
        ({"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "Items": [1], "End": True}, "Items"),
    ],
)
def test_jsonata_fields_are_refused_in_jsonpath_states(state: dict[str, Any], field: str) -> None:
    """floci (#2968): "The QueryLanguage is set to 'JSONPath', but field 'Output' is only supported for the 'JSONata' QueryLanguage"."""
    assert validate(single(state)) == problem(
        f"$.States.A.{field}", f"field '{field}' is only supported in JSONata states, and this state's QueryLanguage is JSONPath"
    )


def test_nested_states_inherit_the_machine_language_not_the_map_state_language() -> None:
    """floci (#2968): a JSONata Map in a JSONPath machine leaves its ItemProcessor's states JSONPath."""
    processor = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": 1, "End": True}}}
    definition = single({"Type": "Map", "QueryLanguage": "JSONata", "Items": [1], "ItemProcessor": processor, "End": True})
    assert validate(definition) == problem(
        "$.States.A.ItemProcessor.States.P.Output",
        "field 'Output' is only supported in JSONata states, and this state's QueryLanguage is JSONPath",
    )


@pytest.mark.parametrize(
    ("state", "field", "message"),
    [
        ({**TASK, "TimeoutSeconds": "{% $t %}"}, "TimeoutSeconds", "'TimeoutSeconds' must be a positive integer below 99999999, not '{% $t %}'"),
        ({"Type": "Wait", "Seconds": "{% $s %}", "End": True}, "Seconds", "'Seconds' must be a non-negative integer, not '{% $s %}'"),
    ],
)
def test_jsonata_expressions_are_refused_in_jsonpath_states(state: dict[str, Any], field: str, message: str) -> None:
    assert validate(single(state)) == problem(f"$.States.A.{field}", message)


def test_a_jsonata_state_says_expressions_are_allowed() -> None:
    state = {**TASK, "TimeoutSeconds": "60", "QueryLanguage": "JSONata"}
    assert validate(single(state)) == problem(
        "$.States.A.TimeoutSeconds",
        "'TimeoutSeconds' must be a positive integer below 99999999 or a JSONata expression '{% ... %}', not '60'",
    )


def test_jsonata_items_is_an_array_or_expression() -> None:
    state = {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "Items": "$.items", "End": True}
    assert validate(single(state, QueryLanguage="JSONata")) == problem(
        "$.States.A.Items", "'Items' must be a JSON array or a JSONata expression '{% ... %}'"
    )


# ---------------------------------------------------------------------------------------------
# Assign and variable names
# ---------------------------------------------------------------------------------------------

BAD_NAME = "is not a valid variable name: use a letter or '_' then letters, digits or '_', at most 80 characters, and not the reserved name 'states'"


@pytest.mark.parametrize(
    "state",
    [
        {"Type": "Pass", "End": True},
        {"Type": "Wait", "Seconds": 1, "End": True},
        {**TASK},
        {"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": END}}], "End": True},
        {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "End": True},
    ],
    ids=lambda state: str(state["Type"]),
)
def test_assign_is_allowed_on_these_states(state: dict[str, Any]) -> None:
    """spec, "Assigning State Machine Variables": any state except Succeed and Fail MAY have Assign."""
    assert validate(single({**state, "Assign": {"x": 1, "é_ß9": "unicode"}})) == []


def test_assign_must_be_an_object() -> None:
    assert validate(single({"Type": "Pass", "Assign": ["x"], "End": True})) == problem(
        "$.States.A.Assign", "'Assign' must be a JSON object mapping variable names to values"
    )


@pytest.mark.parametrize("name", ["1st", "with-dash", "with space", "states", "x" * 81, ""])
def test_variable_names_are_identifiers(name: str) -> None:
    """spec, "State Machine Variables": a Unicode identifier (UAX #31), at most 80 characters, never "states"."""
    problems = validate(single({"Type": "Pass", "Assign": {name: 1}, "End": True}))
    assert problems == [Problem(problems[0].path, f"{name!r} {BAD_NAME}")]


def test_a_jsonpath_assign_dollar_key_takes_a_path() -> None:
    assert validate(single({"Type": "Pass", "Assign": {"total.$": "total"}, "End": True})) == problem(
        "$.States.A.Assign['total.$']", "the value of 'total.$' must be a valid JSONPath or a valid intrinsic function call, not 'total'"
    )


def test_a_jsonata_assign_has_no_dollar_keys() -> None:
    definition = single({"Type": "Pass", "QueryLanguage": "JSONata", "Assign": {"total.$": "$.total"}, "End": True})
    assert validate(definition) == problem("$.States.A.Assign['total.$']", f"'total.$' {BAD_NAME}")


# ---------------------------------------------------------------------------------------------
# Every fault, not just the first
# ---------------------------------------------------------------------------------------------


def test_every_fault_is_reported() -> None:
    definition = machine(
        {
            "A": {"Type": "Task", "Resource": "llm", "Next": "Missing", "Retry": [{"ErrorEquals": []}]},
            "B": {"Type": "Wait", "End": True},
            "C": {"Type": "Pass", "Result": 1, "Unknown": True, "End": True},
        },
        Version="0.9",
    )
    assert [p.path for p in validate(definition)] == [
        "$.Version",
        "$.States.A.Resource",
        "$.States.A.Retry[0].ErrorEquals",
        "$.States.B",
        "$.States.C.Unknown",
        "$.States.A.Next",
        "$.States.B",
        "$.States.C",
    ]


# ---------------------------------------------------------------------------------------------
# JSONata expressions: they parse, are delimited, and read $states only where it is provided
# ---------------------------------------------------------------------------------------------

NOT_AN_EXPRESSION = (
    "is not a JSONata expression: an expression must start with '{%' and end with '%}' (no spaces outside them); "
    "to keep it as a literal string, do not open or close it with them"
)
RESULT_NOT_HERE = (
    "$states.result is not available here: only the Output and Assign of a Task, Parallel or Map state can read the result"
)
ERROR_OUTPUT_NOT_HERE = "$states.errorOutput is not available here: only a Catcher's Output and Assign can read it"


def jsonata_single(state: dict[str, Any]) -> dict[str, Any]:
    return single(state, QueryLanguage="JSONata")


@pytest.mark.parametrize(
    ("state", "path", "message"),
    [
        ({"Type": "Pass", "Output": {"a": [1, "{% $x + %}"]}, "End": True}, "$.States.A.Output.a[1]",
         "the JSONata expression '$x +' does not parse: S0207: Unexpected end of expression"),
        ({**TASK, "Arguments": {"q": "{% $states.input[ %}"}}, "$.States.A.Arguments.q",
         """the JSONata expression '$states.input[' does not parse: S0203: Expected "]" before end of expression"""),
        ({"Type": "Pass", "Assign": {"v": "{% 1 +* 2 %}"}, "End": True}, "$.States.A.Assign.v", None),
        ({**TASK, "TimeoutSeconds": "{% $t + %}"}, "$.States.A.TimeoutSeconds", None),
        ({"Type": "Wait", "Seconds": "{% ) %}", "End": True}, "$.States.A.Seconds", None),
        ({"Type": "Fail", "Error": "{% 'a' & %}"}, "$.States.A.Error", None),
        ({"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "Items": "{% [1, %}", "End": True}, "$.States.A.Items", None),
    ],
)
def test_jsonata_expressions_must_parse(state: dict[str, Any], path: str, message: str | None) -> None:
    """Expressions are parsed when the definition is validated, and the fault has its JSON path."""
    problems = validate(jsonata_single(state))
    assert [p.path for p in problems] == [path]
    if message is not None:
        assert problems[0].message == message
    else:
        assert "does not parse: S0" in problems[0].message


def test_a_condition_expression_must_parse() -> None:
    definition = choice_machine({"Condition": "{% $states.input.x = %}", "Next": "B"}, QueryLanguage="JSONata")
    assert [p.path for p in validate(definition)] == ["$.States.A.Choices[0].Condition"]


def test_a_catcher_expression_must_parse() -> None:
    catcher = {"ErrorEquals": ["States.ALL"], "Output": {"e": "{% $states.errorOutput. %}"}, "Next": "H"}
    definition = machine({"A": {**TASK, "Catch": [catcher]}, "H": END}, QueryLanguage="JSONata")
    assert [p.path for p in validate(definition)] == ["$.States.A.Catch[0].Output.e"]


@pytest.mark.parametrize("value", ["{% $states.input", "$states.input %}", "{%%"])
def test_a_half_delimited_expression_is_refused(value: str) -> None:
    """AWS guide, "Transforming data with JSONata": an expression starts with `{%` with no leading
    spaces and ends with `%}` with no trailing spaces; improperly opening or closing it is a
    validation error."""
    assert validate(jsonata_single({"Type": "Pass", "Output": {"x": value}, "End": True})) == problem(
        "$.States.A.Output.x", f"{value!r} {NOT_AN_EXPRESSION}"
    )


def test_strings_that_only_contain_delimiters_are_literals() -> None:
    """[recorded] jsonata/test_output_test_base_cases_BASE_LITERALS: AWS accepted and copied
    " {% states.input %} " (spaces outside the delimiters) as a literal string."""
    output = {"a": " {% states.input %} ", "b": "100 % sure", "c": "a {% b %} c"}
    assert validate(jsonata_single({"Type": "Pass", "Output": output, "End": True})) == []


def test_jsonpath_states_do_not_parse_jsonata() -> None:
    """In a JSONPath state `{% ... %}` is an ordinary string ([recorded] variables_assign
    BASE_CONSTANT_LITERALS assigns "{% $varname.varfield %}" as a string)."""
    state = {"Type": "Pass", "Parameters": {"a": "{% not jsonata", "b": "{% 1 + %}"}, "Assign": {"c": "{% ( %}"}, "End": True}
    assert validate(single(state)) == []


@pytest.mark.parametrize("kind", ["Task", "Parallel", "Map"])
@pytest.mark.parametrize("field", ["Output", "Assign"])
def test_result_is_available_in_output_and_assign_of_states_with_a_result(kind: str, field: str) -> None:
    """AWS guide, "Passing data between states with variables" ($states): result in Task,
    Parallel and Map states, in Output and Assign."""
    bodies: dict[str, dict[str, Any]] = {
        "Task": {**TASK},
        "Parallel": {"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": END}}], "End": True},
        "Map": {"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "End": True},
    }
    state = {**bodies[kind], field: {"r": "{% $states.result %}"}}
    assert validate(jsonata_single(state)) == []


@pytest.mark.parametrize(
    ("state", "path"),
    [
        ({**TASK, "Arguments": {"r": "{% $states.result %}"}}, "$.States.A.Arguments.r"),
        ({"Type": "Pass", "Output": "{% $states.result %}", "End": True}, "$.States.A.Output"),
        ({"Type": "Wait", "Seconds": 1, "Assign": {"r": "{% $states.result.x %}"}, "End": True}, "$.States.A.Assign.r"),
        ({"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "Items": "{% $states.result %}", "End": True}, "$.States.A.Items"),
        ({"Type": "Map", "ItemProcessor": MAP_PROCESSOR, "ItemSelector": {"r": "{% $states.result %}"}, "End": True},
         "$.States.A.ItemSelector.r"),
        ({**TASK, "TimeoutSeconds": "{% $states.result.t %}"}, "$.States.A.TimeoutSeconds"),
        ({"Type": "Succeed", "Output": "{% $states.result %}"}, "$.States.A.Output"),
    ],
)
def test_result_is_refused_elsewhere(state: dict[str, Any], path: str) -> None:
    """AWS guide: accessing $states.result "in fields and states where they are not accessible
    will be caught at creation, update, or validation of the state machine"."""
    assert validate(jsonata_single(state)) == problem(path, RESULT_NOT_HERE)


def test_result_is_refused_in_a_choice_rule() -> None:
    rule = {"Condition": "{% $states.result = 1 %}", "Assign": {"r": "{% $states.result %}"}, "Next": "B"}
    assert validate(choice_machine(rule, QueryLanguage="JSONata")) == [
        Problem("$.States.A.Choices[0].Condition", RESULT_NOT_HERE),
        Problem("$.States.A.Choices[0].Assign.r", RESULT_NOT_HERE),
    ]


def test_error_output_only_in_a_catcher() -> None:
    catcher = {"ErrorEquals": ["States.ALL"], "Next": "H",
               "Output": {"e": "{% $states.errorOutput %}"}, "Assign": {"e": "{% $states.errorOutput.Cause %}"}}
    definition = machine({"A": {**TASK, "Catch": [catcher]}, "H": END}, QueryLanguage="JSONata")
    assert validate(definition) == []
    definition["States"]["A"]["Output"] = {"e": "{% $states.errorOutput %}"}
    assert validate(definition) == problem("$.States.A.Output.e", ERROR_OUTPUT_NOT_HERE)


def test_a_catcher_cannot_read_the_result() -> None:
    catcher = {"ErrorEquals": ["States.ALL"], "Next": "H", "Output": "{% $states.result %}"}
    definition = machine({"A": {**TASK, "Catch": [catcher]}, "H": END}, QueryLanguage="JSONata")
    assert validate(definition) == problem("$.States.A.Catch[0].Output", RESULT_NOT_HERE)


def test_a_result_inside_a_string_literal_is_not_a_reference() -> None:
    assert validate(jsonata_single({**TASK, "Arguments": "{% 'see $states.result' %}"})) == []


def test_jsonata_faults_in_nested_scopes_have_nested_paths() -> None:
    branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "Output": "{% $states.result %}", "End": True}}}
    definition = single({"Type": "Parallel", "Branches": [branch], "End": True}, QueryLanguage="JSONata")
    assert validate(definition) == problem("$.States.A.Branches[0].States.B.Output", RESULT_NOT_HERE)


def test_a_variable_may_share_its_name_with_an_outer_scope_variable() -> None:
    """[recorded] error_handling/..._PARALLEL_CATCH_ERROR_VARIABLE_SAMPLING: AWS ran a definition
    whose branch and whose Parallel's Catcher both assign `inputVar`; the rule that an inner scope
    cannot assign an outer variable is enforced when it happens (see test_variables), not here."""
    branch = {"StartAt": "B", "States": {"B": {**TASK, "Assign": {"inputVar": "{% $states.input %}"}}}}
    catcher = {"ErrorEquals": ["States.ALL"], "Assign": {"inputVar": "{% $states.input %}"}, "Next": "H"}
    definition = machine({"A": {"Type": "Parallel", "Branches": [branch], "Catch": [catcher], "End": True}, "H": END},
                         QueryLanguage="JSONata")
    assert validate(definition) == []
