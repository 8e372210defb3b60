"""The read model and the control CLI against a real broker.

Records are published the way the orchestrator publishes them (transactional producer, keyed by
execution id) to topics created per test; nothing here needs a running orchestrator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from click.testing import CliRunner, Result

from kafka_io import KafkaSettings, MissingTopic, topic_partitions
from orchestrator.api.readmodel import ReadModel
from orchestrator.cli import control as control_cli
from schemas.base import Envelope, encode
from schemas.executions import (
    ExecutionStatus,
    HistoryRecord,
    RedriveExecution,
    StartExecution,
    StopExecution,
    execution_id_for,
    parse_request,
)

PARTITIONS = 3
MACHINE = "Story"
DEFINITION = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
REPO_ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------ Kafka helpers


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> Iterator[KafkaSettings]:
    """Settings whose start, history and events topics exist (and are deleted afterwards)."""
    kafka = KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix.rstrip("."))
    topics = [kafka.topics.start, kafka.topics.history, kafka.topics.events, kafka.topics.statemachines]
    asyncio.run(_admin(kafka, create=topics))
    asyncio.run(_until_visible(kafka, topics))
    try:
        yield kafka
    finally:
        asyncio.run(_admin(kafka, delete=topics))


async def _admin(settings: KafkaSettings, create: Sequence[str] = (), delete: Sequence[str] = ()) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        if create:
            response: Any = await admin.create_topics(
                [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1) for topic in create])
            errors = [(name, code) for name, code, *_ in response.topic_errors if code != 0]
            assert not errors, f"create_topics failed: {errors}"
        if delete:
            await admin.delete_topics(list(delete))
    finally:
        await admin.close()


async def _until_visible(settings: KafkaSettings, topics: Sequence[str]) -> None:
    """Wait for new topics to reach the metadata every client sees (KRaft propagates it shortly after)."""
    async with asyncio.timeout(30):
        while True:
            try:
                await topic_partitions(settings, topics)
                return
            except MissingTopic:
                await asyncio.sleep(0.1)


def produce(settings: KafkaSettings, records: Sequence[Envelope], *, abort: bool = False) -> None:
    """Write HistoryRecords / ExecutionStatus events in one transaction, as the orchestrator does."""
    asyncio.run(_produce(settings, records, abort))


async def _produce(settings: KafkaSettings, records: Sequence[Envelope], abort: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True,
                                transactional_id=f"{settings.topic_prefix}.test-orchestrator")
    await producer.start()
    try:
        await producer.begin_transaction()
        for record in records:
            topic = settings.topics.history if isinstance(record, HistoryRecord) else settings.topics.events
            await producer.send_and_wait(topic, encode(record), key=record.execution_id.encode())
        if abort:
            await producer.abort_transaction()
        else:
            await producer.commit_transaction()
    finally:
        await producer.stop()


def read_all(settings: KafkaSettings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed (key, value) of a topic, from the beginning to the end as of now."""
    return asyncio.run(_read_all(settings, topic))


