"""The orchestrator against a real Kafka broker: executions end to end with the real `fn` step
service, the same outputs as the local runner, callbacks, poison messages and duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any


from kafka_io import KafkaSettings
from orchestrator.asl.model import parse_definition
from orchestrator.local.runner import TaskResolver, run_execution
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.base import encode
from schemas.review import ReviewDecision
from schemas.steps import StepResult
from schemas.tokens import TokenSigner
from steps.fn.service import fn_service
from steps.sdk import load_steps
from tests.integration.runtime_support import RuntimeClient

STEPS = "tests.integration.steps_for_tests"



@contextlib.asynccontextmanager
async def running(kafka: KafkaSettings, instance: str = "o1", **settings: Any) -> AsyncIterator[Orchestrator]:
    """An orchestrator and a fn step service, both on the real broker, for the block's duration."""
    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id=instance, metrics_port=None, **settings))
    task = asyncio.create_task(orchestrator.run(stop))
    try:
        async with fn_service([STEPS], settings=kafka):
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            yield orchestrator
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def task(name: str, **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": f"baton:fn:{name}", **fields}


SEQUENCE = {"StartAt": "Prepare", "States": {
    "Prepare": {"Type": "Pass", "Result": {"a": 2, "b": 3}, "ResultPath": "$.pair", "Next": "Add"},
    "Add": task("add", InputPath="$.pair", ResultPath="$.sum", Next="Echo"),
    "Echo": task("echo", ResultSelector={"total.$": "$.sum.sum"}, End=True)}}
CHOICE = {"StartAt": "Route", "States": {
    "Route": {"Type": "Choice", "Choices": [
        {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
        {"And": [{"Variable": "$.tag", "IsPresent": True}, {"Variable": "$.tag", "StringMatches": "vip*"}],
         "Next": "Vip"}], "Default": "Small"},
    "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.route", "End": True},
    "Vip": task("echo", ResultPath="$.echoed", End=True),
    "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.route", "End": True}}}
PARALLEL = {"StartAt": "Fan", "States": {"Fan": {"Type": "Parallel", "Branches": [
    {"StartAt": "A", "States": {"A": task("add", Parameters={"a.$": "$.x", "b": 1}, End=True)}},
    {"StartAt": "B", "States": {"B": task("echo", End=True)}},
    {"StartAt": "C", "States": {"C": {"Type": "Pass", "Result": "c", "End": True}}}],
    "ResultSelector": {"sum.$": "$[0].sum", "echo.$": "$[1]", "c.$": "$[2]"}, "End": True}}}
MAP = {"StartAt": "Each", "States": {"Each": {
    "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
    "ItemSelector": {"a.$": "$$.Map.Item.Value", "b.$": "$$.Map.Item.Index"},
    "ItemProcessor": {"StartAt": "Add", "States": {"Add": task("add", End=True)}}, "End": True}}}
WAIT = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 1, "Next": "Echo"},
                                     "Echo": task("echo", End=True)}}
RETRY_THEN_CATCH = {"StartAt": "Draft", "States": {
    "Draft": task("flaky", Parameters={"retry.$": "$$.State.RetryCount"}, ResultPath="$.draft",
                  Retry=[{"ErrorEquals": ["Model.Throttled"], "IntervalSeconds": 1, "BackoffRate": 1.5,
                          "MaxAttempts": 3}], Next="Polish"),
    "Polish": task("overloaded", Retry=[{"ErrorEquals": ["ModelOverloaded"], "IntervalSeconds": 1,
                                        "MaxAttempts": 1}],
                   Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Fallback"}],
                   Next="Done"),
    "Fallback": task("echo", ResultSelector={"model": "small", "draft.$": "$.draft"}, End=True),
    "Done": {"Type": "Succeed"}}}

CASES = [
    ("sequence", SEQUENCE, {}),
    ("choice-big", CHOICE, {"n": 11}),
    ("choice-vip", CHOICE, {"n": 1, "tag": "vip-gold"}),
    ("choice-default", CHOICE, {"n": 1}),
    ("parallel", PARALLEL, {"x": 41}),
    ("map", MAP, {"items": [10, 20, 30, 40, 50]}),
    ("wait", WAIT, {"slept": True}),
    ("retry-then-catch", RETRY_THEN_CATCH, {"topic": "kafka"}),
]


def test_executions_match_the_local_runner(kafka: KafkaSettings) -> None:
    """Each definition completes on Kafka with the same status and output as `baton execute`."""

    async def scenario() -> None:
        resolver = TaskResolver(steps=load_steps([STEPS]))
        expected = {}
        for label, definition, execution_input in CASES:
            local = await run_execution(parse_definition(definition), execution_input, resolver=resolver)
            expected[label] = (local.status, local.output, local.error)
        async with running(kafka), RuntimeClient(kafka) as client:
            ids = {label: await client.start(definition, execution_input, name=label)
                   for label, definition, execution_input in CASES}
            outcomes = await client.wait(list(ids.values()), timeout=60)
        for label, execution_id in ids.items():
            got = outcomes[execution_id]
            assert (got.status, got.output, got.error) == expected[label], label
        assert outcomes[ids["retry-then-catch"]].output == {
            "model": "small", "draft": {"ok": True, "attempts": 3}}
        assert outcomes[ids["map"]].output == [{"sum": 10}, {"sum": 21}, {"sum": 32}, {"sum": 43}, {"sum": 54}]

    asyncio.run(scenario())


