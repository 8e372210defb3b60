"""Partitions coming and going: bringing each owned partition's state store up to date from the
compacted state topic (the tail after its checkpoint, or the whole topic when the store is new or
cannot be used), resuming each input partition at its recorded position, the timer heap, and the
expiries, which are read from the stores in close order."""

from __future__ import annotations

import dataclasses
import heapq
import logging
import sys
import time
import zlib
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic_core import from_json, to_json

from kafka_io.payloads import PayloadStore, PayloadStoreError
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.execution import ExecutionState
from orchestrator.registry.model import definition_hash
from orchestrator.runtime.engine import (
    OFFSETS_KEY,
    EngineBase,
    _Batch,
    _pack,
)
from orchestrator.runtime.store import Execution, StoreCorrupt, StoreIdentity
from orchestrator.runtime.translate import Pin, expiry_records
from schemas.base import decode, inflate
from schemas.executions import ExecutionSnapshot, InputPositions
from schemas.payloads import PAYLOAD_MISSING, PayloadError, hydrate, may_hold_references, scope_of

log = logging.getLogger("baton.orchestrator")


class Restore(EngineBase):
    """The orchestrator's restore layer (see `EngineBase`)."""

    # The claim check (kafka_io.payloads; None: off): the state topic's snapshots and the records
    # read hold references to large values, resolved here when read (docs/payloads.md).
    payloads: PayloadStore | None = None


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
            self.executions.keep_only(partitions)
            new = partitions - self.owned
            self.owned = partitions
            self._positions = {p: known for p, known in self._positions.items() if p in partitions}
            self._durable_positions = {p: known for p, known in self._durable_positions.items() if p in partitions}
            started = time.perf_counter()
            self.last_restore_records = 0
            if new:
                await self._restore(new)
            resumed = self._seek_to_positions(assigned)
            self.last_restore_seconds = time.perf_counter() - started
            self.metrics.restore_seconds.set(self.last_restore_seconds)
            self._rebuild_timers()
            self.running = self.executions.running()
            self.metrics.open.set(self.running)
        log.info("assigned partitions %s: %d executions (restored in %.2fs, %d state records read); %d input "
                 "partitions resumed at recorded positions", sorted(partitions), self.executions.count(),
                 self.last_restore_seconds, self.last_restore_records, resumed)
        self.ready.set()

    async def _restore(self, partitions: set[int]) -> None:
        """Bring the partitions' stores up to date from the state topic (committed records only):
        from each store's checkpoint, or from the beginning for a new or discarded store."""
        try:
            await self._read_changelog(partitions)
        except StoreCorrupt:  # said and deleted: read again, that partition from the beginning
            self.executions.clear_pending()
            await self._read_changelog(partitions)

    async def _read_changelog(self, partitions: set[int]) -> None:
        consumer = AIOKafkaConsumer(**self.kafka.client_options(), isolation_level="read_committed",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topics.state, p) for p in partitions]
            consumer.assign(tps)
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, self._open_store(tp.partition, begin[tp], end[tp]))
            remaining = {tp for tp in tps if await consumer.position(tp) < end[tp]}
            while remaining:
                # A short wait: the tail after a checkpoint often holds nothing but the last
                # transaction's commit marker, which moves the position without returning a record.
                batch = await consumer.getmany(*remaining, timeout_ms=100, max_records=5000)
                for tp, records in batch.items():
                    self.last_restore_records += len(records)
                    for record in records:
                        self._load_snapshot(record)
                await self._write_restored(consumer, list(batch))
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
            await self._write_restored(consumer, tps)
        finally:
            await consumer.stop()

    def _open_store(self, partition: int, begin: int, end: int) -> int:
        """Open a partition's store; the state-topic offset to read it up to date from."""
        identity = StoreIdentity(self.topics.state, partition, self._cluster_id)
        store, reason = self.executions.open(identity)
        checkpoint = store.checkpoint
        if reason is None and checkpoint is not None and not begin <= checkpoint <= end:
            reason = f"its checkpoint {checkpoint} is outside the topic's offsets {begin}..{end}"
        if reason is None and checkpoint is None and store.count():
            reason = "it has executions but no checkpoint"
        if reason is not None:
            log.warning("state store %s not used (%s): rebuilding it from %s partition %d", store.path, reason,
                        self.topics.state, partition)
            store = self.executions.rebuild(partition)
        if store.checkpoint is None:
            log.info("state store %s is new: building it from %s partition %d", store.path, self.topics.state,
                     partition)
            return begin
        positions = store.positions
        if positions is not None:
            self._positions[partition] = positions
            self._durable_positions[partition] = dict(positions)
        log.info("state store of %s partition %d: reading the changelog from its checkpoint %d (end %d)",
                 self.topics.state, partition, store.checkpoint, end)
        return store.checkpoint

    async def _write_restored(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        """Write what was read to the stores, with the position read up to as their checkpoint."""
        pending, self.executions.pending = self.executions.pending, {}
        checkpoints = {tp.partition: await consumer.position(tp) for tp in tps}
        positions = {p: self._positions[p] for p in checkpoints if p in self._positions}
        self.executions.write(pending, checkpoints, positions)

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
            self.executions.remove(key, record.partition)
            return
        unresolved: Exception | None = None
        try:
            text = inflate(record.value)
            snapshot = ExecutionSnapshot.model_validate_json(text)
            document = snapshot.state
            if may_hold_references(text):
                # Resolved to be validated, and packed as references again (`_pack_state`).
                try:
                    document = self._hydrate(document, snapshot.execution_id)
                except (PayloadError, PayloadStoreError) as exc:
                    unresolved = exc
            state = ExecutionState.model_validate(document) if unresolved is None else None
            machine = self._machine(snapshot.definition)
        except (ValueError, DefinitionError) as exc:
            log.error("unreadable snapshot for %s at %s:%d: %s", key, record.topic, record.offset, exc)
            return
        pin = Pin(snapshot.version, snapshot.alias, snapshot.definition_hash or definition_hash(snapshot.definition))
        execution = self._shared(Execution(snapshot.state_machine, snapshot.definition, machine, b"", "",
                                           record.partition, pin))
        if state is None:
            # Kept as it is rather than forgotten: each input for it is dead-lettered with the
            # reason (`payload_unavailable`) until the store has the object again.
            log.error("the snapshot of %s references a payload that cannot be read (%s): restored unresolved",
                      key, unresolved)
            self.executions[key] = dataclasses.replace(
                execution, packed=zlib.compress(to_json(document), 1), status=str(document.get("status", "RUNNING")),
                closed_at=snapshot.closed_at)
            return
        closed_at = snapshot.closed_at
        if closed_at is None and state.status.value != "RUNNING" and record.timestamp:
            # Written before snapshots carried it: the record closing it is its last one.
            closed_at = record.timestamp / 1000.0
        self.executions[state.execution_id] = self._committed(execution, state, closed_at)

    def _hydrate(self, value: Any, execution_id: str) -> Any:
        """`value` with its payload references resolved. Without a payload store a reference
        cannot be resolved: PayloadError says so (the orchestrator needs BATON_PAYLOAD_STORE)."""
        if self.payloads is not None:
            return self.payloads.hydrate(value, execution_id)
        return hydrate(value, scope=scope_of(execution_id), get=_no_store, limit=0)

    def _rebuild_timers(self) -> None:
        """The timer heap again, from the executions' timers (after a restore)."""
        self.timers = list(self.executions.timers())
        heapq.heapify(self.timers)

    @property
    def expiries(self) -> list[tuple[float, str]]:
        """(closed_at + retention, execution id) of every closed execution, soonest first."""
        return [(closed_at + self.settings.retention, execution_id)
                for closed_at, execution_id in self.executions.closes(float("inf"), 2**62)]

    def _committed(self, execution: Execution, state: ExecutionState, closed_at: float | None) -> Execution:
        """The execution as it is once `state` is committed (`closed_at`: when it closed, if it has)."""
        timers = tuple((timer.fire_at, timer_id) for timer_id, timer in state.timers.items())
        if state.status.value == "RUNNING":
            closed_at = None
        elif closed_at is None:
            closed_at = time.time()  # closed by no event the runtime saw: retention runs from now
        return dataclasses.replace(execution, packed=self._pack_state(state), status=state.status.value,
                                   timers=timers, closed_at=closed_at)

    def _pack_state(self, state: ExecutionState) -> bytes:
        """`engine._pack`, its values over the threshold held as references (the claim check):
        an execution holding a 20 MiB document costs ~200 bytes in memory and on disk, not the
        ~10 MB the document packs to (docs/payloads.md); `_load` resolves them for a decision."""
        if self.payloads is None:
            return _pack(state)
        data = state.__pydantic_serializer__.to_json(state, exclude_defaults=True)
        if len(data) > self.payloads.threshold:
            try:
                data = to_json(self.payloads.offload(from_json(data), state.execution_id, keep_root=True))
            except (PayloadError, PayloadStoreError) as exc:
                log.error("the state of %s is kept whole in memory: %s", state.execution_id, exc)
        return zlib.compress(data, 1)

    def _load(self, execution: Execution) -> ExecutionState:
        """The execution's committed state, its payload references resolved (PayloadError,
        PayloadStoreError: an object is missing, corrupt or the store does not answer)."""
        data = zlib.decompress(execution.packed)
        if not may_hold_references(data):
            return ExecutionState.model_validate_json(data)
        document = from_json(data)
        return ExecutionState.model_validate(self._hydrate(document, document["execution_id"]))

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
        """The expiries due by `now` whose execution is still closed and due, read in close order
        from the stores (and the decisions not yet written to them)."""
        due: list[tuple[float, str]] = []
        for closed_at, execution_id in self.executions.closes(now - self.settings.retention, self.settings.max_batch):
            if self._expires_by(self.executions.get(execution_id), now):
                due.append((closed_at + self.settings.retention, execution_id))
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
            state = _identity(execution)
            event, tombstone = expiry_records(self.topics, state, execution.machine_name, execution.partition,
                                              execution.closed_at)
            batch.out.append(event)
            batch.snapshots[execution_id] = tombstone  # replaces a snapshot of it decided earlier in the batch
            batch.executions[execution_id] = (execution.partition, None)
            self.executions.remove(execution_id, execution.partition)
            gone.add(execution_id)
            self.metrics.expired.inc()
        if gone:
            # Its cancelled timers' entries, which would otherwise fire into a new execution with
            # the same name (timer ids restart with each execution).
            self.timers = [timer for timer in self.timers if timer[1] not in gone]
            heapq.heapify(self.timers)
            log.info("expired %d closed executions (retention %gs)", len(gone), self.settings.retention)


def _no_store(key: str) -> bytes | None:
    raise PayloadError(PAYLOAD_MISSING, f"a record references payload {key}, but this orchestrator has no payload "
                       "store: set BATON_PAYLOAD_STORE as the step services have it")


def _identity(execution: Execution) -> ExecutionState:
    """What an expiry needs of a state (its id, name and start), read without resolving its
    payload references: an execution whose objects are gone still expires."""
    document = from_json(zlib.decompress(execution.packed))
    return ExecutionState.model_construct(execution_id=document["execution_id"], name=document.get("name", ""),
                                          start_time=document.get("start_time", ""))
