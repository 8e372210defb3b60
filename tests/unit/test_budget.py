"""Budgets in the core (orchestrator/asl/budget.py and its use by the decider): pure and fast.

Driven through `decide` with `tests/unit/conftest.Harness`; LLM Tasks answer with the metadata
the llm step service reports (`input_tokens`, `output_tokens`, `cost_usd`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.asl import budget
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.execution import ExecutionStatus, RunTask, StartExecution, TaskFailed, TaskSucceeded
from orchestrator.asl.model import parse_definition
from tests.unit.conftest import Harness, single, task_state

USAGE = {"input_tokens": 60, "output_tokens": 40, "cost_usd": 0.01}  # 100 tokens, 1 cent per call


def answer(h: Harness, task: RunTask, usage: dict[str, Any] = USAGE, fail: bool = False) -> None:
    h.tasks.pop(task.task_id, None)
    if fail:
        h.send(TaskFailed(task_id=task.task_id, error="Baton.LLM.InvalidResponse", metadata=dict(usage)))
    else:
        h.send(TaskSucceeded(task_id=task.task_id, output={"Text": "ok"}, metadata=dict(usage)))


def loop(limit: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    """An agent-like loop: Ask forever, a Catch on BudgetExceeded ends it in Stopped."""
    definition: dict[str, Any] = {"StartAt": "Ask", "States": {
        "Ask": {"Type": "Task", "Resource": "baton:llm", "Parameters": {"Prompt": "hi", "MaxTokens": 50, **params},
                "Next": "Ask",
                "Catch": [{"ErrorEquals": [budget.BUDGET_EXCEEDED], "ResultPath": "$.error", "Next": "Stopped"}]},
        "Stopped": {"Type": "Pass", "End": True}}}
    if limit is not None:
        definition["Baton"] = {"Budget": limit}
    return definition


def run_loop(h: Harness, **start: Any) -> int:
    h.send(StartExecution(input={}, **start))
    calls = 0
    while h.tasks:
        answer(h, next(iter(h.tasks.values())))
        calls += 1
        assert calls < 100, "the budget never stopped the loop"
    return calls


def charges(h: Harness) -> list[dict[str, Any]]:
    return [e.details["charge"] for e in h.history if "charge" in e.details]


def test_an_execution_budget_ends_a_runaway_loop_with_an_error_catch_routes() -> None:
    h = Harness(loop({"MaxTokens": 450}), roundtrip=True)
    calls = run_loop(h)
    assert calls == 5  # 4 x 100 = 400 < 450 admits a fifth; at 500 >= 450 the sixth is refused
    assert h.finished is not None and h.finished.status is ExecutionStatus.SUCCEEDED
    assert h.finished.output["error"]["Error"] == budget.BUDGET_EXCEEDED
    assert "500 tokens of its budget of 450" in h.finished.output["error"]["Cause"]
    ledger = h.state.budget
    assert ledger is not None and ledger.spent.tokens == 500 and ledger.spent.calls == 5
    assert sum(c["tokens"] for c in charges(h)) == ledger.spent.tokens
    assert ledger.view()["byState"]["Ask"]["calls"] == 5 and not ledger.reserved


def test_a_cost_budget_given_at_start_and_the_tighter_of_the_two_applies() -> None:
    h = Harness(loop({"MaxTokens": 10_000, "MaxCost": 1.0}))
    assert run_loop(h, budget={"MaxCost": 0.03}) == 3
    assert h.state.budget is not None and h.state.budget.limits == budget.Budget(MaxTokens=10_000, MaxCost=0.03)
    assert h.state.budget.spent.cost_usd == pytest.approx(0.03)


def test_a_task_budget_bounds_one_state_across_its_entries() -> None:
    h = Harness(loop(Budget={"MaxTokens": 200}))
    assert run_loop(h) == 2
    assert h.finished is not None and "the state 'Ask' has spent 200 tokens" in h.finished.output["error"]["Cause"]
    sent = h.all_tasks[0].parameters
    assert "Budget" not in sent and sent["Prompt"] == "hi"  # the step never sees it
    scheduled = next(e for e in h.history if e.type == "TaskScheduled")
    assert '"Budget"' in scheduled.details["parameters"]  # the history shows what was declared


def test_a_failed_call_is_charged_too() -> None:
    h = Harness(loop({"MaxTokens": 150}))
    h.send(StartExecution(input={}))
    answer(h, next(iter(h.tasks.values())), fail=True)
    assert h.finished is not None and h.finished.status is ExecutionStatus.FAILED
    assert h.state.budget is not None and h.state.budget.spent.tokens == 100
    assert charges(h) == [{"tokens": 100, "costUsd": 0.01}]


def test_without_a_budget_the_spend_is_still_recorded_and_nothing_else_changes() -> None:
    plain = {"StartAt": "A", "States": {"A": task_state("baton:llm", Parameters={"Prompt": "x"})}}
    h = Harness(plain)
    h.start()
    assert h.state.budget is None  # nothing stored for an execution until a call reports usage
    answer(h, next(iter(h.tasks.values())))
    assert h.finished is not None and h.finished.status is ExecutionStatus.SUCCEEDED
    assert h.state.budget is not None and h.state.budget.limits is None and h.state.budget.spent.tokens == 100
    fn_only = Harness(single(task_state()))
    fn_only.start()
    fn_only.succeed(next(iter(fn_only.tasks)), {"x": 1})
    assert fn_only.state.budget is None and not charges(fn_only)


def mapped(limit: dict[str, Any], items: int = 10, **params: Any) -> dict[str, Any]:
    return {"StartAt": "Each", "Baton": {"Budget": limit}, "States": {"Each": {
        "Type": "Map", "ItemsPath": "$.items", "End": True,
        "Catch": [{"ErrorEquals": [budget.BUDGET_EXCEEDED], "Next": "Stopped"}],
        "ItemProcessor": {"StartAt": "Call", "States": {"Call": task_state(
            "baton:llm", Parameters={"Prompt": "x", "MaxTokens": 100, **params})}}},
        "Stopped": {"Type": "Pass", "End": True}}}


def test_a_map_reserves_so_concurrent_calls_cannot_overspend_the_budget() -> None:
    # Estimates are ~100 tokens (MaxTokens) + the Parameters' size: a budget of 450 admits 4 at once.
    h = Harness(mapped({"MaxTokens": 450}), roundtrip=True)
    h.start({"items": list(range(10))})
    assert len(h.tasks) == 4  # the rest wait for room, nothing has been spent yet
    waiting = h.state.budget.waiting if h.state.budget else []
    assert len(waiting) == 6
    while h.tasks:
        answer(h, next(iter(h.tasks.values())))
    ledger = h.state.budget
    assert ledger is not None and h.finished is not None
    assert h.finished.output["Error"] == budget.BUDGET_EXCEEDED
    # The bound: the limit plus one call (the last admitted with nothing else in flight).
    assert ledger.spent.tokens <= 450 + 100
    assert ledger.spent.tokens == sum(c["tokens"] for c in charges(h))
    assert not ledger.reserved and not ledger.waiting


def test_without_a_price_a_cost_budget_admits_one_call_until_one_settled() -> None:
    h = Harness(mapped({"MaxCost": 0.05}, items=6))
    h.start({"items": list(range(6))})
    assert len(h.tasks) == 1  # no price per token known yet
    answer(h, next(iter(h.tasks.values())))  # 1 cent for 100 tokens: now the estimates are priced
    assert len(h.tasks) >= 2
    while h.tasks:
        answer(h, next(iter(h.tasks.values())))
    assert h.state.budget is not None and h.state.budget.spent.cost_usd <= 0.05 + 0.01 + 1e-9


def test_a_timed_out_call_releases_its_reservation_uncharged() -> None:
    definition = mapped({"MaxTokens": 10_000}, items=1)
    definition["States"]["Each"]["ItemProcessor"]["States"]["Call"]["TimeoutSeconds"] = 5
    h = Harness(definition)
    h.start({"items": [1]})
    assert h.state.budget is not None and len(h.state.budget.reserved) == 1
    h.advance(6)
    assert h.state.budget is not None and not h.state.budget.reserved and h.state.budget.spent.calls == 0


@pytest.mark.parametrize("bad, says", [
    ("5", "a budget is an object"),
    ({"MaxCost": "0.5"}, 'MaxCost: must be a number of USD >= 0, not "0.5"'),
    ({"MaxTokens": -1}, "MaxTokens: must be a whole number of tokens >= 0, not -1"),
    ({"MaxTokens": 1.5}, "MaxTokens: must be a whole number"),
    ({"MaxDollars": 1}, "MaxDollars: unknown field"),
])
def test_a_bad_budget_says_what_is_wrong(bad: Any, says: str) -> None:
    with pytest.raises(budget.BudgetError, match=None) as caught:
        budget.parse_budget(bad)
    assert says in str(caught.value)


def test_validate_refuses_a_bad_budget_in_the_definition_with_its_path() -> None:
    bad = loop({"MaxCost": "5"})
    bad["Baton"]["Other"] = 1
    bad["States"]["Ask"]["Parameters"]["Budget"] = {"MaxTokens": "many"}
    with pytest.raises(DefinitionError) as caught:
        parse_definition(bad)
    paths = {p.path for p in caught.value.problems}
    assert paths == {"$.Baton.Budget.MaxCost", "$.Baton.Other", "$.States.Ask.Parameters.Budget.MaxTokens"}
    with pytest.raises(DefinitionError, match=r"\$\.Baton: 'Baton'"):
        parse_definition({**loop(), "Baton": "cheap"})
    parse_definition(loop({"MaxTokens": 10, "MaxCost": 0}))  # a good one is valid


def test_a_bad_task_budget_from_the_input_is_an_error_catch_can_route() -> None:
    budget_from_input: dict[str, Any] = {"Budget.$": "$.budget"}
    definition = loop(None, **budget_from_input)
    definition["States"]["Ask"]["Catch"].insert(
        0, {"ErrorEquals": [budget.INVALID_BUDGET], "ResultPath": "$.error", "Next": "Stopped"})
    h = Harness(definition)
    h.start({"budget": {"MaxTokens": "lots"}})
    assert h.finished is not None and h.finished.status is ExecutionStatus.SUCCEEDED
    assert h.finished.output["error"]["Error"] == budget.INVALID_BUDGET
    assert 'MaxTokens: must be a whole number of tokens >= 0, not "lots"' in h.finished.output["error"]["Cause"]


def test_a_start_with_a_bad_budget_fails_the_execution_and_says_why() -> None:
    h = Harness(loop())
    h.send(StartExecution(input={}, budget={"MaxCost": -2}))
    assert h.finished is not None and h.finished.status is ExecutionStatus.FAILED
    assert h.finished.error == budget.INVALID_BUDGET and "MaxCost" in (h.finished.cause or "")


def test_the_execution_started_event_records_the_budget_it_runs_under() -> None:
    h = Harness(loop({"MaxTokens": 900}))
    h.send(StartExecution(input={}, budget={"MaxTokens": 5000, "MaxCost": 0.2}))
    started = h.history[0]
    assert started.type == "ExecutionStarted" and started.details["budget"] == {"MaxTokens": 900, "MaxCost": 0.2}
    plain = Harness(single(task_state()))
    plain.start()
    assert "budget" not in plain.history[0].details  # an execution without a budget reads as before


def test_the_client_refuses_a_bad_budget_before_publishing_and_carries_a_good_one() -> None:
    import asyncio

    from kafka_io import KafkaSettings
    from orchestrator.client import BatonClient, InvalidBudget
    from orchestrator.client.testing import RecordingProducer

    async def scenario() -> None:
        producer = RecordingProducer()
        async with BatonClient(KafkaSettings(topic_prefix="memory"), producer=producer) as client:
            with pytest.raises(InvalidBudget, match='budget: MaxCost: must be a number of USD >= 0, not "1"'):
                await client.start("inline", definition=loop(), budget={"MaxCost": "1"})
            assert not producer.records
            await client.start("inline", definition=loop(), budget={"MaxTokens": 10}, name="b")
        assert len(producer.records) == 1
        assert json.loads(producer.records[0].value)["budget"] == {"MaxTokens": 10}

    asyncio.run(scenario())


def test_a_map_that_fails_leaves_no_reservation_or_waiting_run() -> None:
    # A Map whose first answer fails it: its waiting iterations are cancelled with it.
    h = Harness(mapped({"MaxTokens": 450}), roundtrip=True)
    h.start({"items": list(range(10))})
    assert h.state.budget is not None and len(h.state.budget.waiting) == 6
    answer(h, next(iter(h.tasks.values())), fail=True)  # uncaught: the Map fails, the execution too
    assert h.finished is not None and h.finished.status is ExecutionStatus.FAILED
    assert h.state.budget is not None and not h.state.budget.waiting and not h.state.budget.reserved


def test_the_spend_in_the_history_is_the_ledger_s() -> None:
    h = Harness(mapped({"MaxTokens": 450, "MaxCost": 1}), roundtrip=True)
    h.start({"items": list(range(10))})
    while h.tasks:
        answer(h, next(iter(h.tasks.values())))
    assert h.state.budget is not None
    seen = budget.spend_in_history([e.as_aws() for e in h.history])
    assert seen == {"limits": {"MaxTokens": 450, "MaxCost": 1.0}, "spent": h.state.budget.view()["spent"]}
    assert budget.spend_in_history([e.as_aws() for e in Harness(single(task_state())).start().history]) is None


def test_without_a_budget_nothing_is_reserved_for_the_calls_in_flight() -> None:
    definition = mapped({"MaxTokens": 1})
    del definition["Baton"]
    h = Harness(definition)
    h.start({"items": list(range(5))})
    assert len(h.tasks) == 5
    answer(h, next(iter(h.tasks.values())))
    assert h.state.budget is not None and not h.state.budget.reserved and h.state.budget.spent.tokens == 100
