"""The read model's SQL half, fed records directly (no Kafka)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from orchestrator.api.readmodel import (
    DEFAULT_PATH,
    AmbiguousExecution,
    ExecutionView,
    ReadModel,
    ReadModelError,
    decode_record,
    default_path,
    execution_name,
    merge_execution,
    start_offset,
)
from schemas.base import encode
from schemas.executions import ExecutionStatus, HistoryRecord, execution_id_for

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
MACHINE = "Story"


@pytest.fixture
def model(tmp_path: Path) -> Iterator[ReadModel]:
    with ReadModel(tmp_path / "rm" / "readmodel.sqlite") as read_model:
        yield read_model


def status(name: str, state: str, *, machine: str = MACHINE, redrives: int = 0, at: int = 0,
           **fields: Any) -> ExecutionStatus:
    """An ExecutionStatus `at` seconds after T0: its start time if RUNNING, else its stop time."""
    moment = T0 + timedelta(seconds=at)
    times = {"start_time": moment} if state == "RUNNING" else {"stop_time": moment}
    return ExecutionStatus(execution_id=execution_id_for(machine, name), state_machine=machine, name=name,
                           status=state, redrive_count=redrives, **times, **fields)  # type: ignore[arg-type]


def event(name: str, event_id: int, type_: str, details: dict[str, Any] | None = None, *,
          machine: str = MACHINE) -> HistoryRecord:
    body: dict[str, Any] = {"id": event_id, "previousEventId": event_id - 1,
                            "timestamp": f"2024-06-01T12:00:{event_id:02d}.000Z", "type": type_}
    if details is not None:
        body[type_[0].lower() + type_[1:] + "EventDetails"] = details
    return HistoryRecord(execution_id=execution_id_for(machine, name), state_machine=machine, event=body)


def view(model: ReadModel, name: str) -> ExecutionView:
    found = model.describe(name)
    assert found is not None
    return found


def test_the_database_uses_wal(model: ReadModel, tmp_path: Path) -> None:
    with ReadModel(model.path) as second:
        mode = second._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_status_events_make_the_execution_row(model: ReadModel) -> None:
    model.apply([status("e1", "RUNNING", input={"topic": "cats"})])
    assert view(model, "e1").status == "RUNNING"
    model.apply([status("e1", "SUCCEEDED", at=5, output={"story": "..."})])
    described = view(model, "e1")
    assert described.model_dump() == {
        "execution_id": execution_id_for(MACHINE, "e1"), "state_machine": MACHINE, "name": "e1",
        "status": "SUCCEEDED", "input": {"topic": "cats"}, "output": {"story": "..."}, "error": None,
        "cause": None, "start_time": "2024-06-01T12:00:00.000Z", "stop_time": "2024-06-01T12:00:05.000Z",
        "redrive_count": 0,
    }


def test_a_late_running_status_does_not_undo_the_end(model: ReadModel) -> None:
    # The events and history topics are read independently: the end can be seen first.
    model.apply([status("e1", "FAILED", at=3, error="States.TaskFailed", cause="boom")])
    model.apply([status("e1", "RUNNING", input={"a": 1})])
    described = view(model, "e1")
    assert (described.status, described.error, described.input) == ("FAILED", "States.TaskFailed", {"a": 1})


def test_a_redrive_starts_a_new_phase_and_old_ends_are_ignored(model: ReadModel) -> None:
    model.apply([status("e1", "RUNNING", input={"a": 1}),
                 status("e1", "FAILED", at=3, error="States.TaskFailed", cause="boom")])
    model.apply([status("e1", "RUNNING", redrives=1, at=10)])
    redriven = view(model, "e1")
    assert (redriven.status, redriven.redrive_count, redriven.error, redriven.stop_time) == ("RUNNING", 1, None, None)
    assert redriven.input == {"a": 1}
    model.apply([status("e1", "FAILED", at=3, error="States.TaskFailed")])  # the old end, read again
    assert view(model, "e1").status == "RUNNING"
    model.apply([status("e1", "SUCCEEDED", redrives=1, at=12, output=7)])
    assert (view(model, "e1").status, view(model, "e1").output) == ("SUCCEEDED", 7)


def test_history_is_idempotent_and_in_event_order(model: ReadModel) -> None:
    events = [event("e1", 1, "ExecutionStarted", {"input": {"x": 1}}),
              event("e1", 2, "PassStateEntered", {"name": "A"}),
              event("e1", 3, "PassStateExited", {"name": "A"})]
    model.apply([events[0], events[2]])
    model.apply(events)  # the same topic range read again, plus the one that was missing
    assert [e["id"] for e in model.history(execution_id_for(MACHINE, "e1"))] == [1, 2, 3]
    assert model.history(execution_id_for(MACHINE, "e1"))[1] == events[1].events[0]
    assert model.history("arn:unknown") == []


def test_history_alone_projects_the_execution(model: ReadModel) -> None:
    model.apply([event("e1", 1, "ExecutionStarted", {"input": {"x": 1}}),
                 event("e1", 2, "ExecutionFailed", {"error": "States.Timeout", "cause": "slow"})])
    described = view(model, "e1")
    assert (described.name, described.status, described.input) == ("e1", "FAILED", {"x": 1})
    assert (described.error, described.cause) == ("States.Timeout", "slow")
    assert (described.start_time, described.stop_time) == ("2024-06-01T12:00:01.000Z", "2024-06-01T12:00:02.000Z")
    model.apply([event("e1", 3, "ExecutionRedriven", {"redriveCount": 1})])
    assert (view(model, "e1").status, view(model, "e1").redrive_count) == ("RUNNING", 1)
    model.apply([event("e1", 4, "ExecutionSucceeded", {"output": "done"})])
    assert (view(model, "e1").status, view(model, "e1").output, view(model, "e1").redrive_count) == (
        "SUCCEEDED", "done", 1)


def test_both_topics_agree_whatever_the_order(model: ReadModel, tmp_path: Path) -> None:
    records: list[HistoryRecord | ExecutionStatus] = [
        event("e1", 1, "ExecutionStarted", {"input": {"x": 1}}),
        status("e1", "RUNNING", at=1, input={"x": 1}),  # the same moments as the history's
        event("e1", 2, "ExecutionSucceeded", {"output": {"y": 2}}),
        status("e1", "SUCCEEDED", at=2, output={"y": 2}),
    ]
    model.apply(records)
    with ReadModel(tmp_path / "reversed.sqlite") as other:
        other.apply([records[3], records[1], records[0], records[2]])
        assert view(other, "e1") == view(model, "e1")


def test_describe_by_id_or_unique_name(model: ReadModel) -> None:
    model.apply([status("shared", "RUNNING", machine="A"), status("shared", "RUNNING", machine="B"),
                 status("solo", "RUNNING", machine="A")])
    assert view(model, "solo").execution_id == execution_id_for("A", "solo")
    assert view(model, execution_id_for("B", "shared")).state_machine == "B"
    assert model.describe("nobody") is None
    with pytest.raises(AmbiguousExecution) as raised:
        model.describe("shared")
    assert raised.value.execution_ids == [execution_id_for("A", "shared"), execution_id_for("B", "shared")]


def test_list_filters_orders_and_limits(model: ReadModel) -> None:
    model.apply([status("e1", "RUNNING", at=1), status("e2", "RUNNING", at=2, machine="Other"),
                 status("e3", "RUNNING", at=3), status("e3", "SUCCEEDED", at=4)])
    assert [v.name for v in model.list()] == ["e3", "e2", "e1"]
    assert [v.name for v in model.list(status="RUNNING")] == ["e2", "e1"]
    assert [v.name for v in model.list(state_machine=MACHINE)] == ["e3", "e1"]
    assert [v.name for v in model.list(status="RUNNING", state_machine=MACHINE)] == ["e1"]
    assert [v.name for v in model.list(limit=1)] == ["e3"]
    assert model.list(status="ABORTED") == []


def test_offsets_commit_with_the_rows(model: ReadModel, monkeypatch: pytest.MonkeyPatch) -> None:
    model.apply([status("e1", "RUNNING")], {("t.history", 0): 5, ("t.events", 1): 2})
    assert model.stored_offsets() == {("t.history", 0): 5, ("t.events", 1): 2}

    def broken_merge(*args: Any) -> None:
        raise RuntimeError("disk on fire")

    # A failure half way through a batch keeps neither its rows nor its offsets.
    monkeypatch.setattr(model, "_merge", broken_merge)
    with pytest.raises(RuntimeError):
        model.apply([event("e2", 1, "PassStateEntered"), status("e2", "RUNNING")], {("t.history", 0): 9})
    monkeypatch.undo()
    assert model.stored_offsets()[("t.history", 0)] == 5
    assert model.history(execution_id_for(MACHINE, "e2")) == []
    assert model.describe("e2") is None


def test_offsets_survive_a_reopen(model: ReadModel) -> None:
    model.apply([], {("t.history", 2): 40})
    with ReadModel(model.path) as reopened:
        assert reopened.stored_offsets() == {("t.history", 2): 40}


def test_merge_rules() -> None:
    running = ExecutionView(execution_id="x", state_machine="M", name="x", status="RUNNING", input=1, start_time="s")
    failed = running.model_copy(update={"status": "FAILED", "input": None, "error": "E"})
    assert merge_execution(None, running) == running
    assert merge_execution(failed, running) == failed.model_copy(update={"input": 1})  # fills a gap
    assert merge_execution(failed, failed) is None  # nothing new: no write
    redriven = ExecutionView(execution_id="x", state_machine="M", name="x", status="RUNNING", redrive_count=1)
    merged = merge_execution(failed, redriven)
    assert merged is not None
    assert (merged.status, merged.error, merged.input, merged.start_time) == ("RUNNING", None, None, "s")
    assert merge_execution(redriven, failed) == redriven.model_copy(update={"start_time": "s"})  # start facts only
    assert merge_execution(merged, failed) is None


def test_start_offset() -> None:
    assert start_offset(None, 3, 10) == 3
    assert start_offset(7, 3, 10) == 7
    assert start_offset(10, 3, 10) == 10
    assert start_offset(1, 3, 10) == 3  # retention removed 1 and 2
    assert start_offset(12, 0, 4) == 0  # the topic was recreated


def test_decode_record() -> None:
    record = event("e1", 1, "ExecutionStarted")
    assert decode_record("history", encode(record)) == record
    running = status("e1", "RUNNING")
    assert decode_record("events", encode(running)) == running
    bad = HistoryRecord(execution_id="x", state_machine="M", event={"type": "PassStateEntered"})
    with pytest.raises(ValueError, match="without id"):
        decode_record("history", encode(bad))
    with pytest.raises(ValueError):
        decode_record("events", b"not json")
    with pytest.raises(ValueError):
        decode_record("events", None)


def test_execution_name() -> None:
    assert execution_name(execution_id_for("M", "run:1"), "M") == "run:1"
    assert execution_name("arn:other:thing:n7", "M") == "n7"


def test_a_file_projects_one_pair_of_topics(model: ReadModel) -> None:
    model.claim_topics("a.executions.history", "a.executions.events")
    model.claim_topics("a.executions.history", "a.executions.events")  # the same again is fine
    with pytest.raises(ReadModelError, match="use another read model file"):
        model.claim_topics("b.executions.history", "b.executions.events")


def test_default_path_per_prefix() -> None:
    assert default_path() == DEFAULT_PATH == Path(".baton/readmodel.sqlite")
    assert default_path("staging") == Path(".baton/readmodel.staging.sqlite")


def test_default_path_per_cluster() -> None:
    # Another cluster never shares the local broker's file, even under the same prefix.
    secured = default_path("baton", "127.0.0.1:19094")
    assert secured != DEFAULT_PATH and secured.parent == DEFAULT_PATH.parent
    assert default_path("baton", "127.0.0.1:19094") == secured  # stable across runs
    assert default_path("staging", "127.0.0.1:19094") not in (secured, default_path("staging"))


def test_version_figures_count_and_cost_what_each_version_ran(model: ReadModel) -> None:
    from orchestrator.api.progress import usage_totals

    def task(name: str, event_id: int, outcome: str, cost: float) -> HistoryRecord:
        return event(name, event_id, outcome, {"resource": "baton:llm", "metadata": {"cost_usd": cost,
                                                                                      "input_tokens": 3}})

    model.apply([
        status("v1-ok", "SUCCEEDED", version=1), task("v1-ok", 2, "TaskFailed", 0.001),
        task("v1-ok", 3, "TaskSucceeded", 0.002),
        status("v1-failed", "FAILED", version=1), task("v1-failed", 2, "TaskFailed", 0.004),
        status("v1-running", "RUNNING", version=1), task("v1-running", 2, "TaskSucceeded", 9.0),  # not ended
        status("v2-ok", "SUCCEEDED", version=2),
        status("draft", "SUCCEEDED"), task("draft", 2, "TaskSucceeded", 0.5),
        status("other", "SUCCEEDED", machine="Other", version=1),
    ])
    figures = {entry.version: entry for entry in model.version_figures(MACHINE)}
    assert list(figures) == [1, 2, None]
    first = figures[1]
    assert (first.executions, first.running, first.succeeded, first.ended) == (3, 1, 1, 2)
    ended_costs = [usage_totals(model.history(execution_id_for(MACHINE, name)))["cost_usd"]
                   for name in ("v1-ok", "v1-failed")]
    assert first.success_rate == 0.5 and first.mean_cost_usd == pytest.approx(sum(ended_costs) / 2)
    assert (figures[2].mean_cost_usd, figures[2].success_rate) == (0.0, 1.0)
    assert figures[None].mean_cost_usd == pytest.approx(0.5)
