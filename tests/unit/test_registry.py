"""The state machine registry's rules (pure), and what the runtime and read model make of them."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kafka_io import KafkaSettings
from orchestrator.api.readmodel import ReadModel, execution_name
from orchestrator.asl.decider import new_execution
from orchestrator.asl.execution import HistoryEvent
from orchestrator.registry import model
from orchestrator.registry.errors import (
    InvalidDefinition,
    InvalidName,
    InvalidReference,
    InvalidRouting,
    RegistryError,
    UnknownAlias,
    UnknownStateMachine,
    UnknownVersion,
    VersionInUse,
)
from orchestrator.registry.model import Reference, definition_hash, parse_reference
from orchestrator.runtime.engine import Rejected
from orchestrator.runtime.service import Orchestrator
from orchestrator.runtime.translate import (
    Pin,
    effects_to_records,
    snapshot_record,
    status_event,
)
from orchestrator.settings import OrchestratorSettings
from schemas.base import decode, encode
from schemas.executions import (
    ExecutionSnapshot,
    ExecutionStatus,
    HistoryRecord,
    StartExecution,
    execution_id_for,
)
from schemas.registry import AliasRoute, StateMachineRecord
from schemas.topics import Topics

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


def pass_machine(result: Any) -> dict[str, Any]:
    return {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": True}}}


V1, V2, V3 = pass_machine(1), pass_machine(2), pass_machine(3)


def registered(*definitions: dict[str, Any], name: str = "Greeter") -> StateMachineRecord:
    """A state machine with each definition deployed and published in turn (versions 1..n)."""
    record: StateMachineRecord | None = None
    for i, definition in enumerate(definitions):
        now = T0 + timedelta(minutes=i)
        record = model.deploy(record, name, definition, now=now)
        record, _ = model.publish(record, now=now)
    assert record is not None
    return record


def with_alias(record: StateMachineRecord, alias: str, *routes: tuple[int, int]) -> StateMachineRecord:
    updated, _ = model.set_alias(record, alias, [AliasRoute(version=v, weight=w) for v, w in routes], now=T0)
    return updated


# ------------------------------------------------------------ references


@pytest.mark.parametrize("text, expected", [
    ("Greeter", Reference("Greeter")),
    ("Greeter:3", Reference("Greeter", version=3)),
    ("Greeter:prod", Reference("Greeter", alias="prod")),
    ("Greeter:v2", Reference("Greeter", alias="v2")),
    ("arn:aws:states:us-east-1:123456789012:stateMachine:Greeter", Reference("Greeter")),
    ("arn:aws:states:us-east-1:123456789012:stateMachine:Greeter:prod", Reference("Greeter", alias="prod")),
    ("arn:aws-cn:states:cn-north-1:123456789012:stateMachine:Greeter:7", Reference("Greeter", version=7)),
    ("arn:baton:states:local:stateMachine:Greeter:prod", Reference("Greeter", alias="prod")),
])
def test_references_name_a_draft_a_version_or_an_alias(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text, error, words", [
    ("", InvalidReference, "not a state machine reference"),
    ("a:b:c", InvalidReference, "NAME:ALIAS"),
    ("Greeter:0", InvalidReference, "numbered from 1"),
    ("Greeter:", InvalidName, "alias name ''"),
    ("Greeter:pr od", InvalidName, "alias name"),
    ("my machine", InvalidName, "without whitespace"),
    ("arn:aws:lambda:us-east-1:1:function:f", InvalidReference, "not a state machine ARN"),
    ("arn:aws:states:us-east-1:1:execution:Greeter:e1", InvalidReference, "not a state machine ARN"),
])
def test_bad_references_say_what_is_expected(text: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        parse_reference(text)
    assert "\n" not in str(caught.value)


def test_the_definition_hash_ignores_key_order_and_formatting() -> None:
    reordered = json.loads(json.dumps({"States": V1["States"], "StartAt": "P"}, indent=4))
    assert definition_hash(reordered) == definition_hash(V1)
    assert definition_hash(V1) != definition_hash(V2)
    assert len(definition_hash(V1)) == 64


# ------------------------------------------------------------ resolving


def test_resolve_runs_the_draft_a_version_or_an_alias() -> None:
    record = with_alias(registered(V1, V2), "prod", (1, 100))
    record = model.deploy(record, "Greeter", V3, now=T0)  # a draft newer than every version
    records = {"Greeter": record}

    draft = model.resolve(records, "Greeter", "e1")
    assert (draft.version, draft.alias, draft.definition) == (None, None, V3)
    assert draft.definition_hash == definition_hash(V3)
    second = model.resolve(records, "Greeter:2", "e1")
    assert (second.name, second.version, second.alias, second.definition) == ("Greeter", 2, None, V2)
    prod = model.resolve(records, "arn:aws:states:eu-west-1:1:stateMachine:Greeter:prod", "e1")
    assert (prod.version, prod.alias, prod.definition, prod.definition_hash) == (1, "prod", V1, definition_hash(V1))


@pytest.mark.parametrize("reference, error, message", [
    ("Nobody", UnknownStateMachine, "no state machine named 'Nobody' is registered"),
    ("Greeter:9", UnknownVersion, "state machine 'Greeter' has no version 9 (versions: 1, 2)"),
    ("Greeter:beta", UnknownAlias, "state machine 'Greeter' has no alias 'beta' (aliases: prod)"),
])
def test_unknown_names_versions_and_aliases_are_one_clear_line(reference: str, error: type[Exception],
                                                               message: str) -> None:
    records = {"Greeter": with_alias(registered(V1, V2), "prod", (1, 100))}
    with pytest.raises(error) as caught:
        model.resolve(records, reference, "e1")
    assert str(caught.value) == message


def test_a_weighted_alias_routes_by_a_stable_hash_of_the_execution_name() -> None:
    record = with_alias(registered(V1, V2), "prod", (1, 80), (2, 20))
    alias = record.aliases["prod"]
    # Pinned values: sha256, not Python's per-process hash(), so every instance agrees.
    assert [model.route("Greeter", alias, f"e{i}") for i in range(12)] == [2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    picks = [model.resolve({"Greeter": record}, "Greeter:prod", f"run-{i}").version for i in range(10_000)]
    assert picks == [model.resolve({"Greeter": record}, "Greeter:prod", f"run-{i}").version for i in range(10_000)]
    share = picks.count(2) / len(picks)
    assert 0.18 < share < 0.22  # 20% expected; 4.5 standard deviations is 0.018


def test_weights_of_0_and_100_send_everything_one_way() -> None:
    record = with_alias(registered(V1, V2), "all-in", (1, 0), (2, 100))
    assert {model.route("Greeter", record.aliases["all-in"], f"e{i}") for i in range(500)} == {2}


# ------------------------------------------------------------ operations


def test_deploy_validates_with_the_core_and_lists_every_problem() -> None:
    broken = {"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "Next": "B"}}}
    with pytest.raises(InvalidDefinition) as caught:
        model.deploy(None, "Greeter", broken, now=T0)
    paths = {p.path for p in caught.value.problems}
    assert {"$.StartAt", "$.States.A.Next"} <= paths
    assert "\n" not in str(caught.value) and "nothing was stored" in str(caught.value)
    with pytest.raises(InvalidDefinition):
        model.deploy(None, "Greeter", ["not", "an", "object"], now=T0)
    with pytest.raises(InvalidName):
        model.deploy(None, "Greeter:prod", V1, now=T0)


def test_deploying_the_same_definition_again_changes_nothing() -> None:
    record = model.deploy(None, "Greeter", V1, now=T0, description="says hello")
    assert model.deploy(record, "Greeter", json.loads(json.dumps(V1)), now=T0) is record
    changed = model.deploy(record, "Greeter", V2, now=T0)
    assert (changed.revision, changed.definition, changed.description) == (2, V2, "says hello")
    assert changed.id != record.id


def test_versions_are_numbered_immutable_and_never_reused() -> None:
    record = registered(V1, V2)
    assert [(v.version, v.definition) for v in record.versions] == [(1, V1), (2, V2)]
    again, version = model.publish(record, now=T0)  # nothing new since version 2
    assert again is record and version.version == 2
    record = model.delete_version(record, 2, now=T0)
    record = model.deploy(record, "Greeter", V3, now=T0)
    record, version = model.publish(record, now=T0, description="third")
    assert (version.version, version.description) == (3, "third")
    assert [v.version for v in record.versions] == [1, 3] and record.last_version == 3
    assert record.versions[0].definition == V1 and record.versions[0].definition_hash == definition_hash(V1)


@pytest.mark.parametrize("versions, weights, expected", [
    ([1], [], [(1, 100)]),
    ([1], [100], [(1, 100)]),
    ([1, 2], [20], [(1, 80), (2, 20)]),
    ([1, 2], [80, 20], [(1, 80), (2, 20)]),
    ([1, 2], [0], [(1, 100), (2, 0)]),
])
def test_alias_routes_from_the_command_line(versions: list[int], weights: list[int],
                                            expected: list[tuple[int, int]]) -> None:
    assert [(r.version, r.weight) for r in model.alias_routes(versions, weights)] == expected


@pytest.mark.parametrize("versions, weights, message", [
    ([], [], "give the version"),
    ([1, 2, 3], [], "one or two versions, not 3"),
    ([1, 2], [], "give the weight of version 2"),
    ([1, 2], [80, 30], "alias weights must sum to 100, got 80 + 30 = 110"),
    ([1], [50], "alias weights must sum to 100, got 50 = 50"),
    ([1, 2], [120], "weight 120 is not between 0 and 100"),
    ([1], [50, 50], "2 weights for 1 version"),
])
def test_alias_routes_refuse_bad_weights(versions: list[int], weights: list[int], message: str) -> None:
    with pytest.raises(InvalidRouting, match=re.escape(message)):
        model.alias_routes(versions, weights)


def test_aliases_point_at_existing_versions_with_weights_summing_to_100() -> None:
    record = registered(V1, V2)
    with pytest.raises(UnknownVersion, match="no version 9"):
        with_alias(record, "prod", (1, 50), (9, 50))
    with pytest.raises(InvalidRouting, match="names version 1 twice"):
        with_alias(record, "prod", (1, 50), (1, 50))
    with pytest.raises(InvalidRouting, match="sum to 100"):
        with_alias(record, "prod", (1, 60), (2, 60))
    with pytest.raises(InvalidName, match="at least one that is not a digit"):
        with_alias(record, "42", (1, 100))
    moved = with_alias(with_alias(record, "prod", (1, 100)), "prod", (1, 80), (2, 20))
    assert [(r.version, r.weight) for r in moved.aliases["prod"].routes] == [(1, 80), (2, 20)]
    assert model.delete_alias(moved, "prod", now=T0).aliases == {}


def test_a_version_an_alias_points_to_cannot_be_deleted() -> None:
    record = with_alias(with_alias(registered(V1, V2), "prod", (1, 80), (2, 20)), "beta", (2, 100))
    with pytest.raises(VersionInUse) as caught:
        model.delete_version(record, 2, now=T0)
    assert str(caught.value) == ("version 2 of 'Greeter' is used by alias(es) beta, prod; "
                                 "point them at another version first")
    with pytest.raises(UnknownVersion):
        model.delete_version(record, 5, now=T0)
    record = with_alias(record, "prod", (2, 100))
    assert [v.version for v in model.delete_version(record, 1, now=T0).versions] == [2]


def test_the_record_survives_the_wire() -> None:
    record = with_alias(registered(V1, V2), "prod", (1, 80), (2, 20))
    assert decode(StateMachineRecord, encode(record)) == record
    assert record.schema_version == 1 and record.revision == 5  # deploy, publish, deploy, publish, alias


# ------------------------------------------------------------ the runtime: pins on every record


def test_history_status_and_snapshot_carry_the_pin() -> None:
    topics = Topics("t")
    state = new_execution(execution_id=execution_id_for("Greeter:prod", "e1"), name="e1",
                          state_machine_id="arn:baton:states:local:stateMachine:Greeter", state_machine_name="Greeter")
    started = HistoryEvent(id=1, previous_event_id=0, timestamp="2024-06-01T12:00:00.000Z", type="ExecutionStarted",
                           details={"input": {}, "roleArn": None})
    pin = Pin(version=2, alias="prod", definition_hash=definition_hash(V2))
    (out,) = effects_to_records(topics, state, [started], machine_name="Greeter", pin=pin)
    record = decode(HistoryRecord, out.value)
    assert (record.state_machine, record.version, record.alias, record.definition_hash) == (
        "Greeter", 2, "prod", definition_hash(V2))
    (event,) = record.events
    details = event["executionStartedEventDetails"]
    assert details["stateMachineVersionArn"] == "arn:baton:states:local:stateMachine:Greeter:2"
    assert details["stateMachineAliasArn"] == "arn:baton:states:local:stateMachine:Greeter:prod"
    assert started.details == {"input": {}, "roleArn": None}  # the decider's event is not changed

    status = status_event(state, "Greeter", pin)
    assert (status.version, status.alias, status.definition_hash) == (2, "prod", definition_hash(V2))
    snapshot = decode(ExecutionSnapshot, snapshot_record(topics, state, V2, "Greeter", 0, pin).value)
    assert (snapshot.definition, snapshot.version, snapshot.alias) == (V2, 2, "prod")
    (plain,) = effects_to_records(topics, state, [started], machine_name="Greeter")
    assert "stateMachineVersionArn" not in decode(HistoryRecord, plain.value).events[0]["executionStartedEventDetails"]


def orchestrator_with(records: dict[str, StateMachineRecord]) -> Orchestrator:
    """An orchestrator that is never run: its registry is filled by hand."""
    orchestrator = Orchestrator(KafkaSettings(kafka_bootstrap="127.0.0.1:1"), OrchestratorSettings(metrics_port=None))
    orchestrator.registry.records.update(records)
    return orchestrator


def start(reference: str, name: str = "e1", definition: dict[str, Any] | None = None) -> StartExecution:
    return StartExecution(execution_id=execution_id_for(reference, name), state_machine=reference, name=name,
                          definition=definition)


def test_the_orchestrator_pins_what_the_registry_resolves() -> None:
    orchestrator = orchestrator_with({"Greeter": with_alias(registered(V1, V2), "prod", (2, 100))})
    assert orchestrator._pinned(start("Greeter:prod")) == (
        "Greeter", V2, Pin(2, "prod", definition_hash(V2)))
    assert orchestrator._pinned(start("Sketch", definition=V3)) == ("Sketch", V3, Pin(None, None, definition_hash(V3)))
    for reference, detail in (("Nobody", "no state machine named 'Nobody'"), ("Greeter:7", "no version 7"),
                              ("Greeter:beta", "no alias 'beta'"), ("a:b:c", "not a state machine reference")):
        with pytest.raises(Rejected) as caught:
            orchestrator._pinned(start(reference))
        assert caught.value.reason == "unknown_state_machine" and detail in str(caught.value)


# ------------------------------------------------------------ the read model


def history(execution_id: str, event: dict[str, Any], **pin: Any) -> HistoryRecord:
    return HistoryRecord(execution_id=execution_id, state_machine="Greeter", event=event, **pin)


def test_the_read_model_shows_version_and_alias_and_the_real_execution_name(tmp_path: Path) -> None:
    execution_id = execution_id_for("Greeter:prod", "e1")  # as `baton start Greeter:prod --name e1` makes it
    started = {"id": 1, "type": "ExecutionStarted", "timestamp": "2024-06-01T12:00:00.000Z",
               "executionStartedEventDetails": {"input": {"a": 1}}}
    with ReadModel(tmp_path / "rm.sqlite") as read_model:
        read_model.apply([history(execution_id, started, version=2, alias="prod", definition_hash="h2")])
        view = read_model.describe("e1")
        assert view is not None
        assert (view.name, view.version, view.alias, view.definition_hash) == ("e1", 2, "prod", "h2")
        assert view.model_dump(mode="json")["version"] == 2
        read_model.apply([ExecutionStatus(execution_id=execution_id, state_machine="Greeter", name="e1",
                                          status="SUCCEEDED", output=2, version=2, alias="prod")])
        done = read_model.describe(execution_id)
        assert done is not None and (done.status, done.version, done.alias) == ("SUCCEEDED", 2, "prod")
    assert execution_name(execution_id_for("Greeter:3", "e1"), "Greeter", ["3"]) == "e1"
    assert execution_name(execution_id_for("Greeter", "run:1"), "Greeter", []) == "run:1"


def test_an_old_read_model_file_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE executions (execution_id TEXT PRIMARY KEY, state_machine TEXT NOT NULL, "
               "name TEXT NOT NULL, status TEXT NOT NULL, input TEXT, output TEXT, error TEXT, cause TEXT, "
               "start_time TEXT, stop_time TEXT, redrive_count INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO executions (execution_id, state_machine, name, status) VALUES ('x', 'M', 'old', 'RUNNING')")
    db.commit()
    db.close()
    with ReadModel(path) as read_model:
        old = read_model.describe("old")
        assert old is not None and (old.version, old.alias) == (None, None)
        assert "version" not in old.model_dump()  # an unpinned execution reads as before
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(executions)")}
    assert {"version", "alias", "definition_hash"} <= columns


# ------------------------------------------------------------ the CLI, before it reaches Kafka


UNREACHABLE = ["--bootstrap", "127.0.0.1:1", "--topic-prefix", "nowhere"]


def test_an_invalid_definition_is_refused_in_one_line_before_kafka(tmp_path: Path) -> None:
    from orchestrator.cli.registry import deploy

    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "End": True}}}))
    result = CliRunner().invoke(deploy, [str(path), "--name", "Greeter", *UNREACHABLE])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: invalid definition for 'Greeter' (2 problem(s)): $.StartAt: ")
    assert "$.States.A: " in result.stderr and result.stderr.endswith("; nothing was stored\n")


@pytest.mark.parametrize("args, message", [
    (["--version", "1", "--version", "2", "--weight", "80", "--weight", "30"],
     "error: alias weights must sum to 100, got 80 + 30 = 110\n"),
    (["--version", "1", "--version", "2"], "error: give the weight of version 2"),
])
def test_bad_alias_weights_are_refused_in_one_line(args: list[str], message: str) -> None:
    from orchestrator.cli.registry import alias

    result = CliRunner().invoke(alias, ["set", "Greeter", "prod", *args, *UNREACHABLE])
    assert result.exit_code == 2 and result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_registry_errors_form_one_hierarchy() -> None:
    for error in (InvalidDefinition, InvalidName, InvalidReference, InvalidRouting, UnknownAlias,
                  UnknownStateMachine, UnknownVersion, VersionInUse):
        assert issubclass(error, RegistryError)
