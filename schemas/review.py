"""Human review: what reviewers see, and the decisions they post with the task token."""

from __future__ import annotations

from typing import Any, Literal

from schemas.base import Envelope


class ReviewRequest(Envelope):
    task_token: str
    state_name: str
    context: Any = None  # the task's parameters: what to review
    instructions: str | None = None


class ReviewDecision(Envelope):
    """Posted by a reviewer or any client with the task token (AWS's SendTaskSuccess needs only
    the token): `execution_id` may be left out, the orchestrator reads it from the signed token."""

    execution_id: str = ""
    task_token: str
    outcome: Literal["success", "failure", "heartbeat"]
    output: Any = None
    error: str | None = None
    cause: str | None = None
    reviewer: str | None = None
