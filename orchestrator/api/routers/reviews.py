"""Task callbacks (`/api/tasks/*`, AWS's SendTaskSuccess/Failure/Heartbeat) and the review inbox
(`/api/reviews`, `/api/reviews/decision`).

A decision is checked before it is posted: the token's signature (the orchestrators'
BATON_TOKEN_SECRET), the execution and that the task still waits (`orchestrator.api.tasks`);
then the route waits a few seconds (BATON_DECISION_WAIT_SECONDS) for the orchestrator to apply
it: 200 "applied", or 202 "accepted" when the wait ran out (`orchestrator.client.callbacks`).

Review queues: an identity limited to some state machines' reviews (`Identity.queues`) lists only
their pending reviews, and a decision for a task of any other execution answers 403 before
anything is published (`_check_queue`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from kafka_io import kafka_errors
from orchestrator.api.auth import AuthError, identity_of
from orchestrator.api.backend import Backend, backend_of
from orchestrator.api.errors import ApiError
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.readmodel import AmbiguousExecution
from orchestrator.api.roles import requires
from orchestrator.quotas import check_payload
from orchestrator.client.callbacks import describe_outcome, not_waiting, unknown_execution, verify_token
from schemas.review import ReviewDecision
from schemas.tokens import InvalidToken

router = APIRouter(route_class=GuardedRoute)
reviewer = requires("reviewer")


class TaskSuccess(BaseModel):
    task_token: str
    output: Any = Field(default_factory=dict)


class TaskFailure(BaseModel):
    task_token: str
    error: str = "Review.Rejected"
    cause: str | None = None


class TaskHeartbeat(BaseModel):
    task_token: str


class ReviewDecisionRequest(BaseModel):
    """A reviewer's decision, as the inbox posts it (what `baton review approve|edit|reject` does)."""

    task_token: str
    decision: Literal["approve", "edit", "reject"]
    output: Any = None  # approve: an object merged into the result; edit: the new content
    comment: str | None = None
    reviewer: str | None = None
    error: str = "Review.Rejected"
    cause: str | None = None


@router.post("/api/tasks/success", status_code=202, dependencies=[reviewer], tags=["tasks"])
async def send_task_success(body: TaskSuccess, request: Request, response: Response) -> dict[str, Any]:
    """SendTaskSuccess: the waiting task succeeds with `output` (published to the review topic).
    200 once the orchestrator applied it, 202 if not yet within the wait; 400 InvalidToken,
    404 TaskDoesNotExist, 410 TaskTimedOut (decided, timed out or ended), 413 output too large."""
    from steps.review.decisions import check_token

    _check_queue(request, body.task_token)
    decision = _decision(lambda: ReviewDecision(execution_id=check_token(body.task_token),
                                                task_token=body.task_token.strip(), outcome="success",
                                                output=body.output, reviewer=_who(request)))
    return await _post_decision(request, response, decision)


@router.post("/api/tasks/failure", status_code=202, dependencies=[reviewer], tags=["tasks"])
async def send_task_failure(body: TaskFailure, request: Request, response: Response) -> dict[str, Any]:
    """SendTaskFailure: the waiting task fails with `error` and `cause` (statuses as SendTaskSuccess)."""
    from steps.review import decisions

    _check_queue(request, body.task_token)
    return await _post_decision(request, response, _decision(lambda: decisions.reject(
        body.task_token, error=body.error, cause=body.cause, reviewer=_who(request))))


@router.post("/api/tasks/heartbeat", status_code=202, dependencies=[reviewer], tags=["tasks"])
async def send_task_heartbeat(body: TaskHeartbeat, request: Request, response: Response) -> dict[str, Any]:
    """SendTaskHeartbeat: restart the waiting task's HeartbeatSeconds clock (statuses as SendTaskSuccess)."""
    from steps.review import decisions

    _check_queue(request, body.task_token)
    return await _post_decision(request, response, _decision(lambda: decisions.heartbeat(
        body.task_token, reviewer=_who(request))))


