"""The local runner (`orchestrator.local.runner`) and the mock config (`orchestrator.local.mock_config`).

Sources cited below:
- [mock] Step Functions developer guide, "Configuration file for mocked service integrations"
  (docs.aws.amazon.com/step-functions/latest/dg/sfn-local-mock-cfg-file.html): StateMachines ->
  TestCases -> state name -> mocked response name; MockedResponses keyed by invocation number
  ("0" = first invocation, "1-2" = an inclusive range of retries), each with Return or Throw.
- [lambda] Step Functions developer guide, "Invoke an AWS Lambda function with Step Functions":
  `arn:aws:states:::lambda:invoke` returns the Invoke API response (ExecutedVersion, Payload,
  StatusCode, SdkHttpMetadata, ...); a plain function ARN returns the function's result as is.
- [recorded] executions recorded on real AWS in ../shared/asl-conformance/cases/lambda_task.
"""

from __future__ import annotations

import asyncio
import json
import time
import types
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrator.asl.execution import RunTask, TaskFailed, TaskSucceeded
from orchestrator.local.mock_config import MockedResponse, parse_mock_config
from orchestrator.local.runner import ExecutionResult, LocalRunError, TaskResolver, run_execution
from steps.sdk import StepFailed, collect_steps, step
from tests.unit.conftest import machine, single, task_state

# --- steps used by the tests ---------------------------------------------------------------------


class Document(BaseModel):
    text: str
    lang: str = "en"


class Summary(BaseModel):
    words: int
    lang: str


class QuotaExceeded(Exception):
    pass


@step("summarise")
async def summarise(doc: Document) -> Summary:
    return Summary(words=len(doc.text.split()), lang=doc.lang)


@step("identity")
async def identity(payload: Any) -> Any:
    return payload


@step("explode")
async def explode(payload: Any) -> Any:
    raise QuotaExceeded("quota of 3 reached")


@step("refuse")
async def refuse(payload: Any) -> Any:
    raise StepFailed("Review.Rejected", "the reviewer said no")


STEPS = collect_steps(types.SimpleNamespace(summarise=summarise, identity=identity, explode=explode,  # type: ignore[arg-type]
                                            refuse=refuse))

DOCS_MOCK_CONFIG = {
    # The example of [mock], verbatim in structure.
    "StateMachines": {
        "LambdaSQSIntegration": {
            "TestCases": {
                "HappyPath": {"LambdaState": "MockedLambdaSuccess", "SQSState": "MockedSQSSuccess"},
                "RetryPath": {"LambdaState": "MockedLambdaRetry", "SQSState": "MockedSQSSuccess"},
                "HybridPath": {"LambdaState": "MockedLambdaSuccess"},
            }
        }
    },
    "MockedResponses": {
        "MockedLambdaSuccess": {"0": {"Return": {"StatusCode": 200, "Payload": {"StatusCode": 200,
                                                                                 "body": "Hello from Lambda!"}}}},
        "LambdaMockedResourceNotReady": {"0": {"Throw": {"Error": "Lambda.ResourceNotReadyException",
                                                         "Cause": "Lambda resource is not ready."}}},
        "MockedSQSSuccess": {"0": {"Return": {"MD5OfMessageBody": "3bcb6e8e-7h85-4375-b0bc-1a59812c6e51",
                                              "MessageId": "3bcb6e8e-8b51-4375-b0bc-1a59812c6e51"}}},
        "MockedLambdaRetry": {
            "0": {"Throw": {"Error": "Lambda.ResourceNotReadyException", "Cause": "Lambda resource is not ready."}},
            "1-2": {"Throw": {"Error": "Lambda.TimeoutException", "Cause": "Lambda timed out."}},
            "3": {"Return": {"StatusCode": 200, "Payload": {"StatusCode": 200, "body": "Hello from Lambda!"}}},
        },
    },
}

LAMBDA_SQS = {
    "StartAt": "LambdaState",
    "States": {
        "LambdaState": task_state("arn:aws:states:::lambda:invoke",
                                  Parameters={"FunctionName": "HelloWorldFunction", "Payload.$": "$"},
                                  Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 3,
                                          "BackoffRate": 2}],
                                  ResultPath="$.lambda", Next="SQSState"),
        "SQSState": task_state("arn:aws:states:::sqs:sendMessage",
                               Parameters={"QueueUrl": "https://example/queue", "MessageBody.$": "$.lambda.Payload"},
                               ResultPath="$.sqs"),
    },
}


