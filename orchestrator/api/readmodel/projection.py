"""The projection itself: one SQLite file of executions, history events, expiries and offsets,
written a batch of records at a time and read by Describe, History and List."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka_io import KafkaSettings
from orchestrator.api.readmodel.follow import OffsetKey, Projected, catch_up_topics, follow_topics
from orchestrator.api.readmodel.sql import FIGURES_QUERY, LIST_WHERE, SCHEMA, list_filter
from orchestrator.api.readmodel.views import (
    ADDED_COLUMNS,
    TERMINAL_EVENTS,
    AmbiguousExecution,
    ExecutionView,
    ReadModelError,
    VersionFigures,
    execution_name,
    merge_execution,
)
from orchestrator.asl.budget import spend_in_history
from orchestrator.asl.timestamps import format_timestamp
from schemas.executions import ExecutionExpired, ExecutionStatus, HistoryRecord

DEFAULT_PATH = Path(".baton/readmodel.sqlite")  # for the default topic prefix, "baton"
DEFAULT_BOOTSTRAP = KafkaSettings.model_fields["kafka_bootstrap"].default


def default_path(topic_prefix: str = "baton", bootstrap: str = DEFAULT_BOOTSTRAP) -> Path:
    """Where the read model of a topic prefix on a cluster lives by default: one file per prefix
    and cluster, since a file projects one pair of topics (`.baton/readmodel.sqlite` for the
    default prefix on the default local broker). Another cluster gets a file of its own even
    with the same prefix: its offsets and executions are not the local broker's."""
    cluster = "" if bootstrap == DEFAULT_BOOTSTRAP else "." + hashlib.sha256(bootstrap.encode()).hexdigest()[:8]
    if topic_prefix == "baton" and not cluster:
        return DEFAULT_PATH
    return DEFAULT_PATH.with_name(f"readmodel.{topic_prefix}{cluster}.sqlite")


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
        self._db.executescript(SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        with self._lock:
            present = {row["name"] for row in self._db.execute("PRAGMA table_info(executions)")}
            for column, kind in ADDED_COLUMNS.items():
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
        if event_type != "ExecutionRedriven" and event_type not in TERMINAL_EVENTS:
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
            "status": TERMINAL_EVENTS[event_type], "output": details.get("output"), "error": details.get("error"),
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
                return self._with_budget(_view_from_row(row))
            rows = self._db.execute("SELECT * FROM executions WHERE name = ? ORDER BY execution_id",
                                    (execution_id_or_name,)).fetchall()
        if len(rows) > 1:
            raise AmbiguousExecution(execution_id_or_name, [row["execution_id"] for row in rows])
        return self._with_budget(_view_from_row(rows[0])) if rows else None

    def _with_budget(self, view: ExecutionView) -> ExecutionView:
        """The view with its budget and spend, from the events that hold them (budget.py)."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM history WHERE execution_id = ? AND type IN "
                                    "('ExecutionStarted', 'TaskSucceeded', 'TaskFailed') ORDER BY event_id",
                                    (view.execution_id,)).fetchall()
        spend = spend_in_history([json.loads(row["body"]) for row in rows])
        return view.model_copy(update={"budget": spend}) if spend is not None else view

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
                f"SELECT * FROM executions WHERE {LIST_WHERE}"
                " ORDER BY start_time IS NULL, start_time DESC, execution_id LIMIT :limit OFFSET :offset",
                list_filter(status, state_machine, name, started_after, started_before) | {
                    "limit": limit, "offset": offset},
            ).fetchall()
        return [_view_from_row(row) for row in rows]

    def count(self, status: str | None = None, state_machine: str | None = None, *, name: str | None = None,
              started_after: str | None = None, started_before: str | None = None) -> int:
        """How many executions `list` would page through with the same filters."""
        with self._lock:
            row = self._db.execute(f"SELECT count(*) FROM executions WHERE {LIST_WHERE}",
                                   list_filter(status, state_machine, name, started_after, started_before)).fetchone()
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
            rows = self._db.execute(FIGURES_QUERY, {"machine": state_machine}).fetchall()
        return [VersionFigures(version=row["version"], executions=row["executions"], running=row["running"],
                               succeeded=row["succeeded"], ended=row["ended"], ended_cost_usd=row["cost"] or 0.0)
                for row in rows]

    # ------------------------------------------------------------ Kafka

    async def catch_up(self, settings: KafkaSettings, timeout: float = 30.0) -> int:
        """Read both topics from the stored offsets to their end offsets as of this call; return
        how many records were projected (`follow.catch_up_topics`)."""
        return await catch_up_topics(self, settings, timeout)

    async def follow(self, settings: KafkaSettings, stop: asyncio.Event | None = None,
                     poll_interval: float = 1.0) -> None:
        """Keep the projection current until `stop` is set or the task is cancelled
        (`follow.follow_topics`)."""
        await follow_topics(self, settings, stop, poll_interval)


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


def _view_from_row(row: sqlite3.Row) -> ExecutionView:
    values = dict(row)
    values["input"] = _unjson(values["input"])
    values["output"] = _unjson(values["output"])
    return ExecutionView(**values)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)
