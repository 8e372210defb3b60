"""Step commands (orchestrator -> a step service) and step results (step service -> orchestrator)."""

from __future__ import annotations

from typing import Any, Literal

from schemas.base import Envelope


class StepCommand(Envelope):
    """Run a task. At-least-once: `task_id` is the idempotency key (execution, run, state, entry, attempt)."""

    kind: Literal["run", "cancel"] = "run"
    task_id: str
    service: str
    resource: str
    state_name: str = ""
    attempt: int = 0
    parameters: Any = None
    task_token: str | None = None  # callback pattern: the result arrives with this token
    # Proof of receipt: an HMAC of (execution, task, service) under the orchestrators' secret. Only
    # a reader of this service's command topic learns it, and the result must carry it back: a
    # service cannot complete a task it was not given (docs/security.md, "Trust between services").
    result_key: str | None = None
    timeout_seconds: float | None = None
    heartbeat_seconds: float | None = None


class StepResult(Envelope):
    """A task's outcome or sign of life, keyed by execution id on the results topic."""

    kind: Literal["succeeded", "failed", "heartbeat", "progress"]
    task_id: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    metadata: dict[str, Any] = {}  # usage, latency, model, ... (recorded, not interpreted)
    result_key: str | None = None  # the command's `result_key`, returned as proof of receipt
