"""Retention of closed executions without a broker: the BATON_RETENTION duration, the records an
expiry writes, the close time a snapshot carries and a restore re-arms, which expiries fall due,
and how the read model drops an expired run and tells it from a new one with the same name."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from kafka_io import KafkaSettings
from orchestrator.api.readmodel import ExecutionView, ReadModel, decode_record, merge_execution
from orchestrator.asl.execution import ExecutionState
from orchestrator.asl.execution import ExecutionStatus as Status
from orchestrator.asl.timestamps import format_timestamp
from orchestrator.runtime.service import Orchestrator
from orchestrator.runtime.translate import Pin, expiry_records, snapshot_record
from orchestrator.settings import DEFAULT_RETENTION_SECONDS, OrchestratorSettings, parse_duration
from schemas.base import decode, encode
from schemas.executions import (
    ExecutionExpired,
    ExecutionSnapshot,
    ExecutionStatus,
    HistoryRecord,
    execution_id_for,
    parse_execution_event,
)
from schemas.topics import Topics

TOPICS = Topics("t")
MACHINE = "Story"
DEFINITION = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


# ------------------------------------------------------------ BATON_RETENTION


@pytest.mark.parametrize("text, seconds", [
    ("90d", 90 * 86400), ("14d", 14 * 86400), ("12h", 12 * 3600), ("30s", 30), ("15m", 900),
    ("1d12h", 36 * 3600), ("1h 30m", 5400), ("1.5h", 5400), ("3600", 3600), (" 45 ", 45), ("2.5", 2.5),
    ("12H", 12 * 3600), (7, 7), (0.5, 0.5), (timedelta(days=2), 2 * 86400),
])
def test_a_duration_is_seconds_or_numbers_with_units(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "12x", "1w", "12 days", "1d x", "h12", "-3", "0", "0s", "inf",
                                  "nan", "1e400", True, None, [1]])
def test_anything_else_is_refused(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_setting_reads_baton_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATON_RETENTION", raising=False)
    assert OrchestratorSettings().retention == DEFAULT_RETENTION_SECONDS == 14 * 86400
    monkeypatch.setenv("BATON_RETENTION", "90d")
    assert OrchestratorSettings().retention == 90 * 86400
    monkeypatch.setenv("BATON_RETENTION", "30")
    assert OrchestratorSettings().retention == 30
    assert OrchestratorSettings(retention="12h").retention == 12 * 3600  # type: ignore[arg-type]
    for bad in ("forever", "0.5"):  # not a duration; under the one-second minimum
        monkeypatch.setenv("BATON_RETENTION", bad)
        with pytest.raises(ValidationError, match="retention"):
            OrchestratorSettings()


# ------------------------------------------------------------ the records of an expiry


def closed_state(name: str = "n1", status: Status = Status.SUCCEEDED) -> ExecutionState:
    return ExecutionState(execution_id=execution_id_for(MACHINE, name), name=name,
                          state_machine_id=f"arn:baton:states:local:stateMachine:{MACHINE}",
                          state_machine_name=MACHINE, status=status, start_time="2024-06-01T12:00:00.250Z",
                          last_event_id=4)


def test_an_expiry_writes_a_tombstone_and_an_expired_event() -> None:
    state = closed_state()
    closed_at = T0.timestamp() + 5
    event, tombstone = expiry_records(TOPICS, state, MACHINE, 2, closed_at)
    assert (tombstone.topic, tombstone.key, tombstone.value, tombstone.partition) == (
        TOPICS.state, state.execution_id.encode(), None, 2)
    assert (event.topic, event.key, event.partition) == (TOPICS.events, state.execution_id.encode(), 2)
    expired = parse_execution_event(event.value)
    assert isinstance(expired, ExecutionExpired)
    assert (expired.execution_id, expired.state_machine, expired.name) == (state.execution_id, MACHINE, "n1")
    assert expired.start_time == T0 + timedelta(milliseconds=250)
    assert expired.closed_at == T0 + timedelta(seconds=5)
    # A reader of statuses only (the CLI's --wait, the demo) skips it rather than taking it for one.
    with pytest.raises(ValueError):
        decode(ExecutionStatus, event.value)


def test_the_events_topic_parser_tells_statuses_from_expiries() -> None:
    status = ExecutionStatus(execution_id="x", state_machine=MACHINE, name="x", status="RUNNING")
    assert parse_execution_event(encode(status)) == status
    assert decode_record("events", encode(status)) == status
    expired = ExecutionExpired(execution_id="x", state_machine=MACHINE, name="x")
    assert parse_execution_event(encode(expired)) == expired
    for bad in (None, b"not json", b"{}"):
        with pytest.raises(ValueError):
            parse_execution_event(bad)


def test_a_snapshot_carries_the_close_time() -> None:
    state = closed_state()
    record = snapshot_record(TOPICS, state, DEFINITION, MACHINE, 1, Pin(), closed_at=1717243205.5)
    assert decode(ExecutionSnapshot, record.value).closed_at == 1717243205.5
    running = snapshot_record(TOPICS, closed_state(status=Status.RUNNING), DEFINITION, MACHINE, 1)
    assert decode(ExecutionSnapshot, running.value).closed_at is None


# ------------------------------------------------------------ the orchestrator's expiries


@pytest.fixture
def orchestrator() -> Orchestrator:
    return Orchestrator(KafkaSettings(topic_prefix="t"), OrchestratorSettings(retention=60, metrics_port=None))


def restored(orchestrator: Orchestrator, state: ExecutionState, closed_at: float | None,
             written_at: float = 0.0) -> None:
    """Feed the orchestrator the state topic's record of `state`, as a restore does."""
    record = snapshot_record(orchestrator.topics, state, DEFINITION, MACHINE, 0, Pin(), closed_at=closed_at)
    orchestrator._load_snapshot(SimpleNamespace(key=record.key, value=record.value, partition=0,
                                                topic=record.topic, offset=0, timestamp=int(written_at * 1000)))


