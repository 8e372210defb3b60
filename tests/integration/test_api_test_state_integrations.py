"""The API's TestState calls the real integration for an LLM Task (the step services' code, the
offline model) and returns its inspection data: the rendered prompt, model, tokens, latency, cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from steps.inprocess import LocalIntegrations, LocalIntegrationsConfig

STORY = Path(__file__).resolve().parents[2] / "examples" / "genai" / "story"


@pytest.fixture(scope="module")
def offline_model() -> Iterator[None]:
    from infra import local_model

    servers = local_model.ensure_up()
    try:
        yield
    finally:
        local_model.stop(servers)  # only those started here


def test_test_state_runs_an_llm_state_for_real(kafka: KafkaSettings, tmp_path: Path, offline_model: None) -> None:
    definition: dict[str, Any] = json.loads((STORY / "definition.json").read_text())
    integrations = LocalIntegrations(LocalIntegrationsConfig(definition=definition, definition_dir=STORY))
    app = create_app(kafka, db_path=tmp_path / "read.db", integrations=integrations)
    with TestClient(app) as client:
        answer = client.post("/api/test-state", json={"definition": definition, "state": "Outline",
                                                       "input": {"topic": "a cat who learns to sail"}})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["status"] == "SUCCEEDED", report
        llm = report["inspectionData"]["llm"]
        assert llm["model"] == "smollm2-b" and llm["inputTokens"] > 0 and llm["outputTokens"] > 0
        assert "a cat who learns to sail" in llm["messages"][-1]["content"]
        assert llm["latencyMs"] > 0 and "costUsd" in llm
        # A given result still overrides the integration: no model call, no llm inspection data.
        given = client.post("/api/test-state", json={"definition": definition, "state": "Outline", "input": {},
                                                      "result": {"Json": {"title": "T", "chapters": ["a", "b"]}}})
        assert given.status_code == 200 and "llm" not in given.json()["inspectionData"]
        assert given.json()["output"]["outline"] == {"title": "T", "chapters": ["a", "b"]}
