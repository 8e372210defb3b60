"""The orchestrator's on-disk state stores on a real broker: a restart on the same host reads only
the state topic's tail after each store's checkpoint; without its stores (a new host, or the
folder deleted) it rebuilds them from the whole topic; a garbage or foreign store file is
detected, said in one log line, and rebuilt, never used. Executions parked across each restart
finish exactly once."""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
from pathlib import Path

import pytest

from kafka_io import KafkaSettings
from orchestrator.runtime.store import PartitionStore, StoreIdentity
from tests.integration.runtime_support import RuntimeClient, eventually
from tests.integration.test_orchestrator import running

ECHO = {"StartAt": "Echo", "States": {"Echo": {"Type": "Task", "Resource": "baton:fn:echo", "End": True}}}
# Parked across the restarts, then finished by its timer (the timer index is rebuilt from the store).
PARKED = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 12, "Next": "Echo"},
                                      "Echo": {"Type": "Task", "Resource": "baton:fn:echo", "End": True}}}
FINISHED, PARKED_COUNT = 30, 20


def stores(state_dir: Path) -> list[Path]:
    return sorted(state_dir.rglob("*.sqlite"))


def test_restarts_use_the_checkpoint_or_rebuild(kafka: KafkaSettings, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="baton.orchestrator")
    state_dir = tmp_path / "state"

    async def scenario() -> None:
        async with RuntimeClient(kafka) as client:
            async with running(kafka, state_dir=state_dir) as first:
                done = [await client.start(ECHO, {"i": i}) for i in range(FINISHED)]
                assert {s.status for s in (await client.wait(done)).values()} == {"SUCCEEDED"}
                parked = [await client.start(PARKED, {"p": i}) for i in range(PARKED_COUNT)]
                await eventually(lambda: _true(first.executions.count() == FINISHED + PARKED_COUNT))
            files = stores(state_dir)
            assert len(files) == kafka.partitions

            caplog.clear()  # same host: every store is used from its checkpoint, no record read again
            async with running(kafka, state_dir=state_dir) as again:
                assert again.executions.count() == FINISHED + PARKED_COUNT
                assert again.running == PARKED_COUNT and len(again.timers) == PARKED_COUNT
                assert again.last_restore_records == 0
            assert caplog.text.count("from its checkpoint") == kafka.partitions
            assert "not used" not in caplog.text

            # Bad input: a garbage file and a store of another partition in place of two stores.
            files[0].write_bytes(b"this is not a database" * 100)
            for suffix in ("-wal", "-shm"):
                Path(f"{files[0]}{suffix}").unlink(missing_ok=True)
            shutil.copy(files[2], files[1])
            caplog.clear()
            async with running(kafka, state_dir=state_dir) as repaired:
                assert repaired.executions.count() == FINISHED + PARKED_COUNT
                assert repaired.last_restore_records > 0
            warnings = [r.getMessage() for r in caplog.records if "not used" in r.getMessage()]
            assert len(warnings) == 2, warnings
            assert any("unreadable" in w and files[0].name in w for w in warnings), warnings
            assert any("it is a store of partition '2', not '1'" in w for w in warnings), warnings

            shutil.rmtree(state_dir)  # a new host: everything from the topic
            caplog.clear()
            async with running(kafka, state_dir=state_dir) as rebuilt:
                assert rebuilt.executions.count() == FINISHED + PARKED_COUNT
                assert rebuilt.last_restore_records >= FINISHED + PARKED_COUNT
                statuses = await client.wait(parked, timeout=60)
                assert {s.status for s in statuses.values()} == {"SUCCEEDED"}
            assert caplog.text.count("is new: building it") == kafka.partitions

            # Exactly once across all of it: one start and one end per execution, one command per task.
            history = await client.history()
            for execution_id in done + parked:
                types = collections.Counter(event["type"] for event in history[execution_id])
                assert types["ExecutionStarted"] == 1 and types["ExecutionSucceeded"] == 1, (execution_id, types)
            commands = collections.Counter(c.execution_id for c in await client.commands())
            assert set(commands.values()) == {1} and len(commands) == FINISHED + PARKED_COUNT
            assert await client.dead_letters() == []

    asyncio.run(scenario())


def test_a_checkpoint_beyond_the_topic_is_not_trusted(kafka: KafkaSettings, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A store whose checkpoint the topic does not reach (the topic was recreated, or the store
    comes from elsewhere with the same names) is rebuilt."""
    caplog.set_level(logging.INFO, logger="baton.orchestrator")
    state_dir = tmp_path / "state"

    async def scenario() -> None:
        async with RuntimeClient(kafka) as client:
            async with running(kafka, state_dir=state_dir):
                ids = [await client.start(ECHO, {"i": i}) for i in range(5)]
                await client.wait(ids)
            for path in stores(state_dir):
                store = PartitionStore(path, StoreIdentity("", 0, ""))
                store.write((), {}, checkpoint=10**9)
                store.close()
            caplog.clear()
            async with running(kafka, state_dir=state_dir) as again:
                assert again.executions.count() == 5
            assert caplog.text.count("is outside the topic's offsets") == kafka.partitions

    asyncio.run(scenario())


async def _true(value: bool) -> bool:
    return value
