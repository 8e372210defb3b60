"""From the decider's effects to Kafka records (pure: no I/O), and from Kafka records to events."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic_core import to_json

from orchestrator.asl.execution import (
    CancelTask,
    Effect,
    ExecutionFinished,
    ExecutionState,
    HistoryEvent,
    RunTask,
)
from schemas.base import SCHEMA_VERSION, encode
from schemas.dlq import DeadLetter
from schemas.executions import ExecutionExpired, ExecutionStatus
from schemas.flow import flow_key
from schemas.resources import service_for
from schemas.steps import StepCommand
from schemas.topics import Topics


@dataclass(frozen=True)
class Pin:
    """What an execution is pinned to: the registry version (None: a draft or inline definition),
    the alias it was started through, and the definition's hash. Carried on history, status and
    snapshot records, so describe and history show it and a restore runs the same definition."""

    version: int | None = None
    alias: str | None = None
    definition_hash: str | None = None

    def arns(self, machine_name: str) -> dict[str, str]:
        """Step Functions' `stateMachineVersionArn`/`stateMachineAliasArn` for ExecutionStarted."""
        base = f"arn:baton:states:local:stateMachine:{machine_name}"
        arns = {}
        if self.version is not None:
            arns["stateMachineVersionArn"] = f"{base}:{self.version}"
        if self.alias is not None:
            arns["stateMachineAliasArn"] = f"{base}:{self.alias}"
        return arns


UNPINNED = Pin()

# (execution id, task id, service) -> the proof of receipt a step result must return.
ResultKey = Callable[[str, str, str], str]


@dataclass(frozen=True)
class Offload:
    """The claim check for one execution's records (docs/payloads.md): `store(value)` returns the
    value with its parts over `above` bytes stored and replaced by references. Only a record over
    `above` is walked, so a decision with small payloads writes exactly the bytes it wrote before.
    The I/O happens in `store`, which the runtime gives (`kafka_io.payloads.PayloadStore`)."""

    store: Callable[[Any], Any]
    above: int


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes | None
    # The execution's partition number (taken modulo the topic's partition count when sent);
    # None: the producer's partitioner decides from the key (dead letters).
    partition: int | None = None


def _time(text: str) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def effects_to_records(
    topics: Topics, state: ExecutionState, effects: list[Effect], *, machine_name: str, pin: Pin = UNPINNED,
    partition: int | None = None, result_key: ResultKey | None = None, max_history_bytes: int | None = None,
    flow_controlled: frozenset[str] = frozenset(), offload: Offload | None = None,
) -> list[Outgoing]:
    """Step commands, the decision's history (one record) and the terminal status for one decision.

    `partition` is the execution's partition (of the input topics): every record of it is written
    to the same partition number, so its records stay in order per topic without hashing keys.
    `result_key(execution_id, task_id, service)` gives each command the proof its result must
    return (None: commands carry none, for tests of the record shapes). A history longer than
    `max_history_bytes` is split over as many records as it needs. The run commands of a service
    in `flow_controlled` are keyed by `schemas.flow.flow_key` (the model) instead, and partitioned
    by that key, so one replica of the service owns each model's limits. `offload`: a command,
    history or status record over its threshold carries references to its large values instead.
    """
    key = state.execution_id.encode()
    out: list[Outgoing] = []
    history: list[dict[str, Any]] = []
    for effect in effects:
        if isinstance(effect, RunTask):
            service = service_for(effect.resource)
            command = StepCommand(
                execution_id=state.execution_id, task_id=effect.task_id, service=service,
                resource=effect.resource, state_name=effect.state_name, attempt=effect.attempt,
                parameters=effect.parameters, task_token=effect.task_token,
                timeout_seconds=effect.timeout_seconds, heartbeat_seconds=effect.heartbeat_seconds,
                result_key=result_key(state.execution_id, effect.task_id, service) if result_key else None,
            )
            value = encode(command)
            if offload is not None and len(value) > offload.above:
                value = encode(command.model_copy(update={"parameters": offload.store(command.parameters)}))
            if service in flow_controlled:
                out.append(Outgoing(topics.commands(service), flow_key(effect.parameters).encode(), value))
            else:
                out.append(Outgoing(topics.commands(service), key, value, partition))
        elif isinstance(effect, CancelTask):
            service = service_for(effect.resource)
            cancel = StepCommand(execution_id=state.execution_id, kind="cancel", task_id=effect.task_id,
                                 service=service, resource=effect.resource)
            out.append(Outgoing(topics.commands(service), key, encode(cancel), partition))
        elif isinstance(effect, HistoryEvent):
            event = effect.as_aws()
            if effect.type == "ExecutionStarted" and (arns := pin.arns(machine_name)):
                event["executionStartedEventDetails"] = {**event.get("executionStartedEventDetails", {}), **arns}
            history.append(event)
        elif isinstance(effect, ExecutionFinished):
            status = status_event(state, machine_name, pin)
            value = encode(status)
            if offload is not None and len(value) > offload.above:
                value = encode(status.model_copy(update={"input": offload.store(status.input),
                                                          "output": offload.store(status.output)}))
            out.append(Outgoing(topics.events, key, value, partition))
    if history:
        # Placed first so a reader of the history never sees a command or status before the
        # events that led to it.
        head = {"state_machine": machine_name, "version": pin.version, "alias": pin.alias,
                "definition_hash": pin.definition_hash}
        record = to_json({**_envelope(state.execution_id), **head, "events": history})
        if offload is not None and len(record) > offload.above:
            history = [_offload_details(event, offload) for event in history]
            record = to_json({**_envelope(state.execution_id), **head, "events": history})
        if max_history_bytes is None or len(record) <= max_history_bytes:
            out.insert(0, Outgoing(topics.history, key, record, partition))
        else:
            out[0:0] = [Outgoing(topics.history, key, chunk, partition)
                        for chunk in history_chunks(state.execution_id, head, history, max_history_bytes)]
    return out