def test_callback_task_resumes_on_a_signed_decision(kafka: KafkaSettings) -> None:
    """`.waitForTaskToken`: the execution waits until a decision with its token arrives; a forged
    token is refused (DLQ), and so is a replayed one, which changes nothing."""
    definition = {"StartAt": "Review", "States": {
        "Review": task("request_approval.waitForTaskToken",
                       Parameters={"draft.$": "$.draft", "token.$": "$$.Task.Token"}, ResultPath="$.review",
                       HeartbeatSeconds=60, End=True)}}

    async def scenario() -> None:
        async with running(kafka) as orchestrator, RuntimeClient(kafka) as client:
            execution_id = await client.start(definition, {"draft": "v1"})
            commands = []
            for _ in range(50):
                commands = [c for c in await client.commands() if c.execution_id == execution_id]
                if commands:
                    break
                await asyncio.sleep(0.2)
            token = commands[0].task_token
            assert token and commands[0].parameters["token"] == token
            forged = TokenSigner(b"not-the-orchestrators-secret!").sign(execution_id, commands[0].task_id)
            await client.publish(kafka.topics.review_decisions, encode(ReviewDecision(
                execution_id=execution_id, task_token=forged, outcome="success", output={"approved": True})),
                execution_id.encode())
            decision = ReviewDecision(execution_id=execution_id, task_token=token, outcome="success",
                                      output={"approved": True, "by": "ana"})
            await client.publish(kafka.topics.review_decisions, encode(decision), execution_id.encode())
            outcome = (await client.wait([execution_id], timeout=30))[execution_id]
            assert outcome.status == "SUCCEEDED"
            assert outcome.output == {"draft": "v1", "review": {"approved": True, "by": "ana"}}
            await client.publish(kafka.topics.review_decisions, encode(decision), execution_id.encode())  # replay
            await asyncio.sleep(1.0)
            letters = await client.dead_letters()
            assert sorted(d.reason.split(":")[0] for d in letters) == ["invalid_task_token", "stale_task_token"]
            history = (await client.history())[execution_id]
            assert [e["type"] for e in history].count("TaskSucceeded") == 1
            # The wait for the decision is measured (the replay was refused, so it counts once).
            assert orchestrator.metrics.registry.get_sample_value("baton_review_wait_seconds_count") == 1

    asyncio.run(scenario())


