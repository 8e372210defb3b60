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
import heapq
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from kafka_io import KafkaSettings
from orchestrator.asl.decider import Decision, Environment, decide_in_place
from orchestrator.asl.errors import DATA_LIMIT_EXCEEDED
from orchestrator.asl.execution import (
    Event,
    ExecutionFinished,
    ExecutionState,
    FailExecution,
    HistoryEvent,
    StartTimer,
    TimerFired,
)
from orchestrator.asl.model import StateMachine
from orchestrator.registry.store import RegistryFollower
from orchestrator.runtime.engine import (
    RECORD_ERRORS,
    REGISTRY_READY_SECONDS,
    REGISTRY_SYNC_SECONDS,
    TRIM_AFTER_EVENTS,
    Oversized,
    Rejected,
    Working,
    _Batch,
    _release_free_memory,
    _seed,
    _tune_transaction_retry,
)
from orchestrator.runtime.executions import Executions
from orchestrator.runtime.intake import Intake
from orchestrator.runtime.metrics import OrchestratorMetrics
from orchestrator.runtime.store import Execution, StoreCorrupt
from orchestrator.runtime.topics import cluster_id
from orchestrator.runtime.translate import (
    Outgoing,
    Pin,
    dead_letter,
    effects_to_records,
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



class Orchestrator(Intake):
    """The orchestrator service (this module's docstring); its layers are described in
    `orchestrator.runtime.engine.EngineBase`."""

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
            except StoreCorrupt:
                raise  # not the record's fault: stop, and rebuild the store at the next start
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
            batch.executions[execution_id] = (execution.partition, execution)
        for timer in new_timers:
            heapq.heappush(self.timers, timer)
        self.metrics.open.set(self.running)

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
                                         max_history_bytes=self._record_limit(self.topics.history),
                                         flow_controlled=self._flow_controlled)
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

    def _rebuild(self, working: Working) -> ExecutionState:
        """The working state again after an event failed mid-decision: the committed state with
        the batch's earlier events re-applied (the decider is deterministic; effects discarded)."""
        state = working.execution.load()
        for event, env in working.applied:
            decide_in_place(working.execution.machine, state, event, env)
        return state
