"""The orchestrator's shared ground: its constants, the in-memory forms of executions and
batches, the refusals, and the base its parts are built on (see `EngineBase`)."""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import hashlib
import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import (
    CorruptRecordException,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from pydantic_core import to_json

from kafka_io import KafkaSettings
from orchestrator.asl.budget import Ledger
from orchestrator.asl.decider import Environment
from orchestrator.asl.execution import Event, ExecutionState
from orchestrator.asl.model import StateMachine, parse_definition
from orchestrator.asl.timestamps import parse_timestamp
from orchestrator.registry.model import definition_hash
from orchestrator.registry.store import RegistryFollower
from orchestrator.runtime.executions import Executions
from orchestrator.runtime.metrics import OrchestratorMetrics
from orchestrator.runtime.store import Execution
from orchestrator.runtime.translate import Outgoing, Pin
from orchestrator.settings import OrchestratorSettings, Quotas
from schemas.errors import BatonError
from schemas.resources import service_for
from schemas.steps import StepResult
from schemas.tokens import TokenSigner
from schemas.topics import Topics

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


class Oversized(BatonError):
    """A decision produced a record that no topic setting lets Kafka accept."""


class Rejected(BatonError):
    """An input event that cannot be applied: it goes to the dead-letter topic with this reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class _Batch:
    """The open batch: what the next transaction writes."""

    started: float
    events: int = 0
    out: list[Outgoing] = dataclasses.field(default_factory=list)  # commands, history, status, DLQ, in order
    snapshots: dict[str, Outgoing] = dataclasses.field(default_factory=dict)  # the last one per execution
    positions: dict[int, Outgoing] = dataclasses.field(default_factory=dict)  # per input partition number
    positions_committed: dict[int, dict[str, int]] = dataclasses.field(default_factory=dict)
    # The executions it decided (None: removed), written to the partition stores once it commits.
    executions: dict[str, tuple[int, Execution | None]] = dataclasses.field(default_factory=dict)
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


class EngineBase:
    """What the parts of the orchestrator share: its settings, clients and owned executions
    (assigned in `Orchestrator.__init__`), the parsed-definition caches and the usage counters.
    The orchestrator is assembled in layers, each a class on the one before: `Restore`
    (partitions, snapshots, timers, expiries), `Transactions` (records, commits, isolating a
    refused record), `Intake` (input records to events), `Deciding` (the decider calls into the open
    batch) and `Orchestrator` (the serve loop). The three methods a lower layer calls on a higher one are declared here."""

    kafka: KafkaSettings
    settings: OrchestratorSettings
    quotas: Quotas
    topics: Topics
    metrics: OrchestratorMetrics
    registry: RegistryFollower
    signer: TokenSigner
    executions: Executions
    running: int
    owned: set[int]
    timers: list[tuple[float, str, str]]
    _cluster_id: str
    _machines: dict[str, StateMachine]
    _definitions: dict[str, tuple[dict[str, Any], bytes]]
    _partition_counts: dict[str, int]
    _input_partitions: int
    _pins: dict[Pin, Pin]
    _positions: dict[int, dict[str, int]]
    _durable_positions: dict[int, dict[str, int]]
    _group_committed_at: float
    _committing: asyncio.Task[None] | None
    _committing_batch: _Batch | None
    _record_limits: dict[str, int]
    _poison: dict[tuple[str, int, int] | str, tuple[str, bool]]
    _open: _Batch | None
    _events_since_trim: int
    _lock: asyncio.Lock
    group_id: str
    _consumer: AIOKafkaConsumer | None
    _producer: AIOKafkaProducer | None
    ready: asyncio.Event
    last_restore_seconds: float
    last_restore_records: int  # state-topic records the last restore read

    def _machine(self, definition: dict[str, Any], digest: str | None = None) -> StateMachine:
        digest = digest or definition_hash(definition)
        machine = self._machines.get(digest)
        if machine is None:
            machine = self._machines[digest] = parse_definition(definition)
        return machine

    def _lookup_definition(self, digest: str, load: Callable[[], bytes]) -> tuple[dict[str, Any], StateMachine]:
        """A stored execution's definition and machine, from the caches or else from `load`."""
        known = self._definitions.get(digest)
        if known is None:
            body = load()
            known = self._definitions[digest] = (json.loads(body), body)
        return known[0], self._machine(known[0], digest)

    def _definition(self, execution: Execution) -> tuple[dict[str, Any], bytes]:
        digest = execution.pin.definition_hash or definition_hash(execution.definition)
        known = self._definitions.get(digest)
        if known is None:
            known = self._definitions[digest] = (execution.definition, to_json(execution.definition))
        return known

    def _count_finished(self, execution: Execution, state: ExecutionState, at: float) -> None:
        labels = (state.status.value, execution.machine_name, execution.version_label)
        self.metrics.finished.labels(*labels).inc()
        if state.budget is not None:
            self.metrics.execution_spend_tokens.labels(*labels[1:]).observe(state.budget.spent.tokens)
            self.metrics.execution_spend_usd.labels(*labels[1:]).observe(state.budget.spent.cost_usd)
        try:
            started = parse_timestamp(state.start_time).timestamp()
        except ValueError:
            return
        self.metrics.execution_seconds.labels(*labels).observe(max(0.0, at - started))

    def _count_budget(self, execution: Execution, ledger: Ledger, before: tuple[int, int]) -> None:
        """The LLM calls one decision refused or made wait for its execution's budget."""
        labels = (execution.machine_name, execution.version_label)
        if ledger.refused > before[0]:
            self.metrics.budget_refused.labels(*labels).inc(ledger.refused - before[0])
        if ledger.waited > before[1]:
            self.metrics.budget_waits.labels(*labels).inc(ledger.waited - before[1])

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

    async def _flush(self) -> None:
        raise NotImplementedError  # Orchestrator's or Transactions'

    def _apply(self, execution_id: str, working: Working, event: Event, at: float, seed: int,
               out: list[Outgoing], new_timers: list[tuple[float, str, str]]) -> None:
        raise NotImplementedError  # Orchestrator's or Transactions'

    async def _prepare(self, records: list[ConsumerRecord], due: list[tuple[float, str, str]],
                       expired: list[tuple[float, str]] | None = None) -> None:
        raise NotImplementedError  # Orchestrator's or Transactions'


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

