"""The quotas one execution lives within, in the pure core: the execution input's size, the
transitions one decision may run before it yields, and the events in one history."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from orchestrator.asl.decider import Decision, Environment, decide, new_execution
from orchestrator.asl.execution import (
    Event,
    ExecutionState,
    HistoryEvent,
    StartExecution,
    StartTimer,
    TimerFired,
)
from orchestrator.asl.model import parse_definition

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _chain(length: int) -> dict[str, Any]:
    states: dict[str, Any] = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(length - 1)}
    states[f"S{length - 1}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "S0", "States": states}


LOOP = {"StartAt": "Again", "States": {
    "Again": {"Type": "Pass", "Next": "Check"},
    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.never", "IsPresent": True, "Next": "Done"}],
              "Default": "Again"},
    "Done": {"Type": "Succeed"}}}


def _drive(definition: dict[str, Any], execution_input: Any, **env: Any) -> tuple[ExecutionState, list[Decision]]:
    """Start and fire every timer as it comes due (they are all immediate here)."""
    machine = parse_definition(definition)
    state = new_execution(execution_id="arn:x:execution:m:e", name="e", state_machine_id="arn:x:m",
                          state_machine_name="m")
    decisions: list[Decision] = []
    pending: list[Event] = [StartExecution(input=execution_input)]
    while pending:
        decision = decide(machine, state, pending.pop(0), Environment(now=NOW, **env))
        decisions.append(decision)
        state = decision.state
        pending += [TimerFired(timer_id=e.timer_id) for e in decision.effects if isinstance(e, StartTimer)]
    return state, decisions


def _events(decisions: list[Decision]) -> list[HistoryEvent]:
    return [e for d in decisions for e in d.history]


def test_an_input_over_the_payload_quota_fails_the_execution_without_keeping_the_input() -> None:
    state, decisions = _drive(_chain(1), {"text": "x" * 1000}, max_payload_bytes=1000)
    assert (state.status.value, state.error) == ("FAILED", "States.DataLimitExceeded")
    assert state.input is None and "1011 bytes" in (state.cause or "")
    started, failed = _events(decisions)
    assert started.type == "ExecutionStarted" and started.details["inputDetails"] == {"truncated": True}
    assert started.details["input"] is None and failed.type == "ExecutionFailed"


def test_at_the_payload_quota_the_input_is_accepted() -> None:
    text = "x" * (1000 - len('{"t":""}'))
    state, _ = _drive(_chain(1), {"t": text}, max_payload_bytes=1000)
    assert state.status.value == "SUCCEEDED" and state.input == {"t": text}


def test_a_long_chain_of_pass_states_yields_every_budget_and_finishes() -> None:
    state, decisions = _drive(_chain(2_500), {"n": 1}, max_transitions_per_decision=1000)
    assert state.status.value == "SUCCEEDED" and state.output == {"n": 1}
    exited = [sum(1 for e in d.history if e.type == "PassStateExited") for d in decisions]
    assert exited == [1000, 1000, 500]
    events = _events(decisions)
    assert [e.id for e in events] == list(range(1, len(events) + 1))  # one history, as if undivided
    assert not state.timers


def test_a_loop_that_never_waits_fails_at_the_history_quota() -> None:
    state, decisions = _drive(LOOP, {}, max_transitions_per_decision=100, max_history_events=1000)
    assert (state.status.value, state.error) == ("FAILED", "States.Runtime")
    assert "maximum number of events" in (state.cause or "")
    events = _events(decisions)
    assert 1000 <= len(events) <= 1000 + 5 and events[-1].type == "ExecutionFailed"
    assert max(len(d.history) for d in decisions) <= 2 * 100 + 5  # bounded per decision


def test_the_default_budget_keeps_a_decision_small() -> None:
    _, decisions = _drive(LOOP, {}, max_history_events=5000)
    assert len(decisions) > 2 and max(len(d.history) for d in decisions) <= 2 * 1000 + 5
