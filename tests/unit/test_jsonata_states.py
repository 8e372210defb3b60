"""JSONata states in the decider: QueryLanguage, every field that takes an expression, `$states`.

Each test drives `decide` through the harness (no runner). "[recorded]" marks behaviour taken
from an AWS-recorded conformance case (LocalStack's snapshot suite, the name follows); "AWS guide"
cites the Step Functions developer guide pages "Transforming data with JSONata in Step Functions"
and "Passing data between states with variables".
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.conftest import EXECUTION_ARN, EXECUTION_NAME, MACHINE_ARN, MACHINE_NAME, Err, Harness, Ok, run, single, task_state
from orchestrator.asl.errors import DefinitionError

JSONATA = {"QueryLanguage": "JSONata"}
START = "2024-06-01T12:00:00.000Z"  # the harness's T0 as the context prints it


def jsonata(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", "StartAt": start or next(iter(states)), "States": states}


def where(state: str, event_id: int = 2) -> str:
    return f"An error occurred while executing the state '{state}' (entered at the event id #{event_id}). "


# ---------------------------------------------------------------------------------------------
# QueryLanguage: top level, per state, and what may be mixed
# ---------------------------------------------------------------------------------------------


class TestQueryLanguage:
    def test_the_default_is_jsonpath(self) -> None:
        """AWS guide: JSONPath unless QueryLanguage says otherwise; `{% %}` is then a plain string."""
        h = run(single({"Type": "Pass", "Parameters": {"x": "{% 1 + 1 %}", "y.$": "$.a"}}), {"a": 1})
        assert h.output == {"x": "{% 1 + 1 %}", "y": 1}

    def test_a_jsonata_machine_evaluates_expressions(self) -> None:
        h = run(jsonata({"P": {"Type": "Pass", "Output": {"x": "{% 1 + 1 %}"}, "End": True}}))
        assert h.output == {"x": 2}

    def test_a_jsonata_state_inside_a_jsonpath_machine(self) -> None:
        """[recorded] jsonata/test_mixed_query_language ... JSONPATH_OUTPUT_TO_JSONATA: each state
        uses its own language; the output of one is the input of the next."""
        definition = {
            "StartAt": "Path",
            "States": {
                "Path": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "Next": "Ata"},
                "Ata": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": {"double": "{% $states.input.n * 2 %}"},
                        "Next": "PathAgain"},
                "PathAgain": {"Type": "Pass", "ResultPath": "$.copy", "End": True},
            },
        }
        assert run(definition, {"n": 21}).output == {"double": 42, "copy": {"double": 42}}

    def test_a_jsonpath_state_inside_a_jsonata_machine_is_refused(self) -> None:
        """[recorded] validation/..._INVALID_DOWNGRADE_QUERY: "'QueryLanguage' can not be 'JSONPath'
        if set to 'JSONata' for whole state machine"."""
        with pytest.raises(DefinitionError, match="cannot be 'JSONPath' when the whole state machine"):
            Harness(jsonata({"P": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": True}}))

    def test_states_in_a_jsonata_map_keep_the_machine_language(self) -> None:
        """floci-io/floci#2968 (measured on AWS): an ItemProcessor inherits the machine's language,
        not its Map state's, so a JSONata Map in a JSONPath machine runs JSONPath iterations."""
        processor = {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "Parameters": {"v.$": "$"}, "End": True}}}
        definition = single({"Type": "Map", "QueryLanguage": "JSONata", "Items": "{% $states.input.xs %}",
                             "ItemProcessor": processor})
        assert run(definition, {"xs": [1, 2]}).output == [{"v": 1}, {"v": 2}]


# ---------------------------------------------------------------------------------------------
# Arguments and Output
# ---------------------------------------------------------------------------------------------


class TestArgumentsAndOutput:
    def test_task_arguments_are_the_task_parameters(self) -> None:
        h = Harness(jsonata({"T": task_state(Arguments={"q": "{% $uppercase($states.input.q) %}", "n": 3})}))
        h.start({"q": "why"})
        assert h.only_task().parameters == {"q": "WHY", "n": 3}

    def test_without_arguments_the_task_gets_its_input(self) -> None:
        h = Harness(jsonata({"T": task_state()}))
        h.start({"q": "why"})
        assert h.only_task().parameters == {"q": "why"}

    def test_arguments_may_be_one_expression(self) -> None:
        h = Harness(jsonata({"T": task_state(Arguments="{% $states.input.items[0] %}")}))
        h.start({"items": [{"a": 1}]})
        assert h.only_task().parameters == {"a": 1}

    def test_parallel_arguments_are_every_branch_input(self) -> None:
        branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}}
        other = {"StartAt": "C", "States": {"C": {"Type": "Pass", "Output": "{% $states.input.n + 1 %}", "End": True}}}
        definition = jsonata({"Par": {"Type": "Parallel", "Arguments": {"n": "{% $states.input.x %}"},
                                      "Branches": [branch, other], "End": True}})
        assert run(definition, {"x": 1, "ignored": True}).output == [{"n": 1}, 2]

    def test_a_task_outputs_its_result_by_default(self) -> None:
        """AWS guide: without Output, a Task/Parallel/Map outputs its result, other states their input."""
        h = run(jsonata({"T": task_state()}), {"q": 1}, {"T": Ok({"answer": 42})})
        assert h.output == {"answer": 42}

    def test_output_sees_input_and_result(self) -> None:
        definition = jsonata({"T": task_state(Output={"q": "{% $states.input.q %}", "a": "{% $states.result.answer %}"})})
        assert run(definition, {"q": "why"}, {"T": Ok({"answer": 42})}).output == {"q": "why", "a": 42}

    @pytest.mark.parametrize("output", [None, 1.5, "text", [1, {"x": "{% 1 %}"}], "{% [] %}"])
    def test_output_may_be_any_json(self, output: Any) -> None:
        """[recorded] jsonata/test_output_test_base_output_any_non_dict_*: null, numbers, strings, arrays."""
        expected = [1, {"x": 1}] if isinstance(output, list) else [] if output == "{% [] %}" else output
        assert run(jsonata({"P": {"Type": "Pass", "Output": output, "End": True}})).output == expected

    def test_strings_that_are_not_whole_expressions_are_literals(self) -> None:
        """[recorded] jsonata/test_output_test_base_cases_BASE_LITERALS: `" {% x %} "`, `$.a` and
        intrinsic calls are copied as they are in a JSONata state."""
        output = {"a": " {% states.input %} ", "b": "$.a", "c": "States.Format('{}', 1)"}
        assert run(jsonata({"P": {"Type": "Pass", "Output": output, "End": True}}), {"a": 1}).output == output

    def test_succeed_output(self) -> None:
        definition = jsonata({"S": {"Type": "Succeed", "Output": {"done": "{% $states.input.n %}"}}})
        assert run(definition, {"n": 1}).output == {"done": 1}

    def test_output_in_a_choice_rule(self) -> None:
        """[recorded] jsonata/test_output_test_output_in_choice_CONDITION_TRUE: the matched rule's Output."""
        definition = jsonata({
            "C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.n > 0 %}", "Output": {"sign": "+"},
                                                   "Next": "E"}], "Default": "E"},
            "E": {"Type": "Succeed"},
        })
        assert run(definition, {"n": 1}).output == {"sign": "+"}
        assert run(definition, {"n": -1}).output == {"n": -1}