@router.get("/api/reviews", dependencies=[reviewer], tags=["reviews"])
async def list_reviews(request: Request) -> list[dict[str, Any]]:
    """The reviews waiting for a decision, oldest first, each with its task token (only those of
    the caller's review queues when it is limited to some)."""
    from orchestrator.client.reviews import pending_reviews

    backend = backend_of(request)
    identity = identity_of(request)
    with kafka_errors(backend.settings):
        reviews = await pending_reviews(backend.settings, 30.0)
    return [review.as_json() for review in reviews
            if identity is None or identity.may_review(review.state_machine)]


@router.post("/api/reviews/decision", status_code=202, dependencies=[reviewer], tags=["reviews"])
async def decide_review(body: ReviewDecisionRequest, request: Request, response: Response) -> dict[str, Any]:
    """Approve, edit or reject a pending review (what `baton review approve|edit|reject` posts);
    statuses as `/api/tasks/success`."""
    from steps.review import decisions

    _check_queue(request, body.task_token)
    identity = identity_of(request)  # with auth, the decision records who made it, not what the body says
    reviewer = identity.name if identity is not None else body.reviewer
    if body.decision == "approve":
        decision = _decision(lambda: decisions.approve(body.task_token, body.output, reviewer=reviewer,
                                                       comment=body.comment))
    elif body.decision == "edit":
        decision = _decision(lambda: decisions.edit(body.task_token, body.output, reviewer=reviewer,
                                                    comment=body.comment))
    else:
        decision = _decision(lambda: decisions.reject(body.task_token, error=body.error, cause=body.cause,
                                                      reviewer=reviewer))
    return await _post_decision(request, response, decision)


def _decision(make: Callable[[], ReviewDecision]) -> ReviewDecision:
    try:
        return make()
    except (InvalidToken, ValueError) as exc:
        raise ApiError(400, "InvalidDecision", str(exc)) from None


def _who(request: Request) -> str | None:
    identity = identity_of(request)
    return identity.name if identity is not None else None


def _check_queue(request: Request, task_token: str) -> None:
    """403 unless the caller may review the execution `task_token` names (a no-op without a limit).

    The execution's state machine is the one the orchestrator resolved its start to, from the read
    model. An execution the read model does not know gets the same 403 as one of another queue, so
    a limited reviewer cannot probe which executions exist; a malformed token is still a 400 (that
    depends on the text alone). The orchestrator verifies the token's signature either way, and
    the signature covers the execution id read here.
    """
    from steps.review.decisions import check_token

    identity = identity_of(request)
    if identity is None or identity.may_review(None):
        return
    try:
        execution_id = check_token(task_token)
    except InvalidToken as exc:
        raise ApiError(400, "InvalidDecision", str(exc)) from None
    if not identity.may_review(_state_machine_of(backend_of(request), execution_id)):
        raise AuthError(403, "Forbidden", f"the token {identity.name!r} may decide only the tasks of its review queues")


def _state_machine_of(backend: Backend, execution_id: str) -> str | None:
    """The registered name an execution runs (any version or alias), None when it is not known."""
    try:
        view = backend.model.describe(execution_id)
    except AmbiguousExecution:
        return None
    # describe() also matches names: only the exact id counts here.
    return view.state_machine if view is not None and view.execution_id == execution_id else None


async def _post_decision(request: Request, response: Response, decision: ReviewDecision) -> dict[str, Any]:
    """Check a decision as the orchestrator will (its token's signature, its execution, that the task
    still waits; 4xx and nothing is posted otherwise), post it and report whether it was applied."""
    backend = backend_of(request)
    execution_id, task_id = verify_token(decision.task_token, request.app.state.token_secret)
    if decision.outcome == "success":
        check_payload(decision.output, request.app.state.quotas, "the task output")
    state = await backend.task_state(execution_id, task_id)
    if state == "unknown":
        raise unknown_execution(execution_id)
    if state == "gone":
        raise not_waiting(execution_id)
    wait: float = request.app.state.decision_wait
    outcome = await backend.post_decision(decision, wait)
    if outcome == "applied":
        response.status_code = 200
    return {"execution_id": decision.execution_id, "outcome": decision.outcome, "status": outcome,
            "message": describe_outcome(outcome, wait)}
