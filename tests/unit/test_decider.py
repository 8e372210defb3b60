"""The decider (`orchestrator.asl.decider.decide`), driven through whole executions.

Every test goes through `decide` only (see `tests/unit/conftest.py`: `Harness` keeps the
bookkeeping a runtime would, on a virtual clock, and checks on every call that the state passed
in is not mutated).

Sources cited below:
- [guide] Step Functions developer guide (docs.aws.amazon.com/step-functions/latest/dg/):
  "Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map" workflow state pages;
  "Handling errors in Step Functions workflows" (Retry, Catch, States.Timeout,
  States.HeartbeatTimeout, States.DataLimitExceeded); "Accessing execution data from the Context
  object"; "Wait for a Callback with Task Token"; "Tolerated failure threshold for Distributed Map
  state"; "Step Functions service quotas" (256 KiB payloads).
- [spec] Amazon States Language specification (states-language.net).
- [api] Step Functions API reference, HistoryEvent / GetExecutionHistory.
- [recorded] executions recorded on real AWS in ../shared/asl-conformance/cases.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.asl import errors
from orchestrator.asl.decider import Environment, decide, new_execution
from orchestrator.asl.execution import (
    CancelTask,
    ExecutionState,
    ExecutionStatus,
    RunTask,
    StartExecution,
    StartTimer,
    TaskSucceeded,
    TimerFired,
)
from orchestrator.asl.model import parse_definition
from tests.unit.conftest import (
    EXECUTION_ARN,
    EXECUTION_NAME,
    MACHINE_ARN,
    MACHINE_NAME,
    T0,
    T0_EPOCH,
    Err,
    Harness,
    Ok,
    echo,
    run,
    single,
    task_state,
)


def chain(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A linear machine: each state goes to the next; the last ends."""
    out: dict[str, Any] = {}
    for i, (name, body) in enumerate(states):
        body = dict(body)
        if body.get("Type") not in ("Choice", "Succeed", "Fail"):
            body.pop("End", None)
            body.pop("Next", None)
            if i + 1 < len(states):
                body["Next"] = states[i + 1][0]
            else:
                body["End"] = True
        out[name] = body
    return {"StartAt": states[0][0], "States": out}


def pass_state(**fields: Any) -> dict[str, Any]:
    return {"Type": "Pass", **fields}


def parallel(*branches: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"Type": "Parallel", "Branches": list(branches), **fields}


def branch(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return chain(*states)


def map_state(processor: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"Type": "Map", "ItemProcessor": processor, **fields}


def task_map(**fields: Any) -> dict[str, Any]:
    return map_state(branch(("T", task_state())), **fields)


def cancelled_ids(decision: Any) -> list[str]:
    return [e.task_id for e in decision.effects if isinstance(e, CancelTask)]


def relative(epoch: float) -> float:
    return round(epoch - T0_EPOCH, 6)


# ================================================================================ history and ids


class TestHistory:
    def test_pass_then_task_history_names_order_and_ids(self) -> None:
        """[api] GetExecutionHistory: events are numbered from 1 in order; the state events are
        <Type>StateEntered/Exited and a task's are TaskScheduled, TaskStarted, TaskSucceeded."""
        h = run(chain(("A", pass_state(Result={"x": 1}, ResultPath="$.r")), ("B", task_state())), {"in": 1})
        assert h.history_types == [
            "ExecutionStarted",
            "PassStateEntered", "PassStateExited",
            "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
            "ExecutionSucceeded",
        ]
        assert [e.id for e in h.history] == list(range(1, len(h.history) + 1))
        assert all(e.previous_event_id < e.id for e in h.history)
        assert h.history[0].previous_event_id == 0

    def test_event_details(self) -> None:
        h = run(chain(("A", pass_state(Result={"x": 1}, ResultPath="$.r")), ("B", task_state("baton:fn:work"))),
                {"in": 1})
        started, a_in, a_out, b_in, scheduled, task_started, succeeded, b_out, done = h.history
        assert started.details["input"] == {"in": 1}
        assert a_in.details == {"name": "A", "input": {"in": 1}}
        assert a_out.details == {"name": "A", "output": {"in": 1, "r": {"x": 1}}}
        assert b_in.details == {"name": "B", "input": {"in": 1, "r": {"x": 1}}}
        assert scheduled.details["resourceType"] == "fn"
        assert scheduled.details["resource"] == "work"
        assert json.loads(scheduled.details["parameters"]) == {"in": 1, "r": {"x": 1}}
        assert json.loads(succeeded.details["output"]) == {"in": 1, "r": {"x": 1}}
        assert b_out.details["name"] == "B"
        assert done.details == {"output": {"in": 1, "r": {"x": 1}}}
        assert task_started.type == "TaskStarted"

    def test_as_aws_shape(self) -> None:
        h = run(single(pass_state(End=True)), {"a": 1})
        assert h.history[1].as_aws() == {
            "id": 2, "previousEventId": 1, "timestamp": "2024-06-01T12:00:00.000Z", "type": "PassStateEntered",
            "passStateEnteredEventDetails": {"name": "S", "input": {"a": 1}},
        }

    def test_timestamps_follow_the_virtual_clock(self) -> None:
        h = run(chain(("W", {"Type": "Wait", "Seconds": 90}), ("P", pass_state())))
        by_type = {e.type: e.timestamp for e in h.history}
        assert by_type["WaitStateEntered"] == "2024-06-01T12:00:00.000Z"
        assert by_type["WaitStateExited"] == "2024-06-01T12:01:30.000Z"
        assert by_type["ExecutionSucceeded"] == "2024-06-01T12:01:30.000Z"

    def test_plain_lambda_arn_uses_lambda_function_events(self) -> None:
        """[recorded] scenarios_other/test_lambda_invoke_with_retry_base: a Task on a Lambda
        function ARN logs LambdaFunctionScheduled/Started/Failed, once per attempt, then
        TaskStateExited when caught."""
        definition = {
            "StartAt": "L",
            "States": {
                "L": task_state("arn:aws:lambda:us-east-1:111111111111:function:f",
                                Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
                                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "HandleError"}],
                                ResultSelector={"Retries.$": "$$.State.RetryCount"}),
                "HandleError": pass_state(End=True),
            },
        }
        h = run(definition, {}, {"L": Err("Exception", "boom")})
        assert h.history_types == (
            ["ExecutionStarted", "TaskStateEntered"]
            + ["LambdaFunctionScheduled", "LambdaFunctionStarted", "LambdaFunctionFailed"] * 4
            + ["TaskStateExited", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]
        )
        assert h.output == {"Error": "Exception", "Cause": "boom"}
        scheduled = h.events_of("LambdaFunctionScheduled")[0]
        assert scheduled.details["resource"] == "arn:aws:lambda:us-east-1:111111111111:function:f"

    def test_execution_failed_details(self) -> None:
        h = run(single({"Type": "Fail", "Error": "E", "Cause": "C"}))
        assert h.history[-1].type == "ExecutionFailed"
        assert h.history[-1].details == {"error": "E", "cause": "C"}


# ================================================================================ state types


class TestPass:
    def test_passes_input_through(self) -> None:
        assert run(single(pass_state(End=True)), {"a": [1, 2]}).output == {"a": [1, 2]}

    def test_result_replaces_input(self) -> None:
        """[spec] "Pass State": "Result ... is treated as the output of a virtual task"."""
        assert run(single(pass_state(Result={"r": True}, End=True)), {"a": 1}).output == {"r": True}

    def test_parameters_build_the_output(self) -> None:
        h = run(single(pass_state(Parameters={"x.$": "$.a", "lit": "v"}, End=True)), {"a": 5})
        assert h.output == {"x": 5, "lit": "v"}

    def test_result_wins_over_parameters(self) -> None:
        h = run(single(pass_state(Parameters={"x.$": "$.a"}, Result="R", ResultPath="$.res", End=True)), {"a": 5})
        assert h.output == {"a": 5, "res": "R"}

    def test_scalar_and_array_inputs(self) -> None:
        assert run(single(pass_state(End=True)), [1, "two"]).output == [1, "two"]
        assert run(single(pass_state(End=True)), "text").output == "text"


