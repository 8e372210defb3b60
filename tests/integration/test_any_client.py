"""Records from any Kafka client reach their execution, with three orchestrator instances.

Clients built on librdkafka (confluent-kafka for Python, Go and .NET, node-rdkafka, kcat) place a
keyed record by crc32 of its key (`consistent_random`), not by Java's murmur2, and an unkeyed one
at random: such records land on partitions another instance owns. Executions are started by
confluent-kafka (keyed, its default partitioner) and by kcat (no key), then decided by
`baton review approve` and by a raw record holding only the task token (no execution id, no key):
every execution completes exactly once and nothing is dead-lettered. The README's kcat/console
producer example is run as it is written."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from infra.local_kafka import default_paths
from kafka_io import KafkaSettings
from orchestrator.cli import main
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.base import encode
from schemas.executions import StartExecution, execution_id_for
from steps.fn.service import fn_service
from tests.integration.runtime_support import RuntimeClient

STEPS = "tests.integration.steps_for_tests"
ROOT = Path(__file__).resolve().parents[2]
APPROVAL = {"StartAt": "Review", "States": {"Review": {
    "Type": "Task", "Resource": "baton:fn:request_approval.waitForTaskToken",
    "Parameters": {"token.$": "$$.Task.Token"}, "ResultPath": "$.review", "End": True}}}

# Skipped only off CI: under CI (scripts/bootstrap installs kcat) a missing kcat fails, never skips.
needs_kcat = pytest.mark.skipif(shutil.which("kcat") is None and not os.environ.get("CI"),
                                reason="kcat is not installed (scripts/bootstrap installs it)")


@contextlib.asynccontextmanager
async def instances(kafka: KafkaSettings, count: int) -> AsyncIterator[list[Orchestrator]]:
    """`count` orchestrators in one group and a fn step service, until each owns a partition."""
    stop = asyncio.Event()
    group = [Orchestrator(kafka, OrchestratorSettings(instance_id=f"o{i}", metrics_port=None)) for i in range(count)]
    tasks = [asyncio.create_task(o.run(stop)) for o in group]
    try:
        async with fn_service([STEPS], settings=kafka):
            for _ in range(400):
                if all(o.ready.is_set() and o.owned for o in group) and sum(len(o.owned) for o in group) == 3:
                    break
                await asyncio.sleep(0.1)
            assert all(o.owned for o in group), [o.owned for o in group]
            yield group
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def _librdkafka(kafka: KafkaSettings) -> Producer:
    return Producer({"bootstrap.servers": kafka.kafka_bootstrap})  # its default partitioner


def _kcat(kafka: KafkaSettings, topic: str, value: bytes) -> None:
    subprocess.run(["kcat", "-P", "-b", kafka.kafka_bootstrap, "-t", topic], input=value + b"\n",
                   check=True, timeout=30)


@needs_kcat
def test_starts_and_decisions_from_librdkafka_clients_complete_exactly_once(kafka: KafkaSettings) -> None:
    async def scenario() -> None:
        producer = _librdkafka(kafka)
        async with instances(kafka, 3) as group, RuntimeClient(kafka) as client:
            ids = []
            for n in range(12):
                name = uuid.uuid4().hex[:12]
                execution_id = execution_id_for("approval", name)
                start = encode(StartExecution(execution_id=execution_id, state_machine="approval", name=name,
                                              definition=APPROVAL, input={"n": n}))
                if n % 2 == 0:
                    producer.produce(kafka.topics.start, start, key=execution_id.encode())
                else:
                    await asyncio.to_thread(_kcat, kafka, kafka.topics.start, start)  # no key
                ids.append(execution_id)
            assert producer.flush(30) == 0
            tokens: dict[str, str] = {}
            for _ in range(150):
                tokens = {c.execution_id: c.task_token for c in await client.commands()
                          if c.execution_id in ids and c.task_token}
                if len(tokens) == len(ids):
                    break
                await asyncio.sleep(0.2)
            assert len(tokens) == len(ids)
            for n, execution_id in enumerate(ids):
                if n % 2 == 0:  # SendTaskSuccess with the token alone, unkeyed
                    producer.produce(kafka.topics.review_decisions, json.dumps(
                        {"task_token": tokens[execution_id], "outcome": "success", "output": {"by": "token"}}))
                else:
                    result = await asyncio.to_thread(
                        CliRunner().invoke, main,
                        ["review", "approve", tokens[execution_id], "--output", '{"by": "cli"}',
                         "--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix])
                    assert result.exit_code == 0, result.output
            assert producer.flush(30) == 0
            outcomes = await client.wait(ids, timeout=60)
            assert [outcomes[e].status for e in ids] == ["SUCCEEDED"] * 12
            assert [outcomes[e].output["review"]["by"] for e in ids] == ["token", "cli"] * 6
            history = await client.history()
            assert all([e["type"] for e in history[x]].count("TaskSucceeded") == 1 for x in ids)
            assert await client.dead_letters() == []
            moved = sum(o.metrics.ignored.labels("forwarded_to_home_partition")._value.get() for o in group)
            assert moved > 0  # records did land off their execution's partition, and were moved

    asyncio.run(scenario())


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- any-client-example -->\n```bash\n(.*?)```", text, re.S)
    assert block, "the README's any-client example is missing"
    return block.group(1)


@needs_kcat
def test_the_readme_example_for_other_clients_runs_as_written(kafka: KafkaSettings, tmp_path: Path) -> None:
    """Start with kcat (no key), stop with Kafka's console producer, read the statuses with kcat."""
    console = tmp_path / "kafka-console-producer.sh"
    console.write_text('#!/bin/sh\nexec java -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.ConsoleProducer "$@"\n')
    console.chmod(0o755)
    script = _readme_example().replace("from-kcat", f"from-kcat-{uuid.uuid4().hex[:8]}")

    async def scenario() -> None:
        async with instances(kafka, 1):
            env = {**os.environ, "BROKER": kafka.kafka_bootstrap, "PREFIX": kafka.topic_prefix,
                   "CONSOLE_PRODUCER": str(console), "KAFKA_LIBS": str(default_paths().libs)}
            done = await asyncio.to_thread(subprocess.run, ["bash", "-euo", "pipefail", "-c", script], env=env,
                                           capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            status = json.loads(done.stdout.strip().splitlines()[-1])
            assert (status["status"], status["error"], status["input"]) == ("ABORTED", "Operator.Stop", {"who": "kcat"})

    asyncio.run(scenario())
