"""Review Parameters, the request reviewers see, and the decisions they post (pure parts)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from schemas.review import ReviewRequest
from schemas.steps import StepCommand
from schemas.tokens import InvalidToken, TokenSigner
from steps.review import decisions
from steps.review.service import ReviewHandler
from steps.review.task import InvalidReviewTask, ReviewDetails, ReviewTask, review_request
from steps.sdk.step import StepError

EXECUTION = "arn:baton:states:local:execution:m:one"
TASK = f"{EXECUTION}/r0/Review/1/0"
TOKEN = TokenSigner(b"0123456789abcdef-secret").sign(EXECUTION, TASK)
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _command(parameters: Any, **fields: Any) -> StepCommand:
    return StepCommand(**{"execution_id": EXECUTION, "task_id": TASK, "service": "review",
                          "resource": "baton:review.waitForTaskToken", "state_name": "Review",
                          "parameters": parameters, "task_token": TOKEN, **fields})


def test_parameters_defaults_and_refusals() -> None:
    task = ReviewTask.parse({"Question": "Send it?", "Content": {"text": "hi"}})
    assert task.decisions == ["approve", "reject"] and task.content == {"text": "hi"}
    assert ReviewTask.parse({"Question": "q", "Decisions": ["edit", "edit", "approve"]}).decisions == ["edit", "approve"]
    for bad, words in [({}, "Question"), ({"Question": "q", "Decisions": []}, "Decisions"),
                       ({"Question": "q", "Decisions": ["maybe"]}, "Decisions"),
                       ({"Question": "q", "Typo": 1}, "Typo"), (["q"], "not list")]:
        with pytest.raises(InvalidReviewTask, match=words):
            ReviewTask.parse(bad)


def test_the_request_carries_token_question_decisions_and_deadline() -> None:
    task = ReviewTask.parse({"Question": "Send it?", "Content": "draft", "Context": {"customer": "ana"},
                             "Decisions": ["approve", "edit"], "Instructions": "Check the tone."})
    request = review_request(_command({}, timeout_seconds=600, heartbeat_seconds=60, attempt=1), task, NOW)
    assert (request.execution_id, request.task_token, request.state_name, request.instructions) == (
        EXECUTION, TOKEN, "Review", "Check the tone.")
    details = ReviewDetails.of(ReviewRequest.model_validate_json(request.model_dump_json()))
    assert details.question == "Send it?" and details.content == "draft" and details.context == {"customer": "ana"}
    assert details.decisions == ["approve", "edit"] and details.task_id == TASK and details.attempt == 1
    assert details.deadline == NOW + timedelta(seconds=600) and details.heartbeat_seconds == 60
    assert review_request(_command({}), task, NOW).id == request.id  # a re-published request is recognisable
    assert ReviewDetails.of(review_request(_command({}), task, NOW)).deadline is None
    with pytest.raises(InvalidReviewTask, match="waitForTaskToken"):
        review_request(_command({}, task_token=None, resource="baton:review"), task, NOW)


def test_decisions_and_the_results_they_give() -> None:
    approved = decisions.approve(TOKEN, {"score": 5}, reviewer="ana", comment="fine")
    assert (approved.execution_id, approved.outcome) == (EXECUTION, "success")
    assert approved.output == {"decision": "approve", "approved": True, "reviewer": "ana", "comment": "fine", "score": 5}
    assert decisions.approve(TOKEN).output == {"decision": "approve", "approved": True}
    edited = decisions.edit(TOKEN, "better text")
    assert edited.output == {"decision": "edit", "approved": True, "content": "better text"}
    rejected = decisions.reject(TOKEN, cause="off tone", reviewer="bo")
    assert (rejected.outcome, rejected.error, rejected.cause, rejected.reviewer) == (
        "failure", "Review.Rejected", "off tone", "bo")
    assert decisions.reject(TOKEN, reviewer="bo").cause == "rejected by bo"
    assert decisions.heartbeat(TOKEN).outcome == "heartbeat"
    assert [decisions.decision_name(d) for d in (approved, edited, rejected, decisions.heartbeat(TOKEN))] == [
        "approve", "edit", "reject", None]
    with pytest.raises(ValueError, match="JSON object"):
        decisions.approve(TOKEN, ["not", "an", "object"])
    for bad in ("", "nodot", "abc.", "!!!.sig", TOKEN.split(".")[1] + ".x"):
        with pytest.raises(InvalidToken):
            decisions.approve(bad)


def test_the_handler_publishes_the_request_and_returns_nothing() -> None:
    handler = ReviewHandler("t.review.requests", clock=lambda: NOW)
    sent: list[tuple[bytes, str, bytes]] = []

    async def publish(value: bytes, topic: str, key: bytes) -> None:
        sent.append((value, topic, key))

    handler.publish = publish

    async def scenario() -> None:
        assert await handler.run(_command({"Question": "Send it?", "Content": "draft"})) is None
        for command in (_command({"Question": "q", "Content.$": "$.unresolved"}),  # a typo, not a path
                        _command({"Question": "q"}, task_token=None, resource="baton:review")):
            with pytest.raises(StepError) as caught:
                await handler.run(command)
            assert caught.value.error == "Baton.Review.InvalidParameters"

    asyncio.run(scenario())
    [(value, topic, key)] = sent
    request = ReviewRequest.model_validate_json(value)
    assert (topic, key, request.task_token) == ("t.review.requests", EXECUTION.encode(), TOKEN)
    assert ReviewDetails.of(request).content == "draft"