class TestTask:
    def test_run_task_effect(self) -> None:
        h = Harness(single(task_state("baton:fn:work", Parameters={"p.$": "$.a"}, TimeoutSeconds=30,
                                      HeartbeatSeconds=10), "Work"))
        h.start({"a": 1})
        task = h.only_task()
        assert task.resource == "baton:fn:work"
        assert task.parameters == {"p": 1}
        assert task.state_name == "Work"
        assert task.attempt == 0
        assert task.task_token is None
        assert task.timeout_seconds == 30 and task.heartbeat_seconds == 10
        assert task.task_id.startswith(EXECUTION_ARN + "/")

    def test_result_becomes_output(self) -> None:
        h = Harness(single(task_state()))
        h.start({"a": 1})
        h.succeed(h.only_task(), {"result": [1]})
        assert h.status == "SUCCEEDED" and h.output == {"result": [1]}

    def test_task_failure_fails_the_execution(self) -> None:
        h = Harness(single(task_state()))
        h.start()
        h.fail(h.only_task(), "Custom.Error", "went wrong")
        assert h.status == "FAILED"
        assert h.finished is not None
        assert (h.finished.error, h.finished.cause) == ("Custom.Error", "went wrong")
        assert h.history_types[-2:] == ["TaskFailed", "ExecutionFailed"]
        assert h.history[-2].details == {"resourceType": "fn", "resource": "work", "error": "Custom.Error",
                                         "cause": "went wrong"}

    def test_each_attempt_has_its_own_task_id(self) -> None:
        h = Harness(single(task_state(Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 2}])))
        h.start()
        ids = []
        for _ in range(3):
            task = h.only_task()
            ids.append(task.task_id)
            h.fail(task, "E")
            h.advance(100)
        assert len(set(ids)) == 3
        assert [t.attempt for t in h.all_tasks] == [0, 1, 2]

    def test_duplicate_result_is_ignored(self) -> None:
        """A step service may deliver a result twice (at-least-once): the second is ignored."""
        h = Harness(chain(("T", task_state()), ("W", {"Type": "Wait", "Seconds": 5})))
        h.start()
        task = h.only_task()
        h.succeed(task, "first")
        state_after_first = h.state.model_dump(mode="json")
        decision = h.succeed(task, "second")
        assert decision.effects == []
        assert h.state.model_dump(mode="json") == state_after_first
        decision = h.fail(task, "Late")
        assert decision.effects == []
        h.run_to_end()
        assert h.output == "first"

    def test_unknown_task_id_is_ignored(self) -> None:
        h = Harness(single(task_state()))
        h.start()
        assert h.send(TaskSucceeded(task_id="nope", output=1)).effects == []
        assert h.status is None

    def test_wait_for_task_token(self) -> None:
        """[guide] "Wait for a Callback with Task Token": `.waitForTaskToken` passes
        `$$.Task.Token` to the task; the result comes back with that token."""
        h = Harness(single(task_state("baton:fn:approve.waitForTaskToken",
                                      Parameters={"token.$": "$$.Task.Token", "doc.$": "$.doc"})),
                    task_token=lambda task_id: "signed:" + task_id)
        h.start({"doc": "d"})
        task = h.only_task()
        assert task.task_token == "signed:" + task.task_id
        assert task.parameters == {"token": task.task_token, "doc": "d"}
        h.succeed(task, {"approved": True})
        assert h.output == {"approved": True}

    def test_task_token_only_exists_for_callbacks(self) -> None:
        h = run(single(task_state("baton:fn:plain", Parameters={"token.$": "$$.Task.Token"})))
        assert h.status == "FAILED"
        assert h.finished is not None and h.finished.error == errors.RUNTIME


class TestChoice:
    DEF = {
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [
                {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
                {"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Medium"},
            ], "Default": "Small"},
            "Big": pass_state(Result="big", End=True),
            "Medium": pass_state(Result="medium", End=True),
            "Small": pass_state(Result="small", End=True),
        },
    }

    @pytest.mark.parametrize(("n", "expected"), [(11, "big"), (7, "medium"), (6, "medium"), (5, "small"), (-1, "small")])
    def test_first_matching_rule_then_default(self, n: int, expected: str) -> None:
        """[spec] "Choice State": rules are evaluated in order; the first match wins; otherwise
        Default."""
        assert run(self.DEF, {"n": n}).output == expected

    def test_history(self) -> None:
        h = run(self.DEF, {"n": 7})
        assert h.history_types == ["ExecutionStarted", "ChoiceStateEntered", "ChoiceStateExited", "PassStateEntered",
                                   "PassStateExited", "ExecutionSucceeded"]
        assert h.history[2].details == {"name": "C", "output": {"n": 7}}

    def test_no_match_without_default(self) -> None:
        """[guide] "Choice": if no rule matches and there is no Default, the execution fails with
        States.NoChoiceMatched."""
        definition = {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "X"}]},
            "X": {"Type": "Succeed"}}}
        h = run(definition, {"n": 2})
        assert h.status == "FAILED"
        assert h.finished is not None and h.finished.error == errors.NO_CHOICE_MATCHED
        assert h.history_types == ["ExecutionStarted", "ChoiceStateEntered", "ExecutionFailed"]

    def test_input_and_output_paths(self) -> None:
        definition = {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "InputPath": "$.sub", "OutputPath": "$.v",
                  "Choices": [{"Variable": "$.v", "StringEquals": "go", "Next": "X"}]},
            "X": {"Type": "Succeed"}}}
        assert run(definition, {"sub": {"v": "go"}}).output == "go"


class TestWait:
    def wait(self, **fields: Any) -> dict[str, Any]:
        return chain(("W", {"Type": "Wait", **fields}), ("After", pass_state()))

    @pytest.mark.parametrize(
        ("fields", "state_input", "seconds"),
        [
            ({"Seconds": 10}, {}, 10.0),
            ({"Seconds": 0}, {}, 0.0),
            ({"SecondsPath": "$.s"}, {"s": 7}, 7.0),
            ({"Timestamp": "2024-06-01T12:01:00Z"}, {}, 60.0),
            ({"Timestamp": "2024-06-01T14:00:30+02:00"}, {}, 30.0),
            ({"TimestampPath": "$.t"}, {"t": "2024-06-01T12:00:30.500Z"}, 30.5),
        ],
    )
    def test_fires_at_the_right_virtual_time(self, fields: dict[str, Any], state_input: Any, seconds: float) -> None:
        """[guide] "Wait": Seconds / Timestamp / SecondsPath / TimestampPath."""
        h = Harness(self.wait(**fields))
        h.start(state_input)
        if seconds > 0:
            assert [relative(t.fire_at) for t in h.all_timers] == [seconds]
            assert h.status is None
            h.advance(seconds - 0.001)
            assert h.status is None, "the wait must not end early"
        h.advance(seconds)
        assert h.status == "SUCCEEDED"
        assert h.output == state_input
        assert h.history_types[-4:-2] == ["WaitStateExited", "PassStateEntered"]

    def test_timestamp_in_the_past_does_not_wait(self) -> None:
        h = Harness(self.wait(Timestamp="2000-01-01T00:00:00Z"))
        h.start()
        assert h.all_timers == [] and h.status == "SUCCEEDED"

    def test_wait_uses_input_path_and_keeps_output(self) -> None:
        h = run(self.wait(SecondsPath="$.cfg.s", OutputPath="$.cfg"), {"cfg": {"s": 3}, "x": 1})
        assert h.output == {"s": 3}
        assert h.clock == 3.0

    @pytest.mark.parametrize(
        ("fields", "state_input", "cause"),
        [
            ({"SecondsPath": "$.input.waitSeconds"}, {"input": {"waitSeconds": -1}},
             "The SecondsPath parameter references a negative value: $.input.waitSeconds == -1"),
            ({"SecondsPath": "$.input.waitSeconds"}, {"input": {"waitSeconds": -1.5}},
             "The SecondsPath parameter cannot be parsed as a long value: $.input.waitSeconds == -1.5"),
            ({"TimestampPath": "$.TimestampValue"}, {"TimestampValue": "2016-13-05T21:29:29Z"},
             "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format "
             "string: $.TimestampValue == 2016-13-05T21:29:29Z"),
            ({"TimestampPath": "$.TimestampValue"}, {"TimestampValue": "2016-12-05T25:29:29Z"},
             "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format "
             "string: $.TimestampValue == 2016-12-05T25:29:29Z"),
            ({"SecondsPath": "$.missing"}, {},
             "The JSONPath '$.missing' specified for the field 'SecondsPath' could not be found in the input '{}'"),
        ],
    )
    def test_path_errors_are_states_runtime(self, fields: dict[str, Any], state_input: Any, cause: str) -> None:
        """[recorded] scenarios_other/test_wait_timestamp_path_INVALID_DATE, _INVALID_TIME and
        test_base_scenarios wait SecondsPath cases: States.Runtime with these causes, prefixed by
        "An error occurred while executing the state 'W' (entered at the event id #2). "."""
        h = run(single({"Type": "Wait", "End": True, **fields}, "W"), state_input)
        assert h.status == "FAILED"
        assert h.finished is not None
        assert h.finished.error == errors.RUNTIME
        assert h.finished.cause == f"An error occurred while executing the state 'W' (entered at the event id #2). {cause}"
        assert h.all_timers == []


