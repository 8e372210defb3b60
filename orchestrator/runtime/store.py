"""The owned executions on disk: one SQLite file per owned partition of the state topic,
materialised from that compacted changelog, as Kafka Streams keeps a state store per task.

Each file records what it is a copy of (state topic, partition, Kafka cluster id) and its
checkpoint: the changelog offset up to which it matches the topic. The orchestrator writes a
batch's executions and the new checkpoint in one SQLite transaction only after the batch's Kafka
transaction has committed, so the file never holds anything the topic does not; a crash between
the two only means a longer tail to read. On assignment a usable file is brought up to date from
its checkpoint; a missing, unreadable or foreign one (another topic, partition or cluster, a
checkpoint the topic does not reach, a meta row whose checksum does not match) is deleted and
rebuilt from the whole topic, with one log line saying why.

SQLite was chosen on measurements (`bench/state_stores.py`, docs/performance.md): LMDB and RocksDB
write and read faster, but the orchestrator needs secondary orderings (closed executions by close
time for retention, the running count) that SQLite indexes keep transactionally with the rows, it
needs no new dependency, and its rates are well above the orchestrator's.

`Executions` is what the engine sees: a mapping of execution id to `Execution` over the open
stores, with the decided-but-uncommitted executions held in RAM on top of them (a pipeline of two
batches: the next batch is decided while the previous one commits)."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from orchestrator.asl.execution import ExecutionState
from orchestrator.asl.model import StateMachine
from orchestrator.runtime.translate import Pin
from schemas.errors import BatonError

log = logging.getLogger("baton.orchestrator")

FORMAT = "baton-state-store-1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS definitions (hash TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, partition INTEGER NOT NULL, status TEXT NOT NULL, closed_at REAL,
    machine_name TEXT NOT NULL, version INTEGER, alias TEXT, definition_hash TEXT NOT NULL,
    timers TEXT, packed BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS by_close ON executions(closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS running ON executions(status) WHERE status = 'RUNNING';
CREATE INDEX IF NOT EXISTS timed ON executions(id) WHERE timers IS NOT NULL;
"""


@dataclass(slots=True)
class Execution:
    """One execution owned by this instance, as last committed.

    The state is kept packed (compact JSON, zlib level 1: ~330 bytes for an execution waiting on a
    callback, a few microseconds each way), not as objects: a parked execution costs its bytes, and
    every batch decodes the few executions it touches into a `Working` copy.
    """

    machine_name: str
    definition: dict[str, Any]  # shared by the executions of one definition
    machine: StateMachine
    packed: bytes  # the ExecutionState (see `engine._pack`)
    status: str  # its status, so counting running executions decodes nothing
    partition: int
    # Pinned at the start and kept in the snapshot: what a restore, redrive or takeover runs,
    # whatever the registry's draft and aliases say by then.
    pin: Pin = Pin()
    timers: tuple[tuple[float, str], ...] = ()  # (fire_at, timer_id) of its pending timers
    closed_at: float | None = None  # when it closed (epoch seconds); None while it runs

    @property
    def version_label(self) -> str:
        """The `version` metrics label: the version number, or "draft" when unpublished."""
        return str(self.pin.version) if self.pin.version is not None else "draft"

    def load(self) -> ExecutionState:
        return ExecutionState.model_validate_json(zlib.decompress(self.packed))


class StoreCorrupt(BatonError):
    """A state store SQLite finds malformed while in use (a damaged page passes the checks at
    open): the file is deleted and the orchestrator stops (crash-only), so its next start
    rebuilds the store from the topic instead of failing on the same page again."""


@dataclass(frozen=True)
class StoreIdentity:
    """What a store file is a copy of."""

    state_topic: str
    partition: int
    cluster_id: str

    def meta(self) -> dict[str, str]:
        return {"format": FORMAT, "state_topic": self.state_topic, "partition": str(self.partition),
                "cluster_id": self.cluster_id}


# A row of `executions`, in column order.
Row = tuple[str, int, str, float | None, str, int | None, str | None, str, str | None, bytes]


