"""A step service on FastStream's in-memory broker (`TestKafkaBroker`), for unit tests of a
handler through the real service code without Kafka: the same decoding, dead letters, results,
idempotency and metrics; only the transport is a list. Delivery, offsets across a rebalance and
crash recovery are tested on the real broker (tests/integration), never here.

    async with InMemoryStepService(fn_service(["my.steps"])) as bus:
        result = await bus.run(StepCommand(execution_id="e", task_id="t", service="fn",
                                           resource="baton:fn:add", parameters={"a": 1}))
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from faststream.kafka import TestKafkaBroker

from schemas.base import decode, encode
from schemas.dlq import DeadLetter
from schemas.steps import StepCommand, StepResult
from steps.service import StepService

__all__ = ["InMemoryStepService"]


class InMemoryStepService:
    """Runs `service` on an in-memory broker; collects what it publishes on results and the DLQ."""

    def __init__(self, service: StepService) -> None:
        self.service = service
        self.results: list[StepResult] = []
        self.dead_letters: list[DeadLetter] = []
        self._arrived = asyncio.Condition()
        topics = service.topics
        service.broker.subscriber(topics.results)(self._collect_result)
        service.broker.subscriber(topics.dlq)(self._collect_dead_letter)
        self._testing = TestKafkaBroker(service.broker)

    async def __aenter__(self) -> InMemoryStepService:
        await self._testing.__aenter__()
        await self.service._begin()  # the commit loop; the topic check needs a real broker
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.service._drain()
        finally:
            await self._testing.__aexit__(kind, exc, tb)

    async def send(self, command: StepCommand | bytes, *, key: bytes | None = None) -> None:
        """Publish a command (or any bytes: a bad record) on the service's command topic."""
        value = command if isinstance(command, bytes) else encode(command)
        if key is None:
            key = command.execution_id.encode() if isinstance(command, StepCommand) else b""
        await self.service.broker.publish(value, self.service.topics.commands(self.service.service), key=key)

    async def run(self, command: StepCommand, *, timeout: float = 10.0) -> StepResult:
        """Send `command` and return its final result (heartbeats are skipped)."""
        await self.send(command)
        return await self.result_of(command.task_id, timeout=timeout)

    async def result_of(self, task_id: str, *, timeout: float = 10.0) -> StepResult:
        def final() -> StepResult | None:
            return next((r for r in self.results if r.task_id == task_id and r.kind in ("succeeded", "failed")),
                        None)

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: final() is not None)
        found = final()
        assert found is not None
        return found

    async def dead_letter(self, index: int = 0, *, timeout: float = 10.0) -> DeadLetter:
        """The `index`-th dead letter (0: the first), once it has arrived. (The in-memory broker
        may deliver during `send` itself, so "the next one" is asked for by position.)"""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.dead_letters) > index)
        return self.dead_letters[index]

    async def _collect_result(self, body: Any) -> None:
        async with self._arrived:
            self.results.append(StepResult.model_validate(body) if isinstance(body, dict) else decode(StepResult, body))
            self._arrived.notify_all()

    async def _collect_dead_letter(self, body: Any) -> None:
        async with self._arrived:
            self.dead_letters.append(DeadLetter.model_validate(body) if isinstance(body, dict)
                                     else decode(DeadLetter, body))
            self._arrived.notify_all()
