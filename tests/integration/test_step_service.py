"""The step-service base and the `fn` service against the real broker.

Each test provisions its own topics (unique prefix), runs a service in-process and talks to it
only through Kafka: commands in, results and dead letters out. The @step functions the `fn`
service loads are defined in this module; `CALLS` records their side effects.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from kafka_io import KafkaSettings
from schemas.base import encode
from schemas.dlq import DeadLetter
from schemas.steps import StepCommand, StepResult
from steps.fn.service import fn_service
from steps.sdk import StepFailed, step
from steps.sdk.handler import Pending, StepHandler
from steps.service import StepService

T = TypeVar("T")
SCENARIO_TIMEOUT_S = 20.0
WAIT_S = 8.0  # for one expected message
COMMAND_PARTITIONS = 3
REPO_ROOT = Path(__file__).resolve().parents[2]

CALLS: Counter[str] = Counter()


# --- the steps the fn service runs ---------------------------------------------------------------


@step("add")
async def add(payload: dict[str, int]) -> dict[str, int]:
    CALLS["add"] += 1
    return {"sum": payload["a"] + payload["b"]}


@step("boom")
async def boom(payload: Any) -> Any:
    raise ValueError("bad input")


@step("refuse")
async def refuse(payload: Any) -> Any:
    raise StepFailed("Custom.Refused", "not today")


@step("slow")
async def slow(payload: dict[str, float]) -> str:
    CALLS["slow.started"] += 1
    try:
        await asyncio.sleep(payload["seconds"])
    except asyncio.CancelledError:
        CALLS["slow.cancelled"] += 1
        raise
    CALLS["slow.finished"] += 1
    return "done"


@step("big")
async def big(payload: dict[str, int]) -> str:
    return "x" * payload["size"]


@step("first_run_hangs")
async def first_run_hangs(payload: Any) -> str:
    CALLS["first_run_hangs"] += 1
    if CALLS["first_run_hangs"] == 1:
        await asyncio.sleep(60)
    return "second run"


# --- harness -------------------------------------------------------------------------------------


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT_S)

    return asyncio.run(bounded())


class Wire:
    """The test's side of Kafka: publish commands, read results and dead letters."""

    def __init__(self, settings: KafkaSettings, service: str) -> None:
        self.topics = settings.topics
        self.commands_topic = self.topics.commands(service)
        self.bootstrap = settings.kafka_bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        self.results = self._reader(self.topics.results)
        self.dlq = self._reader(self.topics.dlq)
        self.seen: list[StepResult] = []

    def _reader(self, topic: str) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        consumer.assign([TopicPartition(topic, 0)])
        return consumer

    async def start(self) -> None:
        for client in (self.producer, self.results, self.dlq):
            await client.start()

    async def stop(self) -> None:
        for client in (self.producer, self.results, self.dlq):
            await client.stop()

    async def send(self, command: StepCommand) -> None:
        await self.producer.send_and_wait(self.commands_topic, encode(command), key=command.execution_id.encode())

    async def send_raw(self, value: bytes, key: bytes) -> None:
        await self.producer.send_and_wait(self.commands_topic, value, key=key)

    async def result(self, task_id: str, kind: str | None = None, timeout: float = WAIT_S) -> StepResult:
        """The next result (of `kind`, default: final) for a task not already returned."""
        kinds = {kind} if kind else {"succeeded", "failed"}

        def match() -> StepResult | None:
            for index, result in enumerate(self.seen):
                if result.task_id == task_id and result.kind in kinds:
                    return self.seen.pop(index)
            return None

        async with asyncio.timeout(timeout):
            while (found := match()) is None:
                await self.read(0.2)
        return found

    async def read(self, seconds: float) -> None:
        batches = await self.results.getmany(timeout_ms=int(seconds * 1000))
        for records in batches.values():
            self.seen += [StepResult.model_validate_json(r.value) for r in records if r.value]

    async def quiet_for(self, task_id: str, seconds: float) -> list[StepResult]:
        """Every result of a task that arrives within `seconds` (expected: none)."""
        await self.read(seconds)
        return [r for r in self.seen if r.task_id == task_id]

    async def dead_letter(self, timeout: float = WAIT_S) -> DeadLetter:
        async with asyncio.timeout(timeout):
            while True:
                batches = await self.dlq.getmany(timeout_ms=200, max_records=1)
                for records in batches.values():
                    return DeadLetter.model_validate_json(records[0].value)


async def with_admin(bootstrap: str, use: Callable[[AIOKafkaAdminClient], Awaitable[T]]) -> T:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return await use(admin)
    finally:
        await admin.close()


