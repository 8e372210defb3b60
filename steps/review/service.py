"""The `review` step service: `baton:review.waitForTaskToken` asks a person to decide.

For each command it publishes a `ReviewRequest` (task token, question, content, allowed decisions,
deadline; see `steps.review.task`) on `baton.review.requests`, keyed by execution id, and hands
off: the task's result is the reviewer's decision, which reaches the orchestrator on
`baton.review.decisions` with the token (`baton review approve|edit|reject|heartbeat`). While it
waits, the orchestrator's HeartbeatSeconds and TimeoutSeconds timers run: no heartbeat within
HeartbeatSeconds fails the task with States.HeartbeatTimeout, no decision within TimeoutSeconds
with States.Timeout; both are catchable.

A command that cannot become a request fails the task at once:

    Baton.Review.InvalidParameters  the Parameters are not a review, or the resource lacks
                                    `.waitForTaskToken` (a review has nothing to return at once)
    Baton.Review.Unavailable        the request could not be published (Kafka); retriable
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from aiokafka.errors import KafkaError
from faststream import FastStream
from prometheus_client import CollectorRegistry, Counter

from kafka_io import KafkaSettings
from schemas.base import encode
from schemas.steps import StepCommand
from steps.review.task import InvalidReviewTask, ReviewTask, review_request
from steps.sdk.handler import StepHandler
from steps.sdk.step import StepError
from steps.service import StepService

SERVICE = "review"
INVALID_PARAMETERS = "Baton.Review.InvalidParameters"
UNAVAILABLE = "Baton.Review.Unavailable"

Publish = Callable[[bytes, str, bytes], Awaitable[Any]]  # (value, topic, key)


class ReviewHandler(StepHandler):
    """Turns a review command into a published `ReviewRequest`; returns nothing (the decision is the result)."""

    def __init__(self, requests_topic: str, *, registry: CollectorRegistry | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.requests_topic = requests_topic
        self.publish: Publish | None = None  # set by `review_service` to the service's producer
        self._clock = clock
        self.requests = Counter("baton_review_requests", "Review requests published.",
                                registry=registry or CollectorRegistry())

    async def run(self, command: StepCommand) -> None:
        try:
            request = review_request(command, ReviewTask.parse(command.parameters), self._clock())
        except InvalidReviewTask as exc:
            raise StepError(INVALID_PARAMETERS, str(exc)) from None
        if self.publish is None:
            raise StepError("States.Runtime", "the review handler has no producer (build it with review_service)")
        try:
            await self.publish(encode(request), self.requests_topic, command.execution_id.encode())
        except KafkaError as exc:
            raise StepError(UNAVAILABLE, f"the review request could not be published to {self.requests_topic}: "
                                         f"{exc}") from None
        self.requests.inc()


class ReviewStepService(StepService):
    """The review `StepService`: publishes requests with its own producer and checks their topic exists."""

    review: ReviewHandler

    async def publish_record(self, value: bytes, topic: str, key: bytes) -> object:
        return await self.broker.publish(value, topic, key=key)

    def extra_topics(self) -> list[str]:
        return [self.topics.review_requests]  # where reviewers read what to decide


def review_service(*, settings: KafkaSettings | None = None, registry: CollectorRegistry | None = None,
                   **options: Any) -> ReviewStepService:
    """The `review` step service. `options` are passed to `StepService` (max_concurrency, ...)."""
    settings = settings or KafkaSettings()
    registry = registry or CollectorRegistry()
    handler = ReviewHandler(settings.topics.review_requests, registry=registry)
    service = ReviewStepService(SERVICE, handler, settings=settings, registry=registry, **options)
    service.review = handler
    handler.publish = service.publish_record
    return service


def app() -> FastStream:
    """`faststream run --factory steps.review.service:app` (BATON_KAFKA_BOOTSTRAP, BATON_TOPIC_PREFIX, ...)."""
    return review_service().app()
