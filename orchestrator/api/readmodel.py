"""The read model: the history and events topics projected into SQLite.

(Over 400 lines: the projection's schema, its merge rules and its reads share one connection and lock.)

Describe, History and List must answer for every execution, whichever orchestrator instance owns
it, so they read a projection of the two topics all instances write rather than any instance's
state. The projection is one SQLite file (WAL, so readers never wait for the writer) with:

- ``executions``: one row per execution: its latest status, input, output, error and times;
- ``history``: every history event, keyed by (execution id, event id), so re-reading a range of
  the topic changes nothing;
- ``offsets``: the next offset to read per topic-partition, written in the same SQLite
  transaction as the rows it covers, so a restart resumes exactly where the file left off.

Both topics are read committed only: events of an aborted orchestrator transaction never appear.
The topics are read independently, so an execution's status may arrive through either one first;
rows are merged by phase (redrive count, then running before ended), which makes the projection
the same whichever order the records arrive in.

A closed execution is dropped when its retention ends (BATON_RETENTION): the orchestrator then
writes an ``ExecutionExpired`` on the events topic, and a start with the same name makes a new
execution with the same id. Records of one run are told from another's by the run's start time
(``ExecutionStarted``'s timestamp, a status's ``start_time``):

- ``expired``: per execution id, the start time of the last run that expired, so a record of that
  run read late through the other topic does not bring it back; forgotten once both topics have
  been read to their end after it was learnt (nothing of that run can come later);
- a history event ``ExecutionStarted`` of a later run replaces the execution's history (event ids
  start again at 1), so History shows the latest run only; a status or history event of a later
  run replaces the execution's row, one of an earlier run is ignored.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from kafka_io import KafkaSettings, kafka_errors, new_consumer, topic_partitions
from orchestrator.asl.timestamps import format_timestamp
from schemas.base import decode
from schemas.errors import BatonError
from schemas.executions import (
    ExecutionExpired,
    ExecutionStatus,
    HistoryRecord,
    execution_id_for,
    parse_execution_event,
)

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(".baton/readmodel.sqlite")  # for the default topic prefix, "baton"
DEFAULT_BOOTSTRAP = KafkaSettings.model_fields["kafka_bootstrap"].default
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
_TERMINAL_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
_START_FACTS = ("input", "start_time")
# Columns added after the first release: files created before get them with ALTER TABLE.
_ADDED_COLUMNS = {"version": "INTEGER", "alias": "TEXT", "definition_hash": "TEXT"}
_MAX_POLL_RECORDS = 500
_CATCH_UP_POLL_MS = 200
# While following, how often the end offsets are read again to tell when the expiries learnt
# before may be forgotten (`ReadModel.prune_expired`).
_PRUNE_INTERVAL_S = 60.0

TopicKind = Literal["history", "events"]
Projected = HistoryRecord | ExecutionStatus | ExecutionExpired
OffsetKey = tuple[str, int]  # (topic, partition); aiokafka's TopicPartition is such a tuple

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    execution_id  TEXT PRIMARY KEY,
    state_machine TEXT NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    input         TEXT,             -- JSON
    output        TEXT,             -- JSON
    error         TEXT,
    cause         TEXT,
    start_time    TEXT,             -- 2024-06-01T12:00:00.123Z: sorts chronologically as text
    stop_time     TEXT,
    redrive_count INTEGER NOT NULL DEFAULT 0,
    version       INTEGER,          -- the registry version run (NULL: a draft or inline definition)
    alias         TEXT,             -- the alias the start named
    definition_hash TEXT
);
CREATE INDEX IF NOT EXISTS executions_by_name ON executions (name);
CREATE INDEX IF NOT EXISTS executions_by_start ON executions (start_time);
CREATE TABLE IF NOT EXISTS history (
    execution_id TEXT NOT NULL,
    event_id     INTEGER NOT NULL,
    type         TEXT NOT NULL,
    timestamp    TEXT NOT NULL,
    body         TEXT NOT NULL,     -- the event as the orchestrator wrote it, JSON
    PRIMARY KEY (execution_id, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source (   -- which topics this file projects (one row)
    history_topic TEXT NOT NULL,
    events_topic  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS expired (  -- the last run of each execution id that expired
    execution_id TEXT PRIMARY KEY,
    start_time   TEXT NOT NULL,       -- that run's start time
    seen_at      REAL NOT NULL        -- when this file learnt it (epoch seconds)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
"""


