"""`orchestrator.client.BatonClient` on the broker, against a running orchestrator: a start
waited to its end, a stop, a redrive, and the checks made before anything is published."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kafka_io import KafkaSettings
from orchestrator.client import BatonClient, InvalidName, NoOrchestrator, StateMachineNotFound
from orchestrator.quotas import QuotaExceeded
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings, Quotas
from schemas.base import decode
from schemas.executions import ExecutionStatus, execution_id_for
from tests.integration.runtime_support import eventually, read_all

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}
WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
FAIL = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "on purpose"}}}


async def _statuses(settings: KafkaSettings, execution_id: str) -> list[str]:
    statuses = []
    for record in await read_all(settings, settings.topics.events):
        try:
            status = decode(ExecutionStatus, record.value)
        except ValueError:
            continue
        if status.execution_id == execution_id:
            statuses.append(status.status)
    return statuses


def test_the_client_starts_stops_and_redrives(kafka: KafkaSettings) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="o1", metrics_port=None))
        task = asyncio.create_task(orchestrator.run(stop))
        try:
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            async with BatonClient(kafka) as client:
                started: list[str] = []
                status = await client.start_and_wait("pass", definition=PASS, input={"a": 1}, name="p1",
                                                     timeout=30, on_started=started.append)
                assert (status.status, status.output, started) == ("SUCCEEDED", {"ok": True},
                                                                   [execution_id_for("pass", "p1")])

                waiting = await client.start("wait", definition=WAIT, name="w1")
                assert waiting == execution_id_for("wait", "w1")
                await eventually(lambda: _has(kafka, waiting, "RUNNING"))
                assert await client.stop(waiting, error="Operator", cause="by the client") == waiting
                await eventually(lambda: _has(kafka, waiting, "ABORTED"))

                failing = await client.start("fail", definition=FAIL, name="f1")
                await eventually(lambda: _has(kafka, failing, "FAILED"))
                assert await client.redrive(failing) == failing
                await eventually(lambda: _count(kafka, failing, "FAILED", 2))

                with pytest.raises(StateMachineNotFound):
                    await client.start("NotRegistered", name="n1")
                with pytest.raises(InvalidName):
                    await client.start("pass", definition=PASS, name="has space")
            async with BatonClient(kafka, quotas=Quotas(max_payload_bytes=1024)) as small:
                with pytest.raises(QuotaExceeded):
                    await small.start("pass", definition=PASS, input={"text": "x" * 2000})
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    asyncio.run(scenario())


def test_a_wait_goes_on_past_the_grace_while_an_orchestrator_consumes(kafka: KafkaSettings) -> None:
    pause = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3, "End": True}}}

    async def scenario() -> None:
        async with BatonClient(kafka) as client:
            with pytest.raises(NoOrchestrator, match=f"consumer group {kafka.topic_prefix}-orchestrator had no members"):
                await client.start_and_wait("pause", definition=pause, name="alone", timeout=600,
                                            orchestrator_grace=1)
        stop = asyncio.Event()
        orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="o1", metrics_port=None))
        task = asyncio.create_task(orchestrator.run(stop))
        try:
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            async with BatonClient(kafka) as client:  # runs the pending "alone" too, then this one
                status = await client.start_and_wait("pause", definition=pause, name="served", timeout=60,
                                                     orchestrator_grace=1)
                assert status.status == "SUCCEEDED"
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    asyncio.run(scenario())


async def _has(settings: KafkaSettings, execution_id: str, status: str) -> bool:
    return status in await _statuses(settings, execution_id)


async def _count(settings: KafkaSettings, execution_id: str, status: str, count: int) -> Any:
    return (await _statuses(settings, execution_id)).count(status) >= count
