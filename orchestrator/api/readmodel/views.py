"""What Describe and List show: an execution's row and the rule merging two records of it into
one, the figures of a state machine version, and the read model's errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from schemas.errors import BatonError
from schemas.executions import execution_id_for

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
TERMINAL_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
_START_FACTS = ("input", "start_time")
# Columns added after the first release: files created before get them with ALTER TABLE.
ADDED_COLUMNS = {"version": "INTEGER", "alias": "TEXT", "definition_hash": "TEXT"}


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
    # Describe only (not a column): the budget and the spend its history records (docs/budgets.md).
    budget: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _only_set_pins(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The registry's fields and the budget appear only when set: an execution of an inline
        definition without a budget reads exactly as before they existed."""
        data: dict[str, Any] = handler(self)
        for field in (*ADDED_COLUMNS, "budget"):
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
