"""Partitions coming and going: restoring the owned executions from the compacted state topic,
resuming each input partition at its recorded position, and the timer and expiry heaps."""

from __future__ import annotations

import dataclasses
import heapq
import logging
import sys
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.execution import ExecutionState
from orchestrator.registry.model import definition_hash
from orchestrator.runtime.engine import (
    OFFSETS_KEY,
    EngineBase,
    Execution,
    _Batch,
    _pack,
)
from orchestrator.runtime.translate import Pin, expiry_records
from schemas.base import decode
from schemas.executions import ExecutionSnapshot, InputPositions

log = logging.getLogger("baton.orchestrator")


class Restore(EngineBase):
    """The orchestrator's restore layer (see `EngineBase`)."""

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