def execute(definition: dict[str, Any], execution_input: Any = None, *, resolver: TaskResolver | None = None,
            **kwargs: Any) -> ExecutionResult:
    return asyncio.run(run_execution(machine(definition), {} if execution_input is None else execution_input,
                                     resolver=resolver or TaskResolver(steps=STEPS), execution_name="test-run",
                                     seed=kwargs.pop("seed", 1), **kwargs))


def mocks_for(test_case: str, config: dict[str, Any] = DOCS_MOCK_CONFIG) -> dict[str, MockedResponse]:
    return parse_mock_config(config).test_case(None, test_case)


# --- mock config ---------------------------------------------------------------------------------


class TestMockConfig:
    def test_attempt_ranges(self) -> None:
        """[mock] "1-2" is an inclusive range of invocation numbers; an invocation no key covers has
        no mocked response."""
        retry = mocks_for("RetryPath")["LambdaState"]
        answers = [retry.for_attempt(n) for n in range(5)]
        assert [a.throw.error if a and a.throw else (a.returns if a else None) for a in answers] == [
            "Lambda.ResourceNotReadyException", "Lambda.TimeoutException", "Lambda.TimeoutException",
            {"StatusCode": 200, "Payload": {"StatusCode": 200, "body": "Hello from Lambda!"}}, None]

    def test_test_case_maps_states_to_responses(self) -> None:
        hybrid = mocks_for("HybridPath")
        assert set(hybrid) == {"LambdaState"}
        assert set(mocks_for("HappyPath")) == {"LambdaState", "SQSState"}

    def test_unknown_names_are_reported(self) -> None:
        config = parse_mock_config(DOCS_MOCK_CONFIG)
        with pytest.raises(KeyError, match="NoSuchCase"):
            config.test_case(None, "NoSuchCase")
        with pytest.raises(KeyError, match="Other"):
            config.test_case("Other", "HappyPath")
        broken = parse_mock_config({"StateMachines": {"M": {"TestCases": {"T": {"S": "Missing"}}}},
                                    "MockedResponses": {}})
        with pytest.raises(KeyError, match="Missing"):
            broken.test_case("M", "T")

    def test_machine_must_be_named_when_there_are_several(self) -> None:
        config = parse_mock_config({"StateMachines": {"A": {"TestCases": {"T": {}}}, "B": {"TestCases": {"T": {}}}},
                                    "MockedResponses": {}})
        with pytest.raises(KeyError, match="--state-machine"):
            config.test_case(None, "T")
        assert config.test_case("B", "T") == {}

    @pytest.mark.parametrize("attempt", [{}, {"Return": 1, "Throw": {"Error": "E"}}])
    def test_attempt_needs_exactly_one_of_return_or_throw(self, attempt: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match=r"MockedResponses\.R\.0"):
            parse_mock_config({"StateMachines": {}, "MockedResponses": {"R": {"0": attempt}}})

    def test_return_null_is_a_return(self) -> None:
        config = parse_mock_config({"StateMachines": {"M": {"TestCases": {"T": {"S": "R"}}}},
                                    "MockedResponses": {"R": {"0": {"Return": None}}}})
        answer = config.test_case("M", "T")["S"].for_attempt(0)
        assert answer is not None and answer.throw is None and answer.returns is None

    def test_not_an_object(self) -> None:
        with pytest.raises(ValueError):
            parse_mock_config([1, 2])


# --- runs with mocks -----------------------------------------------------------------------------


