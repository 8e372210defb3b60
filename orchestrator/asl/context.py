"""What a state type sees of the decision in progress: a `StateContext`, and the hooks it offers.

Each module of `states/` offers the same few hooks (`StateHooks`): run the state once a run has
entered it, take a task's result, take a timer that fired, take a child run that ended. A hook
receives a `StateContext`, never the decider: the decider implements this protocol and calls the
hooks of a state by its type, so the import arrows point one way (decider -> states -> context).

Not to be confused with ASL's context object (`$$`), which `StateContext.scope` builds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.asl.dataflow import Scope
from orchestrator.asl.execution import Effect, ExecutionState, PendingTimer, Run, TaskFailed, TaskHeartbeat, TaskSucceeded
from orchestrator.asl.model import State


class StateContext(Protocol):
    """The operations the state types share, on one decision's working copy of the execution."""

    @property
    def execution(self) -> ExecutionState:
        """The working copy of the execution: its runs, pending tasks and timers, ids, redrives."""

    @property
    def now(self) -> float:
        """The time of the event being decided, in epoch seconds."""

    def task_token(self, task_id: str) -> str:
        """The signed token of a callback task (`.waitForTaskToken`)."""

    def scope(self, run: Run, state: State, **extra: Any) -> Scope:
        """What the state's paths and expressions see: the context object (plus `extra`), the
        run's variables, the decision's randomness."""

    def history(self, type_: str, details: dict[str, Any] | None = None) -> int:
        """Append a history event; returns its id."""

    def emit(self, effect: Effect) -> None:
        """An effect for the runtime to carry out (run or cancel a task)."""

    def next_id(self, prefix: str) -> str:
        """A new id, unique within the execution (runs, timers)."""

    def set_timer(self, purpose: Any, fire_at: float, run_id: str | None, task_id: str | None = None) -> str:
        """Arm a timer (PendingTimer.purpose); returns its id. It comes back to the state's
        `timer_fired` hook unless the decider handles its purpose itself."""

    def inspect(self, run: Run, stage: str, value: Any) -> None:
        """TestState: record a stage of the state's data processing (root run only)."""

    def check_size(self, state: State, value: Any, what: str = "a result") -> None:
        """Raise States.DataLimitExceeded when `value` is over the payload quota."""

    def enter(self, run: Run, name: str, raw_input: Any) -> None:
        """Enter the state `name` of the run's scope with this input."""

    def leave(self, run: Run, state: State, output: Any, assigned: dict[str, Any]) -> None:
        """Check the output, apply the assignments and record that the state was left."""

    def exit(self, run: Run, state: State, output: Any, assigned: dict[str, Any]) -> None:
        """Leave the state, then go to its Next or end the run (End, Succeed)."""

    def fail(self, run: Run, state: State, error: str | None, cause: str | None,
             raised_here: bool = False, failed_event: str | None = None) -> None:
        """The state failed: Retry, then Catch, then fail the run (ASL spec, "Retrying after an
        error", "Fallback states"). `raised_here` for an error of the interpreter itself (AWS's
        "where" prefix); `failed_event` (ParallelStateFailed, ...) is written once no retrier matches."""


TaskEvent = TaskSucceeded | TaskFailed | TaskHeartbeat

Execute = Callable[[StateContext, Run, State], None]
TaskEventHook = Callable[[StateContext, Run, State, TaskEvent], None]
TimerHook = Callable[[StateContext, Run, State, PendingTimer], None]
ChildHook = Callable[[StateContext, Run, State, Run], None]


def _nothing(ctx: StateContext, run: Run, state: State, what: Any) -> None:
    """The default hook: this state type never waits on that kind of event."""


@dataclass(frozen=True)
class StateHooks:
    """The hooks of one ASL state type. Each gets the context, the run and the state it is in;
    a `StatesError` raised by a hook fails that state (Retry and Catch apply)."""

    execute: Execute  # the run has entered the state: do it (and leave it, or wait)
    task_event: TaskEventHook = _nothing  # a result, failure or heartbeat of the run's task
    timer_fired: TimerHook = _nothing  # a timer the state armed has fired (already disarmed)
    child_done: ChildHook = _nothing  # a child run (branch, iteration) ended, removed from the runs
