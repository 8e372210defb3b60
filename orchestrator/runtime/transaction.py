"""The one Kafka transaction per batch: records fitted to their topics' limits, the commit, the
consumed positions, and isolating a record Kafka refuses."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic_core import to_json

from kafka_io.payloads import PayloadStoreError
from orchestrator.asl.errors import DATA_LIMIT_EXCEEDED
from orchestrator.asl.execution import FailExecution
from orchestrator.runtime.engine import (
    GROUP_COMMIT_SECONDS,
    OFFSETS_KEY,
    RECORD_ERRORS,
    RECORD_OVERHEAD_BYTES,
    Oversized,
    Working,
    _Batch,
    _seed,
    _state_json,
)
from orchestrator.runtime.restore import Restore
from orchestrator.runtime.topics import KAFKA_DEFAULT_MAX_MESSAGE_BYTES, record_limits
from orchestrator.runtime.translate import Offload, Outgoing, snapshot_record
from schemas.base import compress, encode
from schemas.executions import InputPositions
from schemas.payloads import PayloadError
from schemas.topics import STEP_SERVICES

log = logging.getLogger("baton.orchestrator")


class Transactions(Restore):
    """The orchestrator's transaction layer (see `EngineBase`)."""

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
                                     execution.partition, execution.pin, definition_json,
                                     self._offloaded_state(execution_id, _state_json(working.state)), closed_at)
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

    def _offload(self, execution_id: str) -> Offload | None:
        """The claim check for one execution's records (None: no payload store). A value over
        the offloaded limit, or a store that does not take it, ends as a record too big does
        (`Oversized`: the execution fails with States.DataLimitExceeded, the cause saying why;
        once the store answers again, a redrive resumes it)."""
        store = self.payloads
        if store is None:
            return None

        def offload(value: Any) -> Any:
            try:
                return store.offload(value, execution_id)
            except (PayloadError, PayloadStoreError) as exc:
                raise Oversized(f"a value could not be offloaded to the payload store {store.where()}: {exc}") from None
        return Offload(offload, store.threshold)

    def _offloaded_state(self, execution_id: str, state_json: bytes) -> bytes:
        """The state's JSON for its snapshot, its values over the threshold stored and referenced
        (the claim check; restore resolves them). If the store cannot take them the state stays
        inline, and the size checks above fail the execution as they would without a store."""
        if self.payloads is None or len(state_json) <= self.payloads.threshold:
            return state_json
        try:
            return to_json(self.payloads.offload(json.loads(state_json), execution_id, keep_root=True))
        except (PayloadError, PayloadStoreError) as exc:
            log.error("the state of %s is not offloaded (%s): written inline", execution_id, exc)
            return state_json

    def _remove_payloads(self, out: list[Outgoing]) -> None:
        """After a commit: the objects of the executions whose retention ended (their tombstones
        just committed). Best effort: a store that fails leaves them for an operator (logged)."""
        if self.payloads is None:
            return
        for record in out:
            if record.topic == self.topics.state and record.value is None:
                execution_id = record.key.decode(errors="replace")
                try:
                    removed = self.payloads.remove(execution_id)
                except PayloadStoreError as exc:
                    log.error("payloads of expired %s not removed: %s", execution_id, exc)
                    continue
                if removed:
                    log.info("removed %d payloads of expired %s", removed, execution_id)

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
        self._remove_payloads(out)
        # Only now, never before: the stores must not hold what the topic might not (a crash
        # between the two only means a longer tail to read at the next start).
        checkpoints: dict[int, int] = {}
        for record, future in zip(out, futures):
            if record.topic == self.topics.state:
                written = future.result()
                checkpoints[written.partition] = max(checkpoints.get(written.partition, 0), written.offset + 1)
        self.executions.write(batch.executions, checkpoints, batch.positions_committed)
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
        self.executions.clear_pending()
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
        self.running = self.executions.running()
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
