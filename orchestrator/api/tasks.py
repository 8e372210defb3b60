"""The API's follower of the compacted state topic: each execution's pinned definition (for the
graph) and the callback tasks it awaits (for `/api/tasks/*` and `/api/reviews/decision`).

A decision route asks `task_state` before it posts anything (`orchestrator.client.callbacks` says
why and how the outcome is then followed). The follower answers from memory; when the task is not
among those it has seen awaited, it first catches up with the topic's end as of the question, so a
task handed out a moment ago is not refused because the follower was a poll behind.

Only executions awaiting a callback task are kept in `awaited`, so its size follows the number of
tasks waiting for a person or an external system, not the number of executions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from kafka_io import KafkaSettings, KafkaUnavailable, new_consumer, topic_partitions
from orchestrator.client.callbacks import awaited_callbacks
from schemas.base import decode
from schemas.executions import ExecutionSnapshot

log = logging.getLogger(__name__)

TaskState = Literal["waiting", "gone", "unknown"]
_SYNC_SECONDS = 5.0
_INTERNAL_KEY_PREFIX = b"__baton"  # the orchestrator's own records (its input positions)


class StateFollower:
    """Definitions and awaited callback tasks per execution, from the state topic (read committed)."""

    def __init__(self) -> None:
        self.by_execution: dict[str, dict[str, Any]] = {}  # pinned: the first definition seen stays right
        self.awaited: dict[str, frozenset[str]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._changed = asyncio.Condition()

    async def follow(self, settings: KafkaSettings, stop: asyncio.Event) -> None:
        topic = settings.topics.state
        self._partitions = [TopicPartition(topic, p) for p in (await topic_partitions(settings, [topic]))[topic]]
        consumer = new_consumer(settings, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign(self._partitions)
            await consumer.seek_to_beginning(*self._partitions)
            self._consumer = consumer
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for messages in batches.values():
                    for message in messages:
                        self._apply(message.key or b"", message.value)
                # Positions also move past transaction markers, which return no records.
                self._positions = {tp: await consumer.position(tp) for tp in self._partitions}
                async with self._changed:
                    self._changed.notify_all()
        finally:
            self._consumer = None
            await consumer.stop()

    def _apply(self, key_bytes: bytes, value: bytes | None) -> None:
        if key_bytes.startswith(_INTERNAL_KEY_PREFIX):
            return
        key = key_bytes.decode(errors="replace")
        if value is None:  # a tombstone: the execution was deleted
            self.awaited.pop(key, None)
            return
        awaited = awaited_callbacks(value)
        if awaited is None:
            return  # not a snapshot: the orchestrator dead-letters what it cannot read
        if awaited:
            self.awaited[key] = awaited
        else:
            self.awaited.pop(key, None)
        if key not in self.by_execution:
            try:
                self.by_execution[key] = decode(ExecutionSnapshot, value).definition
            except ValueError:
                pass

    async def sync(self, timeout: float = _SYNC_SECONDS) -> bool:
        """Wait until every snapshot committed before this call is applied; False when it could not."""
        consumer = self._consumer
        if consumer is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                ends: Mapping[TopicPartition, int] = await consumer.end_offsets(self._partitions)
                async with self._changed:
                    await self._changed.wait_for(
                        lambda: all(self._positions.get(tp, 0) >= end for tp, end in ends.items()))
        except (TimeoutError, KafkaError) as exc:
            log.warning("state topic follower did not catch up: %s", exc or type(exc).__name__)
            return False
        return True

    async def task_state(self, execution_id: str, task_id: str, known: Callable[[], bool]) -> TaskState:
        """"waiting" while the execution awaits the callback task, "gone" once it does not (decided,
        timed out, ended), "unknown" for an execution neither this follower nor `known` (the read
        model) has seen."""
        if task_id in self.awaited.get(execution_id, ()):
            return "waiting"
        if not await self.sync():
            raise KafkaUnavailable(f"the state topic could not be read to its end within {_SYNC_SECONDS:g} s; "
                                   "try again")
        if task_id in self.awaited.get(execution_id, ()):
            return "waiting"
        return "gone" if execution_id in self.by_execution or known() else "unknown"
