"""The orchestrator service: consume -> decide -> produce, exactly once, over Kafka transactions.

One consumer group reads the start, step-result and review-decision topics, which are
co-partitioned by execution id, so one instance owns an execution across all of them. For each
batch of records the service loads the executions' states, calls the decider, and in ONE Kafka
transaction writes the new states (compacted state topic), the step commands, the history
records, any terminal status, the dead letters, and the consumed offsets. Consumers read
committed, so a crash at any point neither loses nor doubles a transition: the aborted
transaction is replayed from the last committed offsets against the last committed states.

Timers (Wait, TimeoutSeconds, HeartbeatSeconds, retry back-off) live in the execution state; the
service keeps them in a heap, re-armed from the states on restore, and fires them inside the same
kind of transaction. The service never interprets ASL: `decide` does.

A closed execution (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) is kept for `settings.retention`
(BATON_RETENTION) after it closed: describe, history, redrive and an idempotent start by name work
on it meanwhile. The close time is carried in its snapshot (`closed_at`); a second heap holds
(closed_at + retention, execution id), re-armed from the snapshots on restore. An expiry that falls
due is decided like an event, first in the open batch: the execution leaves memory and the batch's
transaction writes its tombstone on the state topic and an `ExecutionExpired` on the events topic
(from which the read model drops it). A start with its name after that starts a new execution; an
execution redriven meanwhile is RUNNING again and does not expire until it closes again.

A start without an inline definition names a registered state machine (NAME, NAME:VERSION,
NAME:ALIAS, or a stateMachine ARN); it is resolved against the registry this instance follows in
memory (`orchestrator.registry.store.RegistryFollower`), or dead-lettered as
`unknown_state_machine`. The execution is pinned to what it resolved to: the definition itself,
its version, alias and hash travel in every snapshot, so a restore, redrive or takeover runs the
same definition whatever the registry says later.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import hashlib
import heapq
import logging
import sys
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.partitioner import murmur2
from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from pydantic import ValidationError
from pydantic_core import to_json

from kafka_io import KafkaSettings
from orchestrator.asl.decider import Decision, Environment, decide_in_place, new_execution
from orchestrator.asl.errors import DATA_LIMIT_EXCEEDED, DefinitionError
from orchestrator.asl.execution import (
    Event,
    ExecutionFinished,
    ExecutionState,
    FailExecution,
    HistoryEvent,
    RedriveExecution,
    StartExecution,
    StartTimer,
    StopExecution,
    TaskFailed,
    TaskHeartbeat,
    TaskSucceeded,
    TimerFired,
)
from orchestrator.asl.model import StateMachine, parse_definition
from orchestrator.asl.timestamps import parse_timestamp
from orchestrator.registry.errors import RegistryError
from orchestrator.registry.model import definition_hash
from orchestrator.registry.store import RegistryFollower
from orchestrator.runtime.metrics import OrchestratorMetrics
from orchestrator.runtime.topics import KAFKA_DEFAULT_MAX_MESSAGE_BYTES, record_limits
from orchestrator.runtime.translate import (
    Outgoing,
    Pin,
    dead_letter,
    effects_to_records,
    expiry_records,
    snapshot_record,
    status_event,
)
from orchestrator.settings import OrchestratorSettings, Quotas
from schemas.base import compress, decode, encode
from schemas.executions import ExecutionSnapshot, InputPositions, parse_request
from schemas.executions import RedriveExecution as RedriveRequest
from schemas.executions import StartExecution as StartRequest
from schemas.resources import service_for
from schemas.review import ReviewDecision
from schemas.steps import StepResult
from schemas.tokens import InvalidToken, TokenSigner
from schemas.topics import STEP_SERVICES

log = logging.getLogger("baton.orchestrator")

# The state topic's key of the records holding the input positions (never an execution id, which
# is an ARN). The group's offsets are copied from them this often, for monitoring only.
OFFSETS_KEY = "__baton_input_positions__"
GROUP_COMMIT_SECONDS = 5.0
TRIM_AFTER_EVENTS = 1000  # events decided since the last trim before an idle moment trims

# A start naming a state machine this instance's registry does not know yet waits this long for
# the registry follower to catch up (a deploy made a moment ago) before it is dead-lettered.
REGISTRY_SYNC_SECONDS = 2.0
REGISTRY_READY_SECONDS = 60.0

# Errors with which Kafka refuses a record for what it is (its size, its bytes), not for the state
# of the cluster: retrying the same transaction would fail the same way, so the orchestrator
# replays it a record at a time to find the one to dead-letter (`_isolate`).
RECORD_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, CorruptRecordException)
# Room left in a record for its key, headers and batch framing when it is checked against its
# topic's max.message.bytes (keys are execution ids: well under this).
RECORD_OVERHEAD_BYTES = 4096


class Oversized(Exception):
    """A decision produced a record that no topic setting lets Kafka accept."""


class Rejected(Exception):
    """An input event that cannot be applied: it goes to the dead-letter topic with this reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(slots=True)
class Execution:
    """One execution owned by this instance, as last committed.

    The state is kept packed (compact JSON, zlib level 1: ~330 bytes for an execution waiting on a
    callback, a few microseconds each way), not as objects: a parked execution costs its bytes, and
    every batch decodes the few executions it touches into a `Working` copy.
    """

    machine_name: str
    definition: dict[str, Any]  # shared by the executions of one definition
    machine: StateMachine
    packed: bytes  # the ExecutionState (see `_pack`)
    status: str  # its status, so counting running executions decodes nothing
    partition: int
    # Pinned at the start and kept in the snapshot: what a restore, redrive or takeover runs,
    # whatever the registry's draft and aliases say by then.
    pin: Pin = Pin()
    timers: tuple[tuple[float, str], ...] = ()  # (fire_at, timer_id) of its pending timers
    closed_at: float | None = None  # when it closed (epoch seconds); None while it runs

    @property
    def version_label(self) -> str:
        """The `version` metrics label: the version number, or "draft" when unpublished."""
        return str(self.pin.version) if self.pin.version is not None else "draft"

    def load(self) -> ExecutionState:
        return ExecutionState.model_validate_json(zlib.decompress(self.packed))


@dataclass
class _Batch:
    """The open batch: what the next transaction writes."""

    started: float
    events: int = 0
    out: list[Outgoing] = dataclasses.field(default_factory=list)  # commands, history, status, DLQ, in order
    snapshots: dict[str, Outgoing] = dataclasses.field(default_factory=dict)  # the last one per execution
    positions: dict[int, Outgoing] = dataclasses.field(default_factory=dict)  # per input partition number
    positions_committed: dict[int, dict[str, int]] = dataclasses.field(default_factory=dict)
    # What was decided into it, to replay one by one if Kafka refuses the transaction (`_isolate`).
    records: list[ConsumerRecord] = dataclasses.field(default_factory=list)
    timers: list[tuple[float, str, str]] = dataclasses.field(default_factory=list)


