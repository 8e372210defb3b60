"""The registry on Kafka, read side: the compacted `statemachines` topic, followed in memory.

One record per state machine, keyed by its name (`schemas.registry.StateMachineRecord`), so the
compacted topic keeps exactly the latest state of every state machine and a follower that reads
it from the beginning ends with what every other follower has: the latest record per name.
Writes (deploy, publish, alias, delete) are `orchestrator.registry.writer`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import (
    KafkaError,
)
from aiokafka.partitioner import DefaultPartitioner

from kafka_io import KafkaSettings, new_consumer, topic_partitions
from orchestrator.registry import model
from orchestrator.registry.errors import RegistryUnavailable
from orchestrator.registry.model import Resolved
from schemas.base import decode
from schemas.registry import StateMachineRecord

log = logging.getLogger("baton.registry")


FOLLOW_POLL_MS = 100
_FETCH_WAIT_MS = 100  # the broker answers an idle fetch after this: the follower's worst-case delay
_partitioner = DefaultPartitioner()


def partition_for(name: str, partitions: Sequence[int]) -> int:
    """The partition of a state machine's records: Kafka's default partitioner on the name."""
    ordered = sorted(partitions)
    partition: int = _partitioner(name.encode(), ordered, ordered)
    return partition


def decode_record(message: ConsumerRecord) -> tuple[str, StateMachineRecord | None] | None:
    """(name, record or None for a tombstone), or None for a record that cannot be read."""
    name = (message.key or b"").decode(errors="replace")
    if message.value is None:
        return name, None
    try:
        record = decode(StateMachineRecord, message.value)
    except ValueError as exc:
        log.error("registry skips %s[%d]@%d: %s", message.topic, message.partition, message.offset,
                  str(exc).splitlines()[0])
        return None
    if record.name != name:
        log.error("registry skips %s[%d]@%d: record of %r under key %r", message.topic, message.partition,
                  message.offset, record.name, name)
        return None
    return name, record


def registry_consumer(kafka: KafkaSettings, isolation_level: str = "read_committed") -> AIOKafkaConsumer:
    return new_consumer(kafka, isolation_level=isolation_level, auto_offset_reset="earliest",
                        fetch_max_wait_ms=_FETCH_WAIT_MS)


async def registry_partitions(kafka: KafkaSettings) -> list[int]:
    topic = kafka.topics.statemachines
    try:
        return (await topic_partitions(kafka, [topic]))[topic]
    except KafkaError as exc:
        raise RegistryUnavailable(f"cannot read {topic} at {kafka.kafka_bootstrap}: {exc}") from None


# ------------------------------------------------------------ reading


class RegistryFollower:
    """The registry in memory, kept current from the topic (read_committed) in the background.

    `start()` reads the topic from the beginning; `ready` is set once it has reached the end
    offsets of that moment. Afterwards every committed write appears within about
    `_FETCH_WAIT_MS`. Lookups are plain dict reads, safe from synchronous code on the same loop.
    """

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.topic = kafka.topics.statemachines
        self.records: dict[str, StateMachineRecord] = {}
        self.ready = asyncio.Event()
        self.last_follow_seconds: float | None = None  # record write time -> applied here
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._ready_at: dict[TopicPartition, int] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RegistryFollower:
        await self.start()
        await self.wait_ready()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._task is not None:
            return
        consumer = registry_consumer(self.kafka)
        await consumer.start()
        try:
            self._partitions = [TopicPartition(self.topic, p) for p in await registry_partitions(self.kafka)]
            consumer.assign(self._partitions)
            await consumer.seek_to_beginning(*self._partitions)
            self._ready_at = await consumer.end_offsets(self._partitions)
            self._positions = {tp: await consumer.position(tp) for tp in self._partitions}
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._check_ready()
        self._task = asyncio.create_task(self._follow(), name=f"registry-follower:{self.topic}")

    async def wait_ready(self, timeout: float = 60.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.ready.wait()
        except TimeoutError:
            raise RegistryUnavailable(f"reading {self.topic} at {self.kafka.kafka_bootstrap} did not reach its end "
                                      f"within {timeout:g}s") from None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def sync(self, timeout: float = 5.0) -> bool:
        """Wait until every write committed before this call is applied; False on timeout."""
        if self._consumer is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                ends = await self._consumer.end_offsets(self._partitions)
                async with self._changed:
                    await self._changed.wait_for(lambda: self._reached(ends))
        except (TimeoutError, KafkaError) as exc:
            log.warning("registry sync did not finish: %s", exc or type(exc).__name__)
            return False
        return True

    def resolve(self, reference: str, execution_name: str) -> Resolved:
        """What a start naming `reference` runs (see `model.resolve`); RegistryError otherwise."""
        return model.resolve(self.records, reference, execution_name)

    def _reached(self, ends: Mapping[TopicPartition, int]) -> bool:
        return all(self._positions.get(tp, 0) >= end for tp, end in ends.items())

    def _check_ready(self) -> None:
        if not self.ready.is_set() and self._reached(self._ready_at):
            log.info("registry %s loaded: %d state machine(s)", self.topic, len(self.records))
            self.ready.set()

    async def _follow(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                batch = await consumer.getmany(*self._partitions, timeout_ms=FOLLOW_POLL_MS)
                for messages in batch.values():
                    for message in messages:
                        self._apply(message)
                # Positions also move past transaction markers, which return no records.
                self._positions = {tp: await consumer.position(tp) for tp in self._partitions}
            except KafkaError as exc:  # the client reconnects by itself; keep following
                log.warning("registry follower: %s", exc)
                await asyncio.sleep(1.0)
                continue
            self._check_ready()
            async with self._changed:
                self._changed.notify_all()

    def _apply(self, message: ConsumerRecord) -> None:
        decoded = decode_record(message)
        if decoded is None:
            return
        name, record = decoded
        if record is None:
            self.records.pop(name, None)
        else:
            self.records[name] = record
        if message.timestamp:
            self.last_follow_seconds = max(0.0, time.time() - message.timestamp / 1000.0)


async def read_registry(kafka: KafkaSettings, timeout: float = 30.0) -> dict[str, StateMachineRecord]:
    """Every registered state machine, read from the topic up to its end (for the CLI)."""
    follower = RegistryFollower(kafka)
    await follower.start()
    try:
        await follower.wait_ready(timeout)
        return dict(follower.records)
    finally:
        await follower.stop()
