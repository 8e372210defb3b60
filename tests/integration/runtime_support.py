"""Test support for the Kafka runtime: provision topics, publish starts, read what came out."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.harness import read_topic
from kafka_io import KafkaSettings
from schemas.base import decode, encode
from schemas.dlq import DeadLetter
from schemas.executions import (
    ExecutionStatus,
    HistoryRecord,
    StartExecution,
    execution_id_for,
    parse_execution_event,
)
from schemas.steps import StepCommand

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


async def read_all(settings: KafkaSettings, topic: str, timeout: float = 10.0) -> list[Any]:
    """Every committed record of a topic, from the beginning to its end as of now."""
    return await read_topic(settings, topic, timeout)


class RuntimeClient:
    """What a user of the runtime does: start executions and watch their outcomes."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.producer = AIOKafkaProducer(**settings.client_options(), enable_idempotence=True, linger_ms=5)
        self.outcomes: dict[str, ExecutionStatus] = {}
        self._watcher: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> RuntimeClient:
        await self.producer.start()
        self._watcher = AIOKafkaConsumer(self.topics.events, **self.settings.client_options(),
                                         isolation_level="read_committed", auto_offset_reset="earliest",
                                         group_id=f"test-watch-{uuid.uuid4().hex[:8]}")
        await self._watcher.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        if self._watcher is not None:
            await self._watcher.stop()

    async def start(self, definition: dict[str, Any], execution_input: Any = None, *,
                    machine: str = "test", name: str | None = None, budget: Any = None) -> str:
        name = name or uuid.uuid4().hex[:12]
        execution_id = execution_id_for(machine, name)
        request = StartExecution(execution_id=execution_id, state_machine=machine, definition=definition,
                                 name=name, input={} if execution_input is None else execution_input, budget=budget)
        await self.producer.send(self.topics.start, encode(request), key=execution_id.encode())
        return execution_id

    async def publish(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        await self.producer.send_and_wait(topic, value, key=key)

    async def wait(self, execution_ids: list[str], timeout: float = 60.0) -> dict[str, ExecutionStatus]:
        """The terminal status of each execution, as the events topic reports it."""
        await self.producer.flush()
        assert self._watcher is not None
        wanted = set(execution_ids)
        deadline = time.monotonic() + timeout
        while not wanted <= set(self.outcomes):
            if time.monotonic() > deadline:
                missing = sorted(wanted - set(self.outcomes))
                raise TimeoutError(f"{len(missing)} executions did not finish in {timeout}s, e.g. {missing[:3]}")
            batch = await self._watcher.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    status = parse_execution_event(record.value)  # a status, or an execution's expiry
                    if isinstance(status, ExecutionStatus) and status.status in TERMINAL:
                        self.outcomes[status.execution_id] = status
        return {e: self.outcomes[e] for e in execution_ids}

    async def history(self) -> dict[str, list[dict[str, Any]]]:
        by_execution: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in await read_all(self.settings, self.topics.history):
            history = decode(HistoryRecord, record.value)
            by_execution[history.execution_id].extend(history.events)
        return by_execution

    async def dead_letters(self) -> list[DeadLetter]:
        return [decode(DeadLetter, r.value) for r in await read_all(self.settings, self.topics.dlq)]

    async def commands(self, service: str = "fn") -> list[StepCommand]:
        return [decode(StepCommand, r.value) for r in await read_all(self.settings, self.topics.commands(service))]


async def eventually(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_orchestrator(kafka: KafkaSettings, instance: str, **options: Any) -> AsyncIterator[Any]:
    """One orchestrator instance in this process, ready (partitions assigned and restored) on entry
    and stopped cleanly on exit; `options` go to `Orchestrator` (payloads=, quotas=, ...)."""
    from orchestrator.runtime.service import Orchestrator
    from orchestrator.settings import OrchestratorSettings

    stop = asyncio.Event()
    running = Orchestrator(kafka, OrchestratorSettings(instance_id=instance, metrics_port=None), **options)
    task = asyncio.create_task(running.run(stop))
    try:
        await asyncio.wait_for(running.ready.wait(), 30)
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