class TestMockedRuns:
    def test_happy_path(self) -> None:
        result = execute(LAMBDA_SQS, {"in": 1}, resolver=TaskResolver(mocks=mocks_for("HappyPath")))
        assert result.status == "SUCCEEDED"
        assert result.output["lambda"]["Payload"]["body"] == "Hello from Lambda!"
        assert result.output["sqs"]["MessageId"] == "3bcb6e8e-8b51-4375-b0bc-1a59812c6e51"

    def test_retry_path_uses_the_invocation_numbers(self) -> None:
        """[mock] RetryPath: invocation 0 throws, 1-2 throw, 3 returns; with three retries the
        state succeeds on its fourth invocation."""
        resolver = TaskResolver(mocks=mocks_for("RetryPath"))
        result = execute(LAMBDA_SQS, {}, resolver=resolver)
        assert result.status == "SUCCEEDED"
        types_ = [e.type for e in result.history]
        assert types_.count("TaskFailed") == 3
        failures = [e.details["error"] for e in result.history if e.type == "TaskFailed"]
        assert failures == ["Lambda.ResourceNotReadyException", "Lambda.TimeoutException", "Lambda.TimeoutException"]
        assert resolver.invocations["LambdaState"] == 4

    def test_throw_becomes_the_execution_error(self) -> None:
        config = {"StateMachines": {"M": {"TestCases": {"T": {"S": "R"}}}},
                  "MockedResponses": {"R": {"0": {"Throw": {"Error": "Lambda.ResourceNotReadyException",
                                                            "Cause": "Lambda resource is not ready."}}}}}
        result = execute(single(task_state("arn:aws:states:::lambda:invoke", Parameters={"FunctionName": "f"})),
                         resolver=TaskResolver(mocks=mocks_for("T", config)))
        assert (result.status, result.error, result.cause) == (
            "FAILED", "Lambda.ResourceNotReadyException", "Lambda resource is not ready.")

    def test_missing_mocked_response_is_a_local_run_error(self) -> None:
        """The mocked response covers only invocation 0; the retry asks for invocation 1, which no
        key covers: the run cannot go on and says which invocation of which state is missing."""
        config = {"StateMachines": {"M": {"TestCases": {"T": {"S": "R"}}}},
                  "MockedResponses": {"R": {"0": {"Throw": {"Error": "E"}}}}}
        definition = single(task_state(Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 60}]))
        with pytest.raises(LocalRunError, match=r"invocation 1 of state 'S'"):
            execute(definition, resolver=TaskResolver(mocks=mocks_for("T", config)))

    def test_unmocked_state_without_a_step_is_a_local_run_error(self) -> None:
        """[mock] HybridPath mocks only LambdaState; SQSState has neither a mock nor a step."""
        with pytest.raises(LocalRunError, match="SQSState") as info:
            execute(LAMBDA_SQS, {}, resolver=TaskResolver(mocks=mocks_for("HybridPath")))
        assert "mock" in str(info.value)

    def test_unmocked_state_falls_through_to_a_step(self) -> None:
        definition = {"StartAt": "M", "States": {
            "M": task_state("baton:fn:identity", Next="Real"),
            "Real": task_state("baton:fn:summarise", Parameters={"text": "a b c"})}}
        config = {"StateMachines": {"X": {"TestCases": {"T": {"M": "R"}}}},
                  "MockedResponses": {"R": {"0": {"Return": {"mocked": True}}}}}
        result = execute(definition, {}, resolver=TaskResolver(steps=STEPS, mocks=mocks_for("T", config)))
        assert result.status == "SUCCEEDED"
        assert result.output == {"words": 3, "lang": "en"}

    def test_mock_takes_precedence_over_a_step(self) -> None:
        config = {"StateMachines": {"X": {"TestCases": {"T": {"S": "R"}}}},
                  "MockedResponses": {"R": {"0": {"Return": "from the mock"}}}}
        result = execute(single(task_state("baton:fn:identity")), {"x": 1},
                         resolver=TaskResolver(steps=STEPS, mocks=mocks_for("T", config)))
        assert result.output == "from the mock"


# --- runs with SDK steps -------------------------------------------------------------------------


