"""The in-memory test bus: a step service's real code on FastStream's in-memory broker, and the
client publishing into a list. Fast checks of the shells' logic with no Kafka (the broker tests
in tests/integration make every claim about delivery and recovery)."""

from __future__ import annotations

import asyncio

import pytest

from kafka_io import KafkaSettings
from orchestrator.client import BatonClient, InvalidName
from orchestrator.client.testing import RecordingProducer
from orchestrator.quotas import QuotaExceeded
from orchestrator.settings import Quotas
from schemas.executions import RedriveExecution, StartExecution, StopExecution, execution_id_for
from schemas.steps import StepCommand
from steps.fn.service import fn_service
from steps.testing import InMemoryStepService

STEPS = "tests.integration.steps_for_tests"
SETTINGS = KafkaSettings(topic_prefix="memory")


def command(task_id: str, resource: str, parameters: object) -> StepCommand:
    return StepCommand(execution_id="exec-1", task_id=task_id, service="fn", resource=resource, parameters=parameters)


def test_a_step_service_answers_commands_on_the_in_memory_bus() -> None:
    async def scenario() -> None:
        async with InMemoryStepService(fn_service([STEPS], settings=SETTINGS)) as bus:
            result = await bus.run(command("t1", "baton:fn:add", {"a": 2, "b": 3}))
            assert result.kind == "succeeded" and result.output == {"sum": 5} and result.execution_id == "exec-1"
            failed = await bus.run(command("t2", "baton:fn:overloaded", {}))
            assert failed.kind == "failed" and failed.error == "ModelOverloaded"
            assert "overloaded" in (failed.cause or "")
            missing = await bus.run(command("t3", "baton:fn:nope", {}))
            assert missing.kind == "failed"

    asyncio.run(scenario())


def test_a_duplicate_command_republishes_the_result_without_running_again() -> None:
    async def scenario() -> None:
        service = fn_service([STEPS], settings=SETTINGS)
        async with InMemoryStepService(service) as bus:
            first = await bus.run(command("dup", "baton:fn:add", {"a": 1, "b": 1}))
            await bus.send(command("dup", "baton:fn:add", {"a": 1, "b": 1}))
            async with asyncio.timeout(5):
                while len([r for r in bus.results if r.task_id == "dup"]) < 2:
                    await asyncio.sleep(0.01)
            again = [r for r in bus.results if r.task_id == "dup"][1]
            assert again.output == first.output and again.id == first.id  # the remembered record itself
            outcomes = service.metrics.results.labels("fn", "duplicate")._value.get()
            assert outcomes == 1

    asyncio.run(scenario())


def test_a_bad_record_is_dead_lettered_and_the_service_goes_on() -> None:
    async def scenario() -> None:
        async with InMemoryStepService(fn_service([STEPS], settings=SETTINGS)) as bus:
            await bus.send(b"not json at all", key=b"exec-9")
            letter = await bus.dead_letter(0)
            assert letter.source_topic == SETTINGS.topics.commands("fn") and letter.reason
            after = await bus.run(command("t4", "baton:fn:echo", {"still": "alive"}))
            assert after.output == {"still": "alive"}

    asyncio.run(scenario())


def test_the_client_publishes_one_keyed_record_per_request() -> None:
    async def scenario() -> None:
        producer = RecordingProducer()
        async with BatonClient(SETTINGS, producer=producer) as client:
            definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
            execution_id = await client.start("inline", definition=definition, input={"x": 1}, name="run-1")
            await client.stop(execution_id, error="Halt", cause="by a test")
            await client.redrive(execution_id)
        assert execution_id == execution_id_for("inline", "run-1")
        start, stop, redrive = producer.on(SETTINGS.topics.start)
        assert {start.key, stop.key, redrive.key} == {execution_id.encode()}  # one partition per execution
        started = start.decoded(StartExecution)
        assert started.name == "run-1" and started.input == {"x": 1} and started.definition == definition
        assert stop.decoded(StopExecution).error == "Halt"
        assert redrive.decoded(RedriveExecution).execution_id == execution_id

    asyncio.run(scenario())


def test_the_client_refuses_bad_requests_before_publishing() -> None:
    async def scenario() -> None:
        producer = RecordingProducer()
        async with BatonClient(SETTINGS, producer=producer, quotas=Quotas(max_payload_bytes=1024)) as client:
            definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
            with pytest.raises(QuotaExceeded):
                await client.start("inline", definition=definition, input={"text": "x" * 2000})
            with pytest.raises(InvalidName):
                await client.start("inline", definition=definition, name="has space")
        assert producer.records == []

    asyncio.run(scenario())
