"""An execution's progress as the API and the pages show it: the execution, its event count, what
each state did so far (`orchestrator.runs.state_runs`) and the usage summed over the execution."""

from __future__ import annotations

from typing import Any

from orchestrator.api.readmodel import ExecutionView
from orchestrator.asl.budget import spend_in_history
from orchestrator.runs import state_runs

_TASK_EVENTS = {"TaskSucceeded": "taskSucceededEventDetails", "TaskFailed": "taskFailedEventDetails"}


def usage_totals(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens in and out and the cost over every task call of the execution (each retry, each
    Map iteration and branch counts: the states' panel shows only a state's latest run)."""
    totals: dict[str, Any] = {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "calls": 0}
    for event in history:
        details = event.get(_TASK_EVENTS.get(str(event.get("type")), ""))
        metadata = details.get("metadata") if isinstance(details, dict) else None
        if not isinstance(metadata, dict) or ("input_tokens" not in metadata and "cost_usd" not in metadata):
            continue
        totals["calls"] += 1
        totals["input_tokens"] += metadata.get("input_tokens") or 0
        totals["output_tokens"] += metadata.get("output_tokens") or 0
        totals["cost_usd"] += metadata.get("cost_usd") or 0.0
    totals["cost_usd"] = round(totals["cost_usd"], 10)  # a sum of small floats, without the noise
    return totals


def progress(view: ExecutionView, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {"execution": view.model_dump(mode="json"), "events": len(history),
            "states": {name: run.as_json() for name, run in state_runs(history).items()},
            "totals": usage_totals(history), "budget": spend_in_history(history)}