class TestSucceedAndFail:
    def test_succeed_ends_with_its_input(self) -> None:
        h = run(chain(("P", pass_state(Result={"v": 1})), ("Done", {"Type": "Succeed"})))
        assert h.status == "SUCCEEDED" and h.output == {"v": 1}
        assert h.history_types[-3:] == ["SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded"]

    def test_succeed_output_path(self) -> None:
        assert run(single({"Type": "Succeed", "OutputPath": "$.a"}), {"a": 3, "b": 4}).output == 3

    def test_fail_error_and_cause(self) -> None:
        h = run(single({"Type": "Fail", "Error": "ErrorA", "Cause": "Invalid response."}))
        assert (h.status, h.finished.error, h.finished.cause) == ("FAILED", "ErrorA", "Invalid response.")  # type: ignore[union-attr]
        assert h.history_types == ["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]

    def test_fail_error_path_and_cause_path(self) -> None:
        """[guide] "Fail": ErrorPath/CausePath take the error and cause from the state input."""
        h = run(single({"Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.Cause"}),
                {"Error": "Dyn.Error", "Cause": "dynamic cause"})
        assert (h.finished.error, h.finished.cause) == ("Dyn.Error", "dynamic cause")  # type: ignore[union-attr]

    def test_fail_paths_into_the_context_object(self) -> None:
        """[recorded] context_object/test_error_cause_path: ErrorPath "$$.State.Name", CausePath
        "$$.StateMachine.Name"."""
        h = run(single({"Type": "Fail", "ErrorPath": "$$.State.Name", "CausePath": "$$.StateMachine.Name"},
                       "StartState"))
        assert (h.finished.error, h.finished.cause) == ("StartState", MACHINE_NAME)  # type: ignore[union-attr]

    def test_fail_paths_with_intrinsics(self) -> None:
        h = run(single({"Type": "Fail", "ErrorPath": "States.Format('E.{}', $.n)", "CausePath": "$.c"}),
                {"n": 4, "c": "x"})
        assert h.finished is not None and h.finished.error == "E.4"

    def test_fail_error_path_missing(self) -> None:
        """[recorded] scenarios_other/test_invalid_jsonpath[INVALID_JSONPATH_IN_ERRORPATH]."""
        definition = chain(("p", pass_state()), ("q", pass_state()),
                           ("fail", {"Type": "Fail", "ErrorPath": "$.ErrorX", "CausePath": "$.Cause"}))
        h = run(definition, {"Error": "E", "Cause": "C"})
        assert h.finished is not None
        assert h.finished.error == errors.RUNTIME
        assert h.finished.cause == ("An error occurred while executing the state 'fail' (entered at the event id "
                                    "#6). The JSONPath '$.ErrorX' specified for the field 'ErrorPath' could not be "
                                    "found in the input '{\"Error\":\"E\",\"Cause\":\"C\"}'")

    def test_fail_without_error_or_cause(self) -> None:
        h = run(single({"Type": "Fail"}))
        assert h.status == "FAILED"
        assert h.finished is not None and h.finished.error is None and h.finished.cause is None
        assert h.history[-1].details == {}


# ================================================================================ Parallel


class TestParallel:
    DEF = {
        "StartAt": "P",
        "States": {
            "P": parallel(
                branch(("A", task_state("baton:fn:a"))),
                branch(("B1", pass_state(Result="b")), ("B2", task_state("baton:fn:b"))),
                branch(("C", task_state("baton:fn:c"))),
                ResultPath="$.results",
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                Next="Done",
            ),
            "Done": {"Type": "Succeed"},
            "Caught": pass_state(End=True),
        },
    }

    def test_results_are_in_branch_order_whatever_the_completion_order(self) -> None:
        """[guide] "Parallel": "The output ... is an array containing the output of each branch, in
        the order the branches appear" (also [recorded] test_parallel_state_order)."""
        h = Harness(self.DEF)
        h.start({"in": 1})
        a, b, c = (h.only_task(name) for name in ("A", "B2", "C"))
        assert b.parameters == "b"
        assert a.parameters == c.parameters == {"in": 1}
        h.succeed(c, "C-out")
        h.succeed(b, "B-out")
        assert h.status is None
        h.succeed(a, "A-out")
        assert h.status == "SUCCEEDED"
        assert h.output == {"in": 1, "results": ["A-out", "B-out", "C-out"]}

    def test_history(self) -> None:
        h = run(self.DEF, {"in": 1})
        types = h.history_types
        assert types[:3] == ["ExecutionStarted", "ParallelStateEntered", "ParallelStateStarted"]
        assert types[-5:] == ["ParallelStateSucceeded", "ParallelStateExited", "SucceedStateEntered",
                              "SucceedStateExited", "ExecutionSucceeded"]
        inner = [str(e.details.get("name")) for e in h.history if e.type.endswith("StateEntered")]
        assert sorted(inner) == sorted(["P", "A", "B1", "B2", "C", "Done"])

    def test_each_branch_gets_a_copy_of_the_effective_input(self) -> None:
        definition = single(parallel(branch(("X", pass_state(Result=1, ResultPath="$.x"))),
                                     branch(("Y", pass_state())),
                                     InputPath="$.sub", Parameters={"v.$": "$.v"}, End=True))
        assert run(definition, {"sub": {"v": 9}}).output == [{"v": 9, "x": 1}, {"v": 9}]

    def test_result_selector(self) -> None:
        """[guide] "Flattening an array of arrays": ResultSelector applies to the Parallel's array."""
        definition = single(parallel(branch(("X", pass_state(Result=[1, 2]))), branch(("Y", pass_state(Result=[3]))),
                                     ResultSelector={"flat.$": "$[*][*]"}, End=True))
        assert run(definition).output == {"flat": [1, 2, 3]}

    def test_nested(self) -> None:
        """[recorded] scenarios_parallel/test_parallel_state_nested."""
        inner = parallel(branch(("BranchL2", pass_state())))
        definition = single(parallel(branch(("ParallelStateL2", inner)), End=True), "ParallelStateL1")
        assert run(definition, [[1, 2, 3], [4, 5, 6]]).output == [[[[1, 2, 3], [4, 5, 6]]]]

    def test_a_failing_branch_cancels_its_siblings_and_the_catch_applies(self) -> None:
        """[guide] "Parallel": "If any branch fails ... the entire Parallel state fails and all the
        branches that are still running are stopped"; its Catch handles the error."""
        h = Harness(self.DEF)
        h.start({"in": 1})
        a, b, c = (h.only_task(name) for name in ("A", "B2", "C"))
        decision = h.fail(b, "Boom", "bad")
        cancelled = {e.task_id for e in decision.effects if isinstance(e, CancelTask)}
        assert cancelled == {a.task_id, c.task_id}
        assert h.status == "SUCCEEDED"
        assert h.output == {"in": 1, "error": {"Error": "Boom", "Cause": "bad"}}
        assert "ParallelStateFailed" in h.history_types
        assert h.history_types[-4:] == ["ParallelStateExited", "PassStateEntered", "PassStateExited",
                                        "ExecutionSucceeded"]

    def test_late_results_of_cancelled_branches_are_ignored(self) -> None:
        definition = {"StartAt": "P", "States": {
            "P": parallel(branch(("A", task_state("baton:fn:a"))), branch(("B", task_state("baton:fn:b"))),
                          Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Slow"}], Next="Done"),
            "Slow": task_state("baton:fn:slow"),
            "Done": {"Type": "Succeed"}}}
        h = Harness(definition)
        h.start()
        a, b = h.only_task("A"), h.only_task("B")
        h.fail(a, "Boom")
        slow = h.only_task("Slow")
        history_before = len(h.history)
        assert h.succeed(b, "late").effects == []
        assert h.fail(b, "late").effects == []
        assert len(h.history) == history_before
        h.succeed(slow, "recovered")
        assert h.output == "recovered"

    def test_uncaught_branch_error_fails_the_execution_with_that_error(self) -> None:
        """[recorded] scenarios_parallel/test_parallel_state_catch: the branch's Fail error and cause
        become the Parallel's error output."""
        definition = single(parallel(branch(("Branch1", {"Type": "Fail", "Error": "FailureType",
                                                         "Cause": "Cause description"})), End=True))
        h = run(definition)
        assert (h.status, h.finished.error, h.finished.cause) == ("FAILED", "FailureType", "Cause description")  # type: ignore[union-attr]

    def test_recorded_catch_history(self) -> None:
        """[recorded] scenarios_parallel/test_parallel_state_catch (whole history)."""
        definition = {"StartAt": "ParallelState", "States": {
            "ParallelState": parallel(branch(("Branch1", {"Type": "Fail", "Error": "FailureType",
                                                          "Cause": "Cause description"})),
                                      Catch=[{"ErrorEquals": ["FailureType"], "Next": "FinalCaught"}], Next="Final"),
            "FinalCaught": pass_state(End=True), "Final": pass_state(End=True)}}
        h = run(definition)
        assert h.output == {"Error": "FailureType", "Cause": "Cause description"}
        assert h.history_types == ["ExecutionStarted", "ParallelStateEntered", "ParallelStateStarted",
                                   "FailStateEntered", "ParallelStateFailed", "ParallelStateExited",
                                   "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]

    def test_retry_reruns_every_branch(self) -> None:
        definition = single(parallel(branch(("A", task_state("baton:fn:a"))), branch(("B", task_state("baton:fn:b"))),
                                     Retry=[{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5, "MaxAttempts": 1}],
                                     End=True))
        h = Harness(definition)
        h.start()
        h.fail(h.only_task("A"), "Flaky")
        assert h.pending() == []
        assert [relative(t.fire_at) for t in h.all_timers] == [5.0]
        h.advance(5)
        assert {t.state_name for t in h.pending()} == {"A", "B"}
        h.run_to_end()
        assert h.status == "SUCCEEDED"
        assert len(h.all_tasks) == 4


# ================================================================================ Map


class TestMap:
    def test_results_in_item_order(self) -> None:
        """[guide] "Map": the output is an array with one result per item, in item order."""
        h = Harness(single(task_map(ItemsPath="$.items"), "M"))
        h.start({"items": ["a", "b", "c"]})
        tasks = h.pending()
        assert [t.parameters for t in tasks] == ["a", "b", "c"]
        for task in reversed(tasks):
            h.succeed(task, task.parameters.upper())
        assert h.output == ["A", "B", "C"]

    def test_empty_array(self) -> None:
        h = run(single(task_map(), "M"), [])
        assert h.output == []
        assert h.history_types == ["ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapStateSucceeded",
                                   "MapStateExited", "ExecutionSucceeded"]
        assert h.events_of("MapStateStarted")[0].details == {"length": 0}

    def test_history_events(self) -> None:
        """[recorded] scenarios_map/test_map_state_item_selector_parameters (whole history, with
        MaxConcurrency 1) and its output with ResultPath null."""
        definition = {"StartAt": "Start", "States": {
            "Start": pass_state(Parameters={"bucket": "test-bucket", "values": ["1", "2", "3"]}, ResultPath="$.content",
                                Next="MapState"),
            "MapState": map_state(
                {"StartAt": "EndState", "ProcessorConfig": {"Mode": "INLINE"},
                 "States": {"EndState": pass_state(Parameters={"message": "Processing item completed"}, End=True)}},
                MaxConcurrency=1, ItemsPath="$.content.values",
                ItemSelector={"bucketName.$": "$.content.bucket", "value.$": "$$.Map.Item.Value"},
                ResultPath=None, End=True)}}
        h = run(definition)
        assert h.output == {"content": {"bucket": "test-bucket", "values": ["1", "2", "3"]}}
        iteration = ["MapIterationStarted", "PassStateEntered", "PassStateExited", "MapIterationSucceeded"]
        assert h.history_types == (["ExecutionStarted", "PassStateEntered", "PassStateExited", "MapStateEntered",
                                    "MapStateStarted"] + iteration * 3
                                   + ["MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"])
        assert h.events_of("MapStateStarted")[0].details == {"length": 3}
        assert [e.details for e in h.events_of("MapIterationStarted")] == [
            {"name": "MapState", "index": i} for i in range(3)]
        assert [e.details for e in h.events_of("MapIterationSucceeded")] == [
            {"name": "MapState", "index": i} for i in range(3)]

    def test_item_selector_sees_map_item_index_and_value(self) -> None:
        """[guide] "Context object": "$$.Map.Item.Index" and "$$.Map.Item.Value" in ItemSelector."""
        definition = single(map_state(branch(("P", pass_state())), ItemsPath="$.items",
                                      ItemSelector={"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value",
                                                    "shared.$": "$.shared"}, End=True))
        h = run(definition, {"items": [{"k": 1}, "x"], "shared": True})
        assert h.output == [{"i": 0, "v": {"k": 1}, "shared": True}, {"i": 1, "v": "x", "shared": True}]

    def test_legacy_iterator_and_parameters(self) -> None:
        definition = single({"Type": "Map", "Iterator": branch(("P", pass_state())),
                             "Parameters": {"v.$": "$$.Map.Item.Value"}, "End": True})
        assert run(definition, [1, 2]).output == [{"v": 1}, {"v": 2}]

    @pytest.mark.parametrize("limit", [1, 2, 3])
    def test_max_concurrency_is_honoured(self, limit: int) -> None:
        """[guide] "Map": MaxConcurrency "specifies the maximum number of child workflow
        executions ... that can run in parallel"."""
        h = Harness(single(task_map(MaxConcurrency=limit), "M"))
        h.start(list(range(7)))
        assert len(h.pending()) == limit
        h.run_to_end()
        assert h.max_outstanding == limit
        assert h.output == list(range(7))
        assert [t.parameters for t in h.all_tasks] == list(range(7)), "items start in order"

    def test_max_concurrency_launches_one_more_per_completion(self) -> None:
        h = Harness(single(task_map(MaxConcurrency=2), "M"))
        h.start(["a", "b", "c", "d"])
        first, second = h.pending()
        decision = h.succeed(second, "B")
        launched = [e for e in decision.effects if isinstance(e, RunTask)]
        assert [t.parameters for t in launched] == ["c"]
        assert len(h.pending()) == 2

    def test_max_concurrency_zero_is_unbounded(self) -> None:
        h = Harness(single(task_map(MaxConcurrency=0), "M"))
        h.start(list(range(10)))
        assert len(h.pending()) == 10

    def test_max_concurrency_path(self) -> None:
        """[recorded] scenarios_map/test_max_concurrency_path[0] and the guide's MaxConcurrencyPath."""
        h = Harness(single(task_map(ItemsPath="$.items", MaxConcurrencyPath="$.mc"), "M"))
        h.start({"items": list(range(5)), "mc": 2})
        assert len(h.pending()) == 2
        h.run_to_end()
        assert h.max_outstanding == 2 and h.output == list(range(5))

    @pytest.mark.parametrize(
        ("value", "cause"),
        [("NoNumber", 'The MaxConcurrencyPath field refers to value "NoNumber" which is not a valid integer: $.mc'),
         ({}, 'The MaxConcurrencyPath field refers to value "{}" which is not a valid integer: $.mc')],
    )
    def test_max_concurrency_path_errors(self, value: Any, cause: str) -> None:
        """[recorded] scenarios_map/test_max_concurrency_path[NoNumber] and [max_concurrency_value0]:
        States.Runtime, and no MapStateStarted."""
        h = run(single(map_state(branch(("P", pass_state())), ItemsPath="$.items", MaxConcurrencyPath="$.mc",
                                 End=True), "MapState"), {"items": [1], "mc": value})
        assert h.finished is not None
        assert (h.finished.error, h.finished.cause) == (
            errors.RUNTIME, f"An error occurred while executing the state 'MapState' (entered at the event id #2). {cause}")
        assert h.history_types == ["ExecutionStarted", "MapStateEntered", "ExecutionFailed"]

    def test_failed_iteration_fails_the_map_and_cancels_the_others(self) -> None:
        """[guide] "Map": without a tolerated failure threshold, one failed iteration fails the Map
        state with that iteration's error."""
        h = Harness(single(task_map(), "M"))
        h.start([1, 2, 3])
        one, two, three = h.pending()
        decision = h.fail(two, "Item.Error", "why")
        assert {e.task_id for e in decision.effects if isinstance(e, CancelTask)} == {one.task_id, three.task_id}
        assert (h.status, h.finished.error, h.finished.cause) == ("FAILED", "Item.Error", "why")  # type: ignore[union-attr]
        assert h.history_types[-3:] == ["MapIterationFailed", "MapStateFailed", "ExecutionFailed"]
        assert h.events_of("MapIterationFailed")[0].details == {"name": "M", "index": 1}
        assert h.succeed(one, "late").effects == []

    def test_catch_on_a_map(self) -> None:
        """[recorded] scenarios_map/test_map_state_catch (output and whole history)."""
        definition = {"StartAt": "StartState", "States": {
            "StartState": pass_state(Result=[1], ResultPath="$.arr", Next="MapState"),
            "MapState": map_state({"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "HandleItemFail", "States": {
                "HandleItemFail": {"Type": "Fail", "Error": "HandleItemFailError", "Cause": "HandleItemFailCause"}}},
                ResultPath=None, InputPath="$.arr", MaxConcurrency=1,
                Catch=[{"ErrorEquals": ["HandleItemFailError"], "Next": "FinalCaught"}], Next="Final"),
            "FinalCaught": pass_state(End=True), "Final": pass_state(End=True)}}
        h = run(definition)
        assert h.output == {"Error": "HandleItemFailError", "Cause": "HandleItemFailCause"}
        assert h.history_types == ["ExecutionStarted", "PassStateEntered", "PassStateExited", "MapStateEntered",
                                   "MapStateStarted", "MapIterationStarted", "FailStateEntered", "MapIterationFailed",
                                   "MapStateFailed", "MapStateExited", "PassStateEntered", "PassStateExited",
                                   "ExecutionSucceeded"]

    def test_catch_result_path_on_a_map(self) -> None:
        definition = {"StartAt": "M", "States": {
            "M": task_map(Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "H"}], Next="X",
                          ItemsPath="$.items"),
            "H": pass_state(End=True), "X": pass_state(End=True)}}
        h = run(definition, {"items": [1, 2]}, {"T": Err("E", "c")})
        assert h.output == {"items": [1, 2], "err": {"Error": "E", "Cause": "c"}}

    def test_retry_on_a_map_reruns_all_items(self) -> None:
        h = Harness(single(task_map(Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 2, "MaxAttempts": 1}]), "M"))
        h.start([1, 2])
        h.fail(h.pending()[0], "E")
        assert h.pending() == []
        h.advance(2)
        assert [t.parameters for t in h.pending()] == [1, 2]
        h.run_to_end()
        assert h.output == [1, 2]

    @pytest.mark.parametrize(
        ("fields", "failures", "status"),
        [
            ({"ToleratedFailureCount": 2}, 2, "SUCCEEDED"),
            ({"ToleratedFailureCount": 1}, 2, "FAILED"),
            ({"ToleratedFailureCount": 0}, 1, "FAILED"),
            ({"ToleratedFailurePercentage": 50}, 2, "SUCCEEDED"),
            ({"ToleratedFailurePercentage": 49}, 2, "FAILED"),
            ({"ToleratedFailurePercentage": 100}, 4, "SUCCEEDED"),
            ({"ToleratedFailurePercentage": 0}, 1, "FAILED"),
            ({"ToleratedFailureCount": 3, "ToleratedFailurePercentage": 100}, 3, "SUCCEEDED"),
        ],
    )
    def test_tolerated_failures(self, fields: dict[str, Any], failures: int, status: str) -> None:
        """[guide] "Tolerated failure threshold": the Map fails when the number (or percentage) of
        failed items exceeds the threshold, with States.ExceedToleratedFailureThreshold."""
        items = list(range(4))
        h = run(single(task_map(**fields), "M"), items,
                lambda t: Err("Item.Failed") if t.parameters < failures else Ok(t.parameters))
        assert h.status == status
        if status == "FAILED":
            assert h.finished is not None and h.finished.error == errors.EXCEED_TOLERATED_FAILURE_THRESHOLD
        else:
            assert h.output[failures:] == items[failures:]
            assert all(r["Error"] == "Item.Failed" for r in h.output[:failures])

    def test_tolerated_failure_exceeded_is_catchable(self) -> None:
        definition = {"StartAt": "M", "States": {
            "M": task_map(ToleratedFailureCount=0, Catch=[{"ErrorEquals": [errors.EXCEED_TOLERATED_FAILURE_THRESHOLD],
                                                            "Next": "H"}], End=True),
            "H": pass_state(End=True)}}
        h = run(definition, [1], {"T": Err("X")})
        assert h.status == "SUCCEEDED"
        assert h.output["Error"] == errors.EXCEED_TOLERATED_FAILURE_THRESHOLD

    @pytest.mark.parametrize(
        ("fields", "state_input", "status"),
        [
            ({"ToleratedFailureCountPath": "$.t"}, {"items": [1, 2], "t": 1}, "SUCCEEDED"),
            ({"ToleratedFailureCountPath": "$.t"}, {"items": [1, 2], "t": 0}, "FAILED"),
            ({"ToleratedFailurePercentagePath": "$.p"}, {"items": [1, 2], "p": 50}, "SUCCEEDED"),
            ({"ToleratedFailurePercentagePath": "$.p"}, {"items": [1, 2], "p": 49.5}, "FAILED"),
        ],
    )
    def test_tolerated_failure_paths(self, fields: dict[str, Any], state_input: Any, status: str) -> None:
        """[guide] "ToleratedFailureCountPath / ToleratedFailurePercentagePath" read the threshold
        from the state input."""
        h = run(single(task_map(ItemsPath="$.items", **fields), "M"), state_input,
                lambda t: Err("Bad") if t.parameters == 1 else Ok(t.parameters))
        assert h.status == status

    @pytest.mark.parametrize(
        ("fields", "state_input", "cause"),
        [
            ({"ToleratedFailureCountPath": "$.ToleratedFailureCount"}, {"Items": [0], "ToleratedFailureCount": -1},
             "ToleratedFailureCount cannot be negative."),
            ({"ToleratedFailurePercentagePath": "$.ToleratedFailurePercentage"},
             {"Items": [0], "ToleratedFailurePercentage": 100.1},
             "ToleratedFailurePercentage must be between 0 and 100."),
            ({"ToleratedFailurePercentagePath": "$.ToleratedFailurePercentage"},
             {"Items": [0], "ToleratedFailurePercentage": -1},
             "ToleratedFailurePercentage must be between 0 and 100."),
            ({"ToleratedFailurePercentagePath": "$.ToleratedFailurePercentage"},
             {"Items": [0], "ToleratedFailurePercentage": "NoNumber"},
             'The ToleratedFailurePercentagePath field refers to value "NoNumber" which is not a valid float: '
             "$.ToleratedFailurePercentage"),
            ({"ToleratedFailurePercentagePath": "$.ToleratedFailurePercentage"},
             {"Items": [0], "ToleratedFailurePercentage": {}},
             'The ToleratedFailurePercentagePath field refers to value "{}" which is not a valid float: '
             "$.ToleratedFailurePercentage"),
        ],
    )
    def test_tolerated_failure_path_errors(self, fields: dict[str, Any], state_input: Any, cause: str) -> None:
        """[recorded] scenarios_map/test_map_state_tolerated_failure_count_path[-1] and
        test_map_state_tolerated_failure_percentage_path[100.1, -1, NoNumber, {}]: States.Runtime
        with these causes."""
        h = run(single(map_state(branch(("HandleItem", pass_state())), ItemsPath="$.Items", MaxConcurrency=1,
                                 **fields), "MapState"), state_input)
        assert h.finished is not None
        assert (h.finished.error, h.finished.cause) == (
            errors.RUNTIME, f"An error occurred while executing the state 'MapState' (entered at the event id #2). {cause}")

    def test_items_path_not_an_array(self) -> None:
        h = run(single(task_map(ItemsPath="$.items"), "M"), {"items": {"a": 1}})
        assert h.status == "FAILED"
        assert h.finished is not None and h.finished.error == errors.RUNTIME

    def test_map_of_parallels_of_tasks(self) -> None:
        both = parallel(branch(("A", task_state("baton:fn:a"))), branch(("B", task_state("baton:fn:b"))))
        definition = single(map_state(branch(("P", both)), MaxConcurrency=2, End=True))
        h = run(definition, [1, 2, 3], lambda t: Ok(f"{t.state_name}{t.parameters}"))
        assert h.output == [["A1", "B1"], ["A2", "B2"], ["A3", "B3"]]
        assert h.max_outstanding == 4


