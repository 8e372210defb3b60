"""Retention of closed executions on a real broker (BATON_RETENTION set to a few seconds).

A closed execution is kept for the retention after it closed (describe, history, redrive, an
idempotent start by name), then removed from the orchestrator's memory, the state topic (a
tombstone) and the read model (`baton list`, describe, history); its name then starts a new
execution. A restart within the retention re-arms the expiry from the close time."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from kafka_io import KafkaSettings
from orchestrator.api.readmodel import ReadModel
from orchestrator.cli import control as control_cli
from orchestrator.runtime.engine import OFFSETS_KEY
from orchestrator.runtime.service import Orchestrator
from schemas.base import decode, encode
from schemas.executions import (
    ExecutionExpired,
    ExecutionSnapshot,
    HistoryRecord,
    RedriveExecution,
    StopExecution,
    parse_execution_event,
)
from tests.integration.runtime_support import RuntimeClient, eventually, read_all
from tests.integration.test_orchestrator import running as orchestrator_running

STEPS = "tests.integration.steps_for_tests"
ECHO = {"StartAt": "Echo", "States": {"Echo": {"Type": "Task", "Resource": "baton:fn:echo", "End": True}}}
FAILS = {"StartAt": "Fail", "States": {"Fail": {"Type": "Fail", "Error": "Test.Failed", "Cause": "on purpose"}}}
PARKED = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 600, "End": True}}}


def running(kafka: KafkaSettings, retention: float, instance: str = "o1") -> AsyncContextManager[Orchestrator]:
    """An orchestrator with this retention and a fn step service, on the real broker."""
    return orchestrator_running(kafka, instance, retention=retention)


async def state_topic(kafka: KafkaSettings) -> dict[str, bytes | None]:
    """The latest committed record per execution on the state topic (None: a tombstone)."""
    latest: dict[str, bytes | None] = {}
    for record in await read_all(kafka, kafka.topics.state):
        key = record.key.decode()
        if key != OFFSETS_KEY:
            latest[key] = record.value
    return latest


async def expiries(kafka: KafkaSettings) -> list[ExecutionExpired]:
    events = [parse_execution_event(r.value) for r in await read_all(kafka, kafka.topics.events)]
    return [e for e in events if isinstance(e, ExecutionExpired)]


def gone_from(orchestrator: Orchestrator, *execution_ids: str) -> Any:
    async def check() -> bool:
        return not any(e in orchestrator.executions for e in execution_ids)
    return check


async def cli(command: Any, kafka: KafkaSettings, db: Path, *args: str) -> Any:
    """A `baton` command's JSON output (in a thread: the command runs an event loop of its own)."""
    def invoke() -> Any:
        options = ["--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix, "--db", str(db)]
        result = CliRunner().invoke(command, [*args, *options], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)
    return await asyncio.to_thread(invoke)


def test_closed_executions_are_removed_everywhere_after_the_retention(kafka: KafkaSettings, tmp_path: Path) -> None:
    retention = 6.0
    db = tmp_path / "rm.sqlite"

    async def scenario() -> None:
        async with running(kafka, retention) as orchestrator, RuntimeClient(kafka) as client:
            done = await client.start(ECHO, {"n": 1}, name="done")
            failed = await client.start(FAILS, name="failed")
            parked = await client.start(PARKED, name="parked")
            outcomes = await client.wait([done, failed], timeout=30)
            assert (outcomes[done].status, outcomes[failed].status) == ("SUCCEEDED", "FAILED")
            await eventually(lambda: _true(parked in orchestrator.executions))

            # Within the retention: in memory, on the state topic, in the read model and `baton list`.
            assert {done, failed, parked} <= set(orchestrator.executions)
            latest = await state_topic(kafka)
            assert all(latest[e] is not None for e in (done, failed, parked))
            listed = {v["name"]: v["status"] for v in await cli(control_cli.list_executions, kafka, db, "--json")}
            assert listed == {"done": "SUCCEEDED", "failed": "FAILED", "parked": "RUNNING"}
            closed: dict[str, float] = {}
            for execution_id in (done, failed):
                closed_at = orchestrator.executions[execution_id].closed_at
                assert closed_at is not None
                closed[execution_id] = closed_at

            await eventually(gone_from(orchestrator, done, failed), timeout=retention + 15)
            assert time.time() >= max(closed.values()) + retention  # not before its time
            # The running execution stays, with its timer; the running count is unchanged.
            assert parked in orchestrator.executions and orchestrator.running == 1
            assert {e for _, e, _ in orchestrator.timers} == {parked}
            assert [e for _, e in orchestrator.expiries] == []
            assert orchestrator.metrics.expired._value.get() == 2

            latest = await state_topic(kafka)
            assert latest[done] is None and latest[failed] is None and latest[parked] is not None
            expired = {e.execution_id: e for e in await expiries(kafka)}
            assert set(expired) == {done, failed}
            for execution_id, when in closed.items():
                record = expired[execution_id]
                assert record.closed_at is not None and abs(record.closed_at.timestamp() - when) < 0.001
                assert record.timestamp.timestamp() >= when + retention

            listed = {v["name"]: v["status"] for v in await cli(control_cli.list_executions, kafka, db, "--json")}
            assert listed == {"parked": "RUNNING"}
            with ReadModel(db) as model:
                assert model.describe(done) is None and model.history(done) == []
                assert model.describe(failed) is None and model.history(failed) == []
            # A read model built afterwards from the topics never shows them.
            with ReadModel(tmp_path / "fresh.sqlite") as fresh:
                await fresh.catch_up(kafka)
                assert [v.name for v in fresh.list()] == ["parked"]
                assert fresh.history(done) == []

    asyncio.run(scenario())


def test_a_name_is_taken_within_the_retention_and_starts_anew_after_it(kafka: KafkaSettings,
                                                                        tmp_path: Path) -> None:
    retention = 6.0
    db = tmp_path / "rm.sqlite"

    async def scenario() -> None:
        async with running(kafka, retention) as orchestrator, RuntimeClient(kafka) as client:
            first = await client.start(ECHO, {"run": 1}, name="reused")
            assert (await client.wait([first]))[first].output == {"run": 1}
            again = await client.start(ECHO, {"run": 2}, name="reused")  # within the retention: the same one
            assert again == first
            duplicates = orchestrator.metrics.ignored.labels("duplicate_start")
            await eventually(lambda: _true(duplicates._value.get() == 1))
            described = await cli(control_cli.describe, kafka, db, "reused", "--json")
            assert (described["input"], described["output"]) == ({"run": 1}, {"run": 1})

            await eventually(gone_from(orchestrator, first), timeout=retention + 15)
            client.outcomes.clear()
            third = await client.start(ECHO, {"run": 3}, name="reused")  # after it: a new execution
            assert third == first
            assert (await client.wait([third]))[third].output == {"run": 3}
            assert orchestrator.executions[third].status == "SUCCEEDED"
            assert duplicates._value.get() == 1

            # The history topic holds both runs under the same key, their event ids both from 1.
            topic = [event for record in await read_all(kafka, kafka.topics.history)
                     for event in decode(HistoryRecord, record.value).events
                     if decode(HistoryRecord, record.value).execution_id == first]
            assert [e["type"] for e in topic].count("ExecutionStarted") == 2

            # The read model that saw the first run, and one built from the topics afterwards,
            # show the new run alone.
            for path in (db, tmp_path / "fresh.sqlite"):
                described = await cli(control_cli.describe, kafka, path, "reused", "--json")
                assert (described["status"], described["input"], described["output"]) == (
                    "SUCCEEDED", {"run": 3}, {"run": 3})
                history = await cli(control_cli.history, kafka, path, "reused", "--json")
                assert [e["type"] for e in history] == [
                    "ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded",
                    "TaskStateExited", "ExecutionSucceeded"]
                assert [e["id"] for e in history] == list(range(1, len(history) + 1))
                assert history[0]["executionStartedEventDetails"]["input"] == {"run": 3}
                assert history[-1]["executionSucceededEventDetails"]["output"] == {"run": 3}
                listed = await cli(control_cli.list_executions, kafka, path, "--json")
                assert [(v["name"], v["input"]) for v in listed] == [("reused", {"run": 3})]

    asyncio.run(scenario())


def test_redrive_within_the_retention_and_not_after(kafka: KafkaSettings) -> None:
    retention = 5.0

    async def scenario() -> None:
        async with running(kafka, retention) as orchestrator, RuntimeClient(kafka) as client:
            parked = await client.start(PARKED, name="parked")
            await eventually(lambda: _true(parked in orchestrator.executions))
            await client.publish(kafka.topics.start, encode(StopExecution(execution_id=parked)), parked.encode())
            assert (await client.wait([parked]))[parked].status == "ABORTED"
            first_close = orchestrator.executions[parked].closed_at
            assert first_close is not None

            # Redriven within the retention: waiting again, and still there past the first close's
            # expiry, on the state topic as a snapshot.
            await client.publish(kafka.topics.start, encode(RedriveExecution(execution_id=parked)), parked.encode())
            await eventually(lambda: _true(orchestrator.executions[parked].status == "RUNNING"))
            await asyncio.sleep(max(0.0, first_close + retention + 2 - time.time()))
            assert orchestrator.executions[parked].status == "RUNNING"
            snapshot = (await state_topic(kafka))[parked]
            assert snapshot is not None and decode(ExecutionSnapshot, snapshot).state["status"] == "RUNNING"
            assert await expiries(kafka) == []

            # Closed again: it expires from that close.
            client.outcomes.clear()
            await client.publish(kafka.topics.start, encode(StopExecution(execution_id=parked)), parked.encode())
            outcome = (await client.wait([parked]))[parked]
            assert (outcome.status, outcome.redrive_count) == ("ABORTED", 1)
            second_close = orchestrator.executions[parked].closed_at
            assert second_close is not None and second_close > first_close + retention
            await eventually(gone_from(orchestrator, parked), timeout=retention + 15)
            [expired] = await expiries(kafka)
            assert expired.closed_at is not None and abs(expired.closed_at.timestamp() - second_close) < 0.001

            # After the retention a redrive finds nothing to redrive (dead-lettered, as AWS refuses it).
            await client.publish(kafka.topics.start, encode(RedriveExecution(execution_id=parked)), parked.encode())

            async def refused() -> bool:
                return any(d.reason.startswith("unknown_execution") and d.execution_id == parked
                           for d in await client.dead_letters())
            await eventually(refused)
            assert parked not in orchestrator.executions

    asyncio.run(scenario())


def test_a_restart_within_the_retention_rearms_the_expiry(kafka: KafkaSettings) -> None:
    retention = 10.0

    async def scenario() -> None:
        async with RuntimeClient(kafka) as client:
            async with running(kafka, retention) as orchestrator:
                done = await client.start(ECHO, {"n": 1}, name="done")
                await client.wait([done])
                closed_at = orchestrator.executions[done].closed_at
                assert closed_at is not None
            snapshot = (await state_topic(kafka))[done]
            assert snapshot is not None and decode(ExecutionSnapshot, snapshot).closed_at == closed_at
            assert time.time() < closed_at + retention - 3, "the test needs the restart within the retention"

            async with running(kafka, retention) as restarted:
                assert restarted.executions[done].closed_at == closed_at
                # Armed from the close time carried by the snapshot, not from the restart.
                assert restarted.expiries == [(closed_at + retention, done)]
                await eventually(gone_from(restarted, done), timeout=retention + 15)
                assert time.time() >= closed_at + retention
            assert (await state_topic(kafka))[done] is None
            assert [e.execution_id for e in await expiries(kafka)] == [done]

            # And restored again after that: nothing left to restore.
            async with running(kafka, retention) as again:
                assert done not in again.executions and again.expiries == []

    asyncio.run(scenario())


async def _true(value: bool) -> bool:
    return value
