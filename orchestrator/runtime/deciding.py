"""Deciding a batch: input records, due timers and expiries through the decider into the open
batch (the next transaction); the layer between `Intake` (records to events) and the serve loop
(`orchestrator.runtime.service`)."""

from __future__ import annotations

import heapq
import logging
import time
from datetime import datetime, timezone

from aiokafka import ConsumerRecord, TopicPartition

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
from orchestrator.runtime.engine import REGISTRY_SYNC_SECONDS, Oversized, Rejected, Working, _Batch, _seed
from orchestrator.runtime.intake import Intake
from orchestrator.runtime.store import Execution, StoreCorrupt
from orchestrator.runtime.translate import Outgoing, dead_letter, effects_to_records

log = logging.getLogger("baton.orchestrator")


class Deciding(Intake):
    """Decides what was read into the open batch; `Orchestrator` commits it."""

    _flow_controlled: frozenset[str]  # services whose commands are keyed by model (flow control)

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
        self._decide_records(records, staged, out, offsets, new_timers)
        self._fire_timers(due, staged, out, new_timers)
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

    def _decide_records(self, records: list[ConsumerRecord], staged: dict[str, Working], out: list[Outgoing],
                        offsets: dict[TopicPartition, int], new_timers: list[tuple[float, str, str]]) -> None:
        """Each input record decided into `staged`; one that cannot apply is dead-lettered with why."""
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

    def _fire_timers(self, due: list[tuple[float, str, str]], staged: dict[str, Working], out: list[Outgoing],
                     new_timers: list[tuple[float, str, str]]) -> None:
        """Each due timer decided into `staged`; a stale one (cancelled, already fired) is skipped."""
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

    def _apply(self, execution_id: str, working: Working, event: Event, at: float, seed: int,
               out: list[Outgoing], new_timers: list[tuple[float, str, str]]) -> None:
        execution = working.execution
        env = Environment(
            now=datetime.fromtimestamp(at, timezone.utc),
            seed=seed,
            task_token=lambda task_id: self.signer.sign(execution_id, task_id),
            # With a payload store, large values travel as references: their quota is the store's.
            max_payload_bytes=self.payloads.limit if self.payloads is not None else self.quotas.max_payload_bytes,
            max_history_events=self.quotas.max_history_events,
            max_transitions_per_decision=self.quotas.max_transitions_per_decision,
        )
        ledger = working.state.budget
        budget_marks = (ledger.refused, ledger.waited) if ledger is not None else (0, 0)
        retry_fired = isinstance(event, TimerFired) and getattr(
            working.state.timers.get(event.timer_id), "purpose", None) == "retry"
        try:
            decision: Decision = decide_in_place(execution.machine, working.state, event, env)
            records = effects_to_records(self.topics, decision.state, decision.effects,
                                         machine_name=execution.machine_name, pin=execution.pin,
                                         partition=execution.partition, result_key=self.signer.result_key,
                                         max_history_bytes=self._record_limit(self.topics.history),
                                         flow_controlled=self._flow_controlled, offload=self._offload(execution_id))
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
        if decision.state.budget is not None:
            self._count_budget(execution, decision.state.budget, budget_marks)
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
        state = self._load(working.execution)
        for event, env in working.applied:
            decide_in_place(working.execution.machine, state, event, env)
        return state