# ================================================================================ Retry and Catch


class TestRetryAndCatch:
    def test_retry_timers_fire_at_interval_times_backoff(self) -> None:
        """[guide] "Retrying after an error": the n-th retry waits IntervalSeconds * BackoffRate^n."""
        h = Harness(single(task_state(Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 2, "BackoffRate": 3,
                                              "MaxAttempts": 3}])))
        h.start()
        scheduled_at = []
        for _ in range(4):
            scheduled_at.append(h.clock)
            h.fail(h.only_task(), "E")
            if h.finished is None:
                nxt = h.next_timer()
                assert nxt is not None
                h.advance(relative(nxt[1]) - h.clock)
        assert scheduled_at == [0.0, 2.0, 8.0, 26.0]
        assert h.status == "FAILED" and h.finished.error == "E"  # type: ignore[union-attr]

    def test_retry_does_not_fire_early(self) -> None:
        h = Harness(single(task_state(Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 10}])))
        h.start()
        h.fail(h.only_task(), "E")
        h.advance(9.5)
        assert h.pending() == []
        h.advance(0.5)
        assert len(h.pending()) == 1

    def test_max_delay_seconds_caps_timers(self) -> None:
        h = Harness(single(task_state(Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 4, "BackoffRate": 2,
                                              "MaxDelaySeconds": 6, "MaxAttempts": 3}])))
        h.start()
        delays = []
        while h.finished is None:
            before = h.clock
            h.fail(h.only_task(), "E")
            if h.finished is None:
                nxt = h.next_timer()
                assert nxt is not None
                delays.append(relative(nxt[1]) - before)
                h.advance(delays[-1])
        assert delays == [4.0, 6.0, 6.0]

    def test_full_jitter_timers_are_within_bounds(self) -> None:
        for seed in range(20):
            h = Harness(single(task_state(Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 8,
                                                  "JitterStrategy": "FULL", "MaxAttempts": 1}])), seed=seed)
            h.start()
            h.fail(h.only_task(), "E")
            (timer,) = h.all_timers
            assert 0.0 <= relative(timer.fire_at) <= 8.0

    def test_retry_then_success_with_retry_count_in_the_context(self) -> None:
        """[guide] "Context object": $$.State.RetryCount is the number of retries of the state;
        [recorded] test_lambda_service_invoke_with_retry_extended_input reads it in ResultSelector."""
        definition = single(task_state(Parameters={"rc.$": "$$.State.RetryCount"},
                                       ResultSelector={"final.$": "$$.State.RetryCount", "v.$": "$.v"},
                                       Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}]))
        h = run(definition, {}, {"S": [Err("A"), Err("B"), Ok({"v": "ok"})]})
        assert [t.parameters for t in h.all_tasks] == [{"rc": 0}, {"rc": 1}, {"rc": 2}]
        assert h.output == {"final": 2, "v": "ok"}

    def test_retriers_count_separately(self) -> None:
        """[spec] "Retrying after error": each Retrier counts its own attempts."""
        definition = single(task_state(Retry=[{"ErrorEquals": ["A"], "MaxAttempts": 1, "IntervalSeconds": 1},
                                              {"ErrorEquals": ["B"], "MaxAttempts": 1, "IntervalSeconds": 1}]))
        ok = run(definition, {}, {"S": [Err("A"), Err("B"), Ok("done")]})
        assert ok.output == "done"
        spent = run(definition, {}, {"S": [Err("A"), Err("B"), Err("A")]})
        assert spent.status == "FAILED" and len(spent.all_tasks) == 3

    def test_max_attempts_zero(self) -> None:
        definition = single(task_state(Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 0}]))
        h = run(definition, {}, {"S": Err("E")})
        assert h.status == "FAILED" and len(h.all_tasks) == 1 and h.all_timers == []

    def test_retry_then_catch_with_result_path_on_the_error_output(self) -> None:
        """[spec] "Fallback states": after the retries, the Catcher's ResultPath places the error
        output {"Error", "Cause"} in the state's raw input."""
        definition = {"StartAt": "T", "States": {
            "T": task_state(Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 2, "IntervalSeconds": 1}],
                            Catch=[{"ErrorEquals": ["Other"], "Next": "Wrong"},
                                   {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Handle"}],
                            Next="Wrong"),
            "Wrong": {"Type": "Fail"},
            "Handle": pass_state(End=True)}}
        h = run(definition, {"keep": 1}, {"T": Err("E", "the cause")})
        assert len(h.all_tasks) == 3
        assert h.output == {"keep": 1, "error": {"Error": "E", "Cause": "the cause"}}
        assert h.history_types[-4:] == ["TaskStateExited", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]

    def test_catch_result_path_null_keeps_the_input(self) -> None:
        definition = {"StartAt": "T", "States": {
            "T": task_state(Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "H"}], Next="H"),
            "H": pass_state(End=True)}}
        assert run(definition, {"keep": 1}, {"T": Err("E")}).output == {"keep": 1}

    def test_error_output_without_cause(self) -> None:
        definition = {"StartAt": "T", "States": {
            "T": task_state(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "H"}], Next="H"),
            "H": pass_state(End=True)}}
        assert run(definition, {}, {"T": Err("E", None)}).output == {"Error": "E"}

    def test_task_failed_catcher_does_not_catch_timeout(self) -> None:
        """[guide] States.TaskFailed matches any error "except for States.Timeout"."""
        definition = {"StartAt": "T", "States": {
            "T": task_state(TimeoutSeconds=5, Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "A"},
                                                     {"ErrorEquals": ["States.Timeout"], "Next": "B"}], Next="A"),
            "A": pass_state(Result="task-failed", End=True),
            "B": pass_state(Result="timeout", End=True)}}
        h = Harness(definition)
        h.start()
        h.advance(5)
        assert h.output == "timeout"

    def test_states_runtime_is_not_retried(self) -> None:
        definition = single(task_state(OutputPath="$.missing", Retry=[{"ErrorEquals": ["States.ALL"]}]))
        h = run(definition, {}, {"S": Ok({})})
        assert h.status == "FAILED" and h.finished.error == errors.RUNTIME  # type: ignore[union-attr]
        assert len(h.all_tasks) == 1 and h.all_timers == []


