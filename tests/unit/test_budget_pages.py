"""Budgets at the API and on the execution page, without Kafka: a start with a bad budget is a JSON
400; the page and the progress JSON show the budget and the spend the history records."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from orchestrator.api.progress import progress
from orchestrator.api.readmodel import ExecutionView

EXECUTION = "arn:baton:states:local:execution:agent:a1"
HISTORY: list[dict[str, Any]] = [
    {"id": 1, "type": "ExecutionStarted", "timestamp": "2026-12-05T07:00:00.000Z",
     "executionStartedEventDetails": {"input": {}, "budget": {"MaxTokens": 2500, "MaxCost": 0.5}}},
    {"id": 2, "type": "TaskStateEntered", "timestamp": "2026-12-05T07:00:00.000Z",
     "taskStateEnteredEventDetails": {"name": "Think", "input": {}}},
    {"id": 3, "type": "TaskSucceeded", "timestamp": "2026-12-05T07:00:01.000Z",
     "taskSucceededEventDetails": {"output": "{}", "metadata": {"input_tokens": 1200, "output_tokens": 100,
                                                                "cost_usd": 0.01},
                                   "charge": {"tokens": 1300, "costUsd": 0.01}}},
    {"id": 4, "type": "TaskFailed", "timestamp": "2026-12-05T07:00:02.000Z",
     "taskFailedEventDetails": {"error": "Baton.LLM.InvalidResponse", "metadata": {"input_tokens": 1250,
                                                                                   "output_tokens": 30},
                                "charge": {"tokens": 1280, "costUsd": 0.0}}},
]
VIEW = ExecutionView(execution_id=EXECUTION, state_machine="agent", name="a1", status="SUCCEEDED")


class _Backend:
    def __init__(self) -> None:
        self.model = self
        self.definitions = type("Definitions", (), {"by_execution": {}})()

    def describe(self, execution: str) -> ExecutionView:
        return VIEW

    def history(self, execution_id: str) -> list[dict[str, Any]]:
        return HISTORY

    def machine_of(self, execution_id: str) -> None:
        return None


@pytest.fixture
def client() -> TestClient:
    app = create_app(KafkaSettings(), db_path=":memory:")
    app.state.backend = _Backend()
    return TestClient(app)


def test_the_page_and_the_progress_show_the_budget_and_the_spend(client: TestClient) -> None:
    text = client.get(f"/executions/{EXECUTION}").text
    assert 'id="budget">budget: 2580 tokens of 2500 &middot; $0.010000 of $0.5 spent in 2 charged call(s)' in text
    assert progress(VIEW, HISTORY)["budget"] == {"limits": {"MaxTokens": 2500, "MaxCost": 0.5},
                                                 "spent": {"tokens": 2580, "costUsd": 0.01, "calls": 2}}


@pytest.mark.parametrize("bad, says", [
    ("5", "budget: a budget is an object"),
    ({"MaxTokens": "lots"}, 'budget: MaxTokens: must be a whole number of tokens >= 0, not "lots"'),
    ({"MaxCost": 1, "Dollars": 2}, "budget: Dollars: unknown field"),
])
def test_a_start_with_a_bad_budget_is_a_json_400(client: TestClient, bad: Any, says: str) -> None:
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    response = client.post("/api/executions", json={"definition": definition, "budget": bad})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidBudget" and says in error["message"]


def test_the_studio_s_llm_check_leaves_a_task_budget_to_the_orchestrator() -> None:
    from orchestrator.api.studio_edits import llm_problems

    state = {"Type": "Task", "Resource": "baton:llm", "End": True,
             "Parameters": {"Prompt": "hi", "Budget": {"MaxTokens": 100}}}
    assert llm_problems({"StartAt": "A", "States": {"A": state}}) == []
    from_input = {**state, "Parameters": {"Prompt": "hi", "Budget.$": "$.budget"}}
    assert llm_problems({"StartAt": "A", "States": {"A": from_input}}) == []