class TestStepRuns:
    def test_pydantic_input_and_output(self) -> None:
        result = execute(single(task_state("baton:fn:summarise")), {"text": "one two three four", "lang": "fr"})
        assert (result.status, result.output) == ("SUCCEEDED", {"words": 4, "lang": "fr"})

    def test_invalid_input_is_a_task_failure(self) -> None:
        result = execute(single(task_state("baton:fn:summarise")), {"txt": "typo"})
        assert result.status == "FAILED"
        assert result.error == "ValidationError"

    def test_exception_class_name_is_the_error(self) -> None:
        """As Lambda reports an unhandled exception: the error is the exception's class name and
        the cause a JSON object with errorMessage and errorType."""
        result = execute(single(task_state("baton:fn:explode")))
        assert (result.status, result.error) == ("FAILED", "QuotaExceeded")
        cause = json.loads(result.cause or "")
        assert cause["errorMessage"] == "quota of 3 reached"
        assert cause["errorType"] == "QuotaExceeded"
        assert isinstance(cause["stackTrace"], list)

    def test_step_failed_sets_error_and_cause(self) -> None:
        result = execute(single(task_state("baton:fn:refuse")))
        assert (result.status, result.error, result.cause) == ("FAILED", "Review.Rejected", "the reviewer said no")

    def test_step_errors_can_be_retried_and_caught(self) -> None:
        definition = {"StartAt": "S", "States": {
            "S": task_state("baton:fn:explode", Retry=[{"ErrorEquals": ["QuotaExceeded"], "MaxAttempts": 2}],
                            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "H"}], Next="H"),
            "H": {"Type": "Pass", "End": True}}}
        resolver = TaskResolver(steps=STEPS)
        result = execute(definition, {"k": 1}, resolver=resolver)
        assert result.output["k"] == 1 and result.output["err"]["Error"] == "QuotaExceeded"
        assert resolver.invocations["S"] == 3

    def test_missing_step_is_a_local_run_error(self) -> None:
        with pytest.raises(LocalRunError, match="nosuch"):
            execute(single(task_state("baton:fn:nosuch")))

    def test_callback_task_without_mock_or_step(self) -> None:
        config: dict[str, Any] = {"StateMachines": {"X": {"TestCases": {"T": {}}}}, "MockedResponses": {}}
        with pytest.raises(LocalRunError):
            execute(single(task_state("baton:fn:cb.waitForTaskToken")), resolver=TaskResolver(mocks=mocks_for("T", config)))


class TestLambda:
    @pytest.mark.parametrize("function_name", [
        "identity",
        "arn:aws:lambda:us-east-1:111111111111:function:identity",
        "arn:aws:lambda:us-east-1:111111111111:function:identity:$LATEST",
        "111111111111:function:identity",
    ])
    def test_lambda_invoke_wraps_the_result(self, function_name: str) -> None:
        """[lambda] the optimised integration's output is the Invoke response, the function's
        result under "Payload", with "StatusCode" 200 ([recorded] lambda_task/test_invoke)."""
        definition = single(task_state("arn:aws:states:::lambda:invoke",
                                       Parameters={"FunctionName": function_name, "Payload.$": "$"}))
        result = execute(definition, {"hello": "world"})
        assert result.status == "SUCCEEDED"
        assert result.output["Payload"] == {"hello": "world"}
        assert result.output["StatusCode"] == 200
        assert result.output["ExecutedVersion"] == "$LATEST"
        assert result.output["SdkHttpMetadata"]["HttpStatusCode"] == 200

    @pytest.mark.parametrize(("payload", "received"), [(None, {}), ("0", 0), ("true", True), ("[]", []),
                                                       ("not json", "not json"), ({"a": 1}, {"a": 1})])
    def test_lambda_invoke_payload_bytes(self, payload: Any, received: Any) -> None:
        """[recorded] lambda_task/test_lambda_task_service_test_invoke (Payload null -> {}) and
        test_invoke_json_values ("0" -> 0, "true" -> true, "[]" -> []): a string Payload is sent as
        bytes and read back as JSON by the function."""
        definition = single(task_state("arn:aws:states:::lambda:invoke",
                                       Parameters={"FunctionName": "identity", "Payload.$": "$.p"}))
        result = execute(definition, {"p": payload})
        assert result.output["Payload"] == received

    def test_plain_function_arn_returns_the_bare_result(self) -> None:
        """[recorded] lambda_task/test_lambda_task_filter_parameters_input: a Task on a function ARN
        outputs the function's result itself."""
        definition = {"StartAt": "StartCheckLoop", "States": {
            "StartCheckLoop": {"Type": "Pass", "Result": {"count": 0}, "ResultPath": "$.loop", "Next": "CheckComplete"},
            "CheckComplete": task_state("arn:aws:lambda:us-east-1:111111111111:function:identity",
                                        Parameters={"loop.$": "$.loop"}, ResultPath="$.result")}}
        result = execute(definition, {})
        assert result.output == {"loop": {"count": 0}, "result": {"loop": {"count": 0}}}
        assert [e.type for e in result.history][4:7] == ["LambdaFunctionScheduled", "LambdaFunctionStarted",
                                                         "LambdaFunctionSucceeded"]

    def test_unknown_function_is_resource_not_found(self) -> None:
        definition = single(task_state("arn:aws:states:::lambda:invoke", Parameters={"FunctionName": "ghost"}))
        result = execute(definition)
        assert (result.status, result.error) == ("FAILED", "Lambda.ResourceNotFoundException")
        assert "ghost" in (result.cause or "")