# ---------------------------------------------------------------------------------------------
# Choice Condition
# ---------------------------------------------------------------------------------------------


def choice_machine(condition: Any) -> dict[str, Any]:
    return jsonata({
        "C": {"Type": "Choice", "Choices": [{"Condition": condition, "Next": "Yes"}], "Default": "No"},
        "Yes": {"Type": "Pass", "Output": "yes", "End": True},
        "No": {"Type": "Pass", "Output": "no", "End": True},
    })


class TestCondition:
    @pytest.mark.parametrize(("condition", "expected"), [(True, "yes"), (False, "no")])
    def test_a_literal_boolean(self, condition: bool, expected: str) -> None:
        assert run(choice_machine(condition)).output == expected

    @pytest.mark.parametrize(("value", "expected"), [(5, "yes"), (1, "no")])
    def test_an_expression(self, value: int, expected: str) -> None:
        assert run(choice_machine("{% $states.input.v > 2 %}"), {"v": value}).output == expected

    def test_a_missing_field_compares_false(self) -> None:
        """JSONata: a comparison with an undefined operand is false (no IsPresent needed)."""
        assert run(choice_machine("{% $states.input.absent = true %}"), {}).output == "no"

    def test_a_condition_must_be_boolean(self) -> None:
        """[recorded] choice_operators (JSONata): the Condition's result type is checked."""
        h = run(choice_machine("{% $states.input.v %}"), {"v": 3})
        assert (h.status, h.finished.error) == ("FAILED", "States.QueryEvaluationError")
        assert h.finished.cause == where("C") + (
            "The JSONata expression '$states.input.v' specified for the field 'Condition' returned an unexpected "
            "result type. Expected 'boolean', but was 'number' for value: 3"
        )