def history_chunks(execution_id: str, head: dict[str, Any], events: list[dict[str, Any]],
                   limit: int) -> list[bytes]:
    """A decision's events as consecutive history records of at most `limit` bytes each, in order
    (a reader concatenates them; event ids run on across them). An event too big for a record of
    its own (only when the payload quota is set above the topic's record size) keeps its id, type
    and time, its details marked truncated."""
    def record(chunk: list[dict[str, Any]]) -> bytes:
        return to_json({**_envelope(execution_id), **head, "events": chunk})

    room = limit - len(record([])) - 64  # the envelope's id and time vary a little in length
    chunks: list[bytes] = []
    chunk: list[dict[str, Any]] = []
    used = 0
    for event in events:
        size = len(to_json(event)) + 1
        if size > room:
            event = _truncated(event)
            size = len(to_json(event)) + 1
        if chunk and used + size > room:
            chunks.append(record(chunk))
            chunk, used = [], 0
        chunk.append(event)
        used += size
    if chunk:
        chunks.append(record(chunk))
    return chunks


def _offload_details(event: dict[str, Any], offload: Offload) -> dict[str, Any]:
    """The event with each large field of its details (an input, output, parameters: JSON text)
    a reference: the history shows the reference, and the API fetches the value on demand."""
    changed = dict(event)
    for name, details in event.items():
        if name.endswith("EventDetails") and isinstance(details, dict):
            changed[name] = {field: offload.store(value) if isinstance(value, str | dict | list) else value
                             for field, value in details.items()}
    return changed


def _truncated(event: dict[str, Any]) -> dict[str, Any]:
    """The event without its payloads, marked as AWS marks a truncated input or output."""
    kept = {k: v for k, v in event.items() if not k.endswith("EventDetails")}
    details = {k: v for k, v in event.items() if k.endswith("EventDetails")}
    for name in details:
        kept[name] = {"truncated": True}
    return kept


def _envelope(execution_id: str) -> dict[str, Any]:
    """The `Envelope` fields of a record the orchestrator builds as a plain dict: the hot-path
    records (a decision's history, snapshots) skip pydantic models, whose defaults alone cost
    more than serialising. Tests decode them with the models, which keeps the shapes equal."""
    return {"schema_version": SCHEMA_VERSION, "id": os.urandom(16).hex(), "execution_id": execution_id,
            "timestamp": datetime.now(timezone.utc)}