class PartitionStore:
    """One state-topic partition's executions in SQLite (WAL), with its identity and checkpoint."""

    def __init__(self, path: Path, identity: StoreIdentity) -> None:
        self.path, self.identity = path, identity
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Durability comes from Kafka: losing the last transactions to a power cut only rewinds
        # the checkpoint, and the tail is read again.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        self.definitions = {row[0] for row in self.db.execute("SELECT hash FROM definitions")}

    @classmethod
    def open(cls, path: Path, identity: StoreIdentity) -> tuple[PartitionStore, str | None]:
        """The store at `path`, or a new empty one in its place when there is none or it cannot be
        used; with the reason a file there was discarded (None if it was used or there was none)."""
        reason = None
        if path.exists():
            try:
                store = cls(path, identity)
                reason = store.mismatch()
                if reason is None:
                    return store, None
                store.close()
            except sqlite3.DatabaseError as exc:
                reason = f"unreadable: {exc}"
            remove_store(path)
        store = cls(path, identity)
        store._set_meta(identity.meta())
        return store, reason

    def mismatch(self) -> str | None:
        """Why this file is not a store of `identity` (None: it is)."""
        if not self.meta:
            return "empty (no identity recorded)"
        if _checksum(self.meta) != self.meta.get("checksum"):
            return "its meta data fails its checksum"
        for key, expected in self.identity.meta().items():
            if self.meta.get(key) != expected:
                return f"it is a store of {key} {self.meta.get(key)!r}, not {expected!r}"
        return None

    @property
    def checkpoint(self) -> int | None:
        """The next state-topic offset to read: the store matches the topic before it."""
        value = self.meta.get("checkpoint")
        return int(value) if value is not None else None

    @property
    def positions(self) -> dict[str, int] | None:
        value = self.meta.get("positions")
        return json.loads(value) if value is not None else None

    def write(self, rows: Iterable[tuple[str, Row | None]], definitions: dict[str, bytes],
              checkpoint: int | None, positions: dict[str, int] | None = None) -> None:
        """Apply executions (None: removed) and move the checkpoint, in one transaction."""
        self.db.execute("BEGIN")
        try:
            new = [(digest, body) for digest, body in definitions.items() if digest not in self.definitions]
            self.db.executemany("INSERT OR REPLACE INTO definitions VALUES (?, ?)", new)
            upserts, deletes = [], []
            for execution_id, row in rows:
                if row is None:
                    deletes.append((execution_id,))
                else:
                    upserts.append(row)
            self.db.executemany("DELETE FROM executions WHERE id = ?", deletes)
            self.db.executemany("INSERT OR REPLACE INTO executions VALUES (?,?,?,?,?,?,?,?,?,?)", upserts)
            meta = dict(self.meta)
            if checkpoint is not None:
                meta["checkpoint"] = str(checkpoint)
            if positions is not None:
                meta["positions"] = json.dumps(positions, sort_keys=True)
            self._set_meta(meta, begun=True)
            self.db.execute("COMMIT")
        except BaseException as exc:
            if type(exc) is sqlite3.DatabaseError:
                self._condemn(exc)
            self.db.execute("ROLLBACK")
            raise
        self.definitions.update(digest for digest, _ in new)

    def _set_meta(self, meta: dict[str, str], begun: bool = False) -> None:
        meta = {key: value for key, value in meta.items() if key != "checksum"}
        meta["checksum"] = _checksum(meta)
        if not begun:
            self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
        if not begun:
            self.db.execute("COMMIT")
        self.meta = meta

    def _query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, parameters).fetchall()
        except sqlite3.DatabaseError as exc:
            self._condemn(exc)

    def _condemn(self, exc: sqlite3.DatabaseError) -> NoReturn:
        """Delete a store found malformed in use, say so once, and raise StoreCorrupt. Only
        SQLite's own "malformed" errors: a locked or full disk (OperationalError) is raised as is."""
        if type(exc) is not sqlite3.DatabaseError:
            raise exc
        log.error("state store %s is corrupt (%s): deleted; the orchestrator stops and rebuilds it from %s "
                  "partition %d at its next start", self.path, exc, self.identity.state_topic, self.identity.partition)
        try:
            self.db.close()
        except sqlite3.Error:
            pass
        remove_store(self.path)
        raise StoreCorrupt(f"state store {self.path} is corrupt: {exc}") from exc

    def get(self, execution_id: str) -> Row | None:
        rows = self._query("SELECT * FROM executions WHERE id = ?", (execution_id,))
        return tuple(rows[0]) if rows else None

    def definition(self, digest: str) -> bytes:
        rows = self._query("SELECT body FROM definitions WHERE hash = ?", (digest,))
        if not rows:
            raise KeyError(f"definition {digest} missing from {self.path}")
        return bytes(rows[0][0])

    def count(self, running_only: bool = False) -> int:
        where = " WHERE status = 'RUNNING'" if running_only else ""
        return int(self._query(f"SELECT COUNT(*) FROM executions{where}")[0][0])

    def closed_before(self, moment: float, limit: int) -> list[tuple[float, str]]:
        """(closed_at, id) of the executions closed before `moment`, oldest first."""
        return [(float(at), execution_id) for at, execution_id in self._query(
            "SELECT closed_at, id FROM executions WHERE closed_at IS NOT NULL AND closed_at <= ? "
            "ORDER BY closed_at LIMIT ?", (moment, limit))]

    def first_close(self) -> float | None:
        row = self._query("SELECT MIN(closed_at) FROM executions WHERE closed_at IS NOT NULL")[0]
        return None if row[0] is None else float(row[0])

    def timers(self) -> Iterator[tuple[str, list[tuple[float, str]]]]:
        for execution_id, timers in self._query("SELECT id, timers FROM executions WHERE timers IS NOT NULL"):
            yield execution_id, [(float(at), timer_id) for at, timer_id in json.loads(timers)]

    def ids(self) -> Iterator[str]:
        for (execution_id,) in self._query("SELECT id FROM executions"):
            yield execution_id

    def close(self) -> None:
        self.db.close()


def remove_store(path: Path) -> None:
    """Delete a store file and its WAL and shared-memory companions."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _checksum(meta: dict[str, str]) -> str:
    body = json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode()
    return hashlib.sha256(body).hexdigest()[:32]


def to_row(execution_id: str, execution: Execution) -> Row:
    pin = execution.pin
    timers = json.dumps(execution.timers) if execution.timers else None
    assert pin.definition_hash is not None
    return (execution_id, execution.partition, execution.status, execution.closed_at, execution.machine_name,
            pin.version, pin.alias, pin.definition_hash, timers, execution.packed)