# ---------------------------------------------------------------------------------------------
# Map: Items, ItemSelector, MaxConcurrency, tolerated failures
# ---------------------------------------------------------------------------------------------

ECHO_PROCESSOR = {"StartAt": "Work", "States": {"Work": task_state()}}


class TestMap:
    def test_items_expression(self) -> None:
        definition = jsonata({"M": {"Type": "Map", "Items": "{% $states.input.docs[ok] %}",
                                    "ItemProcessor": ECHO_PROCESSOR, "End": True}})
        docs = [{"id": 1, "ok": True}, {"id": 2, "ok": False}, {"id": 3, "ok": True}]
        assert run(definition, {"docs": docs}).output == [docs[0], docs[2]]

    def test_items_literal_array_with_expressions(self) -> None:
        definition = jsonata({"M": {"Type": "Map", "Items": [1, "{% $states.input.n %}"],
                                    "ItemProcessor": ECHO_PROCESSOR, "End": True}})
        assert run(definition, {"n": 2}).output == [1, 2]

    def test_without_items_the_input_must_be_an_array(self) -> None:
        definition = jsonata({"M": {"Type": "Map", "ItemProcessor": ECHO_PROCESSOR, "End": True}})
        assert run(definition, ["a", "b"]).output == ["a", "b"]
        h = run(definition, {"a": 1})
        assert (h.status, h.finished.error) == ("FAILED", "States.QueryEvaluationError")

    def test_items_must_be_an_array(self) -> None:
        """[recorded] jsonata/test_base_evaluate_expressions_..._ITEMS: the result type is checked."""
        definition = jsonata({"M": {"Type": "Map", "Items": "{% $states.input.n %}", "ItemProcessor": ECHO_PROCESSOR,
                                    "End": True}})
        h = run(definition, {"n": 1})
        assert h.finished.cause == where("M") + (
            "The JSONata expression '$states.input.n' specified for the field 'Items' returned an unexpected "
            "result type. Expected 'array', but was 'number' for value: 1"
        )

    def test_item_selector_sees_the_item_in_the_context(self) -> None:
        """AWS guide: `$states.context.Map.Item.Index` / `.Value` in ItemSelector; `$states.input` is
        the Map state's input."""
        definition = jsonata({"M": {
            "Type": "Map", "Items": "{% $states.input.words %}",
            "ItemSelector": {"i": "{% $states.context.Map.Item.Index %}", "word": "{% $states.context.Map.Item.Value %}",
                             "lang": "{% $states.input.lang %}"},
            "ItemProcessor": ECHO_PROCESSOR, "End": True}})
        assert run(definition, {"words": ["a", "b"], "lang": "en"}).output == [
            {"i": 0, "word": "a", "lang": "en"}, {"i": 1, "word": "b", "lang": "en"},
        ]

    def test_max_concurrency_expression(self) -> None:
        """[recorded] jsonata/test_base_evaluate_expressions_test_base_map_MAX_CONCURRENCY."""
        definition = jsonata({"M": {"Type": "Map", "Items": [1, 2, 3, 4], "MaxConcurrency": "{% $states.input.c %}",
                                    "ItemProcessor": ECHO_PROCESSOR, "End": True}})
        h = Harness(definition)
        h.start({"c": 2})
        assert len(h.pending()) == 2
        h.run_to_end()
        assert h.output == [1, 2, 3, 4]

    @pytest.mark.parametrize(
        ("field", "value", "status"),
        [
            ("ToleratedFailureCount", "{% $states.input.t %}", "SUCCEEDED"),
            ("ToleratedFailurePercentage", "{% $states.input.t * 50 %}", "SUCCEEDED"),
            ("ToleratedFailureCount", "{% $states.input.t - 1 %}", "FAILED"),
        ],
    )
    def test_tolerated_failures_expressions(self, field: str, value: str, status: str) -> None:
        """[recorded] jsonata/test_base_evaluate_expressions_..._TOLERATED_FAILURE_COUNT/_PERCENTAGE."""
        definition = jsonata({"M": {"Type": "Map", "Items": [1, 2], field: value, "ItemProcessor": ECHO_PROCESSOR,
                                    "End": True}})
        h = run(definition, {"t": 1}, lambda task: Err("Boom") if task.parameters == 1 else Ok(task.parameters))
        assert h.status == status


