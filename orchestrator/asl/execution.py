"""The decider's vocabulary: execution state, the events it consumes and the effects it emits;
what one decision is given besides (`Environment`) and what it returns (`Decision`).

The state, events and effects are pydantic models so the Kafka runtime can store the state in a
compacted topic and the local runner can print it; none of them does any I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from orchestrator.asl.budget import Ledger


class ExecutionStatus(str, Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"


# ---------------------------------------------------------------- events (what happened)


class StartExecution(BaseModel):
    kind: Literal["start"] = "start"
    input: Any = Field(default_factory=dict)
    # The budget given at start ({"MaxTokens", "MaxCost"}, budget.py): it tightens the definition's.
    budget: Any = None


class TaskSucceeded(BaseModel):
    kind: Literal["task_succeeded"] = "task_succeeded"
    task_id: str
    output: Any = None
    # What the step service reported about the work (model, usage, latency, rendered prompt):
    # recorded in the history, never interpreted.
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskFailed(BaseModel):
    kind: Literal["task_failed"] = "task_failed"
    task_id: str
    error: str = "States.TaskFailed"
    cause: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskHeartbeat(BaseModel):
    kind: Literal["task_heartbeat"] = "task_heartbeat"
    task_id: str


class TimerFired(BaseModel):
    kind: Literal["timer_fired"] = "timer_fired"
    timer_id: str


class StopExecution(BaseModel):
    kind: Literal["stop"] = "stop"
    error: str | None = None
    cause: str | None = None


class FailExecution(BaseModel):
    """The runtime ends the execution: what it must record no longer fits (a record Kafka refused,
    a state past the state topic's record size). Not an ASL event; the decider fails the execution
    with this error, starting it first if it never started."""

    kind: Literal["fail"] = "fail"
    error: str
    cause: str


class RedriveExecution(BaseModel):
    """Restart a FAILED / TIMED_OUT / ABORTED execution from the state where it stopped."""

    kind: Literal["redrive"] = "redrive"


Event = Annotated[
    StartExecution | TaskSucceeded | TaskFailed | TaskHeartbeat | TimerFired | StopExecution | RedriveExecution
    | FailExecution,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- effects (what to do)


class RunTask(BaseModel):
    """A step command: run `resource` with `parameters`; answer with TaskSucceeded/TaskFailed(task_id)."""

    kind: Literal["run_task"] = "run_task"
    task_id: str  # idempotency key: execution, run, state, entry count, attempt
    resource: str
    parameters: Any
    state_name: str
    attempt: int
    task_token: str | None = None  # set for .waitForTaskToken: the result arrives by callback
    timeout_seconds: float | None = None
    heartbeat_seconds: float | None = None


class CancelTask(BaseModel):
    """A task whose result is no longer wanted (its branch was cancelled, or it timed out)."""

    kind: Literal["cancel_task"] = "cancel_task"
    task_id: str
    resource: str = ""


class StartTimer(BaseModel):
    kind: Literal["start_timer"] = "start_timer"
    timer_id: str
    fire_at: float  # epoch seconds; answer with TimerFired(timer_id) at or after it


class HistoryEvent(BaseModel):
    """One entry of the execution history, named and shaped like Step Functions' history events."""

    kind: Literal["history"] = "history"
    id: int
    previous_event_id: int
    timestamp: str
    type: str
    details: dict[str, Any] = Field(default_factory=dict)

    def as_aws(self) -> dict[str, Any]:
        """The event as GetExecutionHistory prints it (`<type>EventDetails`)."""
        out: dict[str, Any] = {
            "id": self.id,
            "previousEventId": self.previous_event_id,
            "timestamp": self.timestamp,
            "type": self.type,
        }
        if self.details:
            out[self.type[0].lower() + self.type[1:] + "EventDetails"] = self.details
        return out


class ExecutionFinished(BaseModel):
    kind: Literal["finished"] = "finished"
    status: ExecutionStatus
    output: Any = None
    error: str | None = None
    cause: str | None = None


Effect = Annotated[
    RunTask | CancelTask | StartTimer | HistoryEvent | ExecutionFinished, Field(discriminator="kind")
]


# ---------------------------------------------------------------- state (what is remembered)


class FanOut(BaseModel):
    """A Parallel or Map state waiting on its child runs."""

    kind: Literal["parallel", "map"]
    children: list[str | None] = Field(default_factory=list)  # run id per branch/item; None = not started
    results: list[Any] = Field(default_factory=list)
    items: list[Any] = Field(default_factory=list)  # Map: the item inputs, resolved at launch
    next_index: int = 0
    running: int = 0
    finished: int = 0
    failed: int = 0
    max_concurrency: int = 0  # 0 = unbounded
    tolerated_count: int | None = None
    tolerated_percentage: float | None = None
    effective_input: Any = None
    succeeded: list[int] = Field(default_factory=list)  # indexes of the children that succeeded
    redriven: bool = False  # seeded with the children a failed attempt completed: skip those


class Run(BaseModel):
    """One thread of control: the execution itself, a Parallel branch or a Map iteration."""

    id: str
    scope: list[tuple[str, int]] = Field(default_factory=list)  # (state, branch index | -1 for Map) from the root
    parent: str | None = None
    index: int = 0  # branch or item index within the parent
    status: Literal["running", "waiting", "succeeded", "failed", "aborted"] = "running"
    current: str | None = None
    raw_input: Any = None
    effective_input: Any = None
    entered_event_id: int = 0
    entered_time: str = ""
    entries: dict[str, int] = Field(default_factory=dict)  # state name -> times entered
    retry_attempts: list[int] = Field(default_factory=list)
    retry_count: int = 0
    variables: dict[str, Any] = Field(default_factory=dict)
    map_item: dict[str, Any] | None = None
    task_id: str | None = None
    timer_id: str | None = None
    fanout: FanOut | None = None
    # Redrive of a Parallel or inline Map: the results of the children that succeeded in the
    # attempt that failed (by index), kept so a redrive reruns only the others, as AWS does.
    failed_fanout: dict[str, Any] | None = None  # {"state": name, "results": {index: output}}
    redrive_completed: dict[int, Any] | None = None  # handed to the state's next execution
    output: Any = None
    error: str | None = None
    cause: str | None = None


class PendingTask(BaseModel):
    run_id: str
    state_name: str
    resource: str
    attempt: int
    timeout_timer: str | None = None
    heartbeat_timer: str | None = None
    heartbeat_seconds: float | None = None
    scheduled_at: float = 0.0  # epoch seconds: how long a callback (a human review) waited


class PendingTimer(BaseModel):
    run_id: str | None
    # "yield": the run was ready when its decision ran out of its transition budget; it goes on
    # when this (immediately due) timer fires, in a later decision.
    purpose: Literal["wait", "retry", "task_timeout", "heartbeat", "execution_timeout", "yield"]
    task_id: str | None = None
    fire_at: float


class ExecutionState(BaseModel):
    execution_id: str
    name: str
    state_machine_id: str
    state_machine_name: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start_time: str = ""
    last_event_id: int = 0
    seq: int = 0  # counter for run and timer ids
    runs: dict[str, Run] = Field(default_factory=dict)
    tasks: dict[str, PendingTask] = Field(default_factory=dict)
    timers: dict[str, PendingTimer] = Field(default_factory=dict)
    redrive_count: int = 0
    # Where a failed, timed-out or aborted execution stopped: the root run's state, its input and
    # variables. Redrive re-enters that state; the states before it keep their results.
    redrive_point: dict[str, Any] | None = None
    # The budget and what the LLM calls spent (budget.py); None until the execution has a budget
    # or a task reported usage, so an execution without either stores nothing more.
    budget: Ledger | None = None


# ---------------------------------------------------------------- a decision (given, returned)

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
# AWS's quota of events in one execution's history; the execution fails when it reaches it.
DEFAULT_MAX_HISTORY_EVENTS = 25_000
# States one decision runs before it yields (the rest continues in a later decision), so a loop of
# Pass/Choice states that never waits cannot hold an orchestrator or build an unbounded record.
DEFAULT_MAX_TRANSITIONS_PER_DECISION = 1_000
# All the variables one run can see, at most (AWS developer guide, "Passing data between states
# with variables", variable size limits: 256 KiB per variable and per Assign, 10 MiB in total).
DEFAULT_MAX_VARIABLES_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Environment:
    """What the world supplies to one decision."""

    now: datetime
    seed: int = 0
    task_token: Callable[[str], str] = field(default=lambda task_id: task_id)
    # The payload quota; also the limit of one variable and of one state's Assign.
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_variables_bytes: int = DEFAULT_MAX_VARIABLES_BYTES
    max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS
    max_transitions_per_decision: int = DEFAULT_MAX_TRANSITIONS_PER_DECISION
    role_arn: str = "arn:baton:iam::local:role/baton"
    # TestState: stop when the first state of the root run is left, and record each stage's data.
    single_state: bool = False
    # The workflow variables the root run starts with (TestState's `variables`); read at the start.
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    state: ExecutionState
    effects: list[Effect]
    inspection: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> list[HistoryEvent]:
        return [e for e in self.effects if isinstance(e, HistoryEvent)]


def new_execution(
    *, execution_id: str, name: str, state_machine_id: str, state_machine_name: str
) -> ExecutionState:
    """The state of an execution that has not started yet (feed it a StartExecution)."""
    return ExecutionState(
        execution_id=execution_id,
        name=name,
        state_machine_id=state_machine_id,
        state_machine_name=state_machine_name,
    )
