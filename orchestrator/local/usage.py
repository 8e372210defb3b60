"""The per-state usage of a run (model, tokens, cost, latency), read from its history: what
`baton execute` prints after a run and `baton eval` sums per case."""

from __future__ import annotations

from typing import Any

from orchestrator.asl.execution import HistoryEvent


def usage_rows(history: list[HistoryEvent]) -> list[dict[str, Any]]:
    """One row per finished Task that reported usage: state, model, tokens, cost, latency."""
    events: dict[int, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for event in history:
        data = event.as_aws()
        events[data["id"]] = data
        for key in ("taskSucceededEventDetails", "taskFailedEventDetails"):
            details = data.get(key)
            if isinstance(details, dict) and isinstance(details.get("metadata"), dict):
                metadata = details["metadata"]
                rows.append({"state": _state_of(data, events), "model": metadata.get("model"),
                             "input_tokens": metadata.get("input_tokens"),
                             "output_tokens": metadata.get("output_tokens"),
                             "cost_usd": metadata.get("cost_usd"), "cache": metadata.get("cache"),
                             "ms": metadata.get("latency_ms", metadata.get("duration_ms")),
                             "failed": key.startswith("taskFailed")})
    return rows


def _state_of(event: dict[str, Any], events: dict[int, dict[str, Any]]) -> str:
    """The state a task event belongs to: up its previousEventId chain to the StateEntered."""
    seen = 0
    while event is not None and seen < 64:
        if str(event.get("type", "")).endswith("StateEntered"):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), None)
            if isinstance(details, dict):
                return str(details.get("name"))
        event = events.get(event.get("previousEventId", -1))  # type: ignore[assignment]
        seen += 1
    return "?"
