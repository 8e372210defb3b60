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
from schemas.executions import ExecutionStatus
from schemas.steps import StepCommand
from schemas.topics import Topics
from steps.sdk.resolve import service_for


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
    partition: int | None = None, result_key: ResultKey | None = None,
) -> list[Outgoing]:
    """Step commands, the decision's history (one record) and the terminal status for one decision.

    `partition` is the execution's partition (of the input topics): every record of it is written
    to the same partition number, so its records stay in order per topic without hashing keys.
    `result_key(execution_id, task_id, service)` gives each command the proof its result must
    return (None: commands carry none, for tests of the record shapes).
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
            out.append(Outgoing(topics.commands(service), key, encode(command), partition))
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
            out.append(Outgoing(topics.events, key, encode(status_event(state, machine_name, pin)), partition))
    if history:
        # Placed first so a reader of the history never sees a command or status before the
        # events that led to it.
        record = {**_envelope(state.execution_id), "state_machine": machine_name, "events": history,
                  "version": pin.version, "alias": pin.alias, "definition_hash": pin.definition_hash}
        out.insert(0, Outgoing(topics.history, key, to_json(record), partition))
    return out


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
) -> Outgoing:
    """The execution's record on the compacted state topic (an `ExecutionSnapshot`).

    Written for every execution a batch touched, so it is built as bytes: the state serialised by
    pydantic's Rust serialiser straight to JSON, and the definition's JSON (`definition_json`,
    cached by the caller per definition) spliced in rather than re-encoded each time.
    """
    head = to_json({**_envelope(state.execution_id), "state_machine": machine_name, "definition": {}, "state": {},
                    "offsets_applied": 0, "version": pin.version, "alias": pin.alias,
                    "definition_hash": pin.definition_hash})
    # `{..."definition":{},"state":{},...}`: the two placeholders are the only `{}` values there.
    marker = b'"definition":{},"state":{}'
    assert marker in head
    body = (b'"definition":' + (definition_json if definition_json is not None else to_json(definition))
            + b',"state":' + (state_json if state_json is not None else state.__pydantic_serializer__.to_json(state)))
    return Outgoing(topics.state, state.execution_id.encode(), head.replace(marker, body, 1), partition)


def dead_letter(
    topics: Topics, reason: str, *, topic: str, partition: int, offset: int, key: bytes | None,
    value: bytes | None,
) -> Outgoing:
    letter = DeadLetter(
        execution_id=(key or b"").decode(errors="replace"), reason=reason, source_topic=topic,
        partition=partition, offset=offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value).decode() if value is not None else None,
    )
    return Outgoing(topics.dlq, key or b"", encode(letter))