# ================================================================================ timeouts


class TestTimeouts:
    def test_task_timeout(self) -> None:
        """[guide] "Task": "If the task runs longer than the specified seconds, this state fails with
        a States.Timeout error name"."""
        h = Harness(single(task_state(TimeoutSeconds=10)))
        h.start()
        task = h.only_task()
        assert [relative(t.fire_at) for t in h.all_timers] == [10.0]
        h.advance(9.999)
        assert h.status is None
        decisions = h.advance(0.001)
        assert h.status == "FAILED" and h.finished.error == errors.TIMEOUT  # type: ignore[union-attr]
        assert cancelled_ids(decisions[0]) == [task.task_id]
        assert h.history_types[-2:] == ["TaskTimedOut", "ExecutionFailed"]

    def test_result_after_timeout_is_ignored(self) -> None:
        definition = {"StartAt": "T", "States": {
            "T": task_state(TimeoutSeconds=10, Catch=[{"ErrorEquals": ["States.Timeout"], "Next": "W"}], Next="W"),
            "W": {"Type": "Wait", "Seconds": 100, "End": True}}}
        h = Harness(definition)
        h.start()
        task = h.only_task()
        h.advance(10)
        assert h.succeed(task, "too late").effects == []
        h.run_to_end()
        assert h.output["Error"] == errors.TIMEOUT

    def test_result_before_timeout_disarms_it(self) -> None:
        h = Harness(chain(("T", task_state(TimeoutSeconds=10)), ("W", {"Type": "Wait", "Seconds": 20})))
        h.start()
        h.succeed(h.only_task(), "in time", at=5)
        h.advance(30)
        assert h.status == "SUCCEEDED" and h.output == "in time"

    def test_timeout_seconds_path(self) -> None:
        h = Harness(single(task_state(TimeoutSecondsPath="$.t")))
        h.start({"t": 3})
        assert h.only_task().timeout_seconds == 3
        h.advance(3)
        assert h.finished is not None and h.finished.error == errors.TIMEOUT

    def test_heartbeat_timeout(self) -> None:
        """[guide] "Task": HeartbeatSeconds -- without a heartbeat in that time the state fails with
        States.HeartbeatTimeout."""
        h = Harness(single(task_state(HeartbeatSeconds=4, TimeoutSeconds=100)))
        h.start()
        h.advance(4)
        assert h.status == "FAILED" and h.finished.error == errors.HEARTBEAT_TIMEOUT  # type: ignore[union-attr]

    def test_a_heartbeat_rearms_the_timer(self) -> None:
        h = Harness(single(task_state(HeartbeatSeconds=4, TimeoutSeconds=100)))
        h.start()
        task = h.only_task()
        h.heartbeat(task, at=3)
        h.heartbeat(task, at=6)
        h.advance(9.9 - h.clock)
        assert h.status is None, "each heartbeat gives another HeartbeatSeconds"
        h.advance(0.1)
        assert h.status == "FAILED" and h.finished.error == errors.HEARTBEAT_TIMEOUT  # type: ignore[union-attr]
        assert relative(h.all_timers[-1].fire_at) == 10.0

    def test_heartbeats_do_not_extend_the_task_timeout(self) -> None:
        h = Harness(single(task_state(HeartbeatSeconds=4, TimeoutSeconds=10)))
        h.start()
        task = h.only_task()
        for at in (3, 6, 9):
            h.heartbeat(task, at=at)
        h.advance(10 - h.clock)
        assert h.finished is not None and h.finished.error == errors.TIMEOUT

    def test_heartbeat_for_a_task_without_heartbeat_seconds_is_ignored(self) -> None:
        h = Harness(single(task_state()))
        h.start()
        assert h.heartbeat(h.only_task()).effects == []

    def test_timeout_can_be_retried(self) -> None:
        h = Harness(single(task_state(TimeoutSeconds=5, Retry=[{"ErrorEquals": ["States.Timeout"],
                                                                 "IntervalSeconds": 1, "MaxAttempts": 1}])))
        h.start()
        first = h.only_task()
        h.advance(5)
        h.advance(1)
        second = h.only_task()
        assert second.task_id != first.task_id and second.attempt == 1
        h.succeed(second, "ok")
        assert h.output == "ok"

    def test_execution_timeout(self) -> None:
        """[spec] top-level TimeoutSeconds: "the maximum number of seconds an execution of the
        state machine can run"; past it the execution ends TIMED_OUT."""
        h = Harness(single(task_state(), TimeoutSeconds=30))
        h.start()
        task = h.only_task()
        h.advance(29.9)
        assert h.status is None
        decisions = h.advance(0.1)
        assert h.status == "TIMED_OUT"
        assert cancelled_ids(decisions[-1]) == [task.task_id]
        assert h.history_types[-1] == "ExecutionTimedOut"
        assert h.succeed(task, "late").effects == []

    def test_execution_timeout_during_a_wait(self) -> None:
        h = Harness({**chain(("W", {"Type": "Wait", "Seconds": 3600}), ("P", pass_state())), "TimeoutSeconds": 60})
        h.start()
        h.run_to_end()
        assert h.status == "TIMED_OUT"
        assert h.clock == 60.0