def test_poison_messages_go_to_the_dlq_and_processing_continues(kafka: KafkaSettings) -> None:
    async def scenario() -> None:
        async with running(kafka), RuntimeClient(kafka) as client:
            topics = kafka.topics
            await client.publish(topics.start, b"{not json", b"x")
            await client.publish(topics.start, b'{"kind": "start", "schema_version": 99, "execution_id": "x"}', b"x")
            await client.publish(topics.results, encode(StepResult(
                execution_id="arn:baton:states:local:execution:test:ghost", task_id="t", kind="succeeded")),
                b"arn:baton:states:local:execution:test:ghost")
            await client.publish(topics.review_decisions, b"\x00\x01binary", None)
            invalid = {"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "End": True}}}
            await client.start(invalid, {})
            execution_id = await client.start(SEQUENCE, {})
            outcome = (await client.wait([execution_id], timeout=30))[execution_id]
            assert outcome.status == "SUCCEEDED"
            reasons = sorted(d.reason.split(":")[0] for d in await client.dead_letters())
            assert reasons == ["invalid_definition", "unknown_execution", "unparseable", "unparseable",
                               "unparseable"]
            letter = next(d for d in await client.dead_letters() if d.reason.startswith("invalid_definition"))
            assert "$.StartAt" in letter.reason and letter.value_b64

    asyncio.run(scenario())


def test_duplicate_results_and_starts_are_ignored(kafka: KafkaSettings) -> None:
    definition = {"StartAt": "Slow", "States": {"Slow": task("slow", End=True)}}

    async def scenario() -> None:
        async with running(kafka) as orchestrator, RuntimeClient(kafka) as client:
            execution_id = await client.start(definition, {"seconds": 0.1}, name="once")
            await client.start(definition, {"seconds": 0.1}, name="once")  # a retried start
            await client.wait([execution_id], timeout=30)
            command = next(c for c in await client.commands() if c.execution_id == execution_id)
            duplicate = StepResult(execution_id=execution_id, task_id=command.task_id, kind="succeeded",
                                   output={"late": True})
            await client.publish(kafka.topics.results, encode(duplicate), execution_id.encode())
            await asyncio.sleep(1.0)
            history = (await client.history())[execution_id]
            types = [e["type"] for e in history]
            assert types.count("ExecutionStarted") == 1 and types.count("TaskSucceeded") == 1
            assert [e["id"] for e in history] == list(range(1, len(history) + 1))
            succeeded = next(e for e in history if e["type"] == "TaskSucceeded")
            # What the step service reported about the work is recorded with the outcome.
            assert succeeded["taskSucceededEventDetails"]["metadata"]["duration_ms"] >= 100
            ignored = orchestrator.metrics.ignored
            assert ignored.labels("duplicate_start")._value.get() == 1
            assert ignored.labels("stale_or_duplicate_result")._value.get() >= 1

    asyncio.run(scenario())


def test_stop_and_redrive(kafka: KafkaSettings) -> None:
    """StopExecution aborts a waiting execution; RedriveExecution restarts a failed one from the
    failed state (the states before it are not run again)."""
    waiting = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 600, "End": True}}}
    flaky_once = {"StartAt": "First", "States": {
        "First": task("add", Parameters={"a": 1, "b": 2}, ResultPath="$.first", Next="Second"),
        "Second": task("flaky", Parameters={"retry.$": "$.retry"}, ResultPath="$.second", End=True)}}

    async def scenario() -> None:
        from schemas.executions import RedriveExecution, StopExecution

        async with running(kafka), RuntimeClient(kafka) as client:
            parked = await client.start(waiting, {})
            failing = await client.start(flaky_once, {"retry": 0})
            await asyncio.sleep(1.0)
            await client.publish(kafka.topics.start, encode(StopExecution(
                execution_id=parked, error="Operator.Stop", cause="no longer needed")), parked.encode())
            outcomes = await client.wait([parked, failing], timeout=30)
            assert outcomes[parked].status == "ABORTED" and outcomes[parked].error == "Operator.Stop"
            assert outcomes[failing].status == "FAILED" and outcomes[failing].error == "Model.Throttled"
            client.outcomes.clear()
            await client.publish(kafka.topics.start, encode(RedriveExecution(execution_id=parked)), parked.encode())
            # The failed state reads $.retry: redrive it with the same input, so it fails again,
            # but only after re-running "Second", never "First".
            await client.publish(kafka.topics.start, encode(RedriveExecution(execution_id=failing)),
                                 failing.encode())
            again = await client.wait([failing], timeout=30)
            assert again[failing].status == "FAILED" and again[failing].redrive_count == 1
            histories = await client.history()
            parked_types = [e["type"] for e in histories[parked]]
            assert parked_types[-3:] == ["ExecutionAborted", "ExecutionRedriven", "WaitStateEntered"]
            history = histories[failing]
            types = [e["type"] for e in history]
            assert "ExecutionRedriven" in types
            entered = [e["taskStateEnteredEventDetails"]["name"] for e in history if e["type"] == "TaskStateEntered"]
            assert entered == ["First", "Second", "Second"]

    asyncio.run(scenario())


def test_metrics_are_served(kafka: KafkaSettings) -> None:
    """The orchestrator's Prometheus metrics count what happened."""
    async def scenario() -> None:
        async with running(kafka) as orchestrator, RuntimeClient(kafka) as client:
            execution_id = await client.start(SEQUENCE, {})
            await client.wait([execution_id], timeout=30)
            from prometheus_client import generate_latest

            text = generate_latest(orchestrator.metrics.registry).decode()
            assert re.search(r"^baton_executions_started_total(\{[^}]*\})? 1\.0$", text, re.M), text
            assert re.search(r'^baton_executions_finished_total\{[^}]*status="SUCCEEDED"[^}]*\} 1\.0$', text, re.M)
            assert re.search(r"^baton_state_transitions_total(\{[^}]*\})? 3\.0$", text, re.M)

    asyncio.run(scenario())


def test_a_commit_interval_gathers_events_into_fewer_transactions(kafka: KafkaSettings) -> None:
    """commit_interval_ms: each transaction waits that long for more events, so 40 one-Task
    executions started one by one share a handful of transactions; every one still completes."""
    definition = {"StartAt": "Add", "States": {"Add": task("add", Parameters={"a.$": "$.i", "b": 1}, End=True)}}

    async def scenario() -> None:
        async with running(kafka, commit_interval_ms=200) as orchestrator, RuntimeClient(kafka) as client:
            ids = []
            for i in range(40):  # one at a time, as a trickle
                ids.append(await client.start(definition, {"i": i}, name=f"e{i}"))
                await client.producer.flush()
                await asyncio.sleep(0.01)
            outcomes = await client.wait(ids, timeout=60)
            assert [outcomes[e].output for e in ids] == [{"sum": i + 1} for i in range(40)]
            batches = orchestrator.metrics.batch_events
            transactions = sum(bucket.get() for bucket in batches._buckets)
            events = batches._sum.get()
            # 80 events (40 starts, 40 results); at 200 ms apiece they share few transactions.
            assert events >= 80 and transactions <= events / 4, (transactions, events)

    asyncio.run(scenario())
