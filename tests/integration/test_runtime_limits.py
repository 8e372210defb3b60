"""No single execution can stop the orchestrator (issue 15), on the real broker, through the start
topic: an oversized input, a loop of Pass/Choice states that never waits, a chain of 10,000 states,
and a record Kafka refuses. Each poison execution ends FAILED with AWS's error name or is
dead-lettered with the reason; none vanishes; normal executions started after them succeed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from kafka_io import KafkaSettings
from schemas.base import decode
from schemas.executions import StartExecution
from tests.integration.runtime_support import RuntimeClient, read_all
from tests.integration.test_orchestrator import SEQUENCE, running

ONE_PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
LOOP = {"StartAt": "Again", "States": {
    "Again": {"Type": "Pass", "Next": "Check"},
    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.never", "IsPresent": True, "Next": "Done"}],
              "Default": "Again"},
    "Done": {"Type": "Succeed"}}}


def chain(length: int) -> dict[str, Any]:
    states: dict[str, Any] = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(length - 1)}
    states[f"S{length - 1}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "S0", "States": states}


def test_poison_executions_fail_alone_and_the_orchestrator_goes_on(kafka: KafkaSettings) -> None:
    async def scenario() -> None:
        async with running(kafka) as orchestrator, RuntimeClient(kafka) as client:
            big = await client.start(ONE_PASS, {"text": "x" * 900_000})  # a 900 KB start record
            over = await client.start(ONE_PASS, {"text": "x" * 300_000})  # over the 256 KiB quota
            at_quota = await client.start(ONE_PASS, {"t": "x" * (256 * 1024 - len('{"t":""}'))})
            loop = await client.start(LOOP, {})
            long_chain = await client.start(chain(10_000), {"n": 1})
            began = time.monotonic()
            normal = [await client.start(SEQUENCE, {}) for _ in range(5)]
            outcomes = await client.wait([big, over, at_quota, loop, long_chain, *normal], timeout=120)
            assert all(outcomes[e].status == "SUCCEEDED" for e in normal), [outcomes[e] for e in normal]
            for execution_id in (big, over):
                assert (outcomes[execution_id].status, outcomes[execution_id].error) == (
                    "FAILED", "States.DataLimitExceeded")
                assert outcomes[execution_id].input is None
            assert outcomes[at_quota].status == "SUCCEEDED"
            assert (outcomes[loop].status, outcomes[loop].error) == ("FAILED", "States.Runtime")
            assert "maximum number of events" in (outcomes[loop].cause or "")
            assert (outcomes[long_chain].status, outcomes[long_chain].output) == ("SUCCEEDED", {"n": 1})
            # The normal executions were not held up behind the loop and the chain for long.
            assert time.monotonic() - began < 100
            history = await client.history()
            for execution_id in (loop, long_chain):
                ids = [e["id"] for e in history[execution_id]]
                assert ids == list(range(1, len(ids) + 1))  # one history, across many records
            assert 25_000 <= len(history[loop]) <= 25_010
            assert len(history[long_chain]) == 2 + 2 * 10_000
            started = history[big][0]
            assert started["type"] == "ExecutionStarted"
            assert started["executionStartedEventDetails"]["inputDetails"] == {"truncated": True}
            assert orchestrator.metrics.registry.get_sample_value(
                "baton_dead_letters_total", {"reason": "internal_error"}) is None

    asyncio.run(scenario())


async def _set_max_message_bytes(settings: KafkaSettings, topic: str, value: int) -> None:
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  {"max.message.bytes": str(value)})])
    finally:
        await admin.close()


def test_a_record_kafka_refuses_is_isolated_and_dead_lettered(kafka: KafkaSettings) -> None:
    """The history topic's record size is lowered under a running orchestrator (which read it at
    start): the broker refuses the transaction holding a 5 KB input's history. The orchestrator
    replays that batch a record at a time, fails the one execution whose records Kafka refuses
    (States.DataLimitExceeded) and dead-letters its start with the reason; the others commit.
    Every offset of the start topic is either applied or dead-lettered."""
    async def scenario() -> None:
        async with running(kafka), RuntimeClient(kafka) as client:
            warm = await client.start(ONE_PASS, {})
            await client.wait([warm], timeout=30)
            await _set_max_message_bytes(kafka, kafka.topics.history, 3000)
            await asyncio.sleep(1.0)
            before = [await client.start(ONE_PASS, {"i": i}) for i in range(3)]
            poison = await client.start(ONE_PASS, {"text": "x" * 5000})
            after = [await client.start(ONE_PASS, {"i": i}) for i in range(3, 6)]
            outcomes = await client.wait([*before, poison, *after], timeout=60)
            assert all(outcomes[e].status == "SUCCEEDED" for e in before + after)
            assert (outcomes[poison].status, outcomes[poison].error) == ("FAILED", "States.DataLimitExceeded")
            letters = await client.dead_letters()
            refused = [d for d in letters if d.reason.startswith("refused_by_kafka")]
            assert [d.execution_id for d in refused] == [poison]
            # Every start offset: applied (its execution has a history) or dead-lettered.
            history = await client.history()
            dead = {(d.partition, d.offset) for d in letters if d.source_topic == kafka.topics.start}
            for record in await read_all(kafka, kafka.topics.start):
                request = decode(StartExecution, record.value)
                assert request.execution_id in history or (record.partition, record.offset) in dead, record.offset
            late = await client.start(SEQUENCE, {})
            assert (await client.wait([late], timeout=30))[late].status == "SUCCEEDED"

    asyncio.run(scenario())