# ---------------------------------------------------------------------------------------------
# Fail, Wait, Task timeouts
# ---------------------------------------------------------------------------------------------


class TestFail:
    def test_error_and_cause_expressions(self) -> None:
        definition = jsonata({"F": {"Type": "Fail", "Error": "{% 'Review.' & $states.input.kind %}",
                                    "Cause": "{% $string($states.input.score) & ' is too low' %}"}})
        h = run(definition, {"kind": "Rejected", "score": 2})
        assert (h.status, h.finished.error, h.finished.cause) == ("FAILED", "Review.Rejected", "2 is too low")

    def test_error_must_be_a_string(self) -> None:
        h = run(jsonata({"F": {"Type": "Fail", "Error": "{% 42 %}"}}))
        assert (h.finished.error, h.finished.cause) == (
            "States.QueryEvaluationError", where("F") + "The Error of a Fail state must be a string, not 42",
        )


class TestWait:
    def test_seconds_expression(self) -> None:
        definition = jsonata({"W": {"Type": "Wait", "Seconds": "{% $states.input.delay * 2 %}", "End": True}})
        h = Harness(definition)
        h.start({"delay": 5})
        timer = h.next_timer()
        assert timer is not None and timer[1] - h.now.timestamp() == 10
        h.run_to_end()
        assert h.output == {"delay": 5}

    def test_timestamp_expression(self) -> None:
        definition = jsonata({"W": {"Type": "Wait", "Timestamp": "{% $states.input.at %}", "End": True}})
        h = Harness(definition)
        h.start({"at": "2024-06-01T12:01:00Z"})
        timer = h.next_timer()
        assert timer is not None and timer[1] - h.now.timestamp() == 60

    @pytest.mark.parametrize(
        ("field", "value", "cause"),
        [
            ("Seconds", "{% -1 %}", "The Seconds field must be a non-negative integer, not -1"),
            ("Timestamp", "{% 'soon' %}", "The Timestamp field cannot be parsed as an ISO-8601 extended offset "
                                           "date-time format string: soon"),
        ],
    )
    def test_bad_values_are_query_evaluation_errors(self, field: str, value: str, cause: str) -> None:
        h = run(jsonata({"W": {"Type": "Wait", field: value, "End": True}}))
        assert (h.finished.error, h.finished.cause) == ("States.QueryEvaluationError", where("W") + cause)


