"""The claim check on the orchestrator's records (runtime/translate.py): a decision with small
payloads writes records of the same shape and size as without a store; one with a large value writes references
that resolve back to it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kafka_io.payloads import PayloadSettings, open_payload_store
from orchestrator.asl.decider import Environment, decide, new_execution
from orchestrator.asl.execution import Effect, ExecutionState, StartExecution
from orchestrator.asl.model import parse_definition
from orchestrator.runtime.translate import Offload, effects_to_records
from schemas.base import decode
from schemas.executions import HistoryRecord
from schemas.payloads import is_reference
from schemas.steps import StepCommand
from schemas.topics import Topics

DEFINITION = {"StartAt": "Ask", "States": {"Ask": {
    "Type": "Task", "Resource": "baton:fn:noop", "Parameters": {"doc.$": "$.doc", "n": 1}, "End": True}}}
TOPICS = Topics("t")


def _started(document: str) -> tuple[ExecutionState, list[Effect]]:
    state = new_execution(execution_id="arn:baton:states:local:execution:M:p1", name="p1",
                          state_machine_id="arn:baton:states:local:stateMachine:M", state_machine_name="M")
    env = Environment(now=datetime(2026, 1, 2, tzinfo=timezone.utc), seed=7, task_token=lambda t: "tok",
                      max_payload_bytes=64 * 1024 * 1024)
    decision = decide(parse_definition(DEFINITION), state, StartExecution(input={"doc": document}), env)
    return decision.state, decision.effects


def test_small_records_are_as_without_a_store(tmp_path: Path) -> None:
    store = open_payload_store(PayloadSettings(payload_store=str(tmp_path)))
    assert store is not None
    state, effects = _started("small")
    plain = effects_to_records(TOPICS, state, effects, machine_name="M", partition=0)
    offload = Offload(lambda v: store.offload(v, state.execution_id), store.threshold)
    claimed = effects_to_records(TOPICS, state, effects, machine_name="M", partition=0, offload=offload)
    assert [(r.topic, len(r.value or b"")) for r in claimed] == [(r.topic, len(r.value or b"")) for r in plain]
    assert decode(StepCommand, claimed[-1].value).parameters == {"doc": "small", "n": 1}
    assert list(tmp_path.iterdir()) == []


def test_a_large_value_travels_as_a_reference_in_command_and_history(tmp_path: Path) -> None:
    store = open_payload_store(PayloadSettings(payload_store=str(tmp_path)))
    assert store is not None
    document = "lorem ipsum " * 200_000  # 2.4 MB: over Kafka's default 1 MiB record
    state, effects = _started(document)
    offload = Offload(lambda v: store.offload(v, state.execution_id), store.threshold)
    records = effects_to_records(TOPICS, state, effects, machine_name="M", partition=0, offload=offload,
                                 max_history_bytes=1_000_000)
    assert all(r.value is not None and len(r.value) < 64 * 1024 for r in records)
    command = decode(StepCommand, records[-1].value)
    assert command.parameters["n"] == 1 and is_reference(command.parameters["doc"])
    assert store.hydrate(command.parameters, state.execution_id) == {"doc": document, "n": 1}
    events: list[dict[str, Any]] = decode(HistoryRecord, records[0].value).events
    started = events[0]["executionStartedEventDetails"]["input"]
    assert is_reference(started["doc"])  # the history shows the reference; the API fetches it on demand
    assert store.hydrate(started, state.execution_id) == {"doc": document}
    assert len(list((tmp_path).rglob("*"))) <= 4  # one scope folder; equal values stored once
