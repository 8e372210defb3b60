"""Execution lifecycle events: start/stop/redrive requests, state snapshots, history, terminal status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from schemas.base import Envelope, inflate


class StartExecution(Envelope):
    """Start an execution. Publishing it twice with the same execution id starts it once."""

    kind: Literal["start"] = "start"
    # A registered state machine (NAME: its draft, NAME:VERSION, NAME:ALIAS, or a stateMachine ARN
    # with the same qualifier), or a label for an inline `definition`.
    state_machine: str
    definition: dict[str, Any] | None = None  # inline ASL, for development
    name: str
    input: Any = Field(default_factory=dict)
    # {"MaxTokens", "MaxCost"}: tightens the definition's budget (docs/budgets.md). Any JSON here:
    # a bad one fails the execution with Baton.LLM.InvalidBudget rather than the record.
    budget: Any = None


class StopExecution(Envelope):
    kind: Literal["stop"] = "stop"
    error: str | None = None
    cause: str | None = None


class RedriveExecution(Envelope):
    """Restart a failed, timed-out or aborted execution from the states that did not succeed."""

    kind: Literal["redrive"] = "redrive"


ExecutionRequest = Annotated[StartExecution | StopExecution | RedriveExecution, Field(discriminator="kind")]


_REQUEST = TypeAdapter(ExecutionRequest)


def parse_request(data: bytes | None) -> StartExecution | StopExecution | RedriveExecution:
    """Parse a record of the start topic; ValueError (pydantic's ValidationError) says what is wrong."""
    if data is None:
        raise ValueError("empty message (no value)")
    return _REQUEST.validate_json(data)


def execution_id_for(state_machine: str, name: str) -> str:
    """Execution ids are derived from the state machine and the execution name, so a retried start
    is recognised (idempotent start by name)."""
    return f"arn:baton:states:local:execution:{state_machine}:{name}"


class ExecutionSnapshot(Envelope):
    """The compacted state topic's record: everything needed to resume an execution."""

    state_machine: str
    definition: dict[str, Any]  # the pinned definition: a restore, redrive or takeover runs exactly this
    state: dict[str, Any]  # orchestrator.asl.execution.ExecutionState, as JSON
    offsets_applied: int = 0  # transitions applied so far (for operators)
    version: int | None = None  # the registry version run (None: the draft, or an inline definition)
    alias: str | None = None  # the alias the start named, if any
    definition_hash: str | None = None  # sha256 of the definition's canonical JSON
    # When the execution closed (SUCCEEDED, FAILED, TIMED_OUT, ABORTED), epoch seconds; None while
    # it runs. Its retention (BATON_RETENTION) runs from here, also after a restart.
    closed_at: float | None = None


class InputPositions(BaseModel):
    """The state topic's record (key `__baton_input_positions__`) of where the orchestrator has
    consumed each input topic's partition of the same number to: written in each transaction
    with the snapshots, so a restore resumes exactly there."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    kind: Literal["input_positions"] = "input_positions"
    offsets: dict[str, int]  # input topic -> next offset to read


class HistoryRecord(Envelope):
    """The history events of one decision of an execution, in order (Step Functions' event names
    and shapes). One record per decision rather than per event: a Task transition makes four or
    five events, and a record each was most of the orchestrator's produce cost. A record written
    with a single `event` (the first format) reads as `events=[event]`."""

    state_machine: str
    events: list[dict[str, Any]]  # each {"id", "previousEventId", "timestamp", "type", "<type>EventDetails"}
    version: int | None = None  # as in ExecutionSnapshot: what the execution is pinned to
    alias: str | None = None
    definition_hash: str | None = None


    @model_validator(mode="before")
    @classmethod
    def _single_event(cls, data: Any) -> Any:
        if isinstance(data, dict) and "events" not in data and "event" in data:
            data = {**data, "events": [data["event"]]}
        return data


class ExecutionStatus(Envelope):
    """Published when an execution starts and when it ends."""

    state_machine: str
    name: str
    status: Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start_time: datetime | None = None
    stop_time: datetime | None = None
    redrive_count: int = 0
    version: int | None = None  # as in ExecutionSnapshot: what the execution is pinned to
    alias: str | None = None
    definition_hash: str | None = None


class ExecutionExpired(Envelope):
    """Published on the events topic when a closed execution's retention (BATON_RETENTION) has
    ended, in the transaction that writes its tombstone on the state topic: the orchestrator has
    forgotten it, the read model drops it, and a start with its name starts a new execution."""

    kind: Literal["expired"] = "expired"
    state_machine: str
    name: str
    # The start time of the run that expired: it tells that run's records from those of a new
    # execution with the same name (the same execution id), whichever a reader sees first.
    start_time: datetime | None = None
    closed_at: datetime | None = None


def _event_kind(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return "expired" if kind == "expired" else "status"


# What the events topic carries: statuses, and the expiry of a closed execution.
ExecutionEvent = Annotated[
    Annotated[ExecutionStatus, Tag("status")] | Annotated[ExecutionExpired, Tag("expired")],
    Discriminator(_event_kind),
]
_EVENT = TypeAdapter(ExecutionEvent)


def parse_execution_event(data: bytes | None) -> ExecutionStatus | ExecutionExpired:
    """Parse a record of the events topic; ValueError (pydantic's ValidationError) says what is wrong."""
    if data is None:
        raise ValueError("empty message (no value)")
    return _EVENT.validate_json(inflate(data))