def test_a_restore_rearms_expiries_from_the_close_time(orchestrator: Orchestrator) -> None:
    now = time.time()
    restored(orchestrator, closed_state("done"), closed_at=now - 10, written_at=now - 1)
    restored(orchestrator, closed_state("old", Status.FAILED), closed_at=None, written_at=now - 100)
    restored(orchestrator, closed_state("running", Status.RUNNING), closed_at=None, written_at=now - 5)
    orchestrator._rebuild_timers()
    ids = {name: execution_id_for(MACHINE, name) for name in ("done", "old", "running")}
    assert orchestrator.executions[ids["done"]].closed_at == now - 10
    # A snapshot written before snapshots carried it: the record that closed it was its last.
    assert orchestrator.executions[ids["old"]].closed_at == pytest.approx(now - 100, abs=0.001)
    assert orchestrator.executions[ids["running"]].closed_at is None
    [(first_at, first), (second_at, second)] = sorted(orchestrator.expiries)
    assert (first, second) == (ids["old"], ids["done"])
    assert first_at == pytest.approx(now - 40, abs=0.001) and second_at == pytest.approx(now + 50)

    # Due: the one closed 100 s ago (60 s retention); not the one closed 10 s ago. Read in close
    # order from the executions, they stay due until an expiry removes them.
    assert [e for _, e in orchestrator._due_expiries(now)] == [ids["old"]]
    assert [e for _, e in orchestrator._due_expiries(now + 51)] == [ids["old"], ids["done"]]


def test_an_expiry_skips_an_execution_redriven_or_closed_again(orchestrator: Orchestrator) -> None:
    now = time.time()
    restored(orchestrator, closed_state("redriven"), closed_at=now - 100)
    restored(orchestrator, closed_state("again"), closed_at=now - 100)
    orchestrator._rebuild_timers()
    again = execution_id_for(MACHINE, "again")
    # Since the restore: one was redriven (RUNNING), the other redriven and closed again a second
    # ago (due 59 s from now).
    restored(orchestrator, closed_state("redriven", Status.RUNNING), closed_at=None)
    restored(orchestrator, closed_state("again", Status.ABORTED), closed_at=now - 1)
    assert orchestrator._due_expiries(now) == []
    assert orchestrator.expiries == [(pytest.approx(now + 59), again)]


def test_removal_happens_only_when_due(orchestrator: Orchestrator) -> None:
    from orchestrator.runtime.engine import _Batch

    now = time.time()
    restored(orchestrator, closed_state("done"), closed_at=now - 100)
    restored(orchestrator, closed_state("fresh"), closed_at=now - 1)
    restored(orchestrator, closed_state("running", Status.RUNNING), closed_at=None)
    orchestrator._rebuild_timers()
    done, fresh, running = (execution_id_for(MACHINE, name) for name in ("done", "fresh", "running"))
    orchestrator.timers = [(now + 30, done, "t1"), (now + 30, running, "t1")]
    batch = _Batch(started=0.0)
    orchestrator._expire([(now - 40, done), (now - 40, fresh), (now - 40, running)], batch)
    assert set(orchestrator.executions) == {fresh, running}
    assert orchestrator.timers == [(now + 30, running, "t1")]
    assert batch.snapshots[done].value is None and set(batch.snapshots) == {done}
    assert [parse_execution_event(o.value).execution_id for o in batch.out] == [done]
    assert orchestrator.metrics.expired._value.get() == 1


# ------------------------------------------------------------ the read model


@pytest.fixture
def model(tmp_path: Path) -> Iterator[ReadModel]:
    with ReadModel(tmp_path / "readmodel.sqlite") as read_model:
        yield read_model


def at(seconds: float) -> str:
    return format_timestamp(T0 + timedelta(seconds=seconds))