class ReadModelError(BatonError):
    """A read-model failure a user can act on; the message says what went wrong and where."""


class AmbiguousExecution(ReadModelError):
    """An execution name shared by executions of several state machines; give the id instead."""

    def __init__(self, name: str, execution_ids: list[str]) -> None:
        super().__init__(f"{len(execution_ids)} executions are named {name!r}; give one of their ids: "
                         + ", ".join(execution_ids))
        self.execution_ids = execution_ids


class CatchUpTimeout(ReadModelError):
    """Catching up did not reach the end offsets in time (what was read so far is kept)."""


class ExecutionView(BaseModel):
    """One execution as Describe and List show it (Step Functions' DescribeExecution, roughly)."""

    execution_id: str
    state_machine: str
    name: str
    status: str
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start_time: str | None = None
    stop_time: str | None = None
    redrive_count: int = 0
    version: int | None = None  # the state machine version it runs (None: a draft or inline definition)
    alias: str | None = None  # the alias its start named
    definition_hash: str | None = None

    @model_serializer(mode="wrap")
    def _only_set_pins(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The registry's fields appear only when set: an execution of an inline definition reads
        exactly as before they existed."""
        data: dict[str, Any] = handler(self)
        for field in _ADDED_COLUMNS:
            if data.get(field) is None:
                data.pop(field, None)
        return data

    @property
    def phase(self) -> tuple[int, int]:
        """Orders the updates of one execution: each redrive starts a new phase, and within a
        phase the end comes after the start."""
        return self.redrive_count, 0 if self.status == "RUNNING" else 1


def merge_execution(current: ExecutionView | None, update: ExecutionView) -> ExecutionView | None:
    """The execution row after `update`, or None when `update` adds nothing to `current`.

    The input and start time never change, so whichever record says them first wins. Otherwise
    a later phase replaces the row (a redriven execution has no output or error yet), the same
    phase seen twice (once from each topic) only fills what is still unknown, and an earlier
    phase says nothing more.

    Runs come before phases: a start time later than the row's, on an update of a run not yet
    redriven, is a new execution with the same name (after the retention of the one before), and
    replaces the row; an earlier start time is a run the row has moved past.
    """
    if current is None:
        return update
    if current.start_time and update.start_time and update.start_time != current.start_time:
        if update.start_time < current.start_time:
            return None
        if update.redrive_count == 0:
            return update
    known_start = {field: getattr(current, field) for field in _START_FACTS if getattr(current, field) is not None}
    if update.phase > current.phase:
        merged = update.model_copy(update=known_start)
    else:
        fillable = ExecutionView.model_fields if update.phase == current.phase else _START_FACTS
        merged = current.model_copy(update={
            field: getattr(update, field) for field in fillable
            if getattr(current, field) is None and getattr(update, field) is not None
        })
    return None if merged == current else merged


def default_path(topic_prefix: str = "baton", bootstrap: str = DEFAULT_BOOTSTRAP) -> Path:
    """Where the read model of a topic prefix on a cluster lives by default: one file per prefix
    and cluster, since a file projects one pair of topics (`.baton/readmodel.sqlite` for the
    default prefix on the default local broker). Another cluster gets a file of its own even
    with the same prefix: its offsets and executions are not the local broker's."""
    cluster = "" if bootstrap == DEFAULT_BOOTSTRAP else "." + hashlib.sha256(bootstrap.encode()).hexdigest()[:8]
    if topic_prefix == "baton" and not cluster:
        return DEFAULT_PATH
    return DEFAULT_PATH.with_name(f"readmodel.{topic_prefix}{cluster}.sqlite")


def start_offset(stored: int | None, beginning: int, end: int) -> int:
    """Where to resume reading one partition.

    Nothing stored: from the beginning. Stored past the end: the topic was recreated, so read it
    again from the beginning (the history key makes that harmless). Stored before the beginning:
    retention deleted those records; start at the first one that still exists.
    """
    if stored is None or stored > end:
        return beginning
    return max(stored, beginning)


def decode_record(kind: TopicKind, value: bytes | None) -> Projected:
    """Parse a record of the history or events topic; ValueError says what is wrong with it."""
    if kind == "events":
        return parse_execution_event(value)
    record = decode(HistoryRecord, value)
    for event in record.events:
        missing = [key for key in ("id", "type") if key not in event]
        if missing:
            raise ValueError(f"history event without {' or '.join(missing)}")
    return record


def execution_name(execution_id: str, state_machine: str, qualifiers: Iterable[str] = ()) -> str:
    """The execution name inside an id made by `execution_id_for` (the last segment otherwise).

    `qualifiers` are the alias and version an execution of a registered state machine ran, since
    a start naming NAME:ALIAS or NAME:VERSION has an id made from that reference.
    """
    for qualifier in qualifiers:
        prefix = execution_id_for(f"{state_machine}:{qualifier}", "")
        if execution_id.startswith(prefix):
            return execution_id[len(prefix):]
    prefix = execution_id_for(state_machine, "")
    if execution_id.startswith(prefix):
        return execution_id[len(prefix):]
    return execution_id.rsplit(":", 1)[-1]


@dataclass
class _Assigned:
    """A started consumer, assigned every partition of both topics and seeked to the stored offsets."""

    consumer: AIOKafkaConsumer
    kinds: dict[str, TopicKind]  # topic -> what its records are
    ends: dict[TopicPartition, int]  # last stable offsets when the consumer started (or read again since)
    ends_at: float  # when `ends` were asked for (epoch seconds)


class ReadModel:
    """The SQLite projection; safe to share between threads (one lock serialises its connection).

    (Its method `list` shadows the builtin inside the class body, hence `builtins.list` there.)
    """

    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly, so offsets and rows commit together.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable enough here: a lost last transaction loses its offsets too, so it is
        # simply read again from Kafka.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        with self._lock:
            present = {row["name"] for row in self._db.execute("PRAGMA table_info(executions)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE executions ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ReadModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ writing

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            # IMMEDIATE takes the write lock up front, so two CLIs catching up wait for each
            # other instead of failing on a lock upgrade.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def apply(self, records: Iterable[Projected], offsets: Mapping[OffsetKey, int] | None = None) -> None:
        """Project records and store the offsets that follow them, all in one transaction."""
        with self._transaction() as db:
            for record in records:
                if isinstance(record, HistoryRecord):
                    self._apply_history(db, record)
                elif isinstance(record, ExecutionExpired):
                    self._expire(db, record)
                else:
                    update = _view_from_status(record)
                    if not _of_expired_run(update.start_time, _expired_run(db, update.execution_id)):
                        self._merge(db, update)
            for (topic, partition), next_offset in (offsets or {}).items():
                db.execute("INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
                           "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                           (topic, partition, next_offset))

    def _apply_history(self, db: sqlite3.Connection, record: HistoryRecord) -> None:
        expired = _expired_run(db, record.execution_id)
        run = _history_run(db, record.execution_id)  # the start time of the run the history holds
        for event in record.events:
            timestamp = str(event.get("timestamp") or format_timestamp(record.timestamp))
            if event["type"] == "ExecutionStarted":
                if _of_expired_run(timestamp, expired) or (run is not None and timestamp < run):
                    continue  # the start of a run that expired or was replaced, read late
                if run is not None and timestamp != run:
                    # A new execution with the name of one whose retention ended: its events are
                    # numbered from 1 again, so the earlier run's history goes.
                    db.execute("DELETE FROM history WHERE execution_id = ?", (record.execution_id,))
                run = timestamp
            elif expired is not None and (run is None or _of_expired_run(run, expired)):
                continue  # an event of the run that expired, read after its expiry
            inserted = db.execute(
                "INSERT OR IGNORE INTO history (execution_id, event_id, type, timestamp, body) VALUES (?, ?, ?, ?, ?)",
                (record.execution_id, event["id"], event["type"], timestamp, json.dumps(event)),
            ).rowcount
            if not inserted:
                continue  # seen before: its effect on the execution row is already there
            view = self._view_from_history(db, record, event, timestamp, run)
            if view is not None:
                self._merge(db, view)

    def _view_from_history(self, db: sqlite3.Connection, record: HistoryRecord, event: dict[str, Any],
                           timestamp: str, run: str | None = None) -> ExecutionView | None:
        """The execution-level events of the history say what the events topic says, so the
        projection is right even when one topic is read ahead of the other. `run`: the start time
        of the run the event belongs to, when known."""
        event_type = str(event["type"])
        details = event.get(event_type[:1].lower() + event_type[1:] + "EventDetails") or {}
        qualifiers = [str(q) for q in (record.alias, record.version) if q is not None]
        started = ExecutionView(execution_id=record.execution_id, state_machine=record.state_machine,
                                name=execution_name(record.execution_id, record.state_machine, qualifiers),
                                status="RUNNING", version=record.version, alias=record.alias,
                                definition_hash=record.definition_hash, start_time=run)
        if event_type == "ExecutionStarted":
            return started.model_copy(update={"input": details.get("input"), "start_time": timestamp})
        if event_type != "ExecutionRedriven" and event_type not in _TERMINAL_EVENTS:
            return None
        # The phase of a history event is the number of redrives before it; the partition is
        # ordered, so the earlier events of this execution are already in the table.
        redrives: int = db.execute(
            "SELECT count(*) FROM history WHERE execution_id = ? AND type = 'ExecutionRedriven' AND event_id <= ?",
            (record.execution_id, event["id"]),
        ).fetchone()[0]
        if event_type == "ExecutionRedriven":
            return started.model_copy(update={"redrive_count": redrives})
        return started.model_copy(update={
            "status": _TERMINAL_EVENTS[event_type], "output": details.get("output"), "error": details.get("error"),
            "cause": details.get("cause"), "stop_time": timestamp, "redrive_count": redrives,
        })

    def _expire(self, db: sqlite3.Connection, expired: ExecutionExpired) -> None:
        """Drop a run whose retention ended: its row and history, unless they already hold a later
        run with the same name; and remember it, so its records read late are ignored."""
        run = format_timestamp(expired.start_time or expired.timestamp)
        db.execute("INSERT INTO expired (execution_id, start_time, seen_at) VALUES (?, ?, ?) "
                   "ON CONFLICT (execution_id) DO UPDATE SET start_time = max(start_time, excluded.start_time), "
                   "seen_at = excluded.seen_at", (expired.execution_id, run, time.time()))
        db.execute("DELETE FROM executions WHERE execution_id = ? AND (start_time IS NULL OR start_time <= ?)",
                   (expired.execution_id, run))
        held = _history_run(db, expired.execution_id)
        if held is None or held <= run:
            db.execute("DELETE FROM history WHERE execution_id = ?", (expired.execution_id,))

    def prune_expired(self, before: float) -> int:
        """Forget the expiries learnt before `before` (epoch seconds), once both topics have been
        read to end offsets asked for at `before` or later: every record of those runs was written
        before their expiry, so none can still arrive. Returns how many were forgotten."""
        with self._transaction() as db:
            return db.execute("DELETE FROM expired WHERE seen_at < ?", (before,)).rowcount

    def _merge(self, db: sqlite3.Connection, update: ExecutionView) -> None:
        row = db.execute("SELECT * FROM executions WHERE execution_id = ?", (update.execution_id,)).fetchone()
        merged = merge_execution(_view_from_row(row) if row else None, update)
        if merged is None:
            return
        db.execute(
            "INSERT OR REPLACE INTO executions (execution_id, state_machine, name, status, input, output,"
            " error, cause, start_time, stop_time, redrive_count, version, alias, definition_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (merged.execution_id, merged.state_machine, merged.name, merged.status, _json(merged.input),
             _json(merged.output), merged.error, merged.cause, merged.start_time, merged.stop_time,
             merged.redrive_count, merged.version, merged.alias, merged.definition_hash),
        )

    def claim_topics(self, history_topic: str, events_topic: str) -> None:
        """Record which topics this file projects; refuse others, whose executions would mix
        with these and whose offsets mean nothing here."""
        with self._transaction() as db:
            row = db.execute("SELECT history_topic, events_topic FROM source").fetchone()
            if row is None:
                db.execute("INSERT INTO source VALUES (?, ?)", (history_topic, events_topic))
            elif tuple(row) != (history_topic, events_topic):
                raise ReadModelError(f"{self.path} projects {row[0]} and {row[1]}, not {history_topic} and "
                                     f"{events_topic}; use another read model file")

    # ------------------------------------------------------------ reading

    def stored_offsets(self) -> dict[OffsetKey, int]:
        """The next offset to read per (topic, partition)."""
        with self._lock:
            rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets").fetchall()
        return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    def describe(self, execution_id_or_name: str) -> ExecutionView | None:
        """An execution by id, or by name when exactly one execution has it (else AmbiguousExecution)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM executions WHERE execution_id = ?",
                                   (execution_id_or_name,)).fetchone()
            if row is not None:
                return _view_from_row(row)
            rows = self._db.execute("SELECT * FROM executions WHERE name = ? ORDER BY execution_id",
                                    (execution_id_or_name,)).fetchall()
        if len(rows) > 1:
            raise AmbiguousExecution(execution_id_or_name, [row["execution_id"] for row in rows])
        return _view_from_row(rows[0]) if rows else None

    def history(self, execution_id: str) -> builtins.list[dict[str, Any]]:
        """Every history event of an execution, in event-id order (empty if it is unknown)."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM history WHERE execution_id = ? ORDER BY event_id",
                                    (execution_id,)).fetchall()
        return [json.loads(row["body"]) for row in rows]

    def list(self, status: str | None = None, state_machine: str | None = None, limit: int = 100, *,
             name: str | None = None, started_after: str | None = None, started_before: str | None = None,
             offset: int = 0) -> builtins.list[ExecutionView]:
        """Executions, most recently started first, optionally of one status and state machine, whose
        name holds `name` (any case), started from `started_after` and before `started_before` (ISO
        8601 UTC, as the times are stored: a prefix such as 2026-12-04T19:00 works); `limit` of them
        from the `offset`-th."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM executions WHERE {_LIST_WHERE}"
                " ORDER BY start_time IS NULL, start_time DESC, execution_id LIMIT :limit OFFSET :offset",
                _list_filter(status, state_machine, name, started_after, started_before) | {
                    "limit": limit, "offset": offset},
            ).fetchall()
        return [_view_from_row(row) for row in rows]

    def count(self, status: str | None = None, state_machine: str | None = None, *, name: str | None = None,
              started_after: str | None = None, started_before: str | None = None) -> int:
        """How many executions `list` would page through with the same filters."""
        with self._lock:
            row = self._db.execute(f"SELECT count(*) FROM executions WHERE {_LIST_WHERE}",
                                   _list_filter(status, state_machine, name, started_after, started_before)).fetchone()
        return int(row[0])

    def state_machines(self) -> builtins.list[str]:
        """The state machines of the executions known, by name."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT state_machine FROM executions ORDER BY state_machine").fetchall()
        return [str(row[0]) for row in rows]

    def version_figures(self, state_machine: str) -> builtins.list[VersionFigures]:
        """Per version of `state_machine` (None: its draft or an inline definition), the executions
        this file holds, how many run, succeeded and ended, and the cost of the ended ones, summed
        from their task events' metadata as `orchestrator.api.progress.usage_totals` sums it."""
        with self._lock:
            rows = self._db.execute(_FIGURES_QUERY, {"machine": state_machine}).fetchall()
        return [VersionFigures(version=row["version"], executions=row["executions"], running=row["running"],
                               succeeded=row["succeeded"], ended=row["ended"], ended_cost_usd=row["cost"] or 0.0)
                for row in rows]

    # ------------------------------------------------------------ Kafka

    async def catch_up(self, settings: KafkaSettings, timeout: float = 30.0) -> int:
        """Read both topics from the stored offsets to their end offsets as of this call.

        Returns how many records were projected. Progress is committed batch by batch, so a
        timeout (CatchUpTimeout) or a crash keeps what was read. KafkaUnavailable when the broker
        cannot be reached; MissingTopic when a topic does not exist (both `kafka_io` failures).
        """
        applied = 0
        try:
            async with asyncio.timeout(timeout):
                async with self._assigned(settings) as assigned:
                    while not await _reached(assigned.consumer, assigned.ends):
                        applied += await self._poll(assigned, _CATCH_UP_POLL_MS)
                    self.prune_expired(assigned.ends_at)
        except TimeoutError:
            raise CatchUpTimeout(f"reading {settings.topics.history} and {settings.topics.events} at "
                                 f"{settings.kafka_bootstrap} did not finish within {timeout:g}s "
                                 f"({applied} records read)") from None
        return applied

    async def follow(self, settings: KafkaSettings, stop: asyncio.Event | None = None,
                     poll_interval: float = 1.0) -> None:
        """Keep the projection current until `stop` is set or the task is cancelled (for a
        long-running API). Partitions added to the topics later are seen after a restart."""
        async with self._assigned(settings) as assigned:
            while stop is None or not stop.is_set():
                await self._poll(assigned, int(poll_interval * 1000))
                if await _reached(assigned.consumer, assigned.ends):
                    self.prune_expired(assigned.ends_at)
                    if time.time() - assigned.ends_at >= _PRUNE_INTERVAL_S:
                        assigned.ends_at = time.time()
                        assigned.ends = await assigned.consumer.end_offsets(builtins.list(assigned.ends))

    @asynccontextmanager
    async def _assigned(self, settings: KafkaSettings) -> AsyncIterator[_Assigned]:
        # A plain assigned consumer, no group: every reader sees every partition, and the
        # offsets live in SQLite with the rows rather than in Kafka.
        consumer = new_consumer(settings, auto_offset_reset="earliest")
        with kafka_errors(settings):
            try:
                await consumer.start()
                assigned = await self._assign(consumer, settings)
                yield assigned
            finally:
                await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer, settings: KafkaSettings) -> _Assigned:
        """Assign both topics' partitions and seek each to where the stored offsets say."""
        self.claim_topics(settings.topics.history, settings.topics.events)
        kinds: dict[str, TopicKind] = {settings.topics.history: "history", settings.topics.events: "events"}
        partitions = [TopicPartition(topic, p)
                      for topic, ids in (await topic_partitions(settings, builtins.list(kinds))).items() for p in ids]
        consumer.assign(partitions)
        # read_committed: these are last stable offsets, so an open transaction is not waited for.
        beginnings = await consumer.beginning_offsets(partitions)
        ends_at = time.time()
        ends = await consumer.end_offsets(partitions)
        stored = self.stored_offsets()
        for tp in partitions:
            consumer.seek(tp, start_offset(stored.get((tp.topic, tp.partition)), beginnings[tp], ends[tp]))
        return _Assigned(consumer, kinds, ends, ends_at)

    async def _poll(self, assigned: _Assigned, timeout_ms: int) -> int:
        """Fetch one batch, project it and store the new positions together; return the count."""
        consumer = assigned.consumer
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=_MAX_POLL_RECORDS)
        records: builtins.list[Projected] = []
        for tp, messages in batches.items():
            for message in messages:
                try:
                    records.append(decode_record(assigned.kinds[tp.topic], message.value))
                except ValueError as exc:
                    # A bad record must not stop the projection; the orchestrator owns the DLQ.
                    log.warning("read model skips %s[%d]@%d: %s", tp.topic, tp.partition, message.offset,
                                str(exc).splitlines()[0])
        # Positions move past transaction markers and aborted records too, so store them even
        # when the batch projected nothing.
        positions = {(tp.topic, tp.partition): await consumer.position(tp) for tp in assigned.ends}
        if records or positions != self.stored_offsets():
            self.apply(records, positions)
        return len(records)


