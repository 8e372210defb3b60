"""The read model's SQLite schema and its two larger queries."""

from __future__ import annotations

from typing import Any

SCHEMA = """
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


LIST_WHERE = ("(:status IS NULL OR status = :status) AND (:machine IS NULL OR state_machine = :machine)"
               " AND (:name IS NULL OR instr(lower(name), lower(:name)) > 0)"  # instr: no LIKE wildcards
               " AND (:after IS NULL OR start_time >= :after) AND (:before IS NULL OR start_time < :before)")



# The cost per execution is usage_totals' sum (TaskSucceeded and TaskFailed metadata), in SQL.
FIGURES_QUERY = """
SELECT e.version, count(*) AS executions, sum(e.status = 'RUNNING') AS running,
       sum(e.status = 'SUCCEEDED') AS succeeded, sum(e.status != 'RUNNING') AS ended,
       sum(CASE WHEN e.status != 'RUNNING' THEN coalesce(c.cost, 0) END) AS cost
FROM executions AS e LEFT JOIN (
    SELECT execution_id, sum(coalesce(json_extract(body, '$.taskSucceededEventDetails.metadata.cost_usd'),
                                      json_extract(body, '$.taskFailedEventDetails.metadata.cost_usd'), 0)) AS cost
    FROM history WHERE type IN ('TaskSucceeded', 'TaskFailed') GROUP BY execution_id) AS c USING (execution_id)
WHERE e.state_machine = :machine GROUP BY e.version ORDER BY e.version IS NULL, e.version
"""



def list_filter(status: str | None, state_machine: str | None, name: str | None, started_after: str | None,
                 started_before: str | None) -> dict[str, Any]:
    return {"status": status, "machine": state_machine, "name": name or None, "after": started_after or None,
            "before": started_before or None}