class TestStop:
    def test_stop_aborts_and_cancels_outstanding_tasks(self) -> None:
        h = Harness(single(parallel(branch(("A", task_state("baton:fn:a"))), branch(("B", task_state("baton:fn:b"))),
                                    End=True)))
        h.start()
        outstanding = {t.task_id for t in h.pending()}
        decision = h.stop("User.Stop", "no longer needed")
        assert {e.task_id for e in decision.effects if isinstance(e, CancelTask)} == outstanding
        assert h.status == "ABORTED"
        assert (h.finished.error, h.finished.cause) == ("User.Stop", "no longer needed")  # type: ignore[union-attr]
        assert h.history[-1].type == "ExecutionAborted"
        assert h.history[-1].details == {"error": "User.Stop", "cause": "no longer needed"}

    def test_events_after_the_end_are_ignored(self) -> None:
        h = Harness(chain(("W", {"Type": "Wait", "Seconds": 5}), ("T", task_state())))
        h.start()
        timer_id = h.all_timers[0].timer_id
        h.stop()
        final = h.state.model_dump(mode="json")
        assert h.send(TimerFired(timer_id=timer_id)).effects == []
        assert h.stop().effects == []
        assert h.state.model_dump(mode="json") == final
        assert h.state.status is ExecutionStatus.ABORTED


