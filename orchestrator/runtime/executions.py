"""The owned executions as the engine sees them: a mapping of execution id to `Execution` over the
partition stores on disk (`orchestrator.runtime.store`), with what was decided but is not yet
written to them in RAM on top.

The engine decides the next batch while the previous one's Kafka transaction is in flight, so an
execution can be ahead of its store by up to two batches. Those are `pending`; everything else is
read from disk when an event needs it (a primary-key lookup) and not kept, so RAM holds the
working set, not every parked or closed execution. A batch's executions reach the store only
after its transaction commits (`write`); a pending entry is dropped once the object written is
still the newest decided."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.asl.model import StateMachine
from orchestrator.runtime.store import Execution, PartitionStore, Row, StoreIdentity, remove_store, to_row
from orchestrator.runtime.translate import Pin

log = logging.getLogger("baton.orchestrator")

# Definition hash, a loader of its JSON -> (the definition, its parsed machine), shared caches.
DefinitionLookup = Callable[[str, Callable[[], bytes]], tuple[dict[str, Any], StateMachine]]
# An execution -> its definition's JSON (what the definitions table keeps).
DefinitionJson = Callable[[Execution], bytes]
Pending = dict[str, tuple[int, Execution | None]]  # id -> (partition, the execution; None: removed)
_HEAD_ROWS = 64  # closed executions read ahead per store for the next expiry (`first_closes`)


class Executions:
    """execution id -> Execution: pending decisions over the open partition stores."""

    def __init__(self, directory: Path | None, lookup: DefinitionLookup, definition_json: DefinitionJson) -> None:
        self.directory = directory
        self.stores: dict[int, PartitionStore] = {}
        self.pending: Pending = {}
        self._lookup = lookup
        self._definition_json = definition_json
        self._heads: dict[int, list[tuple[float, str]]] = {}  # per store: its first closes, until written

    # ------------------------------------------------------------------ stores

    def path(self, identity: StoreIdentity) -> Path:
        assert self.directory is not None
        return self.directory / f"{identity.state_topic}-{identity.partition}.sqlite"

    def open(self, identity: StoreIdentity) -> tuple[PartitionStore, str | None]:
        """Open the partition's store (see `PartitionStore.open`); the reason an old one was discarded."""
        self.close(identity.partition)
        store, reason = PartitionStore.open(self.path(identity), identity)
        self.stores[identity.partition] = store
        return store, reason

    def rebuild(self, partition: int) -> PartitionStore:
        """Discard a partition's store for an empty one (to be filled from the whole topic)."""
        store = self.stores.pop(partition)
        store.close()
        remove_store(store.path)
        return self.open(store.identity)[0]

    def close(self, partition: int) -> None:
        store = self.stores.pop(partition, None)
        self._heads.pop(partition, None)
        if store is not None:
            store.close()

    def keep_only(self, partitions: set[int]) -> None:
        """Close the stores (and drop the pending entries) of partitions no longer owned."""
        for partition in [p for p in self.stores if p not in partitions]:
            self.close(partition)
        self.pending = {k: v for k, v in self.pending.items() if v[0] in partitions}

    def close_all(self) -> None:
        for partition in list(self.stores):
            self.close(partition)

    # ------------------------------------------------------------------ the mapping

    def get(self, execution_id: str) -> Execution | None:
        entry = self.pending.get(execution_id)
        if entry is not None:
            return entry[1]
        for store in self.stores.values():
            row = store.get(execution_id)
            if row is not None:
                return self._revive(row, store)
        return None

    def __getitem__(self, execution_id: str) -> Execution:
        execution = self.get(execution_id)
        if execution is None:
            raise KeyError(execution_id)
        return execution

    def __contains__(self, execution_id: object) -> bool:
        return isinstance(execution_id, str) and self.get(execution_id) is not None

    def __setitem__(self, execution_id: str, execution: Execution) -> None:
        self.pending[execution_id] = (execution.partition, execution)

    def remove(self, execution_id: str, partition: int) -> None:
        self.pending[execution_id] = (partition, None)

    def __delitem__(self, execution_id: str) -> None:
        self.remove(execution_id, self[execution_id].partition)

    def __iter__(self) -> Iterator[str]:
        for execution_id, (_, execution) in self.pending.items():
            if execution is not None:
                yield execution_id
        for store in self.stores.values():
            for execution_id in store.ids():
                if execution_id not in self.pending:
                    yield execution_id

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def count(self) -> int:
        """How many executions there are, counted by the stores (pending ones as the stores have them)."""
        return sum(store.count() for store in self.stores.values()) + sum(
            1 for execution_id, (_, execution) in self.pending.items() if execution is not None
            and not any(store.get(execution_id) for store in self.stores.values()))

    def running(self) -> int:
        """Executions with status RUNNING."""
        on_disk = sum(store.count(running_only=True) for store in self.stores.values())
        for execution_id, (_, execution) in self.pending.items():
            stored = next((row for store in self.stores.values() if (row := store.get(execution_id))), None)
            on_disk += (execution is not None and execution.status == "RUNNING") - (
                stored is not None and stored[2] == "RUNNING")
        return on_disk

    def clear_pending(self) -> None:
        """Forget what was decided and not written (back to what Kafka committed)."""
        self.pending.clear()

    # ------------------------------------------------------------------ writes

    def write(self, executions: Pending, checkpoints: dict[int, int],
              positions: dict[int, dict[str, int]] | None = None) -> None:
        """Write committed executions and checkpoints to their stores; drop the pending entries
        that were the newest decided (a later batch may have decided again since)."""
        by_partition: dict[int, list[tuple[str, Row | None]]] = {}
        definitions: dict[int, dict[str, bytes]] = {}
        for execution_id, (partition, execution) in executions.items():
            row = None if execution is None else to_row(execution_id, execution)
            by_partition.setdefault(partition, []).append((execution_id, row))
            if execution is not None and row is not None:
                store = self.stores.get(partition)
                if store is not None and row[7] not in store.definitions:
                    definitions.setdefault(partition, {})[row[7]] = self._definition_json(execution)
        for partition in {*by_partition, *checkpoints, *(positions or {})}:
            store = self.stores.get(partition)
            if store is None:
                continue  # no longer owned: its next owner reads the topic
            store.write(by_partition.get(partition, ()), definitions.get(partition, {}), checkpoints.get(partition),
                        (positions or {}).get(partition))
            self._heads.pop(partition, None)
        for execution_id, (partition, execution) in executions.items():
            current = self.pending.get(execution_id)
            if current is not None and current[1] is execution:
                del self.pending[execution_id]

    def _revive(self, row: Row, store: PartitionStore) -> Execution:
        (_, partition, status, closed_at, machine_name, version, alias, digest, timers, packed) = row
        definition, machine = self._lookup(digest, lambda: store.definition(digest))
        parsed_timers: tuple[tuple[float, str], ...] = ()
        if timers:
            parsed_timers = tuple((float(at), timer_id) for at, timer_id in json.loads(timers))
        return Execution(machine_name, definition, machine, bytes(packed), status, partition,
                         Pin(version, alias, digest), parsed_timers, closed_at)

    # ------------------------------------------------------------------ indexes on disk

    def timers(self) -> Iterator[tuple[float, str, str]]:
        """(fire_at, execution id, timer id) of every pending timer, pending decisions first."""
        for execution_id, (_, execution) in self.pending.items():
            for fire_at, timer_id in execution.timers if execution is not None else ():
                yield fire_at, execution_id, timer_id
        for store in self.stores.values():
            for execution_id, timers in store.timers():
                if execution_id not in self.pending:
                    for fire_at, timer_id in timers:
                        yield fire_at, execution_id, timer_id

    def closes(self, until: float, limit: int) -> list[tuple[float, str]]:
        """(closed_at, id) of closed executions (as last decided) closed by `until`, oldest first."""
        found = [(execution.closed_at, execution_id) for execution_id, (_, execution) in self.pending.items()
                 if execution is not None and execution.closed_at is not None and execution.closed_at <= until]
        for partition, store in self.stores.items():
            head = self._heads.get(partition)
            if head is None:
                head = self._heads[partition] = store.closed_before(float("inf"), _HEAD_ROWS)
            due = [close for close in head if close[0] <= until and close[1] not in self.pending]
            if len(due) < limit and len(head) == _HEAD_ROWS and head[-1][0] <= until:  # more may be due
                due = [close for close in store.closed_before(until, limit + len(self.pending))
                       if close[1] not in self.pending]
            found.extend(due)
        found.sort()
        return found[:limit]