def status_event(state: ExecutionState, machine_name: str, pin: Pin = UNPINNED) -> ExecutionStatus:
    finished = state.status.value != "RUNNING"
    return ExecutionStatus(
        execution_id=state.execution_id, state_machine=machine_name, name=state.name,
        status=state.status.value, input=state.input, output=state.output, error=state.error,
        cause=state.cause, start_time=_time(state.start_time),
        stop_time=datetime.now(timezone.utc) if finished else None, redrive_count=state.redrive_count,
        version=pin.version, alias=pin.alias, definition_hash=pin.definition_hash,
    )


def snapshot_record(
    topics: Topics, state: ExecutionState, definition: dict[str, Any], machine_name: str, partition: int,
    pin: Pin = UNPINNED, definition_json: bytes | None = None, state_json: bytes | None = None,
    closed_at: float | None = None,
) -> Outgoing:
    """The execution's record on the compacted state topic (an `ExecutionSnapshot`).

    Written for every execution a batch touched, so it is built as bytes: the state serialised by
    pydantic's Rust serialiser straight to JSON, and the definition's JSON (`definition_json`,
    cached by the caller per definition) spliced in rather than re-encoded each time. `closed_at`:
    when a closed execution closed (epoch seconds), from which its retention runs.
    """
    head = to_json({**_envelope(state.execution_id), "state_machine": machine_name, "definition": {}, "state": {},
                    "offsets_applied": 0, "version": pin.version, "alias": pin.alias,
                    "definition_hash": pin.definition_hash, "closed_at": closed_at})
    # `{..."definition":{},"state":{},...}`: the two placeholders are the only `{}` values there.
    marker = b'"definition":{},"state":{}'
    assert marker in head
    body = (b'"definition":' + (definition_json if definition_json is not None else to_json(definition))
            + b',"state":' + (state_json if state_json is not None else state.__pydantic_serializer__.to_json(state)))
    return Outgoing(topics.state, state.execution_id.encode(), head.replace(marker, body, 1), partition)


def expiry_records(topics: Topics, state: ExecutionState, machine_name: str, partition: int,
                   closed_at: float | None) -> list[Outgoing]:
    """What removes a closed execution whose retention has ended: a tombstone for its key on the
    compacted state topic, and an `ExecutionExpired` on the events topic for the read model (with
    the run's start time, which tells this run from a later one with the same name)."""
    key = state.execution_id.encode()
    expired = ExecutionExpired(
        execution_id=state.execution_id, state_machine=machine_name, name=state.name,
        start_time=_time(state.start_time),
        closed_at=datetime.fromtimestamp(closed_at, timezone.utc) if closed_at is not None else None,
    )
    return [Outgoing(topics.events, key, encode(expired), partition), Outgoing(topics.state, key, None, partition)]


# The most of a refused value a dead letter keeps (base64 grows it by a third): any record the
# broker accepted, up to its default 1 MiB, gets a dead letter that fits a default topic too.
DEAD_LETTER_VALUE_BYTES = 256 * 1024


def dead_letter(
    topics: Topics, reason: str, *, topic: str, partition: int, offset: int, key: bytes | None,
    value: bytes | None, execution_id: str | None = None,
) -> Outgoing:
    kept = value[:DEAD_LETTER_VALUE_BYTES] if value is not None else None
    letter = DeadLetter(
        execution_id=execution_id or (key or b"").decode(errors="replace")[:2048], reason=reason[:4096],
        source_topic=topic, partition=partition, offset=offset,
        key_b64=base64.b64encode(key[:2048]).decode() if key is not None else None,
        value_b64=base64.b64encode(kept).decode() if kept is not None else None,
        value_size=len(value) if value is not None else None,
        value_truncated=value is not None and len(value) > DEAD_LETTER_VALUE_BYTES,
    )
    return Outgoing(topics.dlq, (key or b"")[:2048], encode(letter))
