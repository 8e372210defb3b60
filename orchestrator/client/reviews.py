"""The reviewers' side on Kafka: which reviews are pending, and posting a decision.

A review is pending while the orchestrator still awaits its task. That is read from the source of
truth rather than guessed from the decisions topic: the requests topic says what was asked, and
the compacted execution-state topic (`baton.executions.state`, the snapshots the orchestrator
commits in the same transaction as the command that made the request) says which tasks each
execution still awaits. So a review leaves the list when it is decided, when it times out
(TimeoutSeconds, HeartbeatSeconds) and when its execution ends or is stopped, and a forged or
replayed decision changes nothing here either. Both topics are read committed, to their end as
of the call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata
from pydantic import ValidationError

from kafka_io import KafkaSettings, new_consumer, new_producer, topic_partitions
from schemas.base import decode, encode
from schemas.errors import BatonError
from schemas.executions import ExecutionSnapshot
from schemas.review import ReviewDecision, ReviewRequest
from steps.review.task import ReviewDetails


class ReviewInboxError(BatonError):
    """The inbox cannot answer (a topic cannot be read in time); the message is one line."""


@dataclass(frozen=True)
class PendingReview:
    """A review request whose task the orchestrator still awaits."""

    request: ReviewRequest
    details: ReviewDetails
    state_machine: str | None = None  # the registered name its execution runs (its review queue)

    @property
    def token(self) -> str:
        return self.request.task_token

    @property
    def execution_id(self) -> str:
        return self.request.execution_id

    def as_json(self) -> dict[str, Any]:
        return {
            "task_token": self.token, "execution_id": self.execution_id, "state_machine": self.state_machine,
            "state_name": self.request.state_name,
            "requested_at": self.request.timestamp.isoformat(), "instructions": self.request.instructions,
            **self.details.model_dump(mode="json", exclude={"requested_at"}),
        }


async def pending_reviews(settings: KafkaSettings, timeout: float = 30.0) -> list[PendingReview]:
    """Every pending review, oldest request first (raises kafka_io's KafkaFailure for Kafka trouble)."""
    topics = settings.topics
    partitions = await topic_partitions(settings, [topics.review_requests, topics.state])
    requests: dict[str, ReviewRequest] = {}
    async for record in _read(settings, topics.review_requests, partitions[topics.review_requests], timeout):
        try:
            request = decode(ReviewRequest, record.value)
        except ValueError:
            continue  # not a request: nothing a reviewer can act on
        requests[request.task_token] = request  # a re-published request replaces its twin
    if not requests:
        return []
    wanted = {request.execution_id for request in requests.values()}
    awaited: dict[str, tuple[str | None, set[str]]] = {}  # execution -> (state machine, awaited tasks)
    async for record in _read(settings, topics.state, partitions[topics.state], timeout):
        key = (record.key or b"").decode(errors="replace")
        if key not in wanted:
            continue
        if record.value is None:  # a tombstone: the execution was deleted
            awaited.pop(key, None)
            continue
        awaited[key] = _awaited_tasks(record.value)
    pending = []
    for request in requests.values():
        details = ReviewDetails.of(request)
        state_machine, tasks = awaited.get(request.execution_id, (None, set()))
        if details.task_id and details.task_id in tasks:
            pending.append(PendingReview(request, details, state_machine))
    return sorted(pending, key=lambda review: review.request.timestamp)


async def find_pending(settings: KafkaSettings, token: str, timeout: float = 30.0) -> PendingReview | None:
    """The pending review that `token` answers, if there is one."""
    token = token.strip()
    return next((review for review in await pending_reviews(settings, timeout) if review.token == token), None)


async def post_decision(settings: KafkaSettings, decision: ReviewDecision) -> RecordMetadata:
    """Publish a decision on the review-decisions topic, keyed by its execution id; where it went
    (what `orchestrator.client.callbacks.OutcomeWatch` follows)."""
    topic = settings.topics.review_decisions
    await topic_partitions(settings, [topic])  # a send to a missing topic would wait for its metadata
    # Idempotent: a retried send after a lost acknowledgement does not post the decision twice.
    producer = new_producer(settings)
    await producer.start()
    try:
        return await producer.send_and_wait(topic, encode(decision), key=decision.execution_id.encode())
    finally:
        await producer.stop()


def _awaited_tasks(value: bytes) -> tuple[str | None, set[str]]:
    """A snapshot's state machine (the name the orchestrator resolved the start to, so `NAME:ALIAS`
    and `NAME:3` both give NAME) and the tasks it awaits."""
    try:
        snapshot = decode(ExecutionSnapshot, value)
    except (ValidationError, ValueError):
        return None, set()
    if snapshot.state.get("status") != "RUNNING":
        return snapshot.state_machine, set()
    tasks = snapshot.state.get("tasks") or {}
    return snapshot.state_machine, set(tasks) if isinstance(tasks, dict) else set()


async def _read(settings: KafkaSettings, topic: str, partitions: list[int],
                timeout: float) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every committed record of `topic`, from the beginning to its end as of now."""
    consumer = new_consumer(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise ReviewInboxError(f"reading {topic} took longer than {timeout:g} s; try a longer --timeout")
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    yield record
            for tp in list(remaining):
                # `end` is the last stable offset (read_committed): an open transaction's records
                # are not waited for.
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