async def create_topics(settings: KafkaSettings, service: str) -> None:
    topics = settings.topics

    async def create(admin: AIOKafkaAdminClient) -> None:
        response: Any = await admin.create_topics([
            NewTopic(topics.commands(service), num_partitions=COMMAND_PARTITIONS, replication_factor=1),
            NewTopic(topics.results, num_partitions=1, replication_factor=1),
            NewTopic(topics.dlq, num_partitions=1, replication_factor=1),
        ])
        errors = [(name, code) for name, code, *_ in response.topic_errors if code != 0]
        assert not errors, f"create_topics failed: {errors}"

    await with_admin(settings.kafka_bootstrap, create)


async def delete_topics(settings: KafkaSettings) -> None:
    async def delete(admin: AIOKafkaAdminClient) -> None:
        ours = [name for name in await admin.list_topics() if name.startswith(f"{settings.topic_prefix}.")]
        if ours:
            await admin.delete_topics(ours)

    await with_admin(settings.kafka_bootstrap, delete)


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> KafkaSettings:
    CALLS.clear()
    return KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix.rstrip("."))


@asynccontextmanager
async def running(settings: KafkaSettings, make: Callable[[], StepService]) -> AsyncIterator[tuple[StepService, Wire]]:
    """Topics, a started service and the test's wire; everything is stopped and deleted after."""
    service = make()
    await create_topics(settings, service.service)
    wire = Wire(settings, service.service)
    try:
        await wire.start()
        async with service:
            yield service, wire
    finally:
        await wire.stop()
        await delete_topics(settings)


def fn(settings: KafkaSettings) -> Callable[[], StepService]:
    return lambda: fn_service([__name__], settings=settings, drain_seconds=1.0)


def command(resource: str, parameters: Any = None, **fields: Any) -> StepCommand:
    execution = fields.pop("execution_id", f"exec-{uuid.uuid4().hex[:8]}")
    return StepCommand(execution_id=execution, task_id=fields.pop("task_id", uuid.uuid4().hex),
                       service="fn", resource=resource, parameters=parameters, **fields)


