"""Records from any Kafka client reach their execution with more than one orchestrator instance.

Clients built on librdkafka (confluent-kafka for Python, Go and .NET, node-rdkafka, kcat) place a
keyed record by crc32 of its key, not by Java's murmur2, and an unkeyed one at random: with two
instances such records land on partitions another instance owns. Here 12 executions are started as
such a client would (half keyed and placed by crc32, half unkeyed on a random partition), then half
decided by a raw record holding only the task token (no execution id, no key, random partition) and
half by a full decision placed by crc32: all 12 succeed, each decided exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
import zlib
from collections.abc import AsyncIterator

import json
from aiokafka import AIOKafkaProducer

from kafka_io import KafkaSettings
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.base import encode
from schemas.executions import StartExecution, execution_id_for
from steps.fn.service import fn_service
from tests.integration.runtime_support import RuntimeClient

STEPS = "tests.integration.steps_for_tests"
APPROVAL = {"StartAt": "Review", "States": {"Review": {
    "Type": "Task", "Resource": "baton:fn:request_approval.waitForTaskToken",
    "Parameters": {"token.$": "$$.Task.Token"}, "ResultPath": "$.review", "End": True}}}


@contextlib.asynccontextmanager
async def two_instances(kafka: KafkaSettings) -> AsyncIterator[list[Orchestrator]]:
    stop = asyncio.Event()
    instances = [Orchestrator(kafka, OrchestratorSettings(instance_id=f"o{i}", metrics_port=None)) for i in (1, 2)]
    tasks = [asyncio.create_task(o.run(stop)) for o in instances]
    try:
        async with fn_service([STEPS], settings=kafka):
            for _ in range(300):  # until both own partitions (the group has rebalanced)
                if all(o.ready.is_set() and o.owned for o in instances) and sum(len(o.owned) for o in instances) == 3:
                    break
                await asyncio.sleep(0.1)
            assert all(o.owned for o in instances), [o.owned for o in instances]
            yield instances
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def crc32_partition(key: str, partitions: int = 3) -> int:
    return zlib.crc32(key.encode()) % partitions


def test_records_from_a_librdkafka_client_find_their_execution(kafka: KafkaSettings) -> None:
    rng = random.Random(7)

    async def scenario() -> None:
        producer = AIOKafkaProducer(**kafka.client_options())
        await producer.start()
        try:
            async with two_instances(kafka) as instances, RuntimeClient(kafka) as client:
                ids = []
                for n in range(12):
                    name = uuid.uuid4().hex[:12]
                    execution_id = execution_id_for("approval", name)
                    start = StartExecution(execution_id=execution_id, state_machine="approval", name=name,
                                           definition=APPROVAL, input={"n": n})
                    keyed = n % 2 == 0
                    await producer.send_and_wait(
                        kafka.topics.start, encode(start), key=execution_id.encode() if keyed else None,
                        partition=crc32_partition(execution_id) if keyed else rng.randrange(3))
                    ids.append(execution_id)
                tokens: dict[str, str] = {}
                for _ in range(150):
                    tokens = {c.execution_id: c.task_token for c in await client.commands()
                              if c.execution_id in ids and c.task_token}
                    if len(tokens) == len(ids):
                        break
                    await asyncio.sleep(0.2)
                assert len(tokens) == len(ids)
                for n, execution_id in enumerate(ids):
                    if n % 2 == 0:  # only the token: SendTaskSuccess needs nothing else
                        value = json.dumps({"task_token": tokens[execution_id], "outcome": "success",
                                            "output": {"by": "token"}}).encode()
                        await producer.send_and_wait(kafka.topics.review_decisions, value, key=None,
                                                     partition=rng.randrange(3))
                    else:
                        value = json.dumps({"execution_id": execution_id, "task_token": tokens[execution_id],
                                            "outcome": "success", "output": {"by": "full"}}).encode()
                        await producer.send_and_wait(kafka.topics.review_decisions, value,
                                                     key=execution_id.encode(),
                                                     partition=crc32_partition(execution_id))
                outcomes = await client.wait(ids, timeout=60)
                assert [outcomes[e].status for e in ids] == ["SUCCEEDED"] * 12
                assert [outcomes[e].output["review"]["by"] for e in ids] == ["token", "full"] * 6
                history = await client.history()
                assert all([e["type"] for e in history[x]].count("TaskSucceeded") == 1 for x in ids)
                assert not [d for d in await client.dead_letters()]
                moved = sum(o.metrics.ignored.labels("forwarded_to_home_partition")._value.get() for o in instances)
                assert moved > 0  # some records did land elsewhere, and were moved
        finally:
            await producer.stop()

    asyncio.run(scenario())
