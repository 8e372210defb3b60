"""TestState: run one state on its own with a given input, and show the data after each stage.

Like AWS's TestState API at the DEBUG inspection level: afterInputPath, afterParameters, result,
afterResultSelector, afterResultPath (JSONPath) or afterArguments, result (JSONata), the output,
the next state or the error, and whether a Retry or Catch applied. As in AWS's API, the state may
start with workflow variables (`variables`), and `inspectionData.variables` shows the variables
after the state, when there are any. The decider runs the state (Environment.single_state); for
a Task the result is the one given, or the error given, or else what the mock config / steps answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from orchestrator.asl.decider import Environment, decide, new_execution
from orchestrator.asl.execution import (
    Event,
    ExecutionFinished,
    RunTask,
    StartExecution,
    StartTimer,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
)
from orchestrator.asl.model import State, StateMachine
from orchestrator.local.runner import LocalRunError, TaskResolver


@dataclass
class GivenOutcome:
    """What the state's task returns, when given on the command line."""

    result: Any = None
    has_result: bool = False
    error: str | None = None
    cause: str | None = None


def find_state(machine: StateMachine, name: str) -> tuple[StateMachine, State] | None:
    """The scope (machine, branch or Map processor) holding state `name`, and the state."""
    if name in machine.states:
        return machine, machine.states[name]
    for state in machine.states.values():
        for nested in (*state.branches, *([state.processor] if state.processor else [])):
            found = find_state(nested, name)
            if found:
                return found
    return None


async def run_test_state(
    machine: StateMachine,
    state_name: str,
    state_input: Any,
    *,
    given: GivenOutcome,
    resolver: TaskResolver,
    variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one state; return {"status", "nextState"?, "output"?, "error"?, "cause"?, "inspectionData"}.

    `variables` are the workflow variables the state sees (the TestState API's `variables`).
    """
    found = find_state(machine, state_name)
    if found is None:
        raise LocalRunError(f"no state named {state_name!r} in the definition")
    scope, state = found
    single = StateMachine(start_at=state_name, states=scope.states, query_language=scope.query_language)
    execution = new_execution(
        execution_id="arn:baton:states:local:execution:test-state:test", name="test",
        state_machine_id="arn:baton:states:local:stateMachine:test-state", state_machine_name="test-state",
    )
    events: list[Event] = [StartExecution(input=state_input)]
    inspection: dict[str, Any] = {}
    timers: list[str] = []
    while events or timers:
        event = events.pop(0) if events else TimerFired(timer_id=timers.pop(0))
        env = Environment(now=datetime.now(timezone.utc), single_state=True, variables=variables or {})
        decision = decide(single, execution, event, env)
        execution = decision.state
        inspection.update(decision.inspection)
        for effect in decision.effects:
            if isinstance(effect, ExecutionFinished):
                return _report(state, effect, inspection)
            if isinstance(effect, StartTimer):
                timers.append(effect.timer_id)  # TestState does not wait
            elif isinstance(effect, RunTask):
                answer = await _answer(effect, given, resolver, top=effect.state_name == state_name)
                if effect.state_name == state_name and answer.metadata:
                    inspection.update(task_inspection(answer.metadata))
                events.append(answer)
    raise LocalRunError(f"state {state_name!r} did not finish")


async def _answer(command: RunTask, given: GivenOutcome, resolver: TaskResolver,
                  top: bool) -> TaskSucceeded | TaskFailed:
    if top and given.error is not None:
        return TaskFailed(task_id=command.task_id, error=given.error, cause=given.cause)
    if top and given.has_result:
        return TaskSucceeded(task_id=command.task_id, output=given.result)
    return await resolver.run(command)


def _report(state: State, finished: ExecutionFinished, inspection: dict[str, Any]) -> dict[str, Any]:
    stages = ["afterInputPath", "afterParameters", "afterArguments", "result", "afterResultSelector",
              "afterResultPath", "variables", "llm", "request", "response", "retrieval", "durationMs"]
    data = {k: inspection[k] for k in stages if k in inspection}
    report: dict[str, Any] = {"state": state.name, "type": state.type}
    if "retry" in inspection:
        report.update(status="RETRIABLE", error=finished.error, cause=finished.cause, retry=inspection["retry"])
    elif finished.status.value == "SUCCEEDED":
        report["status"] = "CAUGHT_ERROR" if "caught" in inspection else "SUCCEEDED"
        if "caught" in inspection:
            report.update(error=inspection["caught"]["error"], cause=inspection["caught"]["cause"])
        if "nextState" in inspection:
            report["nextState"] = inspection["nextState"]
        report["output"] = finished.output
    else:
        report.update(status="FAILED", error=finished.error, cause=finished.cause)
    report["inspectionData"] = data
    return report


def task_inspection(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What the integration reported about the call, as inspection data: for an LLM Task the
    rendered prompt, provider and model, tokens, latency, time to first token and cost; for an HTTP
    Task the request sent (secrets redacted) and the response's status and timing (AWS's
    `request`/`response`); for a retrieval the knowledge base and timings."""
    data: dict[str, Any] = {}
    if "duration_ms" in metadata:
        data["durationMs"] = metadata["duration_ms"]
    if "provider" in metadata or "prompt" in metadata:
        prompt = metadata.get("prompt") or {}
        fields = {"provider": "provider", "model": "model", "providerModel": "provider_model",
                  "responseModel": "response_model", "inputTokens": "input_tokens",
                  "outputTokens": "output_tokens", "latencyMs": "latency_ms",
                  "timeToFirstTokenMs": "time_to_first_token_ms", "outputTokensPerSecond": "output_tokens_per_second",
                  "costUsd": "cost_usd", "finishReason": "finish_reason", "cache": "cache"}
        llm = {name: metadata[key] for name, key in fields.items() if key in metadata}
        llm.update({name: prompt[key] for name, key in (("system", "system"), ("messages", "messages"),
                                                         ("promptRef", "prompt_ref"), ("systemRef", "system_ref"))
                    if key in prompt})
        data["llm"] = llm
    http = metadata.get("http")
    if isinstance(http, Mapping):
        request = http.get("request") or {"method": http.get("method"), "url": http.get("endpoint")}
        data["request"] = dict(request)
        data["response"] = {"statusCode": http.get("status_code"), "latencyMs": http.get("latency_ms"),
                            "attempts": http.get("attempts")}
    if "knowledge_base" in metadata:
        data["retrieval"] = {name: metadata[key] for name, key in (
            ("knowledgeBase", "knowledge_base"), ("buildId", "build_id"), ("model", "model"),
            ("embedMs", "embed_ms"), ("searchMs", "search_ms")) if key in metadata}
    return data
