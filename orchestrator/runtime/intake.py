"""Input records to events: starts, stops and redrives, step results (with their proof of
origin), review decisions; a record off its execution's partition is moved there, one that
cannot apply is refused with the reason."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.partitioner import murmur2
from pydantic import ValidationError
from pydantic_core import to_json

from kafka_io.payloads import PayloadStoreError
from orchestrator.asl.decider import new_execution
from orchestrator.asl.errors import DATA_LIMIT_EXCEEDED, DefinitionError
from orchestrator.asl.execution import (
    Event,
    FailExecution,
    RedriveExecution,
    StartExecution,
    StopExecution,
    TaskFailed,
    TaskHeartbeat,
    TaskSucceeded,
)
from orchestrator.registry.errors import RegistryError
from orchestrator.registry.model import definition_hash
from orchestrator.runtime.engine import (
    Rejected,
    Working,
    _pack,
    _seed,
    _short,
)
from orchestrator.runtime.store import Execution
from orchestrator.runtime.transaction import Transactions
from orchestrator.runtime.translate import Outgoing, Pin, status_event
from schemas.base import decode, encode, inflate
from schemas.executions import RedriveExecution as RedriveRequest
from schemas.executions import StartExecution as StartRequest
from schemas.executions import parse_request
from schemas.payloads import PAYLOAD_UNAVAILABLE, PayloadError, may_hold_references
from schemas.resources import service_for
from schemas.review import ReviewDecision
from schemas.steps import StepResult
from schemas.tokens import InvalidToken

log = logging.getLogger("baton.orchestrator")


class Intake(Transactions):
    """The orchestrator's intake layer (see `EngineBase`)."""

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
                event = self._task_succeeded(result, record)
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

    def _task_succeeded(self, result: StepResult, record: ConsumerRecord) -> TaskSucceeded | TaskFailed:
        """The task's success, its output's payload references resolved (the claim check); one
        that cannot be resolved fails the task with the error's ASL name, which Catch can route."""
        output, failure = self._resolved(result.output, result.execution_id, record)
        if failure is not None:
            return TaskFailed(task_id=result.task_id, error=failure[0], cause=failure[1], metadata=result.metadata)
        return TaskSucceeded(task_id=result.task_id, output=output, metadata=result.metadata)

    def _start_event(self, request: StartRequest, record: ConsumerRecord) -> Event:
        """The start, its input's payload references resolved (a client with a payload store sent
        a large input that way); one that cannot be resolved fails the execution saying why."""
        execution_input, failure = self._resolved(request.input, request.execution_id, record)
        if failure is not None:
            return FailExecution(error=failure[0], cause=f"the execution input: {failure[1]}")
        return StartExecution(input=execution_input, budget=request.budget)

    def _resolved(self, value: Any, execution_id: str, record: ConsumerRecord) -> tuple[Any, tuple[str, str] | None]:
        """`value` (read from `record`) with its payload references resolved, or why it cannot be:
        (ASL error name, cause). Only a record that holds a reference is looked at further."""
        if not may_hold_references(inflate(record.value or b"")):
            return value, None
        try:
            return self._hydrate(value, execution_id), None
        except PayloadError as exc:
            return value, (exc.error, str(exc))
        except PayloadStoreError as exc:
            return value, (PAYLOAD_UNAVAILABLE, str(exc))

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
            try:
                state = self._load(execution)
            except (PayloadError, PayloadStoreError) as exc:
                # Its committed state names a payload that cannot be read: the input is
                # dead-lettered with the reason, the execution waits for the store to answer.
                raise Rejected("payload_unavailable", str(exc)) from None
            working = staged[execution_id] = Working(execution, state, closed_at=execution.closed_at)
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
            first: Event = instead if instead is not None else self._start_event(request, record)
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
