"""Crash and scale-out: the orchestrator as a real process, killed with SIGKILL or stopped, on a
real broker. Nothing is lost or doubled: every execution completes and its history has exactly
one event per transition (ids 1..N, no duplicates, no gaps)."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


from kafka_io import KafkaSettings
from steps.fn.service import fn_service
from tests.integration.runtime_support import RuntimeClient

STEPS = "tests.integration.steps_for_tests"
ROOT = Path(__file__).resolve().parents[2]

# Parallel of two slow branches, then a Map of three slow items: many transitions in flight.
FAN = {"StartAt": "Both", "States": {
    "Both": {"Type": "Parallel", "ResultPath": "$.both", "Next": "Each", "Branches": [
        {"StartAt": "L", "States": {"L": {"Type": "Task", "Resource": "baton:fn:slow", "End": True}}},
        {"StartAt": "R", "States": {"R": {"Type": "Task", "Resource": "baton:fn:add",
                                          "Parameters": {"a.$": "$.i", "b": 1}, "End": True}}}]},
    "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.mapped",
             "ItemSelector": {"seconds.$": "$.seconds", "item.$": "$$.Map.Item.Value"},
             "ItemProcessor": {"StartAt": "S", "States": {
                 "S": {"Type": "Task", "Resource": "baton:fn:slow", "OutputPath": "$.item", "End": True}}},
             "End": True}}}



class OrchestratorProcess:
    """`baton orchestrator` as a separate OS process, so it can really be killed."""

    def __init__(self, kafka: KafkaSettings, instance: str, log: Path) -> None:
        self.command = [sys.executable, "-m", "orchestrator.cli", "orchestrator", "--instance-id", instance,
                        "--metrics-port", "0", "--bootstrap", kafka.kafka_bootstrap,
                        "--topic-prefix", kafka.topic_prefix]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restore_times(self) -> list[float]:
        return [float(x) for x in re.findall(r"restored in ([0-9.]+)s", self.log.read_text(errors="replace"))]


def expected_output(i: int) -> dict[str, Any]:
    execution_input = start_input(i)
    return {**execution_input, "both": [execution_input, {"sum": i + 1}], "mapped": execution_input["items"]}


def start_input(i: int) -> dict[str, Any]:
    return {"i": i, "seconds": 0.5, "items": [i, i + 1, i + 2]}


def assert_well_formed(history: dict[str, list[dict[str, Any]]], execution_ids: list[str]) -> None:
    """Exactly one history event per transition: ids 1..N in order, one start, one end."""
    for execution_id in execution_ids:
        events = history[execution_id]
        ids = [e["id"] for e in events]
        assert ids == list(range(1, len(ids) + 1)), f"{execution_id}: ids {ids}"
        types = collections.Counter(e["type"] for e in events)
        assert types["ExecutionStarted"] == 1 and types["ExecutionSucceeded"] == 1, execution_id
        # Parallel: 2 tasks, Map: 3 tasks, each scheduled and succeeded exactly once.
        assert types["TaskScheduled"] == 5 and types["TaskSucceeded"] == 5, (execution_id, types)
        assert types["MapIterationSucceeded"] == 3, execution_id


def test_kill_9_mid_run_loses_and_doubles_nothing(kafka: KafkaSettings, tmp_path: Path) -> None:
    count = 200
    first = OrchestratorProcess(kafka, "crash-1", tmp_path / "orchestrator.log")

    async def scenario() -> None:
        async with fn_service([STEPS], settings=kafka), RuntimeClient(kafka) as client:
            first.start()
            ids = [await client.start(FAN, start_input(i), name=f"e{i}") for i in range(count)]
            await client.producer.flush()
            # Kill once some executions are done and the rest are in flight.
            deadline = time.monotonic() + 90
            while len(await _finished(client, ids)) < count // 10:
                assert time.monotonic() < deadline, "no execution finished before the kill"
            done_before = len(client.outcomes)
            first.kill()
            assert done_before < count, "every execution finished before the kill: nothing was tested"
            before_restart = len(first.log.read_text(errors="replace"))
            first.start()  # the same instance id: fences the dead producer, aborts its open transaction
            outcomes = await client.wait(ids, timeout=180)
            assert {o.status for o in outcomes.values()} == {"SUCCEEDED"}
            assert all(outcomes[e].output == expected_output(i) for i, e in enumerate(ids))
            assert_well_formed(await client.history(), ids)
            # It resumed exactly where the last transaction left each input partition (recorded in
            # the state topic): nothing committed before the kill was read twice.
            after = first.log.read_text(errors="replace")[before_restart:]
            assert re.search(r"[1-9][0-9]* input partitions resumed at recorded positions", after), after[-2000:]
            assert "no longer awaited" not in after, after[-2000:]
            print(f"\nkilled with {count - done_before} of {count} in flight; "
                  f"restore times {first.restore_times()}")

    try:
        asyncio.run(scenario())
    finally:
        first.terminate()


def test_two_instances_share_partitions_and_hand_over(kafka: KafkaSettings, tmp_path: Path) -> None:
    count = 100
    a = OrchestratorProcess(kafka, "scale-a", tmp_path / "a.log")
    b = OrchestratorProcess(kafka, "scale-b", tmp_path / "b.log")

    async def scenario() -> None:
        async with fn_service([STEPS], settings=kafka), RuntimeClient(kafka) as client:
            a.start()
            b.start()
            ids = [await client.start(FAN, start_input(i), name=f"s{i}") for i in range(count)]
            await client.producer.flush()
            deadline = time.monotonic() + 90
            while len(await _finished(client, ids)) < count // 10:
                assert time.monotonic() < deadline, "no execution finished"
            a.terminate()  # a clean stop: its partitions move to b
            outcomes = await client.wait(ids, timeout=180)
            assert {o.status for o in outcomes.values()} == {"SUCCEEDED"}
            assert_well_formed(await client.history(), ids)
        log_a, log_b = a.log.read_text(errors="replace"), b.log.read_text(errors="replace")
        assert "assigned partitions" in log_a and "assigned partitions" in log_b
        # b ends up owning all three partitions after a leaves.
        assert re.search(r"assigned partitions \[0, 1, 2\]", log_b), log_b[-2000:]

    try:
        asyncio.run(scenario())
    finally:
        a.terminate()
        b.terminate()


async def _finished(client: RuntimeClient, ids: list[str]) -> set[str]:
    try:
        await client.wait(ids, timeout=0.1)
    except TimeoutError:
        pass
    return set(client.outcomes) & set(ids)


def test_timers_survive_a_kill(kafka: KafkaSettings, tmp_path: Path) -> None:
    """Wait and retry back-off timers live in the execution state: after SIGKILL and a restart
    they are re-armed from the state topic and fire (none lost, none fired twice)."""
    definition = {"StartAt": "Nap", "States": {
        "Nap": {"Type": "Wait", "Seconds": 3, "Next": "Try"},
        "Try": {"Type": "Task", "Resource": "baton:fn:flaky", "Parameters": {"retry.$": "$$.State.RetryCount"},
                "Retry": [{"ErrorEquals": ["Model.Throttled"], "IntervalSeconds": 2, "MaxAttempts": 3}],
                "End": True}}}
    process = OrchestratorProcess(kafka, "timers-1", tmp_path / "orchestrator.log")

    async def scenario() -> None:
        async with fn_service([STEPS], settings=kafka), RuntimeClient(kafka) as client:
            process.start()
            ids = [await client.start(definition, {}, name=f"t{i}") for i in range(20)]
            await client.producer.flush()
            started = time.monotonic()
            histories: dict[str, list[dict[str, Any]]] = {}
            while sum(1 for e in ids if histories.get(e)) < len(ids):  # all parked in the Wait
                assert time.monotonic() - started < 30
                histories = await client.history()
            process.kill()
            await asyncio.sleep(1.0)
            process.start()
            outcomes = await client.wait(ids, timeout=90)
            assert {o.output["attempts"] for o in outcomes.values()} == {3}
            histories = await client.history()
            for execution_id in ids:
                types = [e["type"] for e in histories[execution_id]]
                assert types.count("WaitStateExited") == 1 and types.count("TaskScheduled") == 3, types
                assert [e["id"] for e in histories[execution_id]] == list(range(1, len(types) + 1))

    try:
        asyncio.run(scenario())
    finally:
        process.terminate()