def run(name: str, start: float, output: Any, *, first_id: int = 1) -> list[HistoryRecord | ExecutionStatus]:
    """The records of one run started `start` seconds after T0: its history and its statuses."""
    execution_id = execution_id_for(MACHINE, name)
    events = [("ExecutionStarted", {"input": {"run": output}}), ("PassStateEntered", {"name": "A"}),
              ("PassStateExited", {"name": "A"}), ("ExecutionSucceeded", {"output": output})]
    history = [HistoryRecord(execution_id=execution_id, state_machine=MACHINE, events=[{
        "id": i, "previousEventId": i - 1, "timestamp": at(start + i - first_id), "type": type_,
        type_[0].lower() + type_[1:] + "EventDetails": details}]) for i, (type_, details) in enumerate(events, first_id)]
    started = T0 + timedelta(seconds=start)
    common: dict[str, Any] = {"execution_id": execution_id, "state_machine": MACHINE, "name": name,
                              "start_time": started}
    statuses = [ExecutionStatus(**common, status="RUNNING", input={"run": output}),
                ExecutionStatus(**common, status="SUCCEEDED", input={"run": output}, output=output,
                                stop_time=started + timedelta(seconds=3))]
    return [*history, *statuses]


def expiry(name: str, start: float) -> ExecutionExpired:
    return ExecutionExpired(execution_id=execution_id_for(MACHINE, name), state_machine=MACHINE, name=name,
                            start_time=T0 + timedelta(seconds=start), closed_at=T0 + timedelta(seconds=start + 3))


def shown(model: ReadModel, name: str) -> tuple[Any, Any, list[Any]]:
    """(status, output, [(event type, its input or output)]) of an execution, or Nones."""
    view = model.describe(name)
    events = model.history(execution_id_for(MACHINE, name))
    details = [(e["type"], next((v for k, v in e.items() if k.endswith("EventDetails")), None)) for e in events]
    return (view.status if view else None), (view.output if view else None), details


def test_an_expiry_drops_the_run_and_its_late_records(model: ReadModel) -> None:
    first = run("n", 0, "one")
    model.apply(first)
    model.apply([run("other", 1, "kept")[0]])
    assert shown(model, "n")[0] == "SUCCEEDED"
    model.apply([expiry("n", 0)])
    assert shown(model, "n") == (None, None, [])
    assert [v.name for v in model.list()] == ["other"]
    # The same run read again through either topic (read behind the other) stays gone.
    model.apply(first)
    assert shown(model, "n") == (None, None, [])
    assert [v.name for v in model.list()] == ["other"]


def test_a_reused_name_shows_the_new_run_only_whatever_the_order(model: ReadModel, tmp_path: Path) -> None:
    old, new = run("n", 0, "one"), run("n", 100, "two")
    # In order, as one topic: the old run, its expiry, the new run.
    model.apply([*old, expiry("n", 0), *new])
    expected = ("SUCCEEDED", "two", [("ExecutionStarted", {"input": {"run": "two"}}),
                                     ("PassStateEntered", {"name": "A"}), ("PassStateExited", {"name": "A"}),
                                     ("ExecutionSucceeded", {"output": "two"})])
    assert shown(model, "n") == expected
    orders = {
        # The history topic read ahead of the events topic: the new run's start comes before the
        # expiry, which must not remove it.
        "history ahead": [*old[:4], *new[:4], *old[4:], expiry("n", 0), *new[4:]],
        # The events topic read ahead: the old run's history comes after its expiry.
        "events ahead": [*old[4:], expiry("n", 0), *new[4:], *old[:4], *new[:4]],
        # No expiry read yet at all: the new run still replaces the old one.
        "expiry last": [*old, *new, expiry("n", 0)],
        "new run's end first": [*old, new[5], expiry("n", 0), *new[:5]],
    }
    for label, records in orders.items():
        with ReadModel(tmp_path / f"{label}.sqlite") as other:
            for record in records:
                other.apply([record])
            assert shown(other, "n") == expected, label


def test_an_expiry_is_forgotten_once_both_topics_were_read_past_it(model: ReadModel) -> None:
    model.apply([*run("n", 0, "one"), expiry("n", 0)])
    assert model.prune_expired(before=time.time() - 60) == 0  # learnt after that: kept
    model.apply(run("n", 0, "one")[:4])
    assert shown(model, "n") == (None, None, [])
    assert model.prune_expired(before=time.time() + 1) == 1
    assert model.prune_expired(before=time.time() + 1) == 0


def test_merge_rules_for_runs() -> None:
    old = ExecutionView(execution_id="x", state_machine="M", name="x", status="SUCCEEDED", output=1,
                        start_time=at(0), stop_time=at(3))
    new = ExecutionView(execution_id="x", state_machine="M", name="x", status="RUNNING", input=2, start_time=at(100))
    assert merge_execution(old, new) == new  # a new run replaces the row, nothing of the old one kept
    assert merge_execution(new, old) is None  # an earlier run says nothing
    redriven = new.model_copy(update={"redrive_count": 1, "start_time": at(200)})
    merged = merge_execution(new, redriven)  # a redrive keeps its run's start time
    assert merged is not None and merged.start_time == at(100)