class TestTaskTimeouts:
    def test_timeout_and_heartbeat_expressions(self) -> None:
        """[recorded] jsonata/test_base_evaluate_expressions_..._TIMEOUT_SECONDS / _HEARTBEAT_SECONDS."""
        definition = jsonata({"T": task_state(TimeoutSeconds="{% $states.input.t %}",
                                              HeartbeatSeconds="{% $states.input.t / 2 %}")})
        h = Harness(definition)
        h.start({"t": 60})
        task = h.only_task()
        assert (task.timeout_seconds, task.heartbeat_seconds) == (60, 30)

    def test_a_timeout_must_be_positive(self) -> None:
        h = run(jsonata({"T": task_state(TimeoutSeconds="{% 0 %}")}))
        assert (h.finished.error, h.finished.cause) == (
            "States.QueryEvaluationError", where("T") + "The TimeoutSeconds field must be a positive integer, not 0",
        )


# ---------------------------------------------------------------------------------------------
# $states: input, result, errorOutput, context
# ---------------------------------------------------------------------------------------------


class TestStatesVariable:
    def test_input_is_the_raw_state_input_everywhere(self) -> None:
        """AWS guide: `$states.input` always refers to the original state input, also in Output."""
        definition = jsonata({"T": task_state(Arguments={"only": "part"}, Output="{% $states.input %}")})
        assert run(definition, {"whole": 1}).output == {"whole": 1}

    def test_result_is_the_task_result(self) -> None:
        definition = jsonata({"T": task_state(Output="{% $states.result.Payload %}")})
        assert run(definition, {}, {"T": Ok({"Payload": [1]})}).output == [1]

    def test_result_of_parallel_and_map_is_their_array(self) -> None:
        one = {"StartAt": "B", "States": {"B": {"Type": "Pass", "Output": 1, "End": True}}}
        other = {"StartAt": "C", "States": {"C": {"Type": "Pass", "Output": 1, "End": True}}}
        definition = jsonata({
            "Par": {"Type": "Parallel", "Branches": [one, other], "Output": "{% $sum($states.result) %}",
                    "Next": "M"},
            "M": {"Type": "Map", "Items": "{% [$states.input, 3] %}", "ItemProcessor": ECHO_PROCESSOR,
                  "Output": "{% $states.result %}", "End": True},
        })
        assert run(definition).output == [2, 3]

    def test_result_is_not_available_in_arguments(self) -> None:
        """AWS guide: `$states.result` only in Output/Assign of Task/Parallel/Map; validation refuses
        it elsewhere (see test_validate), and an unvalidated machine finds it undefined."""
        with pytest.raises(DefinitionError, match=r"\$states.result is not available here"):
            Harness(jsonata({"T": task_state(Arguments="{% $states.result %}")}))

    def test_error_output_in_a_catcher(self) -> None:
        catcher = {"ErrorEquals": ["States.ALL"], "Output": {"error": "{% $states.errorOutput %}",
                                                             "input": "{% $states.input %}"}, "Next": "Handled"}
        definition = jsonata({"T": task_state(Catch=[catcher]), "Handled": {"Type": "Succeed"}})
        h = run(definition, {"q": 1}, {"T": Err("Model.Overloaded", "busy")})
        assert h.output == {"error": {"Error": "Model.Overloaded", "Cause": "busy"}, "input": {"q": 1}}

    def test_a_catcher_without_output_outputs_the_error_output(self) -> None:
        """spec, "JSONata Catchers": without Output, the error output is the state's output."""
        catcher = {"ErrorEquals": ["States.ALL"], "Next": "Handled"}
        definition = jsonata({"T": task_state(Catch=[catcher]), "Handled": {"Type": "Succeed"}})
        assert run(definition, {"q": 1}, {"T": Err("E")}).output == {"Error": "E"}

    def test_context(self) -> None:
        """AWS guide, "Accessing execution data from the Context object": Execution, State, StateMachine."""
        definition = jsonata({"P": {"Type": "Pass", "Output": "{% $states.context %}", "End": True}})
        assert run(definition, {"a": 1}).output == {
            "Execution": {"Id": EXECUTION_ARN, "Input": {"a": 1}, "StartTime": START, "Name": EXECUTION_NAME,
                          "RoleArn": "arn:baton:iam::local:role/baton", "RedriveCount": 0},
            "StateMachine": {"Id": MACHINE_ARN, "Name": MACHINE_NAME},
            "State": {"EnteredTime": START, "Name": "P"},
        }

    def test_context_of_a_task_has_its_retry_count(self) -> None:
        definition = jsonata({"T": task_state(Arguments="{% $states.context.State.RetryCount %}",
                                              Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}])})
        h = run(definition, {}, {"T": [Err(), Err(), Ok()]})
        assert [task.parameters for task in h.all_tasks] == [0, 1, 2]

    def test_context_task_token_of_a_callback_task(self) -> None:
        definition = jsonata({"T": task_state("baton:review.waitForTaskToken",
                                              Arguments={"token": "{% $states.context.Task.Token %}"})})
        h = Harness(definition, task_token=lambda task_id: f"signed:{task_id}")
        h.start({})
        task = h.only_task()
        assert task.parameters == {"token": task.task_token} and task.task_token.startswith("signed:")

    def test_context_has_no_task_token_otherwise(self) -> None:
        definition = jsonata({"T": task_state(Arguments={"token": "{% $states.context.Task.Token %}"})})
        h = run(definition)
        assert h.finished.error == "States.QueryEvaluationError"

    def test_states_cannot_be_assigned(self) -> None:
        """AWS guide: `$states` is reserved; validation refuses it as a variable name."""
        with pytest.raises(DefinitionError, match="reserved name 'states'"):
            Harness(jsonata({"P": {"Type": "Pass", "Assign": {"states": 1}, "End": True}}))