# ================================================================================ payload limits


class TestPayloadLimit:
    def test_pass_output_over_the_limit(self) -> None:
        """[recorded] error_handling/test_states_errors_test_start_large_input: States.DataLimitExceeded,
        "The state/task 'State_1' returned a result with a size exceeding the maximum number of
        bytes service limit.", with no PassStateExited."""
        definition = single(pass_state(Result={"Arg1": "a" * 300}, End=True), "State_1")
        h = run(definition, {}, max_payload_bytes=256)
        assert h.finished is not None
        assert (h.finished.error, h.finished.cause) == (
            errors.DATA_LIMIT_EXCEEDED,
            "The state/task 'State_1' returned a result with a size exceeding the maximum number of bytes service "
            "limit.")
        assert h.history_types == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]

    def test_task_result_over_the_limit_is_not_caught_by_states_all(self) -> None:
        """[guide] States.DataLimitExceeded "is a terminal error that can't be caught by the
        States.ALL error type"."""
        definition = {"StartAt": "T", "States": {
            "T": task_state(Retry=[{"ErrorEquals": ["States.ALL"]}],
                            Catch=[{"ErrorEquals": ["States.ALL"], "Next": "H"}], Next="H"),
            "H": pass_state(End=True)}}
        h = run(definition, {}, {"T": Ok("x" * 500)}, max_payload_bytes=200)
        assert h.finished is not None and h.finished.error == errors.DATA_LIMIT_EXCEEDED
        assert len(h.all_tasks) == 1

    def test_at_the_limit_is_fine(self) -> None:
        value = "x" * 98  # '"' + 98 + '"' = 100 bytes of JSON
        h = run(single(task_state()), {}, {"S": Ok(value)}, max_payload_bytes=100)
        assert h.status == "SUCCEEDED"

    def test_size_is_counted_in_utf8_bytes(self) -> None:
        h = run(single(task_state()), {}, {"S": Ok("é" * 50)}, max_payload_bytes=100)  # 102 bytes
        assert h.finished is not None and h.finished.error == errors.DATA_LIMIT_EXCEEDED


# ================================================================================ context object


class TestContextObject:
    def test_execution_state_machine_and_state(self) -> None:
        """[guide] "Context object": Execution.Id/Input/Name/StartTime/RoleArn, StateMachine.Id/Name,
        State.Name/EnteredTime (and RetryCount for Task, Parallel and Map states); [recorded]
        context_object/test_input_path shows the same shape for a Pass state (no RetryCount)."""
        definition = chain(("W", {"Type": "Wait", "Seconds": 42}), ("Show", pass_state(Parameters={"c.$": "$$"})))
        h = run(definition, {"in": 1})
        ctx = h.output["c"]
        assert ctx["Execution"]["Id"] == EXECUTION_ARN
        assert ctx["Execution"]["Name"] == EXECUTION_NAME
        assert ctx["Execution"]["Input"] == {"in": 1}
        assert ctx["Execution"]["StartTime"] == "2024-06-01T12:00:00.000Z"
        assert ctx["StateMachine"] == {"Id": MACHINE_ARN, "Name": MACHINE_NAME}
        assert ctx["State"] == {"Name": "Show", "EnteredTime": "2024-06-01T12:00:42.000Z"}

    def test_task_state_has_retry_count(self) -> None:
        h = run(single(task_state(Parameters={"s.$": "$$.State"}), "Work"))
        assert h.all_tasks[0].parameters == {"s": {"Name": "Work", "EnteredTime": "2024-06-01T12:00:00.000Z",
                                                   "RetryCount": 0}}

    def test_execution_input_is_the_original_input_everywhere(self) -> None:
        definition = chain(("A", pass_state(Result="changed")), ("B", pass_state(Parameters={"orig.$": "$$.Execution.Input"})))
        assert run(definition, {"x": 1}).output == {"orig": {"x": 1}}

    def test_map_context_only_inside_the_map(self) -> None:
        definition = chain(("M", map_state(branch(("P", pass_state())), ItemSelector={"i.$": "$$.Map.Item.Index"})),
                           ("After", pass_state(Parameters={"m.$": "$$.Map"})))
        h = run(definition, ["a"])
        assert h.status == "FAILED" and h.finished.error == errors.RUNTIME  # type: ignore[union-attr]


# ================================================================================ purity, determinism, persistence


COMPLEX = {
    "StartAt": "P",
    "States": {
        "P": parallel(
            branch(("A", task_state("baton:fn:a", Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 3,
                                                         "JitterStrategy": "FULL"}]))),
            branch(("W", {"Type": "Wait", "Seconds": 3}), ("B", task_state("baton:fn:b", HeartbeatSeconds=50))),
            Next="M"),
        "M": map_state(branch(("T", task_state())), MaxConcurrency=2, ItemsPath="$[0]",
                       ItemSelector={"v.$": "$$.Map.Item.Value", "u.$": "States.UUID()"}, Next="C"),
        "C": {"Type": "Choice", "Choices": [{"Variable": "$[0].v", "NumericEquals": 1, "Next": "Done"}],
              "Default": "Bad"},
        "Done": {"Type": "Succeed"},
        "Bad": {"Type": "Fail", "Error": "Bad"},
    },
}


def complex_responder(task: RunTask) -> Ok | Err:
    if task.state_name == "A":
        return Err("Flaky") if task.attempt < 2 else Ok([1, 2, 3])
    return echo(task)


class TestPurityAndPersistence:
    def test_the_complex_machine_runs(self) -> None:
        h = run(COMPLEX, {}, complex_responder)
        assert h.status == "SUCCEEDED"
        assert [item["v"] for item in h.output] == [1, 2, 3]
        assert len({item["u"] for item in h.output}) == 3

    def test_same_inputs_and_seed_give_identical_decisions(self) -> None:
        first = run(COMPLEX, {}, complex_responder, seed=11)
        second = run(COMPLEX, {}, complex_responder, seed=11)
        assert [(e.model_dump(), [x.model_dump() for x in d.effects], d.state.model_dump())
                for e, d in first.decisions] == \
               [(e.model_dump(), [x.model_dump() for x in d.effects], d.state.model_dump())
                for e, d in second.decisions]

    def test_a_single_decide_call_is_deterministic(self) -> None:
        machine = parse_definition(COMPLEX)
        state = new_execution(execution_id="e", name="n", state_machine_id="sm", state_machine_name="smn")
        env = Environment(now=T0, seed=5)
        one = decide(machine, state, StartExecution(input={}), env)
        two = decide(machine, state, StartExecution(input={}), env)
        assert one.state == two.state
        assert one.effects == two.effects

    def test_decide_never_mutates_its_input_state(self) -> None:
        """The harness checks this on every call; here it is spelt out once on a busy state."""
        h = Harness(COMPLEX, check_immutable=False)
        h.start({})
        snapshot = h.state.model_copy(deep=True)
        task = h.only_task("A")
        decision = decide(h.machine, h.state, TaskSucceeded(task_id=task.task_id, output=[1]), h.env())
        assert h.state == snapshot
        assert decision.state is not h.state

    def test_json_round_trip_mid_execution_continues_identically(self) -> None:
        """The Kafka runtime stores the state as JSON between events
        (`ExecutionState.model_validate_json(state.model_dump_json())`)."""
        plain = run(COMPLEX, {}, complex_responder, seed=3)
        stored = run(COMPLEX, {}, complex_responder, seed=3, roundtrip=True)
        assert stored.output == plain.output
        assert [[x.model_dump() for x in d.effects] for _, d in stored.decisions] == \
               [[x.model_dump() for x in d.effects] for _, d in plain.decisions]

    def test_round_trip_of_a_waiting_state(self) -> None:
        h = Harness(COMPLEX)
        h.start({})
        restored = ExecutionState.model_validate_json(h.state.model_dump_json())
        assert restored == h.state
        assert restored.model_dump(mode="json") == json.loads(h.state.model_dump_json())

    def test_start_is_idempotent(self) -> None:
        h = Harness(single(task_state()))
        h.start({"a": 1})
        assert h.start({"b": 2}).effects == []
        assert h.only_task().parameters == {"a": 1}

    def test_state_and_effects_are_json_serialisable_at_every_step(self) -> None:
        h = run(COMPLEX, {}, complex_responder)
        for _, decision in h.decisions:
            json.dumps(decision.state.model_dump(mode="json"))
            for effect in decision.effects:
                json.dumps(effect.model_dump(mode="json"))

    def test_timers_are_start_timer_effects_with_epoch_seconds(self) -> None:
        h = Harness(chain(("W", {"Type": "Wait", "Seconds": 12}), ("P", pass_state())))
        decision = h.start()
        (timer,) = [e for e in decision.effects if isinstance(e, StartTimer)]
        assert timer.fire_at == T0_EPOCH + 12