async def committed_offsets(settings: KafkaSettings, group: str, topic: str) -> tuple[int, int]:
    """(committed, end) offsets of a group on a topic, summed over partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(COMMAND_PARTITIONS)]
        committed = [await consumer.committed(tp) or 0 for tp in partitions]
        ends = await consumer.end_offsets(partitions)
        return sum(committed), sum(ends.values())
    finally:
        await consumer.stop()


# --- fn: outcomes --------------------------------------------------------------------------------


def test_fn_answers_success_failures_lambda_invoke_and_unknown_functions(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        async with running(settings, fn(settings)) as (service, wire):
            ok = command("baton:fn:add", {"a": 2, "b": 3})
            crash = command("baton:fn:boom", {})
            refused = command("arn:aws:lambda:us-east-1:123456789012:function:refuse", {})
            invoke = command("arn:aws:states:::lambda:invoke",
                             {"FunctionName": "arn:aws:lambda:us-east-1:1:function:add", "Payload": '{"a": 1, "b": 1}'})
            unknown = command("baton:fn:nope", {})
            late = command("baton:fn:slow", {"seconds": 5}, timeout_seconds=0.3)
            huge = command("baton:fn:big", {"size": 300_000})
            for each in (ok, crash, refused, invoke, unknown, late, huge):
                await wire.send(each)

            result = await wire.result(ok.task_id)
            assert (result.kind, result.output, result.execution_id) == ("succeeded", {"sum": 5}, ok.execution_id)
            assert result.metadata["duration_ms"] >= 0

            result = await wire.result(crash.task_id)
            assert (result.kind, result.error) == ("failed", "ValueError")
            assert json.loads(result.cause or "")["errorMessage"] == "bad input"

            result = await wire.result(refused.task_id)
            assert (result.kind, result.error, result.cause) == ("failed", "Custom.Refused", "not today")

            result = await wire.result(invoke.task_id)
            assert result.kind == "succeeded"
            assert result.output["Payload"] == {"sum": 2}
            assert result.output["StatusCode"] == 200

            result = await wire.result(unknown.task_id)
            assert (result.kind, result.error, result.cause) == (
                "failed", "Lambda.ResourceNotFoundException", "Function not found: nope")

            result = await wire.result(late.task_id)
            assert (result.kind, result.error) == ("failed", "States.Timeout")
            assert CALLS["slow.cancelled"] == 1

            result = await wire.result(huge.task_id)
            assert (result.kind, result.error, result.output) == ("failed", "States.DataLimitExceeded", None)

            assert service.registry.get_sample_value(
                "baton_step_results_total", {"service": "fn", "outcome": "failed"}) == 5
            assert service.registry.get_sample_value(
                "baton_step_commands_total", {"service": "fn", "kind": "run"}) == 7
            # At-least-once: every answered command's offset was committed (stop commits last).
            await service.stop()
            assert await committed_offsets(settings, service.group_id, wire.commands_topic) == (7, 7)

    run(scenario)


def test_a_duplicate_command_gets_the_remembered_result_without_running_again(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        async with running(settings, fn(settings)) as (_, wire):
            first = command("baton:fn:add", {"a": 1, "b": 2})
            await wire.send(first)
            original = await wire.result(first.task_id)
            await wire.send(first.model_copy(update={"id": uuid.uuid4().hex}))  # redelivered
            again = await wire.result(first.task_id)
            assert again == original
            assert CALLS["add"] == 1

            # A duplicate of a task still running is dropped: one result, one run.
            running_task = command("baton:fn:slow", {"seconds": 0.5})
            await wire.send(running_task)
            await wire.send(running_task)
            assert (await wire.result(running_task.task_id)).output == "done"
            assert await wire.quiet_for(running_task.task_id, 0.5) == []
            assert CALLS["slow.started"] == 1

    run(scenario)


def test_heartbeats_while_a_slow_step_runs(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        async with running(settings, fn(settings)) as (_, wire):
            slow_task = command("baton:fn:slow", {"seconds": 1.5}, heartbeat_seconds=0.4)
            await wire.send(slow_task)
            final = await wire.result(slow_task.task_id)
            assert final.output == "done"
            beats = [r for r in wire.seen if r.task_id == slow_task.task_id and r.kind == "heartbeat"]
            assert len(beats) >= 3  # every 0.2 s over 1.5 s
            assert all(beat.timestamp <= final.timestamp for beat in beats)
            assert all(beat.execution_id == slow_task.execution_id for beat in beats)

    run(scenario)


def test_a_poison_message_goes_to_the_dlq_and_the_partition_moves_on(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        async with running(settings, fn(settings)) as (service, wire):
            poison = b'{"kind": "run", "task_id": 42'
            # The same key as the next command, so both land on the same partition, in order.
            await wire.send_raw(poison, key=b"exec-poison")
            after = command("baton:fn:add", {"a": 0, "b": 1}, execution_id="exec-poison")
            await wire.send(after)

            letter = await wire.dead_letter()
            assert base64.b64decode(letter.value_b64 or "") == poison
            assert base64.b64decode(letter.key_b64 or "") == b"exec-poison"
            assert letter.execution_id == "exec-poison"
            assert letter.source_topic == wire.commands_topic
            assert letter.offset == 0 and 0 <= letter.partition < COMMAND_PARTITIONS
            assert "not a StepCommand" in letter.reason
            assert (await wire.result(after.task_id)).output == {"sum": 1}
            assert service.registry.get_sample_value(
                "baton_dlq_messages_total", {"source": "step-fn"}) == 1

    run(scenario)


def test_cancel_stops_a_slow_step(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        async with running(settings, fn(settings)) as (_, wire):
            slow_task = command("baton:fn:slow", {"seconds": 30}, heartbeat_seconds=0.4)
            await wire.send(slow_task)
            await wire.result(slow_task.task_id, kind="heartbeat")  # it is running
            await wire.send(slow_task.model_copy(update={"kind": "cancel", "id": uuid.uuid4().hex}))
            async with asyncio.timeout(WAIT_S):
                while CALLS["slow.cancelled"] == 0:
                    await asyncio.sleep(0.05)
            wire.seen.clear()
            assert [r.kind for r in await wire.quiet_for(slow_task.task_id, 0.6)] == []  # no beats, no result
            assert CALLS["slow.finished"] == 0
            # A redelivered run of the cancelled task does not run it again.
            await wire.send(slow_task)
            nxt = command("baton:fn:add", {"a": 1, "b": 1}, execution_id=slow_task.execution_id)
            await wire.send(nxt)
            assert (await wire.result(nxt.task_id)).output == {"sum": 2}
            assert CALLS["slow.started"] == 1

    run(scenario)


def test_a_task_cut_off_by_shutdown_is_redelivered_to_the_next_instance(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        make = lambda: fn_service([__name__], settings=settings, drain_seconds=0.2)  # noqa: E731
        async with running(settings, make) as (first, wire):
            task = command("baton:fn:first_run_hangs", {})
            await wire.send(task)
            async with asyncio.timeout(WAIT_S):
                while CALLS["first_run_hangs"] == 0:
                    await asyncio.sleep(0.05)
            await first.stop()  # the task outlives the drain: cancelled, its offset not committed
            async with make():
                assert (await wire.result(task.task_id)).output == "second run"
            assert CALLS["first_run_hangs"] == 2

    run(scenario)


# --- the base: .sync jobs and callbacks ----------------------------------------------------------


class JobHandler(StepHandler):
    """`.sync`: starts a job that finishes after two polls; callbacks hand their token over."""

    def __init__(self) -> None:
        self.polls: Counter[str] = Counter()
        self.tokens: list[str] = []

    async def run(self, command: StepCommand) -> Any:
        if command.resource.endswith(".waitForTaskToken"):
            if command.parameters == "fail":
                raise RuntimeError("no reviewer")
            self.tokens.append(command.task_token or "")
            return {"handed": "over"}
        return Pending(job_id=f"job-{command.task_id}", poll_after_seconds=0.2)

    async def poll(self, job_id: str) -> Any:
        self.polls[job_id] += 1
        if self.polls[job_id] < 3:
            return Pending(job_id, poll_after_seconds=0.2)
        return {"job": job_id, "polls": self.polls[job_id]}


def test_sync_jobs_are_polled_to_the_end_and_callbacks_publish_only_failures(settings: KafkaSettings) -> None:
    handler = JobHandler()

    async def scenario() -> None:
        make = lambda: StepService("jobs", handler, settings=settings, drain_seconds=1.0)  # noqa: E731
        async with running(settings, make) as (_, wire):
            job = command("baton:jobs.sync", {}, heartbeat_seconds=0.2)
            handed = command("baton:jobs.waitForTaskToken", "ok", task_token="token-1")
            refused = command("baton:jobs.waitForTaskToken", "fail", task_token="token-2")
            for each in (job, handed, refused):
                await wire.send(each)

            final = await wire.result(job.task_id)
            assert final.output == {"job": f"job-{job.task_id}", "polls": 3}
            assert [r.kind for r in wire.seen if r.task_id == job.task_id].count("heartbeat") >= 2

            failed = await wire.result(refused.task_id)
            assert (failed.kind, failed.error, failed.cause) == ("failed", "RuntimeError", "no reviewer")
            assert handler.tokens == ["token-1"]
            assert [r for r in await wire.quiet_for(handed.task_id, 0.5) if r.kind != "heartbeat"] == []

    run(scenario)


# --- the command line ----------------------------------------------------------------------------


def test_baton_step_fn_serves_until_sigterm(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        await create_topics(settings, "fn")
        wire = Wire(settings, "fn")
        await wire.start()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from orchestrator.cli.step import step; step()", "fn",
            "--module", "tests.integration.test_step_service",
            "--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix,
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        try:
            task = command("baton:fn:add", {"a": 20, "b": 22})
            await wire.send(task)
            assert (await wire.result(task.task_id, timeout=15)).output == {"sum": 42}
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 10)
            assert process.returncode == 0, stderr.decode()[-2000:]
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await wire.stop()
            await delete_topics(settings)

    run(scenario)


# --- pure parts of the base (no broker) ----------------------------------------------------------


def test_the_commit_point_is_the_oldest_offset_still_in_flight() -> None:
    from steps.bookkeeping import _Offsets

    tp = TopicPartition("commands", 0)
    offsets = _Offsets()
    for offset in (10, 11, 12):
        offsets.start(tp, offset)
    offsets.finish(tp, 11)
    assert offsets.committable() == {tp: 10}  # 10 still runs: 11 must be redone after a crash
    offsets.committed({tp: 10})
    assert offsets.committable() == {}
    offsets.finish(tp, 10)
    assert offsets.committable() == {tp: 12}
    offsets.finish(tp, 12)
    assert offsets.committable() == {tp: 13}
    offsets.forget({tp})
    assert offsets.committable() == {}


def test_remembered_results_are_bounded_in_count_and_bytes() -> None:
    from steps.bookkeeping import _Published, _Recent

    recent = _Recent(max_items=3, max_bytes=10)
    recent.put("a", _Published(b"k", b"1234"))
    recent.put("b", None)
    recent.put("c", _Published(b"k", b"5678"))
    recent.get("a")  # used: now the newest
    recent.put("d", _Published(b"k", b"90"))  # 4 entries: the oldest ("b") goes
    assert ["a" in recent, "b" in recent, "c" in recent, "d" in recent] == [True, False, True, True]
    recent.put("e", _Published(b"k", b"123"))  # 13 bytes > 10: the oldest ("c") goes
    assert "c" not in recent and "e" in recent
    recent.put("a", _Published(b"k", b"1"))  # replacing an entry releases its bytes
    assert "d" in recent