# ---------------------------------------------------------------------------------------------
# Errors are States.QueryEvaluationError with AWS's causes, and can be caught
# ---------------------------------------------------------------------------------------------


class TestQueryEvaluationErrors:
    def test_undefined_result(self) -> None:
        """[recorded] variables_assign/..._BASE_UNDEFINED_OUTPUT_FIELD."""
        h = run(jsonata({"P": {"Type": "Pass", "Output": {"result": "{% $doesNotExist %}"}, "End": True}}))
        assert (h.finished.error, h.finished.cause) == ("States.QueryEvaluationError", where("P") + (
            "The JSONata expression '$doesNotExist' specified for the field 'Output/result' returned nothing "
            "(undefined)."
        ))

    def test_an_evaluation_error(self) -> None:
        """The cause carries JSONata's error code and message, as jsonata-js words them."""
        h = run(jsonata({"P": {"Type": "Pass", "Output": "{% 1 + 'a' %}", "End": True}}))
        assert (h.finished.error, h.finished.cause) == ("States.QueryEvaluationError", where("P") + (
            "The JSONata expression '1 + 'a'' specified for the field 'Output' threw an error during evaluation. "
            'T2002: The right side of the "+" operator must evaluate to a number'
        ))

    def test_a_query_error_in_arguments_can_be_caught(self) -> None:
        catcher = {"ErrorEquals": ["States.QueryEvaluationError"], "Output": "{% $states.errorOutput.Error %}",
                   "Next": "Handled"}
        definition = jsonata({"T": task_state(Arguments="{% $states.input.absent %}", Catch=[catcher]),
                              "Handled": {"Type": "Succeed"}})
        h = run(definition, {})
        assert (h.status, h.output) == ("SUCCEEDED", "States.QueryEvaluationError")
        assert h.all_tasks == []

    def test_step_functions_functions_in_a_state(self) -> None:
        """AWS guide: $partition, $range, $hash, $random, $uuid and $parse are available."""
        output = {
            "batches": "{% $partition($states.input.ids, 2) %}",
            "range": "{% $range(0, 6, 3) %}",
            "hash": "{% $hash('abc', 'SHA-256') %}",
            "random": "{% $random(42) %}",
            "uuid": "{% $length($uuid()) %}",
            "parsed": "{% $parse($states.input.json).k %}",
        }
        h = run(jsonata({"P": {"Type": "Pass", "Output": output, "End": True}}), {"ids": [1, 2, 3], "json": '{"k": 1}'})
        assert h.output == {
            "batches": [[1, 2], [3]],
            "range": [0, 3, 6],
            "hash": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "random": 0.7275636800328681,
            "uuid": 36,
            "parsed": 1,
        }