async def _read_all(settings: KafkaSettings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[tuple[bytes | None, bytes | None]] = []
        async with asyncio.timeout(30):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend((m.key, m.value) for m in messages)
        return out
    finally:
        await consumer.stop()


def end_offsets(settings: KafkaSettings, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    async def ends() -> dict[tuple[str, int], int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed")
        await consumer.start()
        try:
            found = await consumer.end_offsets([TopicPartition(t, p) for t in topics for p in range(PARTITIONS)])
            return {(tp.topic, tp.partition): offset for tp, offset in found.items()}
        finally:
            await consumer.stop()

    return asyncio.run(ends())


# ------------------------------------------------------------ records


def history(name: str, event_id: int, type_: str, details: dict[str, Any] | None = None) -> HistoryRecord:
    body: dict[str, Any] = {"id": event_id, "previousEventId": event_id - 1,
                            "timestamp": f"2024-06-01T12:00:{event_id:02d}.000Z", "type": type_}
    if details is not None:
        body[type_[0].lower() + type_[1:] + "EventDetails"] = details
    return HistoryRecord(execution_id=execution_id_for(MACHINE, name), state_machine=MACHINE, event=body)


def status(name: str, state: str, **fields: Any) -> ExecutionStatus:
    return ExecutionStatus(execution_id=execution_id_for(MACHINE, name), state_machine=MACHINE, name=name,
                           status=state, **fields)  # type: ignore[arg-type]


def succeeded_run(name: str, output: Any = "done") -> list[Envelope]:
    """What the orchestrator writes for a one-state execution, start to end."""
    return [history(name, 1, "ExecutionStarted", {"input": {"topic": name}}), status(name, "RUNNING", input={"topic": name}),
            history(name, 2, "PassStateEntered", {"name": "A"}), history(name, 3, "PassStateExited", {"name": "A"}),
            history(name, 4, "ExecutionSucceeded", {"output": output}), status(name, "SUCCEEDED", output=output)]


# ------------------------------------------------------------ the read model


def test_catch_up_projects_committed_records_only(settings: KafkaSettings, tmp_path: Path) -> None:
    produce(settings, succeeded_run("e1"))
    produce(settings, [history("ghost", 1, "ExecutionStarted", {"input": {}}), status("ghost", "RUNNING"),
                       history("e1", 5, "ExecutionFailed", {"error": "Aborted.Write"})], abort=True)
    produce(settings, [history("e2", 1, "ExecutionStarted", {"input": {}}), status("e2", "RUNNING")])

    with ReadModel(tmp_path / "rm.sqlite") as model:
        applied = asyncio.run(model.catch_up(settings, timeout=30))
        assert applied == 8
        e1 = model.describe("e1")
        assert e1 is not None
        assert (e1.status, e1.input, e1.output) == ("SUCCEEDED", {"topic": "e1"}, "done")
        assert [e["id"] for e in model.history(e1.execution_id)] == [1, 2, 3, 4]
        assert model.describe("ghost") is None  # only ever written in an aborted transaction
        assert [v.name for v in model.list(status="RUNNING")] == ["e2"]
        # The stored offsets are the end offsets, past the transaction markers.
        assert model.stored_offsets() == end_offsets(settings, [settings.topics.history, settings.topics.events])


def test_a_restart_resumes_from_the_stored_offsets(settings: KafkaSettings, tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite"
    produce(settings, succeeded_run("e1"))
    with ReadModel(path) as model:
        assert asyncio.run(model.catch_up(settings, timeout=30)) == 6

    produce(settings, succeeded_run("e2", output=2))
    with ReadModel(path) as restarted:
        assert asyncio.run(restarted.catch_up(settings, timeout=30)) == 6  # only what is new
        assert asyncio.run(restarted.catch_up(settings, timeout=30)) == 0
        assert sorted(v.name for v in restarted.list()) == ["e1", "e2"]
        assert [e["id"] for e in restarted.history(execution_id_for(MACHINE, "e1"))] == [1, 2, 3, 4]
        rows = restarted._db.execute("SELECT count(*) FROM history").fetchone()[0]
        assert rows == 8


def test_follow_keeps_the_projection_current(settings: KafkaSettings, tmp_path: Path) -> None:
    async def scenario(model: ReadModel) -> None:
        stop = asyncio.Event()
        follower = asyncio.create_task(model.follow(settings, stop, poll_interval=0.2))
        await asyncio.to_thread(produce, settings, succeeded_run("live"))
        async with asyncio.timeout(30):
            while (found := model.describe("live")) is None or found.status != "SUCCEEDED":
                if follower.done():
                    follower.result()  # raises what stopped it
                await asyncio.sleep(0.1)
        stop.set()
        await follower

    with ReadModel(tmp_path / "rm.sqlite") as model:
        asyncio.run(scenario(model))


# ------------------------------------------------------------ the CLI


def cli(command: Any, settings: KafkaSettings, *args: str, db: Path | None = None) -> Result:
    options = ["--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    if db is not None:
        options += ["--db", str(db)]
    return CliRunner().invoke(command, [*args, *options], catch_exceptions=False)


def test_start_publishes_a_start_request_keyed_by_execution_id(settings: KafkaSettings, tmp_path: Path) -> None:
    definition = tmp_path / "Story.json"
    definition.write_text(json.dumps(DEFINITION))
    result = cli(control_cli.start, settings, str(definition), "--input", '{"topic": "owls"}', "--name", "n1")
    assert result.exit_code == 0, result.output
    execution_id = execution_id_for("Story", "n1")
    assert result.stdout.strip() == execution_id

    unknown = cli(control_cli.start, settings, "Registered:prod", "--name", "n0")
    assert unknown.exit_code == 2 and "no state machine named 'Registered'" in unknown.stderr

    async def register() -> None:
        from orchestrator.registry.model import alias_routes
        from orchestrator.registry.writer import RegistryWriter

        writer = RegistryWriter(settings)
        await writer.deploy("Registered", DEFINITION, publish=True)
        await writer.set_alias("Registered", "prod", alias_routes([1], [100]))

    asyncio.run(register())
    by_name = cli(control_cli.start, settings, "Registered:prod", "--name", "n2", "--json")
    assert by_name.exit_code == 0, by_name.output
    assert json.loads(by_name.stdout)["execution_id"] == execution_id_for("Registered:prod", "n2")

    records = {key: parse_request(value) for key, value in read_all(settings, settings.topics.start)}
    inline = records[execution_id.encode()]
    assert isinstance(inline, StartExecution)
    assert (inline.state_machine, inline.name, inline.definition, inline.input) == (
        "Story", "n1", DEFINITION, {"topic": "owls"})
    named = records[execution_id_for("Registered:prod", "n2").encode()]
    assert isinstance(named, StartExecution)
    assert (named.state_machine, named.definition) == ("Registered:prod", None)


def test_an_invalid_definition_publishes_nothing(settings: KafkaSettings, tmp_path: Path) -> None:
    definition = tmp_path / "Broken.json"
    definition.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}))
    result = cli(control_cli.start, settings, str(definition))
    assert result.exit_code == 2
    assert "$.States.A.Next" in result.stderr
    assert "nothing was started" in result.stderr
    assert read_all(settings, settings.topics.start) == []


def test_describe_history_and_list_read_the_topics(settings: KafkaSettings, tmp_path: Path) -> None:
    db = tmp_path / "rm.sqlite"
    produce(settings, [*succeeded_run("e1", output={"story": "once"}), history("e2", 1, "ExecutionStarted", {}),
                       status("e2", "RUNNING")])

    described = cli(control_cli.describe, settings, "e1", "--json", db=db)
    assert described.exit_code == 0, described.output
    view = json.loads(described.stdout)
    assert (view["status"], view["input"], view["output"]) == ("SUCCEEDED", {"topic": "e1"}, {"story": "once"})
    assert view["execution_id"] == execution_id_for(MACHINE, "e1")
    table = cli(control_cli.describe, settings, execution_id_for(MACHINE, "e1"), db=db)
    assert "SUCCEEDED" in table.stdout and '{"story": "once"}' in table.stdout

    events = json.loads(cli(control_cli.history, settings, "e1", "--json", db=db).stdout)
    assert [e["type"] for e in events] == ["ExecutionStarted", "PassStateEntered", "PassStateExited",
                                           "ExecutionSucceeded"]
    assert len({e["id"] for e in events}) == 4
    assert "PassStateEntered" in cli(control_cli.history, settings, "e1", db=db).stdout

    running = json.loads(cli(control_cli.list_executions, settings, "--status", "RUNNING", "--json", db=db).stdout)
    assert [v["name"] for v in running] == ["e2"]
    assert cli(control_cli.list_executions, settings, db=db).stdout.splitlines()[0].split()[0] == "STATUS"

    unknown = cli(control_cli.describe, settings, "nobody", db=db)
    assert unknown.exit_code == 2
    assert unknown.stderr.count("\n") == 1 and "no execution 'nobody'" in unknown.stderr


def test_stop_and_redrive_publish_requests_keyed_by_execution_id(settings: KafkaSettings, tmp_path: Path) -> None:
    db = tmp_path / "rm.sqlite"
    produce(settings, [status("running", "RUNNING"), status("failed", "FAILED", error="States.TaskFailed")])
    stopped = cli(control_cli.stop, settings, "running", "--error", "Operator", "--cause", "by hand", db=db)
    assert stopped.exit_code == 0, stopped.output
    redriven = cli(control_cli.redrive, settings, "failed", "--json", db=db)
    assert json.loads(redriven.stdout) == {"execution_id": execution_id_for(MACHINE, "failed"), "requested": "redrive"}

    refused = cli(control_cli.redrive, settings, "running", db=db)
    assert refused.exit_code == 2 and "can be redriven" in refused.stderr
    assert cli(control_cli.stop, settings, "failed", db=db).exit_code == 2  # already ended

    requests = {key: parse_request(value) for key, value in read_all(settings, settings.topics.start)}
    assert len(requests) == 2
    stop = requests[execution_id_for(MACHINE, "running").encode()]
    assert isinstance(stop, StopExecution) and (stop.error, stop.cause) == ("Operator", "by hand")
    assert isinstance(requests[execution_id_for(MACHINE, "failed").encode()], RedriveExecution)


def test_start_wait_returns_the_terminal_status(settings: KafkaSettings, tmp_path: Path) -> None:
    definition = tmp_path / "Story.json"
    definition.write_text(json.dumps(DEFINITION))
    execution_id = execution_id_for("Story", "waited")
    # A separate process, as a user runs it, so this test can play the orchestrator meanwhile.
    process = subprocess.Popen(
        [sys.executable, "-c", "from orchestrator.cli.control import start; start()", str(definition),
         "--name", "waited", "--wait", "--timeout", "60", "--json",
         "--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        _wait_for_start_request(settings, execution_id, process)
        other = status("other", "FAILED", error="X")  # another execution's end is not ours
        ours = ExecutionStatus(execution_id=execution_id, state_machine="Story", name="waited", status="SUCCEEDED",
                               output={"story": "the end"})
        produce(settings, [status("waited-running", "RUNNING"), other, ours])
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert json.loads(stdout) == {"execution_id": execution_id, "status": "SUCCEEDED",
                                  "output": {"story": "the end"}, "error": None, "cause": None}


def _wait_for_start_request(settings: KafkaSettings, execution_id: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(key == execution_id.encode() for key, _ in read_all(settings, settings.topics.start)):
            return
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.2)
    raise AssertionError("start --wait did not publish its start request")
