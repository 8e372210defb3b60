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
same definition whatever the registry says later."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from kafka_io import KafkaSettings
from kafka_io.payloads import PayloadStore, open_payload_store
from orchestrator.asl.model import StateMachine
from orchestrator.registry.store import RegistryFollower
from orchestrator.runtime.deciding import Deciding
from orchestrator.runtime.engine import (
    RECORD_ERRORS,
    REGISTRY_READY_SECONDS,
    TRIM_AFTER_EVENTS,
    _Batch,
    _release_free_memory,
    _tune_transaction_retry,
)
from orchestrator.runtime.executions import Executions
from orchestrator.runtime.metrics import OrchestratorMetrics
from orchestrator.runtime.topics import cluster_id
from orchestrator.runtime.translate import (
    Pin,
)
from orchestrator.settings import OrchestratorSettings, Quotas
from schemas.tokens import TokenSigner

log = logging.getLogger("baton.orchestrator")


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Orchestrator) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.owner.on_assigned(set(assigned))



class Orchestrator(Deciding):
    """The orchestrator service (this module's docstring); its layers are described in
    `orchestrator.runtime.engine.EngineBase`."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: OrchestratorSettings,
        metrics: OrchestratorMetrics | None = None,
        registry: RegistryFollower | None = None,
        quotas: Quotas | None = None,
        payloads: PayloadStore | None = None,
    ) -> None:
        self.kafka = kafka
        # The claim check's store (docs/payloads.md): given, or BATON_PAYLOAD_STORE's (None: off).
        self.payloads = payloads if payloads is not None else open_payload_store()
        self.settings = settings
        self.quotas = quotas or Quotas()
        self.topics = kafka.topics
        self.metrics = metrics or OrchestratorMetrics()
        # The state machine registry, in memory and followed; started and stopped with `run`.
        self.registry = registry or RegistryFollower(kafka)
        self.signer = TokenSigner(settings.token_secret.get_secret_value().encode())
        self._flow_controlled = frozenset(settings.flow_controlled_services)
        # Group ids are cluster-wide: scope the default by topic prefix so deployments don't mix.
        self.group_id = settings.group_id or f"{kafka.topic_prefix}-orchestrator"
        # The owned executions: on disk, one store per owned partition, the working set in RAM.
        self.executions = Executions(settings.state_dir / "orchestrator" / self.group_id / settings.instance_id,
                                     self._lookup_definition, lambda execution: self._definition(execution)[1])
        self._cluster_id = ""  # the Kafka cluster's id, recorded in the stores (read at start)
        self.running = 0  # executions with status RUNNING (the `open` gauge)
        self.owned: set[int] = set()  # partition numbers of the input topics this instance owns
        self.timers: list[tuple[float, str, str]] = []  # (fire_at, execution_id, timer_id)
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
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.ready = asyncio.Event()  # set once partitions are assigned and restored
        self.last_restore_seconds = 0.0
        self.last_restore_records = 0

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
        self._cluster_id = await cluster_id(self.kafka)
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
            self.executions.close_all()

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
        heads = [self.timers[0][0]] if self.timers else []
        closes = self.executions.closes(float("inf"), 1)
        if closes:
            heads.append(closes[0][0] + self.settings.retention)
        return min(heads) if heads else None
