"""An execution's progress as the API and the pages show it: the execution, its event count and
what each state did so far (`orchestrator.graph.state_runs`)."""

from __future__ import annotations

from typing import Any

from orchestrator.api.readmodel import ExecutionView
from orchestrator.graph import state_runs


def progress(view: ExecutionView, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {"execution": view.model_dump(mode="json"), "events": len(history),
            "states": {name: run.as_json() for name, run in state_runs(history).items()}}