class TestRegressions:
    """Behaviours found wrong in review and fixed; each cites where AWS says so."""

    @pytest.mark.parametrize(
        ("fields", "status"),
        [
            ({"ToleratedFailureCount": 5, "ToleratedFailurePercentage": 10}, "FAILED"),
            ({"ToleratedFailureCount": 1, "ToleratedFailurePercentage": 90}, "FAILED"),
            ({"ToleratedFailureCount": 2, "ToleratedFailurePercentage": 50}, "SUCCEEDED"),
        ],
    )
    def test_exceeding_either_threshold_fails_the_map(self, fields: dict[str, Any], status: str) -> None:
        """[guide] "Tolerated failure threshold for Distributed Map state": "If you specify both
        values, the workflow fails when it exceeds either value"."""
        h = run(single(task_map(**fields), "M"), [1, 2, 3, 4],
                lambda t: Err("Bad") if t.parameters in (1, 3) else Ok(t.parameters))
        assert h.status == status
        if status == "FAILED":
            assert h.finished is not None and h.finished.error == errors.EXCEED_TOLERATED_FAILURE_THRESHOLD

    @pytest.mark.parametrize("value", [5, {"x": 1}, None, ["a"]])
    def test_error_path_must_select_a_string(self, value: Any) -> None:
        """[guide] Fail state: "the reference path must select a field that contains a string value"."""
        h = run(single({"Type": "Fail", "ErrorPath": "$.e"}, "F"), {"e": value})
        assert h.status == "FAILED"
        assert h.finished is not None and h.finished.error == errors.RUNTIME
        assert "ErrorPath" in (h.finished.cause or "")

    def test_input_over_the_payload_limit_is_refused_before_the_task_runs(self) -> None:
        """[guide] States.DataLimitExceeded is raised "when, after Parameters processing, the input
        of a state is larger than the payload size quota"."""
        h = Harness(single(task_state(Parameters={"big.$": "$.s"}), "T"), max_payload_bytes=100)
        h.start({"s": "x" * 200})
        assert h.pending() == []
        assert h.status == "FAILED"
        assert h.finished is not None and h.finished.error == errors.DATA_LIMIT_EXCEEDED

    def test_fail_without_error_inside_a_map_keeps_error_null(self) -> None:
        """[recorded] scenarios_map/test_map_state_catch_empty_fail: error and cause stay null."""
        h = run(single(map_state(branch(("F", {"Type": "Fail"}))), "M"), [1])
        assert h.status == "FAILED"
        assert h.finished is not None and h.finished.error is None and h.finished.cause is None

    def test_map_state_failed_is_written_once_after_the_retries(self) -> None:
        """[recorded] scenarios_map/test_map_state_retry: one MapStateFailed, when the state fails."""
        h = run(single(task_map(Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 2}]), "M"), [1], {"T": Err("E")})
        assert h.status == "FAILED"
        assert h.history_types.count("MapStateFailed") == 1
        assert h.history_types.count("MapStateStarted") == 3

    @pytest.mark.parametrize("key", ["where", "wherenot", "é", "naïve"])
    def test_field_names_jayway_accepts(self, key: str) -> None:
        """[guide] "Paths": dot notation takes any member name JsonPath's shorthand allows."""
        h = run(single(pass_state(Parameters={"v.$": f"$.{key}"}, End=True), "P"), {key: 7})
        assert h.output == {"v": 7}


class TestRedrive:
    """[guide] "Redriving executions": a redriven execution restarts from the unsuccessful state,
    keeps the results of the states before it, and counts redrives."""

    def test_redrive_restarts_from_the_failed_state(self) -> None:
        from orchestrator.asl.execution import RedriveExecution

        definition = {"StartAt": "A", "States": {
            "A": task_state(ResultPath="$.a", Next="B"), "B": task_state(ResultPath="$.b", End=True)}}
        h = Harness(definition)
        h.start({})
        h.succeed(h.only_task("A"), 1)
        h.fail(h.only_task("B"), "Boom")
        assert h.status == "FAILED"
        h.send(RedriveExecution())
        assert [t.state_name for t in h.pending()] == ["B"]  # A is not run again
        h.succeed(h.only_task("B"), 2)
        assert h.status == "SUCCEEDED"
        assert h.output == {"a": 1, "b": 2}
        assert "ExecutionRedriven" in h.history_types
        assert h.state.redrive_count == 1

    def test_a_succeeded_execution_is_not_redriven(self) -> None:
        from orchestrator.asl.execution import RedriveExecution

        h = run(single(pass_state(End=True), "P"), {"x": 1})
        decision = h.send(RedriveExecution())
        assert decision.effects == []
        assert decision.state.status.value == "SUCCEEDED"


class TestRedriveOfFanOuts:
    """[API] RedriveExecution: "For workflows that include an Inline Map or Parallel state,
    RedriveExecution reschedules and redrives only the iterations and branches that failed or
    aborted" - the others keep their results and are not run again."""

    def test_a_map_reruns_only_the_failed_iterations(self) -> None:
        from orchestrator.asl.execution import RedriveExecution

        h = Harness(single(task_map(ItemsPath="$.items", MaxConcurrency=2), "M"))
        h.start({"items": ["a", "b", "c", "d"]})
        first, second = h.pending()
        h.succeed(first, "A")
        h.fail(second, "Boom")  # the Map fails: "c" and "d" never started
        assert h.status == "FAILED"
        h.send(RedriveExecution())
        rerun = h.pending()
        assert [t.parameters for t in rerun] == ["b", "c"]  # "a" kept, at most 2 at a time
        for task in rerun:
            h.succeed(task, task.parameters.upper())
        (last,) = h.pending()
        assert last.parameters == "d"
        h.succeed(last, "D")
        assert h.status == "SUCCEEDED"
        assert h.output == ["A", "B", "C", "D"]
        redriven = h.history_types[h.history_types.index("ExecutionRedriven"):]
        assert redriven.count("MapIterationStarted") == 3 and redriven.count("MapStateStarted") == 1

    def test_a_parallel_reruns_only_the_failed_branch(self) -> None:
        from orchestrator.asl.execution import RedriveExecution

        left, right = branch(("L", task_state())), branch(("R", task_state()))
        h = Harness(single(parallel(left, right), "P"))
        h.start({"x": 1})
        h.succeed(h.only_task("L"), "left")
        h.fail(h.only_task("R"), "Boom")
        assert h.status == "FAILED"
        h.send(RedriveExecution())
        assert [t.state_name for t in h.pending()] == ["R"]  # the left branch is not run again
        h.succeed(h.only_task("R"), "right")
        assert h.status == "SUCCEEDED" and h.output == ["left", "right"]

    def test_a_stopped_map_keeps_what_it_completed(self) -> None:
        from orchestrator.asl.execution import RedriveExecution

        h = Harness(single(task_map(ItemsPath="$.items"), "M"))
        h.start({"items": [1, 2, 3]})
        first, *_ = h.pending()
        h.succeed(first, 10)
        h.stop(error="Stopped")
        assert h.status == "ABORTED"
        h.send(RedriveExecution())
        assert sorted(t.parameters for t in h.pending()) == [2, 3]
        for task in h.pending():
            h.succeed(task, task.parameters * 10)
        assert h.output == [10, 20, 30]

    def test_a_retried_map_runs_every_item_again(self) -> None:
        """A Retry is not a redrive: the whole state runs again (AWS re-executes the state)."""
        h = Harness(single(task_map(ItemsPath="$.items", Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 1}]), "M"))
        h.start({"items": [1, 2]})
        first, second = h.pending()
        h.succeed(first, "ok")
        h.fail(second, "E")
        h.advance(60)
        assert sorted(t.parameters for t in h.pending()) == [1, 2]
