"""The read model: the history and events topics projected into SQLite.

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

The package: `views` (an execution's row, the merge rule, version figures, errors), `sql` (schema
and queries), `projection` (the SQLite file, `ReadModel`) and `follow` (reading the topics into it).
"""

from orchestrator.api.readmodel.follow import OffsetKey, Projected, TopicKind, decode_record, start_offset
from orchestrator.api.readmodel.projection import DEFAULT_BOOTSTRAP, DEFAULT_PATH, ReadModel, default_path
from orchestrator.api.readmodel.views import (
    TERMINAL_STATUSES,
    AmbiguousExecution,
    CatchUpTimeout,
    ExecutionView,
    ReadModelError,
    VersionFigures,
    execution_name,
    merge_execution,
)

__all__ = [
    "DEFAULT_BOOTSTRAP", "DEFAULT_PATH", "TERMINAL_STATUSES", "AmbiguousExecution", "CatchUpTimeout", "ExecutionView",
    "OffsetKey", "Projected", "ReadModel", "ReadModelError", "TopicKind", "VersionFigures", "decode_record",
    "default_path", "execution_name", "merge_execution", "start_offset",
]
