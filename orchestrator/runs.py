"""What each state of an execution did, folded from its history events (pure: no I/O).

`state_runs` gives each state's latest run: status, input, output, error, retries, entry and exit
times, and what the step service measured with its result (the task event's `metadata`: model,
provider, tokens, cost, latency, time to first token, duration), or a review's decision. The
execution page shows them and `orchestrator.graph.to_svg` colours the graph with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

@dataclass
class StateRun:
    """What one state did in an execution (its latest entry, for a state entered several times)."""

    name: str
    type: str = ""
    status: str = "RUNNING"  # RUNNING | SUCCEEDED | FAILED | CAUGHT
    entries: int = 0
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    retries: int = 0
    model: str | None = None
    tokens: dict[str, Any] | None = None
    entered_at: str | None = None
    exited_at: str | None = None
    # What the step service measured (the task event's `metadata`; an LLM step's `_call`).
    provider: str | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None
    duration_ms: float | None = None
    review: dict[str, Any] | None = None  # a human review's decision, reviewer and comment

    def as_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


_MEASURED = ("model", "tokens", "provider", "cost_usd", "latency_ms", "time_to_first_token_ms", "duration_ms",
             "review")


def _details(event: dict[str, Any]) -> dict[str, Any]:
    kind = str(event.get("type", ""))
    found = event.get(kind[:1].lower() + kind[1:] + "EventDetails")
    return found if isinstance(found, dict) else {}


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _usage(output: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The model and token counts an LLM step put in its result, wherever they sit."""
    if not isinstance(output, dict):
        return None, None
    for candidate in (output, output.get("Payload")):
        if isinstance(candidate, dict):
            model = candidate.get("model")
            usage = candidate.get("usage")
            if model is not None or isinstance(usage, dict):
                return (str(model) if model is not None else None), (usage if isinstance(usage, dict) else None)
    return None, None


def _measured(run: StateRun, metadata: Any) -> None:
    """Take what a step service recorded with its result: the model, tokens, cost and timings."""
    if not isinstance(metadata, dict):
        return
    run.model = metadata.get("model") or run.model
    run.provider = metadata.get("provider") or run.provider
    if metadata.get("input_tokens") is not None or metadata.get("output_tokens") is not None:
        run.tokens = {"input_tokens": metadata.get("input_tokens"), "output_tokens": metadata.get("output_tokens")}
    run.cost_usd = metadata.get("cost_usd", run.cost_usd)
    run.latency_ms = metadata.get("latency_ms", run.latency_ms)
    run.time_to_first_token_ms = metadata.get("time_to_first_token_ms", run.time_to_first_token_ms)
    run.duration_ms = metadata.get("duration_ms", run.duration_ms)


def _review(output: Any) -> dict[str, Any] | None:
    """A review task's decision (`steps.review`: decision, reviewer, comment), None for other tasks."""
    if isinstance(output, dict) and "decision" in output and "approved" in output:
        return {key: output.get(key) for key in ("decision", "reviewer", "comment")}
    return None


def state_runs(history: list[dict[str, Any]]) -> dict[str, StateRun]:
    """Fold history events into each state's latest run.

    Task events name no state: they belong to the most recently entered state still open (exact
    for sequences; a guess when Parallel branches interleave). A task that failed and was
    scheduled again counts a retry; an open state when the execution fails takes its error.
    """
    runs: dict[str, StateRun] = {}
    open_states: list[str] = []
    for event in history:
        kind = str(event.get("type", ""))
        details = _details(event)
        if kind.endswith("StateEntered"):
            name = str(details.get("name"))
            run = runs.get(name) or StateRun(name)
            run.type, run.entries, run.status = kind[: -len("StateEntered")], run.entries + 1, "RUNNING"
            run.input, run.output, run.error, run.cause = details.get("input"), None, None, None
            run.entered_at, run.exited_at, run.retries = event.get("timestamp"), None, 0
            for measured in _MEASURED:  # the latest entry's own, not an earlier one's
                setattr(run, measured, None)
            runs[name] = run
            open_states.append(name)
        elif kind.endswith("StateExited"):
            name = str(details.get("name"))
            run = runs.setdefault(name, StateRun(name))
            run.output, run.exited_at = details.get("output"), event.get("timestamp")
            run.status = "CAUGHT" if run.error else "SUCCEEDED"
            if name in open_states:
                open_states.remove(name)
        elif open_states and kind in ("TaskScheduled", "TaskSucceeded", "TaskFailed", "TaskTimedOut"):
            run = runs[open_states[-1]]
            if kind == "TaskScheduled" and run.error:
                run.retries += 1
                run.error = run.cause = None
            elif kind == "TaskSucceeded":
                output = _maybe_json(details.get("output"))
                model, tokens = _usage(output)
                run.model, run.tokens = model or run.model, tokens or run.tokens
                _measured(run, details.get("metadata"))
                run.review = _review(output) or run.review
            elif kind in ("TaskFailed", "TaskTimedOut"):
                run.error, run.cause = details.get("error"), details.get("cause")
                _measured(run, details.get("metadata"))
                if run.error == "Review.Rejected":  # steps.review's rejection: its cause names the reviewer
                    run.review = {"decision": "reject", "reviewer": None, "comment": run.cause}
        elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            for name in open_states:
                run = runs[name]
                run.status = "FAILED"
                run.error = run.error or details.get("error") or kind.removeprefix("Execution")
                run.cause = run.cause or details.get("cause")
            open_states.clear()
        elif kind == "ExecutionRedriven":
            open_states.clear()
    return runs
