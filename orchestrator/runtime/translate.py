"""From the decider's effects to Kafka records (pure: no I/O), and from Kafka records to events."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from orchestrator.asl.execution import (
    CancelTask,
    Effect,
    ExecutionFinished,
    ExecutionState,
    HistoryEvent,
    RunTask,
)
from schemas.base import encode
from schemas.dlq import DeadLetter
from schemas.executions import ExecutionSnapshot, ExecutionStatus, HistoryRecord
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


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes | None
    partition: int | None = None


def _time(text: str) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def effects_to_records(
    topics: Topics, state: ExecutionState, effects: list[Effect], *, machine_name: str, pin: Pin = UNPINNED
) -> list[Outgoing]:
    """Step commands, history records and the terminal status for one decision."""
    key = state.execution_id.encode()
    out: list[Outgoing] = []
    for effect in effects:
        if isinstance(effect, RunTask):
            service = service_for(effect.resource)
            command = StepCommand(
                execution_id=state.execution_id, task_id=effect.task_id, service=service,
                resource=effect.resource, state_name=effect.state_name, attempt=effect.attempt,
                parameters=effect.parameters, task_token=effect.task_token,
                timeout_seconds=effect.timeout_seconds, heartbeat_seconds=effect.heartbeat_seconds,
            )
            out.append(Outgoing(topics.commands(service), key, encode(command)))
        elif isinstance(effect, CancelTask):
            service = service_for(effect.resource)
            cancel = StepCommand(execution_id=state.execution_id, kind="cancel", task_id=effect.task_id,
                                 service=service, resource=effect.resource)
            out.append(Outgoing(topics.commands(service), key, encode(cancel)))
        elif isinstance(effect, HistoryEvent):
            event = effect.as_aws()
            if effect.type == "ExecutionStarted" and (arns := pin.arns(machine_name)):
                event["executionStartedEventDetails"] = {**event.get("executionStartedEventDetails", {}), **arns}
            record = HistoryRecord(execution_id=state.execution_id, state_machine=machine_name, event=event,
                                   version=pin.version, alias=pin.alias, definition_hash=pin.definition_hash)
            out.append(Outgoing(topics.history, key, encode(record)))
        elif isinstance(effect, ExecutionFinished):
            out.append(Outgoing(topics.events, key, encode(status_event(state, machine_name, pin))))
    return out


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
    pin: Pin = UNPINNED,
) -> Outgoing:
    snapshot = ExecutionSnapshot(
        execution_id=state.execution_id, state_machine=machine_name, definition=definition,
        state=state.model_dump(mode="json"), version=pin.version, alias=pin.alias,
        definition_hash=pin.definition_hash,
    )
    return Outgoing(topics.state, state.execution_id.encode(), encode(snapshot), partition)


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
