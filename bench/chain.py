"""W1-style chain: executions of 10 sequential no-op Task states through the real runtime.

    python -m bench.chain [--executions 500] [--in-flight 50] [--steps 10]

Starts the local broker if needed, provisions a fresh topic prefix, runs `baton orchestrator`
and `baton step fn` as separate processes (as they are deployed), publishes executions keeping
`--in-flight` of them running, and reports executions/s and state transitions/s, with the raw
Kafka produce->consume round trip on the same broker as the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.harness import chain
from infra.local_kafka import ensure_up
from kafka_io import KafkaSettings, new_consumer, new_producer
from orchestrator.client import BatonClient
from orchestrator.runtime.topics import ensure_topics
from schemas.executions import ExecutionStatus, execution_id_for, parse_execution_event

ROOT = Path(__file__).resolve().parents[1]


async def kafka_round_trip(settings: KafkaSettings, samples: int = 200) -> dict[str, float]:
    """Baseline: produce one record and consume it back, on the same broker (ms)."""
    topic = settings.topics.dlq  # any provisioned topic of the run's own prefix
    producer = new_producer(settings, idempotent=False, linger_ms=0)
    consumer = new_consumer(settings, topic, group_id=f"bench-rt-{uuid.uuid4().hex[:6]}",
                            isolation_level="read_uncommitted", auto_commit=True, auto_offset_reset="latest")
    await producer.start()
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=1000)
        times = []
        for i in range(samples):
            started = time.perf_counter()
            await producer.send_and_wait(topic, b"x", key=str(i).encode())
            while not any((await consumer.getmany(timeout_ms=1000)).values()):
                pass
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return {"p50_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99) - 1]}
    finally:
        await producer.stop()
        await consumer.stop()


async def drive(settings: KafkaSettings, executions: int, in_flight: int, steps: int) -> dict[str, Any]:
    definition = chain(steps)
    client = BatonClient(settings, idempotent=False, producer_options={"linger_ms": 2})
    watcher = new_consumer(settings, settings.topics.events, group_id=f"bench-{uuid.uuid4().hex[:6]}",
                           auto_commit=True, auto_offset_reset="earliest")
    await client.open()
    await watcher.start()
    done: dict[str, float] = {}
    started_at: dict[str, float] = {}
    try:
        # Warm-up: one execution end to end before timing.
        await _start(client, definition, "warmup", started_at)
        await _collect(watcher, {execution_id_for("bench", "warmup")}, done)
        next_index = 0
        begin = time.perf_counter()
        while len(done) - 1 < executions:
            while next_index < executions and next_index - (len(done) - 1) < in_flight:
                await _start(client, definition, f"e{next_index}", started_at)
                next_index += 1
            await client.flush()
            await _collect(watcher, None, done, timeout_ms=200)
        elapsed = time.perf_counter() - begin
    finally:
        await client.close()
        await watcher.stop()
    latencies = sorted((done[e] - started_at[e]) * 1000 for e in done if e in started_at and "warmup" not in e)
    return {
        "executions": executions,
        "in_flight": in_flight,
        "steps": steps,
        "seconds": round(elapsed, 2),
        "executions_per_s": round(executions / elapsed, 1),
        "transitions_per_s": round(executions * steps / elapsed, 1),
        "execution_latency_p50_ms": round(statistics.median(latencies), 1),
        "execution_latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
    }


async def _start(client: BatonClient, definition: dict[str, Any], name: str, started_at: dict[str, float]) -> None:
    started_at[execution_id_for("bench", name)] = time.perf_counter()
    await client.start("bench", definition=definition, name=name, input={"n": name}, acked=False)


async def _collect(watcher: AIOKafkaConsumer, wanted: set[str] | None, done: dict[str, float],
                   timeout_ms: int = 1000) -> None:
    deadline = time.monotonic() + 120
    while True:
        batch = await watcher.getmany(timeout_ms=timeout_ms)
        for records in batch.values():
            for record in records:
                status = parse_execution_event(record.value)
                if not isinstance(status, ExecutionStatus):
                    continue  # an ExecutionExpired (BATON_RETENTION): not a status
                if status.status != "RUNNING":
                    if status.status != "SUCCEEDED":
                        raise RuntimeError(f"{status.execution_id} ended {status.status}: {status.error}")
                    done[status.execution_id] = time.perf_counter()
        if wanted is None or wanted <= set(done):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("executions did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    broker = ensure_up()
    broker_seconds = time.perf_counter() - started
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    settings = KafkaSettings(kafka_bootstrap=broker.bootstrap, topic_prefix=prefix)
    asyncio.run(ensure_topics(settings))
    env = dict(os.environ, PYTHONPATH=str(ROOT), BATON_KAFKA_BOOTSTRAP=broker.bootstrap, BATON_TOPIC_PREFIX=prefix)
    baton = [sys.executable, "-m", "orchestrator.cli"]
    processes = [
        subprocess.Popen([*baton, "orchestrator", "--metrics-port", "0"], env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([*baton, "step", "fn", "--module", "bench.steps", "--metrics-port", "0"], env=env,
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        baseline = asyncio.run(kafka_round_trip(settings))
        result = asyncio.run(drive(settings, args.executions, args.in_flight, args.steps))
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
    per_task_ms = 1000 / result["transitions_per_s"] * args.in_flight
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "broker": {"bootstrap": broker.bootstrap, "started_here": broker.started_here,
                   "ready_seconds": round(broker_seconds, 2)},
        "kafka_round_trip": {k: round(v, 2) for k, v in baseline.items()},
        "chain": result,
        "per_task_ms_at_this_concurrency": round(per_task_ms, 1),
        "per_task_over_round_trip_p50": round(per_task_ms / baseline["p50_ms"], 1),
    }
    print(json.dumps(report, indent=2))
    if broker.started_here:
        from infra.local_kafka import stop

        stop(broker)


if __name__ == "__main__":
    main()