async def _reached(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def _expired_run(db: sqlite3.Connection, execution_id: str) -> str | None:
    """The start time of the last run of `execution_id` that expired, if one did."""
    row = db.execute("SELECT start_time FROM expired WHERE execution_id = ?", (execution_id,)).fetchone()
    return None if row is None else str(row[0])


def _of_expired_run(start_time: str | None, expired: str | None) -> bool:
    """Whether a record of the run that started at `start_time` belongs to an expired run."""
    return start_time is not None and expired is not None and start_time <= expired


def _history_run(db: sqlite3.Connection, execution_id: str) -> str | None:
    """The start time of the run whose events the history table holds for `execution_id` (the
    timestamp of its first event, ExecutionStarted), if known."""
    row = db.execute("SELECT type, timestamp FROM history WHERE execution_id = ? ORDER BY event_id LIMIT 1",
                     (execution_id,)).fetchone()
    return str(row[1]) if row is not None and row[0] == "ExecutionStarted" else None


def _view_from_status(status: ExecutionStatus) -> ExecutionView:
    return ExecutionView(
        execution_id=status.execution_id, state_machine=status.state_machine, name=status.name,
        status=status.status, input=status.input, output=status.output, error=status.error,
        cause=status.cause, redrive_count=status.redrive_count, version=status.version, alias=status.alias,
        definition_hash=status.definition_hash,
        start_time=format_timestamp(status.start_time) if status.start_time else None,
        stop_time=format_timestamp(status.stop_time) if status.stop_time else None,
    )


_LIST_WHERE = ("(:status IS NULL OR status = :status) AND (:machine IS NULL OR state_machine = :machine)"
               " AND (:name IS NULL OR instr(lower(name), lower(:name)) > 0)"  # instr: no LIKE wildcards
               " AND (:after IS NULL OR start_time >= :after) AND (:before IS NULL OR start_time < :before)")


class VersionFigures(BaseModel):
    """What the executions of one state machine version did (`ReadModel.version_figures`)."""

    version: int | None  # None: the draft, or a definition sent inline with the start
    executions: int
    running: int
    succeeded: int
    ended: int  # SUCCEEDED, FAILED, TIMED_OUT or ABORTED
    ended_cost_usd: float  # over the ended executions: every task call's metadata cost_usd

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.ended if self.ended else None

    @property
    def mean_cost_usd(self) -> float | None:
        return round(self.ended_cost_usd / self.ended, 10) if self.ended else None


# The cost per execution is usage_totals' sum (TaskSucceeded and TaskFailed metadata), in SQL.
_FIGURES_QUERY = """
SELECT e.version, count(*) AS executions, sum(e.status = 'RUNNING') AS running,
       sum(e.status = 'SUCCEEDED') AS succeeded, sum(e.status != 'RUNNING') AS ended,
       sum(CASE WHEN e.status != 'RUNNING' THEN coalesce(c.cost, 0) END) AS cost
FROM executions AS e LEFT JOIN (
    SELECT execution_id, sum(coalesce(json_extract(body, '$.taskSucceededEventDetails.metadata.cost_usd'),
                                      json_extract(body, '$.taskFailedEventDetails.metadata.cost_usd'), 0)) AS cost
    FROM history WHERE type IN ('TaskSucceeded', 'TaskFailed') GROUP BY execution_id) AS c USING (execution_id)
WHERE e.state_machine = :machine GROUP BY e.version ORDER BY e.version IS NULL, e.version
"""


def _list_filter(status: str | None, state_machine: str | None, name: str | None, started_after: str | None,
                 started_before: str | None) -> dict[str, Any]:
    return {"status": status, "machine": state_machine, "name": name or None, "after": started_after or None,
            "before": started_before or None}


def _view_from_row(row: sqlite3.Row) -> ExecutionView:
    values = dict(row)
    values["input"] = _unjson(values["input"])
    values["output"] = _unjson(values["output"])
    return ExecutionView(**values)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)
