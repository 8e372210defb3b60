"""The orchestrator's hot-path records are built as bytes, not through the pydantic models: they
must still read back as exactly what the models describe (the topics' contracts)."""

from __future__ import annotations

import zlib
from datetime import datetime, timezone

from pydantic_core import to_json

from orchestrator.asl.decider import Environment, decide, new_execution
from orchestrator.asl.execution import Effect, ExecutionState, StartExecution
from orchestrator.asl.model import parse_definition
from orchestrator.registry.model import definition_hash
from orchestrator.runtime.engine import Execution, _pack
from orchestrator.runtime.translate import Pin, effects_to_records, snapshot_record
from schemas.base import decode
from schemas.executions import ExecutionSnapshot, HistoryRecord, InputPositions
from schemas.steps import StepCommand
from schemas.tokens import TokenSigner
from schemas.topics import Topics

DEFINITION = {"StartAt": "Wait", "States": {"Wait": {
    "Type": "Task", "Resource": "baton:fn:noop.waitForTaskToken", "Parameters": {"naïve": "é"}, "End": True}}}
TOPICS = Topics("t")


def _started() -> tuple[ExecutionState, list[Effect]]:
    state = new_execution(execution_id="arn:baton:states:local:execution:M:e1", name="e1",
                          state_machine_id="arn:baton:states:local:stateMachine:M", state_machine_name="M")
    env = Environment(now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), seed=7, task_token=lambda t: "tok")
    decision = decide(parse_definition(DEFINITION), state, StartExecution(input={"x": [1, 2.5, None]}), env)
    return decision.state, decision.effects


def test_a_decision_writes_one_history_record_then_its_command_on_the_execution_partition() -> None:
    state, effects = _started()
    pin = Pin(version=3, alias="live", definition_hash=definition_hash(DEFINITION))
    records = effects_to_records(TOPICS, state, effects, machine_name="M", pin=pin, partition=2)
    assert [r.topic for r in records] == [TOPICS.history, TOPICS.commands("fn")]
    assert {r.partition for r in records} == {2} and {r.key for r in records} == {state.execution_id.encode()}
    history = decode(HistoryRecord, records[0].value)
    assert [e["type"] for e in history.events] == [
        "ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted"]
    assert [e["id"] for e in history.events] == [1, 2, 3, 4]
    assert (history.execution_id, history.state_machine, history.version, history.alias) == (
        state.execution_id, "M", 3, "live")
    assert history.events[0]["executionStartedEventDetails"]["stateMachineVersionArn"].endswith(":M:3")
    assert len(history.id) == 32 and history.timestamp.tzinfo is not None
    command = decode(StepCommand, records[1].value)
    assert command.parameters == {"naïve": "é"} and command.task_token == "tok"


def test_a_snapshot_with_spliced_json_reads_back_whole() -> None:
    state, _ = _started()
    pin = Pin(definition_hash=definition_hash(DEFINITION))
    spliced = snapshot_record(TOPICS, state, DEFINITION, "M", 1, pin, to_json(DEFINITION),
                              state.__pydantic_serializer__.to_json(state))
    plain = snapshot_record(TOPICS, state, DEFINITION, "M", 1, pin)
    for record in (spliced, plain):
        snapshot = decode(ExecutionSnapshot, record.value)
        assert snapshot.definition == DEFINITION and snapshot.definition_hash == pin.definition_hash
        assert ExecutionState.model_validate(snapshot.state) == state
        assert snapshot.state["status"] == "RUNNING"  # every field, defaults included, for readers
        assert (record.topic, record.partition) == (TOPICS.state, 1)


def test_a_packed_state_is_small_and_loads_back_equal() -> None:
    state, _ = _started()
    packed = _pack(state)
    assert len(packed) < len(state.__pydantic_serializer__.to_json(state)) / 2
    assert ExecutionState.model_validate_json(zlib.decompress(packed)) == state
    execution = Execution("M", DEFINITION, parse_definition(DEFINITION), packed, "RUNNING", 0)
    assert execution.load() == state


def test_input_positions_reject_what_is_not_theirs() -> None:
    positions = decode(InputPositions, b'{"schema_version": 1, "kind": "input_positions", "offsets": {"t.a": 3}}')
    assert positions.offsets == {"t.a": 3}
    for bad in (b'{"offsets": {"t.a": "x"}}', b'{"kind": "snapshot", "offsets": {}}', b"not json"):
        try:
            decode(InputPositions, bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_a_command_carries_the_result_key_of_its_task_and_service() -> None:
    """The proof a result must return: bound to the execution, the task and the service the
    command went to, and no stand-in for a task token (or the other way round)."""
    signer = TokenSigner(b"0123456789abcdef-secret")
    state, effects = _started()
    records = effects_to_records(TOPICS, state, effects, machine_name="M", result_key=signer.result_key)
    command = decode(StepCommand, records[1].value)
    assert command.result_key == signer.result_key(state.execution_id, command.task_id, "fn")
    assert signer.verify_result_key(command.result_key, state.execution_id, command.task_id, "fn")
    for execution_id, task_id, service in ((state.execution_id, command.task_id, "review"),
                                           (state.execution_id, command.task_id + "x", "fn"),
                                           ("arn:other", command.task_id, "fn")):
        assert not signer.verify_result_key(command.result_key, execution_id, task_id, service)
    assert not signer.verify_result_key(None, state.execution_id, command.task_id, "fn")
    assert not TokenSigner(b"another-secret-0123456").verify_result_key(
        command.result_key, state.execution_id, command.task_id, "fn")
    token = signer.sign(state.execution_id, command.task_id)
    assert command.result_key not in token
