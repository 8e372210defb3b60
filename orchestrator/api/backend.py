"""What the routes use of Kafka: the read model, the definitions, the client, the settings.

`Backend` follows the history and events topics (the `ReadModel`) and the compacted state topic
(each execution's pinned definition and the callback tasks it awaits) in the background, and
publishes through `orchestrator.client.BatonClient`. Reads come from the read model, so they see
every orchestrator instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from contextlib import suppress
from pathlib import Path

from aiokafka.structs import RecordMetadata
from fastapi import Request

from kafka_io import KafkaSettings, kafka_errors, topic_partitions
from orchestrator.api.errors import ApiError, execution_not_found
from orchestrator.api.readmodel import AmbiguousExecution, ExecutionView, ReadModel
from orchestrator.api.tasks import StateFollower, TaskState
from orchestrator.asl.model import StateMachine, parse_definition
from orchestrator.client import BatonClient
from orchestrator.settings import Quotas
from orchestrator.client.callbacks import Outcome, OutcomeWatch
from schemas.base import Envelope
from schemas.review import ReviewDecision

log = logging.getLogger(__name__)


class Backend:
    """What the routes use: the read model, the definitions, a producer, the settings."""

    def __init__(self, settings: KafkaSettings, db_path: str | Path, quotas: Quotas | None = None) -> None:
        self.settings = settings
        self.model = ReadModel(db_path)
        self.definitions = StateFollower()
        self.client = BatonClient(settings, quotas=quotas if quotas is not None else Quotas())
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        topics = self.settings.topics
        with kafka_errors(self.settings):
            await topic_partitions(self.settings, [topics.start, topics.review_decisions, topics.state])
            await self.model.catch_up(self.settings)
            await self.client.open()
        self._tasks = [asyncio.create_task(self._keep(self.model.follow(self.settings, self._stop, 0.3), "read model")),
                       asyncio.create_task(self._keep(self.definitions.follow(self.settings, self._stop),
                                                      "the state topic"))]

    async def _keep(self, work: Awaitable[None], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API keeps answering from what it has
            log.error("the API stopped following %s: %s", what, exc)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.close()
        self.model.close()

    async def publish(self, topic: str, record: Envelope) -> RecordMetadata:
        with kafka_errors(self.settings):
            metadata = await self.client.publish(topic, record)
        assert metadata is not None  # acknowledged
        return metadata

    async def task_state(self, execution_id: str, task_id: str) -> TaskState:
        """Whether the execution still awaits the callback task (`StateFollower.task_state`)."""
        def known() -> bool:
            try:
                view = self.model.describe(execution_id)
            except AmbiguousExecution:
                return False
            return view is not None and view.execution_id == execution_id

        with kafka_errors(self.settings):
            return await self.definitions.task_state(execution_id, task_id, known)

    async def post_decision(self, decision: ReviewDecision, wait: float) -> Outcome:
        """Publish a task decision, then wait up to `wait` seconds for the orchestrator to apply it."""
        with kafka_errors(self.settings):
            async with OutcomeWatch(self.settings) as watch:
                posted = await self.publish(self.settings.topics.review_decisions, decision)
                return await watch.outcome(posted.partition, posted.offset, wait)

    def describe(self, execution: str) -> ExecutionView:
        try:
            view = self.model.describe(execution)
        except AmbiguousExecution as exc:
            raise ApiError(409, "AmbiguousExecution", str(exc), {"execution_ids": exc.execution_ids}) from None
        if view is None:
            raise execution_not_found(execution)
        return view

    def machine_of(self, execution_id: str) -> StateMachine | None:
        definition = self.definitions.by_execution.get(execution_id)
        return parse_definition(definition, validate=False) if definition is not None else None


def backend_of(request: Request) -> Backend:
    """The app's backend (set by the lifespan; a test may set a stand-in on `app.state.backend`)."""
    backend: Backend = request.app.state.backend
    return backend
