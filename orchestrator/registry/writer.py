"""The registry on Kafka, write side: deploy, publish, alias and delete, serialised per name.

Writes are read-modify-write of that record (publish adds version N+1, an alias moves, ...), and
two concurrent writers of the same name must not lose each other's change: a lost publish would
hand out the same version number twice for different definitions, breaking immutability. So
each write runs under a Kafka transaction whose transactional.id is derived from the name:

1. Starting the producer (InitProducerId) fences every other writer of that name: their open
   transaction is aborted and any later send or commit of theirs fails (ProducerFenced). It also
   waits until the previous transaction of that id is fully committed or aborted.
2. Only then the writer reads the name's partition to its high watermark (read_committed), so it
   sees every committed write of the name, and computes the next record from the latest one.
3. It writes the record and commits. If another writer fenced it meanwhile, the commit fails,
   nothing is visible, and the writer starts again at 1 with the new latest record.

So the writes of one name are serialised (a compare-and-set on the log), with no coordinator of
Baton's own, and writes of different names never wait for each other beyond Kafka's own
transaction markers. A simpler last-writer-wins scheme was rejected for the reason above. The
writer also waits until its record is readable (read_committed) before returning, so whatever
starts after `deploy` returns is resolved against it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidTxnState,
    KafkaError,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownError,
)

from kafka_io import KafkaSettings, new_producer
from orchestrator.quotas import check_definition
from orchestrator.registry import model
from orchestrator.registry.errors import InvalidRouting, RecordTooLarge, RegistryUnavailable
from orchestrator.registry.store import (
    FOLLOW_POLL_MS,
    decode_record,
    partition_for,
    registry_consumer,
    registry_partitions,
)
from orchestrator.settings import Quotas
from schemas.base import encode
from schemas.registry import AliasRoute, StateMachineAlias, StateMachineRecord, StateMachineVersion

log = logging.getLogger("baton.registry")

T = TypeVar("T")
Change = Callable[[StateMachineRecord | None, datetime], tuple[StateMachineRecord | None, T]]

_WRITE_ATTEMPTS = 6
_WRITER_TRANSACTION_TIMEOUT_MS = 10_000  # a crashed writer's transaction blocks its partition at most this long
# aiokafka checks a record's uncompressed size against max_request_size (1 MiB by default) before
# compressing it, so a record of a few large versions was refused though it compresses to a
# fraction of the broker's limit (reported as "Kafka unavailable"). The broker judges the
# compressed batch against the topic's max.message.bytes; this only keeps the client's check
# from standing in for it.
_MAX_UNCOMPRESSED_RECORD = 256 * 1024 * 1024
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _fenced(exc: BaseException) -> bool:
    """Whether a transaction failed because a concurrent writer of the name fenced this one.

    Brokers since Kafka 2.7 may answer a fenced EndTxn with PRODUCER_FENCED (code 90), which
    aiokafka does not know: it raises UnknownError, wrapped as "Unexpected error during batch
    delivery". The transaction did not commit (the newer epoch aborts it), so a retry on top of
    the latest record is right."""
    for error in (exc, exc.__cause__):
        if isinstance(error, ProducerFenced | InvalidProducerEpoch | InvalidTxnState | UnknownError):
            return True
    return False


@dataclass(frozen=True)
class Deployed:
    record: StateMachineRecord
    version: StateMachineVersion | None  # the version published with the deploy, if asked
    changed: bool  # False: the registry already had exactly this (nothing was written)
    alias: StateMachineAlias | None = None  # the alias moved to `version`, if asked


class RegistryWriter:
    """Deploy, publish, alias and delete: each one serialised per name (see the module doc)."""

    def __init__(self, kafka: KafkaSettings, *, clock: Callable[[], datetime] = _utcnow,
                 timeout: float = 30.0, quotas: Quotas | None = None) -> None:
        self.kafka = kafka
        self.topic = kafka.topics.statemachines
        self.clock = clock
        self.timeout = timeout
        self.quotas = quotas if quotas is not None else Quotas()
        _quiet_fenced_producers()

    async def deploy(self, name: str, definition: Any, *, description: str | None = None,
                     publish: bool = False, alias: str | None = None) -> Deployed:
        """Store `definition` as the draft of `name` (validated first: InvalidDefinition, and nothing
        is written), and with `publish` publish it as the next version in the same write; with
        `alias` (which needs `publish`) also point that alias at the version, still in that write,
        so no reader ever sees the new version without the alias move or the other way round."""
        if alias is not None:
            if not publish:
                raise InvalidRouting(f"alias {alias!r} can only move to a published version: deploy with publish")
            model.check_alias_name(alias)
        check_definition(definition, self.quotas)  # QuotaExceeded: refused before it is even validated
        model.deploy(None, name, definition, now=self.clock())  # refuse before touching Kafka

        def change(current: StateMachineRecord | None, now: datetime) -> tuple[StateMachineRecord | None, Deployed]:
            record = model.deploy(current, name, definition, now=now, description=description)
            version, moved = None, None
            if publish:
                record, version = model.publish(record, now=now, description=description)
            if alias is not None and version is not None:
                target = [AliasRoute(version=version.version, weight=100)]
                moved = record.aliases.get(alias)
                if moved is None or moved.routes != target:
                    record, moved = model.set_alias(record, alias, target, now=now)
            changed = record is not current
            if changed:  # one write, one revision, though deploy, publish and alias each count one
                record = record.model_copy(update={"revision": (current.revision if current else 0) + 1})
            return (record if changed else None), Deployed(record, version, changed, moved)

        return await self._write(name, change)

    async def publish(self, name: str, *, description: str | None = None) -> StateMachineVersion:
        def change(current: StateMachineRecord | None, now: datetime) -> tuple[StateMachineRecord | None,
                                                                                 StateMachineVersion]:
            record = model.require({name: current} if current else {}, name)
            updated, version = model.publish(record, now=now, description=description)
            return (None if updated is record else updated), version

        return await self._write(name, change)

    async def set_alias(self, name: str, alias: str, routes: Sequence[AliasRoute], *,
                        description: str | None = None) -> StateMachineAlias:
        model.check_alias_name(alias)

        def change(current: StateMachineRecord | None, now: datetime) -> tuple[StateMachineRecord | None,
                                                                                 StateMachineAlias]:
            record = model.require({name: current} if current else {}, name)
            return model.set_alias(record, alias, routes, now=now, description=description)

        return await self._write(name, change)

    async def delete_alias(self, name: str, alias: str) -> None:
        def change(current: StateMachineRecord | None, now: datetime) -> tuple[StateMachineRecord | None, None]:
            record = model.require({name: current} if current else {}, name)
            return model.delete_alias(record, alias, now=now), None

        await self._write(name, change)

    async def delete_version(self, name: str, version: int) -> None:
        def change(current: StateMachineRecord | None, now: datetime) -> tuple[StateMachineRecord | None, None]:
            record = model.require({name: current} if current else {}, name)
            return model.delete_version(record, version, now=now), None

        await self._write(name, change)

    async def _write(self, name: str, change: Change[T]) -> T:
        """Run `change` on the latest record of `name` and write its result, serialised per name.

        `change` returns (next record or None to write nothing, the result to return); a
        RegistryError it raises is passed on and nothing is written.
        """
        model.check_name(name)
        tp = TopicPartition(self.topic, partition_for(name, await registry_partitions(self.kafka)))
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            outcome = await self._attempt(name, tp, change)
            if outcome is not None:
                return outcome[0]
            # Fenced by a concurrent writer of the same name: back off a little, then retry on
            # top of its write.
            await asyncio.sleep(random.uniform(0.05, 0.2) * attempt)
        raise RegistryUnavailable(f"could not write {name!r} to {self.topic}: {_WRITE_ATTEMPTS} attempts were "
                                  "overtaken by concurrent writes of the same state machine; try again")

    async def _attempt(self, name: str, tp: TopicPartition, change: Change[T]) -> tuple[T] | None:
        """One fenced read-modify-write; None when a concurrent writer fenced this one."""
        producer = new_producer(
            self.kafka, transactional_id=f"{self.kafka.topic_prefix}.registry.{name}",
            transaction_timeout_ms=_WRITER_TRANSACTION_TIMEOUT_MS,
            compression_type="gzip",  # definitions are JSON: small on the wire and under max.message.bytes
            max_request_size=_MAX_UNCOMPRESSED_RECORD,
        )
        committed = registry_consumer(self.kafka)
        uncommitted = registry_consumer(self.kafka, "read_uncommitted")
        try:
            await _within(self.timeout, producer.start(), "start a transactional producer")  # fences the others
            await committed.start()
            await uncommitted.start()
            current = await _within(self.timeout, self._latest(name, tp, committed, uncommitted),
                                    f"read {tp.topic}[{tp.partition}]")
            record, result = change(current, self.clock())
            if record is None:
                return (result,)
            # One write, one revision (an operation may apply several model steps, e.g. deploy+publish).
            record = record.model_copy(update={"revision": (current.revision if current else 0) + 1})
            value = encode(record)
            try:
                async with producer.transaction():
                    metadata = await producer.send_and_wait(tp.topic, value, key=name.encode(),
                                                            partition=tp.partition)
            except KafkaError as exc:
                if isinstance(exc, _TOO_LARGE) or isinstance(exc.__cause__, _TOO_LARGE):
                    raise RecordTooLarge(name, len(record.versions), len(value), tp.topic) from None
                if not _fenced(exc):
                    raise
                log.info("registry write of %r fenced by a concurrent writer (%s); retrying", name,
                         type(exc.__cause__ or exc).__name__)
                return None
            await _within(self.timeout, self._visible(tp, metadata.offset, committed),
                          f"see the write in {tp.topic}[{tp.partition}]")
            return (result,)
        finally:
            await asyncio.gather(producer.stop(), committed.stop(), uncommitted.stop(), return_exceptions=True)

    async def _latest(self, name: str, tp: TopicPartition, committed: AIOKafkaConsumer,
                      uncommitted: AIOKafkaConsumer) -> StateMachineRecord | None:
        # To the high watermark, not the last stable offset: a write of this name committed just
        # before this writer fenced it may sit behind another name's open transaction.
        high = (await uncommitted.end_offsets([tp]))[tp]
        committed.assign([tp])
        await committed.seek_to_beginning(tp)
        latest: StateMachineRecord | None = None
        while await committed.position(tp) < high:
            batch = await committed.getmany(tp, timeout_ms=FOLLOW_POLL_MS)
            for message in batch.get(tp, []):
                decoded = decode_record(message)
                if decoded is not None and decoded[0] == name:
                    latest = decoded[1]
        return latest

    async def _visible(self, tp: TopicPartition, offset: int, committed: AIOKafkaConsumer) -> None:
        # The commit returns once the coordinator has decided; the markers that make the record
        # readable follow a moment later.
        while (await committed.end_offsets([tp]))[tp] <= offset:
            await asyncio.sleep(0.01)


class _FencedProducerNoise(logging.Filter):
    """A fenced aiokafka producer leaves its error in internal futures nobody awaits, which asyncio
    reports as "Future exception was never retrieved" with a traceback. For a registry writer
    that is the expected end of a lost race (it retries), so that report is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, ProducerFenced | InvalidProducerEpoch)
                    and str(record.msg).startswith("Future exception was never retrieved"))


def _quiet_fenced_producers() -> None:
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _FencedProducerNoise) for f in logger.filters):
        logger.addFilter(_FencedProducerNoise())


async def _within(timeout: float, work: Awaitable[T], what: str) -> T:
    try:
        async with asyncio.timeout(timeout):
            return await work
    except TimeoutError:
        raise RegistryUnavailable(f"could not {what} within {timeout:g}s (is Kafka healthy?)") from None
