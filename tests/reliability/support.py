"""Shared checks of the reliability tests: drive W1-style chains and verify histories."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Callable
from typing import Any

from bench.harness import Client, Deployment, chain, histories, read_topic
from kafka_io import KafkaSettings
from schemas.base import decode
from schemas.steps import StepCommand

STEPS = 10


async def drive_with_faults(deployment: Deployment, executions: int, in_flight: int,
                            faults: list[tuple[float, Callable[[], None]]], tag: str,
                            timeout: float = 170,
                            client_type: Callable[[KafkaSettings], Client] = Client) -> list[str]:
    """Run `executions` 10-step chains keeping `in_flight` running; each fault (fraction,
    action) fires once that fraction of the executions has been started, right after the start,
    so executions are always in flight when it fires. (Counting finished ones instead let a fault
    slip past the end when the last batch of executions completed within one poll.) Returns the
    ids."""
    definition = chain(STEPS)
    pending = sorted(faults, key=lambda f: f[0])
    async with client_type(deployment.settings) as client:
        ids: list[str] = []
        deadline = time.monotonic() + timeout
        while len(ids) < executions or not set(ids) <= client.done.keys():
            finished = len(set(ids) & client.done.keys())
            while len(ids) < executions and len(ids) - finished < in_flight:
                ids.append(await client.start(definition, f"{tag}-{len(ids)}"))
                if pending and len(ids) >= pending[0][0] * executions:
                    await client.flush()  # the starts so far are in Kafka when it fires
                    while pending and len(ids) >= pending[0][0] * executions:
                        pending.pop(0)[1]()
            await client.flush()
            await client.poll(100)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{executions - finished} of {executions} executions unfinished")
        assert not pending, "a fault did not fire: every execution finished first"
        for i, execution_id in enumerate(ids):
            assert client.outcomes[execution_id].output == {"n": f"{tag}-{i}"}, execution_id
    return ids


async def check_exactly_once(deployment: Deployment, ids: list[str]) -> dict[str, int]:
    """One history event per transition (ids 1..N, no duplicates), every state entered, scheduled
    and succeeded once; exactly one committed step command per Task."""
    history = await histories(deployment.settings)
    events = 0
    for execution_id in ids:
        hist = history[execution_id]
        numbers = [e["id"] for e in hist]
        assert numbers == list(range(1, len(numbers) + 1)), f"{execution_id}: ids {numbers}"
        types = collections.Counter(e["type"] for e in hist)
        assert types["ExecutionStarted"] == 1 and types["ExecutionSucceeded"] == 1, (execution_id, types)
        assert types["TaskScheduled"] == STEPS and types["TaskSucceeded"] == STEPS, (execution_id, types)
        assert types["TaskStateEntered"] == STEPS and types["TaskStateExited"] == STEPS, (execution_id, types)
        events += len(hist)
    commands = collections.Counter()
    wanted = set(ids)
    for record in await read_topic(deployment.settings, deployment.settings.topics.commands("fn")):
        command = decode(StepCommand, record.value)
        if command.execution_id in wanted:
            commands[(command.execution_id, command.state_name)] += 1
    assert len(commands) == len(ids) * STEPS, f"{len(commands)} distinct commands for {len(ids)} executions"
    doubled = {k: n for k, n in commands.items() if n != 1}
    assert not doubled, f"commands committed more than once: {list(doubled.items())[:5]}"
    return {"executions": len(ids), "history_events": events, "commands": sum(commands.values())}


def random_moments(rng: random.Random, count: int, low: float = 0.1, high: float = 0.85) -> list[float]:
    return sorted(rng.uniform(low, high) for _ in range(count))


def run(coro: Any) -> Any:
    return asyncio.run(coro)
