"""The execution page without Kafka: the actions shown per role, the metadata a state panel shows
(the task event's `metadata`, the bug where an LLM state read `model: null, tokens: null`), the
execution's summed usage, and JSON embedded in the page that cannot close its script element."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from orchestrator.api.auth import TokenAuthorizer, TokenStore
from orchestrator.api.progress import usage_totals
from orchestrator.api.readmodel import ExecutionView
from orchestrator.runs import state_runs

EXECUTION = "arn:baton:states:local:execution:plan:p1"
METADATA = {"provider": "local", "model": "smollm2", "input_tokens": 36, "output_tokens": 16,
            "cost_usd": 0.015, "latency_ms": 709.7, "time_to_first_token_ms": 115.0, "duration_ms": 712.1}
HISTORY: list[dict[str, Any]] = [
    {"id": 1, "type": "ExecutionStarted", "timestamp": "2026-12-04T19:00:00.000Z"},
    {"id": 2, "type": "TaskStateEntered", "timestamp": "2026-12-04T19:00:00.000Z",
     "taskStateEnteredEventDetails": {"name": "Plan", "input": {"q": "</script><script>alert(1)</script>"}}},
    {"id": 3, "type": "TaskScheduled", "timestamp": "2026-12-04T19:00:00.001Z"},
    {"id": 4, "type": "TaskFailed", "timestamp": "2026-12-04T19:00:00.300Z",
     "taskFailedEventDetails": {"error": "Model.Throttled", "cause": "busy",
                                "metadata": {**METADATA, "input_tokens": 36, "output_tokens": 0, "cost_usd": 0.005}}},
    {"id": 5, "type": "TaskScheduled", "timestamp": "2026-12-04T19:00:00.400Z"},
    {"id": 6, "type": "TaskSucceeded", "timestamp": "2026-12-04T19:00:01.100Z",
     "taskSucceededEventDetails": {"output": '{"Text": "Paris"}', "metadata": METADATA}},
    {"id": 7, "type": "TaskStateExited", "timestamp": "2026-12-04T19:00:01.100Z",
     "taskStateExitedEventDetails": {"name": "Plan", "output": {"text": "Paris"}}},
    {"id": 8, "type": "TaskStateEntered", "timestamp": "2026-12-04T19:00:01.100Z",
     "taskStateEnteredEventDetails": {"name": "Review", "input": {}}},
    {"id": 9, "type": "TaskSucceeded", "timestamp": "2026-12-04T19:00:05.000Z",
     "taskSucceededEventDetails": {"output": '{"decision": "edit", "approved": true, "reviewer": "ana", '
                                             '"comment": "shorter", "content": "Paris."}'}},
]


def test_an_llm_state_reads_the_task_events_metadata() -> None:
    plan = state_runs(HISTORY)["Plan"]
    assert plan.model == "smollm2" and plan.provider == "local"
    assert plan.tokens == {"input_tokens": 36, "output_tokens": 16}
    assert (plan.cost_usd, plan.latency_ms, plan.time_to_first_token_ms, plan.duration_ms) == (0.015, 709.7, 115.0, 712.1)
    assert plan.retries == 1 and plan.status == "SUCCEEDED"
    review = state_runs(HISTORY)["Review"]
    assert review.review == {"decision": "edit", "reviewer": "ana", "comment": "shorter"} and review.model is None


def test_a_state_entered_again_forgets_the_earlier_runs_measures() -> None:
    again = [*HISTORY[:7], {"id": 8, "type": "TaskStateEntered", "timestamp": "2026-12-04T19:00:02.000Z",
                            "taskStateEnteredEventDetails": {"name": "Plan", "input": {}}}]
    plan = state_runs(again)["Plan"]
    assert plan.status == "RUNNING" and plan.model is None and plan.tokens is None and plan.cost_usd is None


def test_the_usage_is_summed_over_every_call() -> None:
    assert usage_totals(HISTORY) == {"input_tokens": 72, "output_tokens": 16, "cost_usd": 0.02, "calls": 2}
    assert usage_totals([]) == {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "calls": 0}


class _Backend:
    """What the execution page reads of the backend."""

    def __init__(self, view: ExecutionView) -> None:
        self.model, self.view = self, view
        self.definitions = type("Definitions", (), {"by_execution": {EXECUTION: {"StartAt": "Plan"}}})()

    def describe(self, execution: str) -> ExecutionView:
        return self.view

    def history(self, execution_id: str) -> list[dict[str, Any]]:
        return HISTORY

    def machine_of(self, execution_id: str) -> None:
        return None


@pytest.fixture
def pages(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    store = TokenStore(tmp_path / "api-tokens.json")
    app = create_app(KafkaSettings(), db_path=":memory:", authorizer=TokenAuthorizer(store))
    app.state.backend = _Backend(ExecutionView(execution_id=EXECUTION, state_machine="plan", name="p1",
                                               status="RUNNING", input={"q": 1}))
    tokens = {role: store.create(f"{role}-1", role) for role in ("viewer", "operator", "reviewer")}
    return TestClient(app), tokens


def test_the_actions_are_shown_to_operators_only(pages: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = pages

    def page(role: str) -> str:
        response = client.get(f"/executions/{EXECUTION}", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert response.status_code == 200
        return response.text

    assert 'class="action-stop"' in page("operator") and 'class="action-restart"' in page("operator")
    for role in ("viewer", "reviewer"):
        assert "action-stop" not in page(role) and "action-redrive" not in page(role), role
    # A running execution: Stop shown, Redrive there but hidden until it may be redriven.
    assert '<button type="button" class="action-redrive" hidden>' in page("operator")


def test_embedded_json_cannot_close_its_script(pages: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = pages
    text = client.get(f"/executions/{EXECUTION}", headers={"Authorization": f"Bearer {tokens['viewer']}"}).text
    assert "</script><script>alert(1)" not in text and "\\u003c/script\\u003e" in text


def test_a_rejected_review_shows_as_a_decision() -> None:
    rejected = [*HISTORY[:8], {"id": 9, "type": "TaskFailed", "timestamp": "2026-12-04T19:00:05.000Z",
                               "taskFailedEventDetails": {"error": "Review.Rejected", "cause": "rejected by ana"}}]
    review = state_runs(rejected)["Review"]
    assert review.review == {"decision": "reject", "reviewer": None, "comment": "rejected by ana"}
    assert state_runs(HISTORY[:4])["Plan"].review is None  # another task's failure is no review
