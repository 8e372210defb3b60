"""Budgets on the real broker: a Map of LLM calls (the llm service calling a provider stub that
counts what it answers) stops at the execution's budget, a Catch routes Baton.LLM.BudgetExceeded,
the reservations keep the calls in flight within the budget, and the spend (the sum of the
history's charges) is what the provider answered, also across an orchestrator restart mid-run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kafka_io import KafkaSettings
from tests.integration.runtime_support import RuntimeClient, running_orchestrator
from tests.reliability.provider_stub import ProviderStub

TOKENS_PER_CALL = 7  # the stub's usage: 5 prompt + 2 completion tokens
PRICE = {"input_per_million": 1000.0, "output_per_million": 1000.0}  # 7 tokens = 0.007 USD


def definition(items: int) -> dict[str, Any]:
    return {"StartAt": "Each", "States": {
        "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0, "Next": "Done",
                 "ItemProcessor": {"StartAt": "Ask", "States": {"Ask": {
                     "Type": "Task", "Resource": "baton:llm", "End": True,
                     "Parameters": {"Model": "stub", "Prompt.$": "$.text", "MaxTokens": 2}}}},
                 "Catch": [{"ErrorEquals": ["Baton.LLM.BudgetExceeded"], "ResultPath": "$.stopped", "Next": "Done"}]},
        "Done": {"Type": "Pass", "End": True}}}


def charges(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [details["charge"] for event in events for key, details in event.items()
            if key.endswith("EventDetails") and isinstance(details, dict) and "charge" in details]


def add_up(registry: Any, into: dict[str, float]) -> None:
    for family in registry.collect():
        for sample in family.samples:
            into[sample.name] = into.get(sample.name, 0.0) + sample.value


def test_a_map_of_llm_calls_stops_at_the_budget_across_a_restart(kafka: KafkaSettings) -> None:
    from steps.llm.config import LLMSettings
    from steps.llm.service import llm_service

    items = {"items": [{"text": f"item {i}"} for i in range(60)]}

    metrics: dict[str, float] = {}

    async def scenario(stub: ProviderStub) -> tuple[Any, Any, dict[str, list[dict[str, Any]]]]:
        settings = LLMSettings.model_validate({
            "providers": {"stub": {"kind": "openai", "base_url": stub.base_url, "stream": False}},
            "models": {"stub": {"provider": "stub"}}, "prices": {"stub": PRICE}})
        async with llm_service(settings, kafka=kafka), RuntimeClient(kafka) as client:
            async with running_orchestrator(kafka, "budget-o1") as first:
                by_tokens = await client.start(definition(60), items, budget={"MaxTokens": 150})
                by_cost = await client.start(definition(60), items, budget={"MaxCost": 0.1})
                while len(stub.answered()) < 10:
                    await asyncio.sleep(0.01)
                add_up(first.metrics.registry, metrics)
            # A restart mid-run: the ledger (spend, reservations, waiting runs) comes back from the
            # state topic; the calls in flight settle against it once.
            async with running_orchestrator(kafka, "budget-o2") as second:
                outcomes = await client.wait([by_tokens, by_cost], timeout=90)
                add_up(second.metrics.registry, metrics)
            history = await client.history()
        return outcomes[by_tokens], outcomes[by_cost], history

    with ProviderStub(max_concurrency=1000, max_per_window=100_000, window_seconds=1.0, delay_seconds=0.2) as stub:
        tokens, cost, history = asyncio.run(scenario(stub))
        answered = len(stub.answered())
    for outcome in (tokens, cost):
        assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
        assert outcome.output["stopped"]["Error"] == "Baton.LLM.BudgetExceeded"
    spent_tokens = sum(c["tokens"] for c in charges(history[tokens.execution_id]))
    spent_cost = sum(c["costUsd"] for c in charges(history[cost.execution_id]))
    # Every call the provider answered was charged once (none lost or doubled by the restart) ...
    assert (spent_tokens + round(spent_cost / 0.007) * TOKENS_PER_CALL) == answered * TOKENS_PER_CALL
    # ... and the reservations kept them within the bound: the limit plus one call.
    assert 150 <= spent_tokens <= 150 + TOKENS_PER_CALL
    assert 0.1 <= spent_cost <= 0.1 + 0.007 + 1e-9
    # Each Map's first refusal fails it (its other iterations are cancelled); the rest waited.
    assert metrics["baton_budget_refused_total"] >= 2 and metrics["baton_budget_waits_total"] > 0
    assert metrics["baton_execution_spend_tokens_count"] == 2
    assert metrics["baton_execution_spend_tokens_sum"] == answered * TOKENS_PER_CALL
    assert metrics["baton_execution_spend_usd_sum"] == pytest.approx(answered * 0.007)
    print(f"\nbudget 150 tokens: {spent_tokens} spent in {spent_tokens // TOKENS_PER_CALL} calls; "
          f"budget 0.1 USD: {spent_cost:.3f} spent; the provider answered {answered} calls of 120 items")


def test_bad_budgets_fail_their_execution_or_state_and_the_orchestrator_goes_on(kafka: KafkaSettings) -> None:
    """A start record whose budget is a string (a client that did not check it), and a Task whose
    Budget from the input is bad (caught): clear errors, and the next execution still runs."""
    task_budget = {"StartAt": "Ask", "States": {
        "Ask": {"Type": "Task", "Resource": "baton:llm", "End": True,
                "Parameters": {"Prompt": "hi", "Budget.$": "$.budget"},
                "Catch": [{"ErrorEquals": ["Baton.LLM.InvalidBudget"], "Next": "Caught"}]},
        "Caught": {"Type": "Pass", "End": True}}}
    plain = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}

    async def scenario() -> list[Any]:
        async with RuntimeClient(kafka) as client, running_orchestrator(kafka, "budget-bad"):
            ids = [await client.start(plain, {}, budget="5"),
                   await client.start(task_budget, {"budget": {"MaxCost": "1"}}),
                   await client.start(plain, {"after": True})]
            outcomes = await client.wait(ids, timeout=60)
            return [outcomes[i] for i in ids]

    string_budget, bad_task_budget, after = asyncio.run(scenario())
    assert (string_budget.status, string_budget.error) == ("FAILED", "Baton.LLM.InvalidBudget")
    assert string_budget.cause == ('the start\'s budget: a budget is an object such as {"MaxTokens": 20000, '
                                   '"MaxCost": 0.5}, not "5"')
    assert bad_task_budget.status == "SUCCEEDED"
    assert bad_task_budget.output == {"Error": "Baton.LLM.InvalidBudget", "Cause": (
        "the Task's Budget is not valid: MaxCost: must be a number of USD >= 0, not \"1\"")}
    assert after.status == "SUCCEEDED" and after.output == {"after": True}


def test_describe_shows_the_spend_the_history_charged(kafka: KafkaSettings, tmp_path: Any) -> None:
    """The read model's describe (the API's and `baton describe`'s) shows the budget and a spend
    equal to the sum of the history's charges."""
    from orchestrator.api.readmodel import ReadModel
    from steps.llm.config import LLMSettings
    from steps.llm.service import llm_service

    items = {"items": [{"text": f"item {i}"} for i in range(20)]}

    async def scenario(stub: ProviderStub) -> tuple[Any, dict[str, Any] | None, list[dict[str, Any]]]:
        settings = LLMSettings.model_validate({
            "providers": {"stub": {"kind": "openai", "base_url": stub.base_url, "stream": False}},
            "models": {"stub": {"provider": "stub"}}, "prices": {"stub": PRICE}})
        async with llm_service(settings, kafka=kafka), RuntimeClient(kafka) as client, \
                running_orchestrator(kafka, "budget-describe"):
            execution = await client.start(definition(20), items, budget={"MaxTokens": 70, "MaxCost": 1})
            outcome = (await client.wait([execution], timeout=60))[execution]
        with ReadModel(tmp_path / "readmodel.sqlite") as model:
            await model.catch_up(kafka)
            view = model.describe(execution)
            assert view is not None
            return outcome, view.model_dump(mode="json").get("budget"), model.history(execution)

    with ProviderStub(max_concurrency=1000, max_per_window=100_000, window_seconds=1.0, delay_seconds=0.05) as stub:
        outcome, described, events = asyncio.run(scenario(stub))
    assert outcome.status == "SUCCEEDED" and outcome.output["stopped"]["Error"] == "Baton.LLM.BudgetExceeded"
    charged = charges(events)
    assert described == {"limits": {"MaxTokens": 70, "MaxCost": 1.0}, "spent": {
        "tokens": sum(c["tokens"] for c in charged), "costUsd": round(sum(c["costUsd"] for c in charged), 10),
        "calls": len(charged)}}
    assert 70 <= described["spent"]["tokens"] <= 70 + TOKENS_PER_CALL