@dataclass(slots=True)
class Working:
    """An execution being decided in the current batch: its working state, changed in place by
    each event, and the events applied so far, to rebuild the state from the committed JSON if a
    later event fails half-way through its decision."""

    execution: Execution
    state: ExecutionState
    applied: list[tuple[Event, Environment]] = dataclasses.field(default_factory=list)
    closed_at: float | None = None  # when the state last closed (the event's time), as committed or decided


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Orchestrator) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.owner.on_assigned(set(assigned))


class Orchestrator:
    def __init__(
        self,
        kafka: KafkaSettings,
        settings: OrchestratorSettings,
        metrics: OrchestratorMetrics | None = None,
        registry: RegistryFollower | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.quotas = quotas or Quotas()
        self.topics = kafka.topics
        self.metrics = metrics or OrchestratorMetrics()
        # The state machine registry, in memory and followed; started and stopped with `run`.
        self.registry = registry or RegistryFollower(kafka)
        self.signer = TokenSigner(settings.token_secret.get_secret_value().encode())
        self.executions: dict[str, Execution] = {}
        self.running = 0  # executions with status RUNNING (the `open` gauge)
        self.owned: set[int] = set()  # partition numbers of the input topics this instance owns
        self.timers: list[tuple[float, str, str]] = []  # (fire_at, execution_id, timer_id)
        # (closed_at + retention, execution_id) of the closed executions; an entry whose execution
        # was redriven (or closed again later) meanwhile is stale and skipped (`_expires_by`).
        self.expiries: list[tuple[float, str]] = []
        self._machines: dict[str, StateMachine] = {}  # definition hash -> parsed machine
        # Definition hash -> the definition (one dict shared by its executions) and its JSON,
        # spliced into every snapshot rather than encoded again.
        self._definitions: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._partition_counts: dict[str, int] = {}  # output topic -> number of partitions
        self._input_partitions = 0  # partitions of each (co-partitioned) input topic
        self._pins: dict[Pin, Pin] = {}  # one Pin object per distinct pin
        # Input partition number -> {input topic: next offset to read}, as committed. Written to
        # the state topic in each transaction (see `_positions_records`) rather than to the group.
        self._positions: dict[int, dict[str, int]] = {}
        self._durable_positions: dict[int, dict[str, int]] = {}  # the same, once committed
        self._group_committed_at = 0.0
        self._committing: asyncio.Task[None] | None = None  # the transaction in flight
        self._committing_batch: _Batch | None = None
        # max.message.bytes of each output topic, read at start (`_read_record_limits`).
        self._record_limits: dict[str, int] = {}
        # Inputs Kafka refused to take the records of: (topic, partition, offset) or a timer id ->
        # (reason, whether to fail the execution or only dead-letter). See `_isolate`.
        self._poison: dict[tuple[str, int, int] | str, tuple[str, bool]] = {}
        self._open: _Batch | None = None  # decided, not yet handed to a transaction
        self._events_since_trim = 0
        self._lock = asyncio.Lock()  # a rebalance waits for the batch in flight to commit
        # Group ids are cluster-wide: scope the default by topic prefix so deployments don't mix.
        self.group_id = settings.group_id or f"{kafka.topic_prefix}-orchestrator"
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.ready = asyncio.Event()  # set once partitions are assigned and restored
        self.last_restore_seconds = 0.0

    # ------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; then finish the batch in flight and leave the group cleanly."""
        # The registry is read to its end before any start is consumed, so a start naming a
        # deployed state machine never finds it missing on a fresh instance.
        await self.registry.start()
        try:
            await self.registry.wait_ready(REGISTRY_READY_SECONDS)
            await self._run(stop)
        finally:
            await self.registry.stop()

    async def _run(self, stop: asyncio.Event) -> None:
        _tune_transaction_retry(self.settings.concurrent_transactions_backoff_ms)
        options = self.kafka.client_options()
        await self._read_record_limits()
        self._producer = self._new_producer()
        self._consumer = AIOKafkaConsumer(
            **options,
            group_id=self.group_id,
            isolation_level="read_committed",
            # Range assignment gives one member the same partition numbers of every input topic
            # (they have equal partition counts): co-partitioning, so one instance owns an execution.
            partition_assignment_strategy=(RangePartitionAssignor,),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
        )
        await self._producer.start()
        try:
            self._consumer.subscribe(self.topics.orchestrator_inputs, listener=_Rebalance(self))
            await self._consumer.start()
            try:
                await self._serve(stop)
            finally:
                async with self._lock:
                    try:
                        await self._flush()
                    finally:
                        await self._consumer.stop()
        finally:
            await self._producer.stop()

    def _new_producer(self) -> AIOKafkaProducer:
        limits = [self._record_limit(topic) + RECORD_OVERHEAD_BYTES for topic in self._output_topics()]
        return AIOKafkaProducer(
            **self.kafka.client_options(),
            transactional_id=f"{self.group_id}-{self.settings.instance_id}",
            enable_idempotence=True,
            transaction_timeout_ms=self.settings.transaction_timeout_ms,
            # Records wait for the commit, which flushes them all at once: one produce request per
            # transaction (to each broker) instead of one whenever a batch or linger runs out.
            linger_ms=1000,
            # A batch never exceeds the smallest topic limit; a bigger record gets a batch of its own.
            max_batch_size=min(1024 * 1024, *limits),
            max_request_size=max(limits),
        )

    def _output_topics(self) -> list[str]:
        t = self.topics
        return [t.history, t.events, t.state, t.dlq, *(t.commands(service) for service in STEP_SERVICES)]

    async def _read_record_limits(self) -> None:
        """Each output topic's max.message.bytes, read, not assumed: every record is checked
        against its topic's before it is sent, so a size problem ends one execution, never the
        transaction of everyone else's."""
        names = self._output_topics()
        self._record_limits = await record_limits(self.kafka, names)
        unread = [name for name in names if name not in self._record_limits]
        if unread:
            log.warning("could not read max.message.bytes of %s (DescribeConfigs not allowed?): assuming "
                        "Kafka's default %d bytes", ", ".join(unread), KAFKA_DEFAULT_MAX_MESSAGE_BYTES)

    def _record_limit(self, topic: str) -> int:
        """The most bytes a record's value may have on `topic`."""
        limit = self._record_limits.get(topic, KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
        return max(1024, limit - RECORD_OVERHEAD_BYTES)

    async def _serve(self, stop: asyncio.Event) -> None:
        """Decide events as they arrive into the open batch; commit it as soon as the transaction
        before it has ended. While a transaction is in flight (a few round trips) the next batch
        keeps growing, so the busier the instance the more events share one transaction, without
        making a lone event wait for anything."""
        assert self._consumer is not None
        fetch: asyncio.Future[dict[TopicPartition, list[ConsumerRecord]]] | None = None
        try:
            while not stop.is_set():
                if fetch is None and (self._open is None or self._open.events < self.settings.max_batch):
                    fetch = asyncio.ensure_future(self._consumer.getmany(
                        timeout_ms=self._poll_timeout_ms(), max_records=self.settings.max_batch))
                waiters = [w for w in (fetch, self._committing) if w is not None and not w.done()]
                if fetch is not None and fetch.done():
                    waiters = [fetch]
                if waiters:
                    await asyncio.wait(waiters, timeout=self._wake_in(), return_when=asyncio.FIRST_COMPLETED)
                async with self._lock:
                    records: list[ConsumerRecord] = []
                    if fetch is not None and fetch.done():
                        records = [r for rs in fetch.result().values() for r in rs]
                        fetch = None
                    now = time.time()
                    due = self._due_timers(now)
                    expired = self._due_expiries(now)
                    if records or due or expired:
                        self._events_since_trim += len(records) + len(due) + len(expired)
                        await self._prepare(records, due, expired)
                    elif self._events_since_trim >= TRIM_AFTER_EVENTS and self._open is None:
                        self._events_since_trim = 0
                        _release_free_memory()
                    ended = self._committing is not None and self._committing.done()
                    if ended or (self._committing is None and self._open_wait() == 0):
                        failed = self._committing_batch
                        try:
                            await self._finish_commit()  # a failed commit ends the service (crash-only)...
                        except RECORD_ERRORS as exc:  # ...unless Kafka refused a record for what it is
                            if fetch is not None:  # fetched before the rewind: would be out of order
                                fetch.cancel()
                                await asyncio.gather(fetch, return_exceptions=True)
                                fetch = None
                            assert failed is not None
                            await self._isolate(failed, exc)
                            continue
                        if self._open_wait() == 0:
                            self._start_commit()
        finally:
            if fetch is not None:
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)

    def _wake_in(self) -> float | None:
        """Seconds until the loop must act without new input: the next timer (the fetch in flight
        was given the timeout of the timers known when it began), or the end of the commit
        interval when no transaction is in flight (a transaction's end wakes the loop anyway)."""
        waits = []
        next_due = self._next_due()
        if next_due is not None:
            waits.append(max(0.0, next_due - time.time()))
        if self._committing is None or self._committing.done():
            open_wait = self._open_wait()
            if open_wait is not None:
                waits.append(open_wait)
        return min(waits) if waits else None

    def _open_wait(self) -> float | None:
        """Seconds the open batch still waits for more events before its commit may begin (0: now;
        None: there is none). With `commit_interval_ms` 0, the default, it never waits: a batch
        commits as soon as the transaction before it ends."""
        if self._open is None:
            return None
        if self._open.events >= self.settings.max_batch:
            return 0
        return max(0.0, self._open.started + self.settings.commit_interval_ms / 1000 - time.perf_counter())

    def _poll_timeout_ms(self) -> int:
        next_due = self._next_due()
        if next_due is None:
            return 500
        return max(0, min(500, int((next_due - time.time()) * 1000) + 1))

    def _next_due(self) -> float | None:
        """When the next timer or expiry falls due (epoch seconds), if any."""
        heads = [heap[0][0] for heap in (self.timers, self.expiries) if heap]
        return min(heads) if heads else None

    # ------------------------------------------------------------ rebalancing and restore

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        # The batch being decided and the transaction in flight commit before the partitions move.
        async with self._lock:
            await self._flush()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        by_topic: dict[str, set[int]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, set()).add(tp.partition)
        partitions = by_topic.get(self.topics.start, set())
        if any(p != partitions for p in by_topic.values()):
            log.error("input topics are not co-partitioned for this member: %s", by_topic)
        assert self._consumer is not None
        self._input_partitions = len(self._consumer.partitions_for_topic(self.topics.start) or ())
        async with self._lock:
            await self._flush()
            for execution_id in [e for e, x in self.executions.items() if x.partition not in partitions]:
                del self.executions[execution_id]
            new = partitions - self.owned
            self.owned = partitions
            self._positions = {p: known for p, known in self._positions.items() if p in partitions}
            self._durable_positions = {p: known for p, known in self._durable_positions.items() if p in partitions}
            started = time.perf_counter()
            if new:
                await self._restore(new)
            resumed = self._seek_to_positions(assigned)
            self.last_restore_seconds = time.perf_counter() - started
            self.metrics.restore_seconds.set(self.last_restore_seconds)
            self._rebuild_timers()
            self.running = sum(1 for x in self.executions.values() if x.status == "RUNNING")
            self.metrics.open.set(self.running)
        log.info("assigned partitions %s: %d executions (restored in %.2fs); %d input partitions resumed at "
                 "recorded positions", sorted(partitions), len(self.executions), self.last_restore_seconds, resumed)
        self.ready.set()

    async def _restore(self, partitions: set[int]) -> None:
        """Read the compacted state topic's partitions to their end (committed records only)."""
        consumer = AIOKafkaConsumer(**self.kafka.client_options(), isolation_level="read_committed",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topics.state, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if end[tp] > 0}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
                for tp, records in batch.items():
                    for record in records:
                        self._load_snapshot(record)
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()

    def _seek_to_positions(self, assigned: set[TopicPartition]) -> int:
        """Resume every assigned input partition where the state topic says it was committed.

        All of them, kept partitions too: a rebalance resets positions to the group's committed
        offsets, which only follow ours (see `_commit_group_offsets`). A partition the state topic
        has no position for (a new deployment, or one upgraded from offsets in the group) starts
        from the group's committed offset, or the earliest."""
        assert self._consumer is not None
        resumed = 0
        for tp in assigned:
            position = self._positions.get(tp.partition, {}).get(tp.topic)
            if position is not None:
                self._consumer.seek(tp, position)
                resumed += 1
        return resumed

    def _load_snapshot(self, record: ConsumerRecord) -> None:
        key = (record.key or b"").decode()
        if key == OFFSETS_KEY:
            try:
                self._positions[record.partition] = decode(InputPositions, record.value).offsets
                self._durable_positions[record.partition] = dict(self._positions[record.partition])
            except ValueError as exc:
                log.error("unreadable input positions at %s:%d: %s", record.topic, record.offset, exc)
            return
        if record.value is None:
            self.executions.pop(key, None)
            return
        try:
            snapshot = decode(ExecutionSnapshot, record.value)
            state = ExecutionState.model_validate(snapshot.state)
            machine = self._machine(snapshot.definition)
        except (ValueError, DefinitionError) as exc:
            log.error("unreadable snapshot for %s at %s:%d: %s", key, record.topic, record.offset, exc)
            return
        pin = Pin(snapshot.version, snapshot.alias, snapshot.definition_hash or definition_hash(snapshot.definition))
        execution = self._shared(Execution(snapshot.state_machine, snapshot.definition, machine, b"", "",
                                           record.partition, pin))
        closed_at = snapshot.closed_at
        if closed_at is None and state.status.value != "RUNNING" and record.timestamp:
            # Written before snapshots carried it: the record closing it is its last one.
            closed_at = record.timestamp / 1000.0
        self.executions[state.execution_id] = self._committed(execution, state, closed_at)

    def _rebuild_timers(self) -> None:
        """The timer and expiry heaps again, from the executions in memory (after a restore)."""
        self.timers = [
            (fire_at, execution_id, timer_id)
            for execution_id, execution in self.executions.items()
            for fire_at, timer_id in execution.timers
        ]
        heapq.heapify(self.timers)
        self.expiries = [(execution.closed_at + self.settings.retention, execution_id)
                         for execution_id, execution in self.executions.items()
                         if execution.status != "RUNNING" and execution.closed_at is not None]
        heapq.heapify(self.expiries)

    def _committed(self, execution: Execution, state: ExecutionState, closed_at: float | None) -> Execution:
        """The execution as it is once `state` is committed (`closed_at`: when it closed, if it has)."""
        timers = tuple((timer.fire_at, timer_id) for timer_id, timer in state.timers.items())
        if state.status.value == "RUNNING":
            closed_at = None
        elif closed_at is None:
            closed_at = time.time()  # closed by no event the runtime saw: retention runs from now
        return dataclasses.replace(execution, packed=_pack(state), status=state.status.value, timers=timers,
                                   closed_at=closed_at)

    def _shared(self, execution: Execution) -> Execution:
        """The execution with its definition, pin and name shared with the executions of the same
        definition: thousands of parked executions hold one copy, not one each."""
        execution.definition = self._definition(execution)[0]
        execution.pin = self._pins.setdefault(execution.pin, execution.pin)
        execution.machine_name = sys.intern(execution.machine_name)
        return execution

    def _due_timers(self, now: float) -> list[tuple[float, str, str]]:
        due: list[tuple[float, str, str]] = []
        while self.timers and self.timers[0][0] <= now and len(due) < self.settings.max_batch:
            due.append(heapq.heappop(self.timers))
        return due

    def _due_expiries(self, now: float) -> list[tuple[float, str]]:
        """The expiries due by `now` whose execution is still closed and due (stale ones dropped)."""
        due: list[tuple[float, str]] = []
        while self.expiries and self.expiries[0][0] <= now and len(due) < self.settings.max_batch:
            expiry = heapq.heappop(self.expiries)
            if self._expires_by(self.executions.get(expiry[1]), now):
                due.append(expiry)
        return due

    def _expires_by(self, execution: Execution | None, now: float) -> bool:
        """Whether `execution` is closed and its retention has ended by `now`. A redriven execution
        is RUNNING (no expiry), one closed again expires from its new close time."""
        return (execution is not None and execution.status != "RUNNING" and execution.closed_at is not None
                and execution.closed_at + self.settings.retention <= now)

    def _expire(self, due: list[tuple[float, str]], batch: _Batch) -> None:
        """Remove the executions whose retention has ended: from memory now (as every decision
        moves the in-memory view on before its commit), and from the state topic (a tombstone)
        and the read model (`ExecutionExpired` on the events topic) in the batch's transaction."""
        now = time.time()
        gone: set[str] = set()
        for _, execution_id in due:
            execution = self.executions.get(execution_id)
            if execution is None or not self._expires_by(execution, now):
                continue
            state = execution.load()
            event, tombstone = expiry_records(self.topics, state, execution.machine_name, execution.partition,
                                              execution.closed_at)
            batch.out.append(event)
            batch.snapshots[execution_id] = tombstone  # replaces a snapshot of it decided earlier in the batch
            del self.executions[execution_id]
            gone.add(execution_id)
            self.metrics.expired.inc()
        if gone:
            # Its cancelled timers' entries, which would otherwise fire into a new execution with
            # the same name (timer ids restart with each execution).
            self.timers = [timer for timer in self.timers if timer[1] not in gone]
            heapq.heapify(self.timers)
            log.info("expired %d closed executions (retention %gs)", len(gone), self.settings.retention)

    # ------------------------------------------------------------ one transaction per batch

    async def _prepare(self, records: list[ConsumerRecord], due: list[tuple[float, str, str]],
                       expired: list[tuple[float, str]] | None = None) -> None:
        """Decide due expiries, records and due timers into the open batch (the next transaction).
        Expiries first: a start consumed once an execution's retention has ended starts a new one."""
        assert self._producer is not None and self._consumer is not None
        batch = self._open = self._open or _Batch(started=time.perf_counter())
        batch.events += len(records) + len(due) + len(expired or ())
        if expired:
            self._expire(expired, batch)
        batch.records.extend(records)
        batch.timers.extend(due)
        staged: dict[str, Working] = {}
        out = batch.out
        offsets: dict[TopicPartition, int] = {}
        new_timers: list[tuple[float, str, str]] = []
        if self._names_unknown_state_machine(records):
            await self.registry.sync(REGISTRY_SYNC_SECONDS)
        for record in records:
            known = self._positions.get(record.partition, {}).get(record.topic)
            if known is not None and record.offset < known:
                # Already applied and committed: after a rebalance aiokafka may hand out records
                # fetched from the group's (older) offset before our seek to the recorded position.
                self.metrics.ignored.labels("already_applied").inc()
                continue
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
            try:
                self._handle(record, staged, out, new_timers)
            except Rejected as exc:
                self.metrics.dlq.labels(exc.reason).inc()
                log.warning("dead letter from %s:%d@%d: %s", record.topic, record.partition, record.offset, exc)
                out.append(dead_letter(self.topics, str(exc), topic=record.topic, partition=record.partition,
                                       offset=record.offset, key=record.key, value=record.value))
            except Exception as exc:  # a bug must not stop the partition: dead-letter it, go on
                log.exception("failed to process %s:%d@%d", record.topic, record.partition, record.offset)
                self.metrics.dlq.labels("internal_error").inc()
                out.append(dead_letter(self.topics, f"internal_error: {type(exc).__name__}: {exc}",
                                       topic=record.topic, partition=record.partition, offset=record.offset,
                                       key=record.key, value=record.value))
        for fire_at, execution_id, timer_id in due:
            working = self._working(execution_id, staged)
            if working is None or timer_id not in working.state.timers:
                continue  # stale: the timer was cancelled or already fired
            seed = _seed(timer_id.encode(), execution_id.encode())
            event: Event = TimerFired(timer_id=timer_id)
            if timer_id in self._poison:  # its decision's records were refused by Kafka
                reason, fail_execution = self._poison[timer_id]
                if not fail_execution:
                    log.error("dropped timer %s of %s: Kafka refuses its records (%s)", timer_id, execution_id, reason)
                    continue
                event = FailExecution(error=DATA_LIMIT_EXCEEDED, cause=f"Kafka refused the records of this step: {reason}")
            try:
                self._apply(execution_id, working, event, fire_at, seed, out, new_timers)
            except Exception:  # a bug must not stop the instance; the timer is dropped, loudly
                log.exception("failed to fire timer %s of %s", timer_id, execution_id)
                self.metrics.dlq.labels("internal_error").inc()
        committed: dict[str, Execution] = {}
        positions = self._positions_records(offsets, batch)
        for execution_id, working in staged.items():
            if not working.applied:
                continue  # only looked at (e.g. a stale result): nothing changed
            execution = working.execution
            # One snapshot per execution per transaction: a later decision's replaces it.
            batch.snapshots[execution_id] = self._snapshot(execution_id, working, out, new_timers)
            committed[execution_id] = self._committed(execution, working.state, working.closed_at)
        # The in-memory view moves on now, before the commit: the next batch is decided on top of
        # this one while its transaction is in flight (a pipeline of two). If the commit fails the
        # instance stops (crash-only) and whoever takes the partitions over restores what was
        # committed, so nothing decided on an uncommitted view ever becomes visible.
        self._positions.update(positions)
        for execution_id, execution in committed.items():
            before = self.executions.get(execution_id)
            self.running += (execution.status == "RUNNING") - (before is not None and before.status == "RUNNING")
            self.executions[execution_id] = execution
            if execution.closed_at is not None and (before is None or before.closed_at != execution.closed_at):
                heapq.heappush(self.expiries, (execution.closed_at + self.settings.retention, execution_id))
        for timer in new_timers:
            heapq.heappush(self.timers, timer)
        self.metrics.open.set(self.running)

    def _snapshot(self, execution_id: str, working: Working, out: list[Outgoing],
                  new_timers: list[tuple[float, str, str]]) -> Outgoing:
        """The execution's snapshot, fitting the state topic: as JSON, compressed when too big, and
        when even that does not fit, the execution fails with States.DataLimitExceeded (its state
        then holds little more than its input, which the payload quota bounds)."""
        execution = working.execution
        limit = self._record_limit(self.topics.state)
        definition, definition_json = self._definition(execution)
        for attempt in range(3):
            closed_at = None if working.state.status.value == "RUNNING" else working.closed_at
            record = snapshot_record(self.topics, working.state, definition, execution.machine_name,
                                     execution.partition, execution.pin, definition_json, _state_json(working.state),
                                     closed_at)
            assert record.value is not None
            if len(record.value) <= limit:
                return record
            packed = dataclasses.replace(record, value=compress(record.value))
            assert packed.value is not None
            if len(packed.value) <= limit:
                return packed
            if attempt == 0 and working.state.status.value == "RUNNING":
                cause = (f"The execution's state is {len(packed.value)} bytes compressed, exceeding the maximum "
                         f"number of bytes of a record on {self.topics.state} ({limit}).")
                self._apply(execution_id, working, FailExecution(error=DATA_LIMIT_EXCEEDED, cause=cause),
                            time.time(), _seed(execution_id.encode(), b"oversized"), out, new_timers)
            else:
                # A redrive point holds the failed state's input and variables: too big to keep.
                working.state.redrive_point = None
        raise Oversized(f"the state of {execution_id} does not fit {self.topics.state} ({limit} bytes) even "
                        "when failed; is its definition over the definition quota?")

    def _start_commit(self) -> None:
        """Commit the open batch in the background (the transaction before it has ended)."""
        batch, self._open = self._open, None
        self._committing_batch = batch
        if batch is not None:
            self._committing = asyncio.create_task(self._commit(batch))

    async def _flush(self) -> None:
        """Commit everything decided so far, and wait (before a rebalance, or to stop)."""
        await self._finish_commit()
        self._start_commit()
        await self._finish_commit()

    async def _commit(self, batch: _Batch) -> None:
        """One batch's transaction: its records and input positions, all or nothing."""
        assert self._producer is not None
        out = [*batch.out, *batch.positions.values(), *batch.snapshots.values()]
        producer = self._producer
        await producer.begin_transaction()
        try:
            futures = [
                await producer.send(o.topic, value=o.value, key=o.key,
                                    partition=await self._partition(o.topic, o.partition))
                for o in out
            ]
            # Delivered before the commit, inside the transaction: aiokafka commits a transaction
            # even when the broker refused one of its records (seen with MESSAGE_TOO_LARGE), which
            # would commit the rest without it. `flush_for_commit` is what the commit does first
            # (close the open batches, wake the sender); awaiting each send would wait out the linger.
            await producer._message_accumulator.flush_for_commit()
        except BaseException:
            await producer.abort_transaction()
            raise
        refused = next((f.exception() for f in futures if f.exception() is not None), None)
        if refused is not None:
            # Left open, not aborted: after a refused batch aiokafka's idempotent sequence is off
            # and an abort may never end. `_recover` starts a new producer with the same
            # transactional id, which fences this one and aborts its transaction.
            raise refused
        await producer.commit_transaction()
        self._durable_positions.update(batch.positions_committed)
        self.metrics.batch_seconds.observe(time.perf_counter() - batch.started)
        self.metrics.batch_events.observe(batch.events)
        await self._update_lag()
        await self._commit_group_offsets()

    async def _finish_commit(self) -> None:
        """Wait for the transaction in flight, if any; raise what it raised."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing
        self._committing_batch = None

    # ------------------------------------------------------------ poison isolation

    async def _isolate(self, failed: _Batch, error: Exception) -> None:
        """Kafka refused a transaction for one of its records: find it and dead-letter it alone.

        Everything decided since the last commit is dropped and restored from the state topic;
        then the refused batch's inputs (records, then timers) are decided again, one per
        transaction. The one whose transaction Kafka refuses again fails its execution instead
        (States.DataLimitExceeded, in a transaction of its own) and goes to the dead-letter topic
        with the reason; if even that is refused, it is only dead-lettered. Every input offset is
        thereby either applied or dead-lettered, and the instance goes on."""
        log.error("Kafka refused a transaction of %d records and %d timers (%s: %s): deciding them again one "
                  "per transaction to find the record it refuses", len(failed.records), len(failed.timers),
                  type(error).__name__, error)
        self.metrics.dlq.labels("isolating").inc()
        await self._recover([failed, *([self._open] if self._open is not None else [])])
        for record in failed.records:
            await self._commit_alone(record, (record.topic, record.partition, record.offset))
        for timer in failed.timers:
            await self._commit_alone(timer, timer[2])
        assert self._consumer is not None
        self._seek_to_positions(self._consumer.assignment())

    async def _commit_alone(self, item: ConsumerRecord | tuple[float, str, str],
                            ident: tuple[str, int, int] | str) -> None:
        for fail_execution in (None, True, False):
            if fail_execution is not None:
                self._poison[ident] = (self._poison[ident][0], fail_execution)
            if isinstance(item, tuple):
                await self._prepare([], [item])
            else:
                await self._prepare([item], [])
            self._start_commit()
            try:
                await self._finish_commit()
                return
            except RECORD_ERRORS as exc:
                log.error("Kafka refuses the records decided from %s: %s", ident, exc)
                self._poison.setdefault(ident, (f"{type(exc).__name__}: {exc}"[:1000], True))
                await self._recover([])
        raise RuntimeError(f"Kafka refuses even the dead letter of {ident}")  # crash-only from here

    async def _recover(self, dropped: list[_Batch]) -> None:
        """Back to what is committed: a new transactional producer (fencing the refused
        transaction), the owned executions and input positions restored from the state topic,
        the timers re-armed, the consumer rewound to the first record not committed."""
        assert self._consumer is not None
        self._open, self._committing, self._committing_batch = None, None, None
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), 5)
            except Exception:  # in an error state after the refusal: its successor fences it anyway
                log.debug("stopping the refused producer failed", exc_info=True)
        self._producer = self._new_producer()
        await self._producer.start()
        self.executions.clear()
        self._positions.clear()
        self._durable_positions.clear()
        await self._restore(self.owned)
        assigned = self._consumer.assignment()
        self._seek_to_positions(assigned)
        # A partition with no recorded position yet: back to the first record not committed.
        first: dict[TopicPartition, int] = {}
        for batch in dropped:
            for record in batch.records:
                tp = TopicPartition(record.topic, record.partition)
                first[tp] = min(first.get(tp, record.offset), record.offset)
        for tp, offset in first.items():
            if tp in assigned and self._positions.get(tp.partition, {}).get(tp.topic) is None:
                self._consumer.seek(tp, offset)
        self._rebuild_timers()
        self.running = sum(1 for x in self.executions.values() if x.status == "RUNNING")
        self.metrics.open.set(self.running)

    async def _partition(self, topic: str, execution_partition: int | None) -> int | None:
        """The partition of `topic` for an execution's record: its own partition number, so no
        key is hashed (the partitioner was a tenth of the orchestrator's time) and per-execution
        order holds on every topic. Output topics may have fewer partitions than the inputs."""
        if execution_partition is None:
            return None
        count = self._partition_counts.get(topic)
        if count is None:
            assert self._producer is not None
            count = self._partition_counts[topic] = len(await self._producer.partitions_for(topic))
        return execution_partition % count

    def _definition(self, execution: Execution) -> tuple[dict[str, Any], bytes]:
        digest = execution.pin.definition_hash or definition_hash(execution.definition)
        known = self._definitions.get(digest)
        if known is None:
            known = self._definitions[digest] = (execution.definition, to_json(execution.definition))
        return known

    def _positions_records(self, offsets: dict[TopicPartition, int], batch: _Batch) -> dict[int, dict[str, int]]:
        """Record the batch's consumed offsets in the state topic, inside the transaction.

        Kafka's own way (sendOffsetsToTransaction) costs two more sequential round trips per
        transaction (AddOffsetsToTxn, TxnOffsetCommit to the group coordinator); a record in the
        co-partitioned state topic commits atomically with the batch at no extra round trip. One
        compacted record per partition number holds every input topic's next offset."""
        touched: dict[int, dict[str, int]] = {}
        for tp, next_offset in offsets.items():
            touched.setdefault(tp.partition, dict(self._positions.get(tp.partition, {})))[tp.topic] = next_offset
        for partition, known in touched.items():
            batch.positions[partition] = Outgoing(self.topics.state, OFFSETS_KEY.encode(),
                                                  encode(InputPositions(offsets=known)), partition)
            batch.positions_committed[partition] = known
        return touched

    async def _commit_group_offsets(self) -> None:
        """Copy the committed positions to the consumer group every few seconds, for the tools
        that read a group's lag. Never ahead of the transactions: only committed positions."""
        assert self._consumer is not None
        if time.monotonic() - self._group_committed_at < GROUP_COMMIT_SECONDS:
            return
        self._group_committed_at = time.monotonic()
        assigned = self._consumer.assignment()
        offsets = {tp: position for partition, known in self._durable_positions.items()
                   for topic, position in known.items() if (tp := TopicPartition(topic, partition)) in assigned}
        if offsets:
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:  # e.g. a rebalance in progress: informational, try later
                log.debug("group offsets not committed: %s", exc)

    async def _update_lag(self) -> None:
        """Consumer lag per input partition: the high watermark minus our position."""
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                position = await self._consumer.position(tp)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    # ------------------------------------------------------------ input events

    def _handle(self, record: ConsumerRecord, staged: dict[str, Working], out: list[Outgoing],
                new_timers: list[tuple[float, str, str]]) -> None:
        key = (record.key or b"").decode(errors="replace")
        seed = _seed(record.topic.encode(), str(record.partition).encode(), str(record.offset).encode())
        at = record.timestamp / 1000.0 if record.timestamp else time.time()
        poison = self._poison.get((record.topic, record.partition, record.offset))
        if poison is not None:
            reason, fail_execution = poison
            if fail_execution:
                self._fail_for(record, key, at, seed, staged, out, new_timers, reason)
            raise Rejected("refused_by_kafka", reason)
        if record.topic == self.topics.start:
            self._handle_request(record, key, at, seed, staged, out, new_timers)
            return
        if record.topic == self.topics.results:
            result = self._parse(StepResult, record)
            if self._forwarded(record, result.execution_id, staged, out):
                return
            working = self._owned(result.execution_id, key, staged)
            event: Event
            if result.kind == "progress":
                return  # informational; the history records outcomes only
            pending = working.state.tasks.get(result.task_id)
            if pending is None:
                self.metrics.ignored.labels("stale_or_duplicate_result").inc()
                log.info("ignored %s result for %s: task no longer awaited", result.kind, result.task_id)
                return
            self._check_provenance(result, pending.resource)
            self._count_usage(working, result)
            if result.kind == "succeeded":
                event = TaskSucceeded(task_id=result.task_id, output=result.output, metadata=result.metadata)
            elif result.kind == "failed":
                event = TaskFailed(task_id=result.task_id, error=result.error or "States.TaskFailed",
                                   cause=result.cause, metadata=result.metadata)
            else:
                event = TaskHeartbeat(task_id=result.task_id)
            self._apply(result.execution_id, working, event, at, seed, out, new_timers)
            return
        if record.topic == self.topics.review_decisions:
            decision = self._parse(ReviewDecision, record)
            try:
                execution_id, task_id = self.signer.verify(decision.task_token)
            except InvalidToken as exc:
                raise Rejected("invalid_task_token", str(exc)) from None
            if decision.execution_id and execution_id != decision.execution_id:
                raise Rejected("invalid_task_token", "the token names another execution")
            if self._forwarded(record, execution_id, staged, out):
                return
            working = self._owned(execution_id, key, staged)
            if task_id not in working.state.tasks:
                # A reused or expired token (decided, timed out, or its execution ended) is
                # refused like a forged one, so whoever posted it can see why it changed nothing.
                raise Rejected("stale_task_token", f"task {task_id} is no longer awaited")
            if decision.outcome != "heartbeat":
                waited = at - working.state.tasks[task_id].scheduled_at
                self.metrics.review_wait.observe(max(0.0, waited))
            if decision.outcome == "success":
                event = TaskSucceeded(task_id=task_id, output=decision.output)
            elif decision.outcome == "failure":
                event = TaskFailed(task_id=task_id, error=decision.error or "States.TaskFailed", cause=decision.cause)
            else:
                event = TaskHeartbeat(task_id=task_id)
            self._apply(execution_id, working, event, at, seed, out, new_timers)
            return
        raise Rejected("unexpected_topic", record.topic)

    def _fail_for(self, record: ConsumerRecord, key: str, at: float, seed: int, staged: dict[str, Working],
                  out: list[Outgoing], new_timers: list[tuple[float, str, str]], reason: str) -> None:
        """Fail the execution an input record is about, if there is one (a start: it is created
        FAILED). Best effort: a record naming nothing known is only dead-lettered."""
        failure = FailExecution(error=DATA_LIMIT_EXCEEDED, cause=f"Kafka refused the records of this step: {reason}")
        if record.topic == self.topics.start:
            try:
                self._handle_request(record, key, at, seed, staged, out, new_timers, instead=failure)
            except Rejected:
                pass
            return
        working = self._working(key, staged)
        if working is not None and working.state.status.value == "RUNNING":
            self._apply(key, working, failure, at, seed, out, new_timers)

    def _forwarded(self, record: ConsumerRecord, execution_id: str, staged: dict[str, Working],
                   out: list[Outgoing], always: bool = False) -> bool:
        """Move a record to its execution's partition if it arrived on another one; True if moved.

        An execution lives on the partition Java's and aiokafka's default partitioner picks for
        its id (murmur2), where Baton's own clients put all its records. A client with another
        partitioner (librdkafka's crc32 default: confluent-kafka, kcat, node-rdkafka) or none (no
        key) puts them elsewhere, where another instance may own them: such a record is written
        again, keyed by the execution id, to the right partition of the same topic, in this
        batch's transaction (exactly once), and that partition's owner applies it. A start is
        always moved (its partition decides where the execution lives); another record only when
        its execution is not known here (an execution started before this rule keeps working)."""
        if not self._input_partitions or (not always and self._working(execution_id, staged) is not None):
            return False
        home = (murmur2(execution_id.encode()) & 0x7FFFFFFF) % self._input_partitions
        if home == record.partition:
            return False
        out.append(Outgoing(record.topic, execution_id.encode(), record.value, home))
        self.metrics.ignored.labels("forwarded_to_home_partition").inc()
        return True

    def _check_provenance(self, result: StepResult, resource: str) -> None:
        """Refuse a result its sender cannot have been asked for (docs/security.md).

        The results topic is shared by every step service, so the record's topic proves nothing.
        A result must return its command's `result_key`, which only readers of the command topic
        of the service it went to learn (the broker's ACLs keep the others out). A callback task
        (`.waitForTaskToken`: a human review, an external job) is completed only by a decision
        carrying its signed task token: from the results topic it may only fail (its dispatch
        failed, as AWS fails a task whose invocation fails) or beat."""
        service = service_for(resource)
        if not self.signer.verify_result_key(result.result_key, result.execution_id, result.task_id, service):
            raise Rejected("unauthenticated_result",
                           f"the {result.kind} result for task {result.task_id} does not carry the result key "
                           f"of its command to the {service!r} service")
        if result.kind == "succeeded" and resource.endswith(".waitForTaskToken"):
            raise Rejected("callback_task_result",
                           f"task {result.task_id} waits for its task token; a result cannot complete it")

    def _parse(self, model: Any, record: ConsumerRecord) -> Any:
        try:
            return decode(model, record.value)
        except (ValidationError, ValueError) as exc:
            raise Rejected("unparseable", _short(exc)) from None

    def _owned(self, execution_id: str, key: str, staged: dict[str, Working]) -> Working:
        if key and key != execution_id:
            raise Rejected("key_mismatch", f"record key {key!r} is not the execution id {execution_id!r}")
        working = self._working(execution_id, staged)
        if working is None:
            raise Rejected("unknown_execution", execution_id)
        return working

    def _working(self, execution_id: str, staged: dict[str, Working]) -> Working | None:
        """The batch's working copy of an execution, decoded from its committed JSON on first use."""
        working = staged.get(execution_id)
        if working is None:
            execution = self.executions.get(execution_id)
            if execution is None:
                return None
            working = staged[execution_id] = Working(execution, execution.load(), closed_at=execution.closed_at)
        return working

    def _handle_request(self, record: ConsumerRecord, key: str, at: float, seed: int,
                        staged: dict[str, Working], out: list[Outgoing],
                        new_timers: list[tuple[float, str, str]], instead: FailExecution | None = None) -> None:
        """A start, stop or redrive. `instead`: a start whose records Kafka refused is created
        failed with this rather than started."""
        try:
            request = parse_request(record.value)
        except (ValidationError, ValueError) as exc:
            raise Rejected("unparseable", _short(exc)) from None
        if key and key != request.execution_id:
            raise Rejected("key_mismatch", f"record key {key!r} is not the execution id {request.execution_id!r}")
        if instead is None and self._forwarded(record, request.execution_id, staged, out,
                                               always=isinstance(request, StartRequest)):
            return
        existing = self._working(request.execution_id, staged)
        if isinstance(request, StartRequest):
            if existing is not None:
                self.metrics.ignored.labels("duplicate_start").inc()
                return  # idempotent start by execution name
            if request.definition is not None and len(record.value or b"") > self.quotas.max_definition_bytes:
                size = len(to_json(request.definition))
                if size > self.quotas.max_definition_bytes:
                    raise Rejected("definition_too_large", f"the definition is {size} bytes, over the quota of "
                                   f"{self.quotas.max_definition_bytes} (BATON_MAX_DEFINITION_BYTES)")
            machine_name, definition, pin = self._pinned(request)
            try:
                machine = self._machine(definition, pin.definition_hash)
            except DefinitionError as exc:
                raise Rejected("invalid_definition", "; ".join(str(p) for p in exc.problems)) from None
            state = new_execution(
                execution_id=request.execution_id, name=request.name,
                state_machine_id=f"arn:baton:states:local:stateMachine:{machine_name}",
                state_machine_name=machine_name,
            )
            execution = self._shared(Execution(machine_name, definition, machine, _pack(state), state.status.value,
                                               record.partition, pin))
            working = staged[request.execution_id] = Working(execution, state)
            self.metrics.started.labels(machine_name, execution.version_label).inc()
            first: Event = instead if instead is not None else StartExecution(input=request.input)
            try:
                self._apply(request.execution_id, working, first, at, seed, out, new_timers)
            except Exception:
                del staged[request.execution_id]  # never started: a retried start may try again
                raise
            running = working.state
            if running.status.value == "RUNNING":  # (a one-Pass machine may already have finished)
                out.append(Outgoing(self.topics.events, request.execution_id.encode(),
                                    encode(status_event(running, machine_name, pin)), record.partition))
            return
        if existing is None:
            raise Rejected("unknown_execution", request.execution_id)
        event: Event = RedriveExecution() if isinstance(request, RedriveRequest) else StopExecution(
            error=request.error, cause=request.cause)
        self._apply(request.execution_id, existing, event, at, seed, out, new_timers)

    # ------------------------------------------------------------ the decider

    def _apply(self, execution_id: str, working: Working, event: Event, at: float, seed: int,
               out: list[Outgoing], new_timers: list[tuple[float, str, str]]) -> None:
        execution = working.execution
        env = Environment(
            now=datetime.fromtimestamp(at, timezone.utc),
            seed=seed,
            task_token=lambda task_id: self.signer.sign(execution_id, task_id),
            max_payload_bytes=self.quotas.max_payload_bytes,
            max_history_events=self.quotas.max_history_events,
            max_transitions_per_decision=self.quotas.max_transitions_per_decision,
        )
        retry_fired = isinstance(event, TimerFired) and getattr(
            working.state.timers.get(event.timer_id), "purpose", None) == "retry"
        try:
            decision: Decision = decide_in_place(execution.machine, working.state, event, env)
            records = effects_to_records(self.topics, decision.state, decision.effects,
                                         machine_name=execution.machine_name, pin=execution.pin,
                                         partition=execution.partition, result_key=self.signer.result_key,
                                         max_history_bytes=self._record_limit(self.topics.history))
            self._check_sizes(records)
        except Oversized as exc:
            working.state = self._rebuild(working)
            if isinstance(event, FailExecution):
                raise Rejected("data_limit_exceeded", str(exc)) from None
            # The event is not applied: the execution fails instead, saying which record was too big.
            failure = FailExecution(error=DATA_LIMIT_EXCEEDED, cause=str(exc))
            self._apply(execution_id, working, failure, at, seed, out, new_timers)
            return
        except Exception:
            working.state = self._rebuild(working)
            raise
        working.applied.append((event, env))
        out.extend(records)
        for effect in decision.effects:
            if isinstance(effect, StartTimer):
                new_timers.append((effect.fire_at, execution_id, effect.timer_id))
            elif isinstance(effect, ExecutionFinished):
                working.closed_at = at  # its retention runs from here (the snapshot carries it)
            elif isinstance(effect, HistoryEvent):
                if effect.type.endswith("StateEntered"):
                    self.metrics.transitions.inc()
                elif effect.type.startswith("Execution") and effect.type != "ExecutionStarted":
                    if effect.type != "ExecutionRedriven":
                        self._count_finished(execution, decision.state, at)
        if retry_fired:
            self.metrics.retries.inc()

    def _check_sizes(self, records: list[Outgoing]) -> None:
        """Raise Oversized for a record bigger than its topic takes, even compressed (history is
        split to fit already; commands and statuses are bounded by the payload quota unless it is
        raised past the topics' record size)."""
        for index, record in enumerate(records):
            limit = self._record_limit(record.topic)
            if record.value is None or len(record.value) <= limit:
                continue
            packed = compress(record.value)
            if len(packed) > limit:
                raise Oversized(f"a record for {record.topic} would be {len(record.value)} bytes, exceeding the "
                                f"maximum number of bytes of a record there ({limit})")
            records[index] = dataclasses.replace(record, value=packed)

    def _rebuild(self, working: Working) -> ExecutionState:
        """The working state again after an event failed mid-decision: the committed state with
        the batch's earlier events re-applied (the decider is deterministic; effects discarded)."""
        state = working.execution.load()
        for event, env in working.applied:
            decide_in_place(working.execution.machine, state, event, env)
        return state

    def _machine(self, definition: dict[str, Any], digest: str | None = None) -> StateMachine:
        digest = digest or definition_hash(definition)
        machine = self._machines.get(digest)
        if machine is None:
            machine = self._machines[digest] = parse_definition(definition)
        return machine

    # ------------------------------------------------------------ the state machine registry

    def _pinned(self, request: StartRequest) -> tuple[str, dict[str, Any], Pin]:
        """(state machine name, definition, pin) of a start: its inline definition, or what the
        registry resolves its reference to (an alias picks its version from the execution name)."""
        if request.definition is not None:
            return request.state_machine, request.definition, Pin(definition_hash=definition_hash(request.definition))
        try:
            resolved = self.registry.resolve(request.state_machine, request.name)
        except RegistryError as exc:
            raise Rejected("unknown_state_machine", str(exc)) from None
        return resolved.name, resolved.definition, Pin(resolved.version, resolved.alias, resolved.definition_hash)

    def _names_unknown_state_machine(self, records: list[ConsumerRecord]) -> bool:
        """Whether a start in the batch names something the registry does not (yet) know."""
        for record in records:
            if record.topic != self.topics.start:
                continue
            try:
                request = parse_request(record.value)
            except ValueError:
                continue
            if isinstance(request, StartRequest) and request.definition is None:
                try:
                    self.registry.resolve(request.state_machine, request.name)
                except RegistryError:
                    return True
        return False

    def _count_finished(self, execution: Execution, state: ExecutionState, at: float) -> None:
        labels = (state.status.value, execution.machine_name, execution.version_label)
        self.metrics.finished.labels(*labels).inc()
        try:
            started = parse_timestamp(state.start_time).timestamp()
        except ValueError:
            return
        self.metrics.execution_seconds.labels(*labels).observe(max(0.0, at - started))

    def _count_usage(self, working: Working, result: StepResult) -> None:
        """Step duration by service and model, token use and cost, per state machine and version."""
        labels = (working.execution.machine_name, working.execution.version_label)
        pending = working.state.tasks.get(result.task_id)
        duration_ms = result.metadata.get("duration_ms")
        if pending is not None and result.kind in ("succeeded", "failed") and isinstance(duration_ms, int | float):
            model = str(result.metadata.get("model") or "")
            self.metrics.step_seconds.labels(service_for(pending.resource), model).observe(duration_ms / 1000)
        usage = result.metadata.get("usage")
        if not isinstance(usage, dict):
            usage = result.metadata  # the LLM service reports input_tokens/output_tokens at the top level
        if isinstance(usage, dict):
            for direction, keys in (("input", ("input_tokens", "prompt_tokens")),
                                    ("output", ("output_tokens", "completion_tokens"))):
                count = next((usage[k] for k in keys if isinstance(usage.get(k), int | float)), None)
                if count:
                    self.metrics.execution_tokens.labels(*labels, direction).inc(count)
        cost = result.metadata.get("cost_usd")
        if isinstance(cost, int | float) and cost > 0:
            self.metrics.execution_cost.labels(*labels).inc(cost)


def _release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc's malloc_trim), once a burst is over.

    A burst (10,000 starts) allocates records, batches and JSON that are freed right after, but
    glibc keeps the pages: RSS stayed ~1.3 KiB per parked execution above the ~0.7 KiB the
    executions themselves hold. Called when the instance goes idle after many events; a no-op
    where there is no glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _tune_transaction_retry(backoff_ms: float) -> None:
    """How soon aiokafka retries adding partitions to a transaction the broker answered with
    CONCURRENT_TRANSACTIONS (the previous transaction's markers are still being written, KAFKA-5477).

    aiokafka waits a fixed 20 ms (`sender.BACKOFF_OVERRIDE`, no setting), which an orchestrator
    that begins each transaction right after the previous commit hits on most transactions: W1
    measured 1,550 transitions/s with 20 ms and 2,450 with 2 ms on the same box. The markers take
    about a millisecond on one node, a few on a replicated cluster; a retry is one small request."""
    from aiokafka.producer import sender

    sender.BACKOFF_OVERRIDE = backoff_ms / 1000


def _state_json(state: ExecutionState) -> bytes:
    return state.__pydantic_serializer__.to_json(state)


def _pack(state: ExecutionState) -> bytes:
    """The in-memory form of a committed state: without default values (the snapshot keeps them
    all, for readers of the state topic) and compressed."""
    return zlib.compress(state.__pydantic_serializer__.to_json(state, exclude_defaults=True), 1)


def _seed(*parts: bytes) -> int:
    """Randomness derived from the event's identity: replaying the event decides the same."""
    return int.from_bytes(hashlib.sha256(b"\0".join(parts)).digest()[:8], "big")


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text[:500]