# --- the virtual clock ---------------------------------------------------------------------------


class TestVirtualClock:
    def test_an_hour_wait_finishes_instantly(self) -> None:
        definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "Next": "P"},
                                                 "P": {"Type": "Pass", "End": True}}}
        started = time.monotonic()
        result = execute(definition, {"a": 1})
        assert time.monotonic() - started < 2.0
        assert result.status == "SUCCEEDED" and result.output == {"a": 1}
        stamps = {e.type: e.timestamp for e in result.history}
        entered = datetime.fromisoformat(stamps["WaitStateEntered"].replace("Z", "+00:00"))
        exited = datetime.fromisoformat(stamps["WaitStateExited"].replace("Z", "+00:00"))
        assert (exited - entered).total_seconds() == 3600

    def test_retry_back_off_is_virtual_too(self) -> None:
        config = {"StateMachines": {"M": {"TestCases": {"T": {"S": "R"}}}},
                  "MockedResponses": {"R": {"0-4": {"Throw": {"Error": "E"}}, "5": {"Return": "ok"}}}}
        definition = single(task_state(Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 600, "MaxAttempts": 5}]))
        started = time.monotonic()
        result = execute(definition, resolver=TaskResolver(mocks=mocks_for("T", config)))
        assert time.monotonic() - started < 2.0
        assert result.output == "ok"
        first = datetime.fromisoformat(result.history[0].timestamp.replace("Z", "+00:00"))
        last = datetime.fromisoformat(result.history[-1].timestamp.replace("Z", "+00:00"))
        assert (last - first).total_seconds() == pytest.approx(600 * (1 + 2 + 4 + 8 + 16), abs=1)

    def test_same_seed_same_run(self) -> None:
        definition = single({"Type": "Pass", "Parameters": {"u.$": "States.UUID()", "r.$": "States.MathRandom(0, 1000)"},
                             "End": True})
        assert execute(definition, seed=5).output == execute(definition, seed=5).output


class TestResultShape:
    def test_as_dict(self) -> None:
        result = execute(single({"Type": "Pass", "End": True}), {"a": 1})
        assert result.as_dict() == {"status": "SUCCEEDED", "output": {"a": 1}, "error": None, "cause": None}
        with_history = result.as_dict(with_history=True)
        assert [e["type"] for e in with_history["history"]] == ["ExecutionStarted", "PassStateEntered",
                                                                "PassStateExited", "ExecutionSucceeded"]
        assert with_history["history"][1]["passStateEnteredEventDetails"]["name"] == "S"


class TestTaskResolverDirectly:
    def command(self, resource: str, parameters: Any, state: str = "S") -> RunTask:
        return RunTask(task_id="t1", resource=resource, parameters=parameters, state_name=state, attempt=0)

    def test_answers_with_task_events(self) -> None:
        resolver = TaskResolver(steps=STEPS)
        ok = asyncio.run(resolver.run(self.command("baton:fn:identity", {"x": 1})))
        assert ok == TaskSucceeded(task_id="t1", output={"x": 1})
        failed = asyncio.run(resolver.run(self.command("baton:fn:refuse", {})))
        assert isinstance(failed, TaskFailed) and failed.error == "Review.Rejected"

    def test_counts_invocations_per_state(self) -> None:
        resolver = TaskResolver(steps=STEPS)
        for state in ("A", "B", "A"):
            asyncio.run(resolver.run(self.command("baton:fn:identity", 1, state)))
        assert resolver.invocations == {"A": 2, "B": 1}
