"""The orchestrator's state stores without a broker: a store keeps executions and its checkpoint
across reopening; a garbage, foreign or tampered file is refused with the reason (and replaced by
an empty store); the executions mapping reads pending decisions over the stores and drops a
pending entry only once the object written is still the newest decided."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from orchestrator.asl.model import StateMachine, parse_definition
from orchestrator.registry.model import definition_hash
from orchestrator.runtime.executions import Executions
from orchestrator.runtime.store import Execution, PartitionStore, StoreCorrupt, StoreIdentity, to_row
from orchestrator.runtime.translate import Pin

DEFINITION = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
DIGEST = definition_hash(DEFINITION)
MACHINE = parse_definition(DEFINITION)
IDENTITY = StoreIdentity("p.executions.state", 0, "cluster-a")


def execution(status: str = "RUNNING", closed_at: float | None = None, partition: int = 0,
              timers: tuple[tuple[float, str], ...] = ()) -> Execution:
    return Execution("Story", DEFINITION, MACHINE, b"packed", status, partition, Pin(2, "live", DIGEST), timers,
                     closed_at)


def lookup(digest: str, load: Any) -> tuple[dict[str, Any], StateMachine]:
    assert load() == b'{"definition": true}'  # what `write` stored for it
    return DEFINITION, MACHINE


def test_a_store_keeps_its_executions_and_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store, reason = PartitionStore.open(path, IDENTITY)
    assert reason is None and store.checkpoint is None
    store.write([("a", to_row("a", execution())), ("b", to_row("b", execution("SUCCEEDED", 5.0)))],
                {DIGEST: b"{}"}, checkpoint=42, positions={"p.executions.start": 7})
    store.write([("a", None)], {}, checkpoint=43)
    store.close()
    again, reason = PartitionStore.open(path, IDENTITY)
    assert reason is None and again.checkpoint == 43 and again.positions == {"p.executions.start": 7}
    assert again.get("a") is None and again.get("b") is not None and again.count() == 1
    assert again.closed_before(10.0, 5) == [(5.0, "b")] and again.count(running_only=True) == 0


@pytest.mark.parametrize("identity, why", [
    (StoreIdentity("p.executions.state", 1, "cluster-a"), "it is a store of partition '0', not '1'"),
    (StoreIdentity("q.executions.state", 0, "cluster-a"), "it is a store of state_topic 'p.executions.state'"),
    (StoreIdentity("p.executions.state", 0, "cluster-b"), "it is a store of cluster_id 'cluster-a'"),
])
def test_a_foreign_store_is_refused_and_replaced(tmp_path: Path, identity: StoreIdentity, why: str) -> None:
    path = tmp_path / "s.sqlite"
    store, _ = PartitionStore.open(path, IDENTITY)
    store.write([("a", to_row("a", execution()))], {DIGEST: b"{}"}, checkpoint=1)
    store.close()
    replaced, reason = PartitionStore.open(path, identity)
    assert reason is not None and reason.startswith(why)
    assert replaced.count() == 0 and replaced.checkpoint is None and replaced.mismatch() is None


def test_garbage_and_tampered_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "g.sqlite"
    garbage.write_bytes(b"\x00not a database\xff" * 500)
    store, reason = PartitionStore.open(garbage, IDENTITY)
    assert reason is not None and reason.startswith("unreadable") and store.count() == 0

    tampered = tmp_path / "t.sqlite"
    store, _ = PartitionStore.open(tampered, IDENTITY)
    store.write((), {}, checkpoint=5)
    store.close()
    with sqlite3.connect(tampered) as db:
        db.execute("UPDATE meta SET value = '4' WHERE key = 'checkpoint'")
    _, reason = PartitionStore.open(tampered, IDENTITY)
    assert reason == "its meta data fails its checksum"


def test_pending_decisions_read_over_the_stores(tmp_path: Path) -> None:
    executions = Executions(tmp_path, lookup, lambda e: b'{"definition": true}')
    executions.open(IDENTITY)
    executions.open(StoreIdentity("p.executions.state", 1, "cluster-a"))
    first = execution(timers=((100.0, "t1"),))
    executions["a"] = first
    executions["c"] = execution(partition=1)
    batch = dict(executions.pending)
    newer = execution("SUCCEEDED", closed_at=7.0)
    executions["a"] = newer  # the next batch decided again while the first committed
    executions.write(batch, {0: 10, 1: 3})
    assert executions.pending == {"a": (0, newer)}  # still ahead of its store
    assert executions["a"] is newer and executions["c"].pin == Pin(2, "live", DIGEST)
    assert executions.running() == 1 and executions.count() == 2
    assert list(executions.timers()) == []  # the store still has a's timer; the newer decision has none
    assert executions.closes(10.0, 5) == [(7.0, "a")]
    executions.write({"a": (0, newer)}, {0: 11})
    assert executions.pending == {} and executions.closes(10.0, 5) == [(7.0, "a")]
    del executions["a"]
    assert "a" not in executions and sorted(executions) == ["c"]
    assert executions.stores[0].checkpoint == 11 and executions.stores[1].checkpoint == 3


def test_a_store_damaged_inside_is_deleted_when_a_read_finds_it(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A damaged page passes the checks at open (header, meta); the read that meets it deletes
    the file with one log line and raises StoreCorrupt, so the next start rebuilds it."""
    path = tmp_path / "s.sqlite"
    store, _ = PartitionStore.open(path, IDENTITY)
    rows = [(f"id{i}", to_row(f"id{i}", execution())) for i in range(2000)]
    store.write(rows, {DIGEST: b"{}"}, checkpoint=5)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(path.read_bytes())
    for offset in range(8192, len(data) - 4096, 4096 * 3):  # every third page after the first two
        data[offset:offset + 4096] = bytes(range(256)) * 16
    path.write_bytes(bytes(data))
    damaged, reason = PartitionStore.open(path, IDENTITY)
    assert reason is None  # not seen at open
    with pytest.raises(StoreCorrupt):
        for i in range(2000):
            damaged.get(f"id{i}")
    assert not path.exists()
    assert [r.getMessage() for r in caplog.records if "is corrupt" in r.getMessage()][0].startswith(
        f"state store {path} is corrupt (database disk image is malformed): deleted")
