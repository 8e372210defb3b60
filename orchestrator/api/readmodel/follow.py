"""Reading the history and events topics into a projection: from the offsets it stored to the
end offsets of the moment (`catch_up_topics`), or for as long as an API runs (`follow_topics`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from kafka_io import KafkaSettings, kafka_errors, new_consumer, topic_partitions
from orchestrator.api.readmodel.views import CatchUpTimeout
from schemas.base import decode
from schemas.executions import ExecutionExpired, ExecutionStatus, HistoryRecord, parse_execution_event

log = logging.getLogger("orchestrator.api.readmodel")

_MAX_POLL_RECORDS = 500
_CATCH_UP_POLL_MS = 200
# While following, how often the end offsets are read again to tell when the expiries learnt
# before may be forgotten (`ReadModel.prune_expired`).
_PRUNE_INTERVAL_S = 60.0

TopicKind = Literal["history", "events"]
Projected = HistoryRecord | ExecutionStatus | ExecutionExpired
OffsetKey = tuple[str, int]  # (topic, partition); aiokafka's TopicPartition is such a tuple


class Projection(Protocol):
    """What the topics are read into (`ReadModel`)."""

    def apply(self, records: Iterable[Projected], offsets: Mapping[OffsetKey, int] | None = None) -> None: ...

    def stored_offsets(self) -> dict[OffsetKey, int]: ...

    def claim_topics(self, history_topic: str, events_topic: str) -> None: ...

    def prune_expired(self, before: float) -> int: ...


def start_offset(stored: int | None, beginning: int, end: int) -> int:
    """Where to resume reading one partition.

    Nothing stored: from the beginning. Stored past the end: the topic was recreated, so read it
    again from the beginning (the history key makes that harmless). Stored before the beginning:
    retention deleted those records; start at the first one that still exists.
    """
    if stored is None or stored > end:
        return beginning
    return max(stored, beginning)


def decode_record(kind: TopicKind, value: bytes | None) -> Projected:
    """Parse a record of the history or events topic; ValueError says what is wrong with it."""
    if kind == "events":
        return parse_execution_event(value)
    record = decode(HistoryRecord, value)
    for event in record.events:
        missing = [key for key in ("id", "type") if key not in event]
        if missing:
            raise ValueError(f"history event without {' or '.join(missing)}")
    return record


@dataclass
class _Assigned:
    """A started consumer, assigned every partition of both topics and seeked to the stored offsets."""

    consumer: AIOKafkaConsumer
    kinds: dict[str, TopicKind]  # topic -> what its records are
    ends: dict[TopicPartition, int]  # last stable offsets when the consumer started (or read again since)
    ends_at: float  # when `ends` were asked for (epoch seconds)


async def catch_up_topics(model: Projection, settings: KafkaSettings, timeout: float = 30.0) -> int:
    """Read both topics from the stored offsets to their end offsets as of this call.

    Returns how many records were projected. Progress is committed batch by batch, so a
    timeout (CatchUpTimeout) or a crash keeps what was read. KafkaUnavailable when the broker
    cannot be reached; MissingTopic when a topic does not exist (both `kafka_io` failures).
    """
    applied = 0
    try:
        async with asyncio.timeout(timeout):
            async with _assigned(model, settings) as assigned:
                while not await _reached(assigned.consumer, assigned.ends):
                    applied += await _poll(model, assigned, _CATCH_UP_POLL_MS)
                model.prune_expired(assigned.ends_at)
    except TimeoutError:
        raise CatchUpTimeout(f"reading {settings.topics.history} and {settings.topics.events} at "
                             f"{settings.kafka_bootstrap} did not finish within {timeout:g}s "
                             f"({applied} records read)") from None
    return applied

async def follow_topics(model: Projection, settings: KafkaSettings, stop: asyncio.Event | None = None,
                 poll_interval: float = 1.0) -> None:
    """Keep the projection current until `stop` is set or the task is cancelled (for a
    long-running API). Partitions added to the topics later are seen after a restart."""
    async with _assigned(model, settings) as assigned:
        while stop is None or not stop.is_set():
            await _poll(model, assigned, int(poll_interval * 1000))
            if await _reached(assigned.consumer, assigned.ends):
                model.prune_expired(assigned.ends_at)
                if time.time() - assigned.ends_at >= _PRUNE_INTERVAL_S:
                    assigned.ends_at = time.time()
                    assigned.ends = await assigned.consumer.end_offsets(list(assigned.ends))

@asynccontextmanager
async def _assigned(model: Projection, settings: KafkaSettings) -> AsyncIterator[_Assigned]:
    # A plain assigned consumer, no group: every reader sees every partition, and the
    # offsets live in SQLite with the rows rather than in Kafka.
    consumer = new_consumer(settings, auto_offset_reset="earliest")
    with kafka_errors(settings):
        try:
            await consumer.start()
            assigned = await _assign(model, consumer, settings)
            yield assigned
        finally:
            await consumer.stop()

async def _assign(model: Projection, consumer: AIOKafkaConsumer, settings: KafkaSettings) -> _Assigned:
    """Assign both topics' partitions and seek each to where the stored offsets say."""
    model.claim_topics(settings.topics.history, settings.topics.events)
    kinds: dict[str, TopicKind] = {settings.topics.history: "history", settings.topics.events: "events"}
    partitions = [TopicPartition(topic, p)
                  for topic, ids in (await topic_partitions(settings, list(kinds))).items() for p in ids]
    consumer.assign(partitions)
    # read_committed: these are last stable offsets, so an open transaction is not waited for.
    beginnings = await consumer.beginning_offsets(partitions)
    ends_at = time.time()
    ends = await consumer.end_offsets(partitions)
    stored = model.stored_offsets()
    for tp in partitions:
        consumer.seek(tp, start_offset(stored.get((tp.topic, tp.partition)), beginnings[tp], ends[tp]))
    return _Assigned(consumer, kinds, ends, ends_at)

async def _poll(model: Projection, assigned: _Assigned, timeout_ms: int) -> int:
    """Fetch one batch, project it and store the new positions together; return the count."""
    consumer = assigned.consumer
    batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=_MAX_POLL_RECORDS)
    records: list[Projected] = []
    for tp, messages in batches.items():
        for message in messages:
            try:
                records.append(decode_record(assigned.kinds[tp.topic], message.value))
            except ValueError as exc:
                # A bad record must not stop the projection; the orchestrator owns the DLQ.
                log.warning("read model skips %s[%d]@%d: %s", tp.topic, tp.partition, message.offset,
                            str(exc).splitlines()[0])
    # Positions move past transaction markers and aborted records too, so store them even
    # when the batch projected nothing.
    positions = {(tp.topic, tp.partition): await consumer.position(tp) for tp in assigned.ends}
    if records or positions != model.stored_offsets():
        model.apply(records, positions)
    return len(records)


async def _reached(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
