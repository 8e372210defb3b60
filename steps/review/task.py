"""What a review asks (the Task's Parameters) and the request reviewers see (pure: no I/O).

`baton:review.waitForTaskToken` Parameters (`ReviewTask`):

    Question      what the reviewer decides, e.g. "Send this answer to the customer?" (required)
    Content       what to review: any JSON, usually "Content.$": "$.draft"
    Context       anything else the reviewer needs to judge it (the customer's message, a score)
    Decisions     what the reviewer may answer: a non-empty subset of ["approve", "reject",
                  "edit"] (default ["approve", "reject"]); `edit` lets them replace Content
    Instructions  how to decide (a checklist, a policy link)

No `TaskToken` parameter is needed: the review service receives the task's token with the command.
The request it publishes on `baton.review.requests` (keyed by execution id) carries the token and,
in `context`, the `ReviewDetails` below: question, content, context, decisions, the deadline
(the time of the request + the Task's TimeoutSeconds, when it has one), HeartbeatSeconds, the
state and attempt. A deterministic id (from the task id) lets readers drop a re-published request.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.errors import BatonError
from schemas.review import ReviewRequest
from schemas.steps import StepCommand

Decision = Literal["approve", "reject", "edit"]
DECISIONS: tuple[Decision, ...] = ("approve", "reject", "edit")
DEFAULT_DECISIONS: list[Decision] = ["approve", "reject"]


class InvalidReviewTask(BatonError, ValueError):
    """The Task's Parameters are not a review; the message says what to fix."""


class ReviewTask(BaseModel):
    """`baton:review.waitForTaskToken` Parameters (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(alias="Question", min_length=1)
    content: Any = Field(default=None, alias="Content")
    context: Any = Field(default=None, alias="Context")
    decisions: list[Decision] = Field(default=DEFAULT_DECISIONS, alias="Decisions", min_length=1)
    instructions: str | None = Field(default=None, alias="Instructions")

    @field_validator("decisions")
    @classmethod
    def _unique(cls, value: list[Decision]) -> list[Decision]:
        return list(dict.fromkeys(value))

    @classmethod
    def parse(cls, parameters: Any) -> ReviewTask:
        if not isinstance(parameters, dict):
            raise InvalidReviewTask("baton:review takes Parameters {\"Question\": ..., \"Content.$\": ..., "
                                    f"\"Decisions\": [...]}}, not {type(parameters).__name__}")
        try:
            return cls.model_validate(parameters)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'Parameters'}: {e['msg']}"
                                 for e in exc.errors())
            raise InvalidReviewTask(f"baton:review Parameters: {problems}") from None


class ReviewDetails(BaseModel):
    """The `context` of a `ReviewRequest` published by the review service."""

    model_config = ConfigDict(extra="ignore")

    question: str
    content: Any = None
    context: Any = None
    decisions: list[Decision] = Field(default_factory=lambda: list(DEFAULT_DECISIONS))
    task_id: str = ""
    attempt: int = 0
    requested_at: datetime | None = None
    deadline: datetime | None = None  # the task times out then (TimeoutSeconds), if it has a timeout
    heartbeat_seconds: float | None = None  # post a heartbeat at least this often while deciding

    @classmethod
    def of(cls, request: ReviewRequest) -> ReviewDetails:
        """The details of a request; a request from another publisher gets what can be read from it."""
        try:
            return cls.model_validate(request.context)
        except ValidationError:
            return cls(question="(no question given)", content=request.context)


def review_request(command: StepCommand, task: ReviewTask, now: datetime) -> ReviewRequest:
    """The request reviewers see for a review command (which must carry a task token)."""
    if not command.task_token:
        raise InvalidReviewTask("a review waits for a reviewer's decision: use the resource "
                                "baton:review.waitForTaskToken")
    deadline = now + timedelta(seconds=command.timeout_seconds) if command.timeout_seconds else None
    details = ReviewDetails(
        question=task.question, content=task.content, context=task.context, decisions=task.decisions,
        task_id=command.task_id, attempt=command.attempt, requested_at=now, deadline=deadline,
        heartbeat_seconds=command.heartbeat_seconds)
    return ReviewRequest(
        id=hashlib.sha256(command.task_id.encode()).hexdigest()[:32], execution_id=command.execution_id,
        timestamp=now, task_token=command.task_token, state_name=command.state_name,
        context=details.model_dump(mode="json"), instructions=task.instructions)
