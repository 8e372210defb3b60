"""Shared helpers for the unit tests: drive the decider by hand on a virtual clock.

`Harness` wraps `orchestrator.asl.decider.decide` directly (no runner, no I/O) and keeps the
bookkeeping a runtime would: outstanding RunTask commands, armed timers, the history and the
final ExecutionFinished. Tests send events one at a time and assert the decider's effects, or
call `run_to_end` with scripted task outcomes; the virtual clock only moves when a test (or
`run_to_end`, when nothing else can happen) advances it to the next timer.

Every call to `decide` also checks two invariants that the Kafka runtime relies on: the state
passed in is never mutated, and (with `roundtrip=True`) the state survives a JSON round trip.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from orchestrator.asl.decider import Decision, Environment, decide, new_execution
from orchestrator.asl.execution import (
    CancelTask,
    Event,
    ExecutionFinished,
    ExecutionState,
    HistoryEvent,
    RedriveExecution,
    RunTask,
    StartExecution,
    StartTimer,
    StopExecution,
    TaskFailed,
    TaskHeartbeat,
    TaskSucceeded,
    TimerFired,
)
from orchestrator.asl.model import StateMachine, parse_definition

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
T0_EPOCH = T0.timestamp()
EXECUTION_NAME = "exec-1"
MACHINE_NAME = "Machine"
EXECUTION_ARN = f"arn:baton:states:local:execution:{MACHINE_NAME}:{EXECUTION_NAME}"
MACHINE_ARN = f"arn:baton:states:local:stateMachine:{MACHINE_NAME}"


@dataclass(frozen=True)
class Ok:
    """A scripted task success."""

    output: Any = None


@dataclass(frozen=True)
class Err:
    """A scripted task failure."""

    error: str = "States.TaskFailed"
    cause: str | None = None


Outcome = Ok | Err
Responder = Callable[[RunTask], Outcome]


def scripted(script: dict[str, Iterable[Outcome] | Outcome | Callable[[RunTask], Outcome]]) -> Responder:
    """A responder answering each state's tasks in turn from `script[state_name]`.

    A list is consumed one outcome per invocation (the last one repeats); a single outcome
    answers every invocation; a callable is asked for each invocation.
    """
    queues: dict[str, list[Outcome]] = {}
    fixed: dict[str, Any] = {}
    for name, value in script.items():
        if isinstance(value, (Ok, Err)) or callable(value):
            fixed[name] = value
        else:
            queues[name] = list(value)

    def respond(task: RunTask) -> Outcome:
        if task.state_name in fixed:
            value = fixed[task.state_name]
            outcome: Outcome = value if isinstance(value, (Ok, Err)) else value(task)
            return outcome
        queue = queues.get(task.state_name)
        if not queue:
            raise AssertionError(f"no scripted outcome for state {task.state_name!r}")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


def echo(task: RunTask) -> Outcome:
    """A task that returns its parameters (an identity Lambda)."""
    return Ok(copy.deepcopy(task.parameters))


def machine(definition: dict[str, Any] | str) -> StateMachine:
    return parse_definition(definition)


def task_state(resource: str = "baton:fn:work", **fields: Any) -> dict[str, Any]:
    """A Task state definition; `End: true` unless a `Next` is given."""
    body: dict[str, Any] = {"Type": "Task", "Resource": resource}
    body.update(fields)
    if "Next" not in body:
        body["End"] = True
    return body


def single(state: dict[str, Any], name: str = "S", **top: Any) -> dict[str, Any]:
    """A one-state machine (the state gets `End: true` unless it is terminal or says otherwise)."""
    state = dict(state)
    if state.get("Type") not in ("Choice", "Succeed", "Fail") and "Next" not in state:
        state["End"] = True
    return {"StartAt": name, "States": {name: state}, **top}


class Harness:
    """One execution driven event by event through `decide`, on a virtual clock."""

    def __init__(
        self,
        definition: dict[str, Any] | str | StateMachine,
        *,
        seed: int = 7,
        max_payload_bytes: int | None = None,
        task_token: Callable[[str], str] | None = None,
        roundtrip: bool = False,
        check_immutable: bool = True,
    ) -> None:
        self.machine = definition if isinstance(definition, StateMachine) else machine(definition)
        self.state: ExecutionState = new_execution(
            execution_id=EXECUTION_ARN,
            name=EXECUTION_NAME,
            state_machine_id=MACHINE_ARN,
            state_machine_name=MACHINE_NAME,
        )
        self.seed = seed
        self.max_payload_bytes = max_payload_bytes
        self.task_token = task_token
        self.roundtrip = roundtrip
        self.check_immutable = check_immutable
        self.clock = 0.0  # seconds since T0
        self.decisions: list[tuple[Event, Decision]] = []
        self.history: list[HistoryEvent] = []
        self.effects: list[Any] = []
        self.tasks: dict[str, RunTask] = {}  # outstanding, in issue order
        self.all_tasks: list[RunTask] = []
        self.cancelled: list[str] = []
        self.timers: dict[str, float] = {}  # timer id -> fire_at (epoch)
        self.all_timers: list[StartTimer] = []
        self.finished: ExecutionFinished | None = None
        self.max_outstanding = 0
        self.step = 0

    # ------------------------------------------------------------ time and environment

    @property
    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.clock)

    def env(self) -> Environment:
        kwargs: dict[str, Any] = {"now": self.now, "seed": self.seed + self.step}
        if self.max_payload_bytes is not None:
            kwargs["max_payload_bytes"] = self.max_payload_bytes
        if self.task_token is not None:
            kwargs["task_token"] = self.task_token
        return Environment(**kwargs)

    # ------------------------------------------------------------ sending events

    def send(self, event: Event, *, at: float | None = None) -> Decision:
        """Apply one event at virtual time `at` (seconds after T0; default: the current clock)."""
        if at is not None:
            assert at >= self.clock, "the virtual clock never goes back"
            self.clock = at
        if self.roundtrip:
            self.state = ExecutionState.model_validate_json(self.state.model_dump_json())
        before = self.state.model_dump(mode="json") if self.check_immutable else None
        if isinstance(event, RedriveExecution):
            self.finished = None  # a redriven execution finishes once more
        decision = decide(self.machine, self.state, event, self.env())
        if before is not None:
            assert self.state.model_dump(mode="json") == before, "decide mutated the state passed in"
        self.step += 1
        self.decisions.append((event, decision))
        self.state = decision.state
        for effect in decision.effects:
            self.effects.append(effect)
            if isinstance(effect, HistoryEvent):
                self.history.append(effect)
            elif isinstance(effect, RunTask):
                self.tasks[effect.task_id] = effect
                self.all_tasks.append(effect)
            elif isinstance(effect, CancelTask):
                self.cancelled.append(effect.task_id)
                self.tasks.pop(effect.task_id, None)
            elif isinstance(effect, StartTimer):
                self.timers[effect.timer_id] = effect.fire_at
                self.all_timers.append(effect)
            elif isinstance(effect, ExecutionFinished):
                assert self.finished is None, "an execution finishes once"
                self.finished = effect
        self.max_outstanding = max(self.max_outstanding, len(self.tasks))
        return decision

    def start(self, execution_input: Any = None, *, at: float | None = None) -> Decision:
        return self.send(StartExecution(input={} if execution_input is None else execution_input), at=at)

    def succeed(self, task: RunTask | str, output: Any = None, *, at: float | None = None) -> Decision:
        task_id = task if isinstance(task, str) else task.task_id
        self.tasks.pop(task_id, None)
        return self.send(TaskSucceeded(task_id=task_id, output=output), at=at)

    def fail(self, task: RunTask | str, error: str = "States.TaskFailed", cause: str | None = None,
             *, at: float | None = None) -> Decision:
        task_id = task if isinstance(task, str) else task.task_id
        self.tasks.pop(task_id, None)
        return self.send(TaskFailed(task_id=task_id, error=error, cause=cause), at=at)

    def heartbeat(self, task: RunTask | str, *, at: float | None = None) -> Decision:
        task_id = task if isinstance(task, str) else task.task_id
        return self.send(TaskHeartbeat(task_id=task_id), at=at)

    def stop(self, error: str | None = None, cause: str | None = None, *, at: float | None = None) -> Decision:
        return self.send(StopExecution(error=error, cause=cause), at=at)

    def fire(self, timer_id: str) -> Decision:
        """Fire one timer at its due time (moving the clock forward to it if needed)."""
        fire_at = self.timers.pop(timer_id)
        return self.send(TimerFired(timer_id=timer_id), at=max(self.clock, fire_at - T0_EPOCH))

    def next_timer(self) -> tuple[str, float] | None:
        if not self.timers:
            return None
        timer_id = min(self.timers, key=lambda t: (self.timers[t], int(t.lstrip("t") or 0)))
        return timer_id, self.timers[timer_id]

    def advance(self, seconds: float) -> list[Decision]:
        """Move the clock forward, firing every timer due on the way, in order."""
        target = self.clock + seconds
        decisions = []
        while self.finished is None:
            nxt = self.next_timer()
            if nxt is None or nxt[1] - T0_EPOCH > target:
                break
            decisions.append(self.fire(nxt[0]))
        self.clock = max(self.clock, target)
        return decisions

    # ------------------------------------------------------------ conveniences

    def pending(self, state_name: str | None = None) -> list[RunTask]:
        return [t for t in self.tasks.values() if state_name is None or t.state_name == state_name]

    def only_task(self, state_name: str | None = None) -> RunTask:
        tasks = self.pending(state_name)
        assert len(tasks) == 1, f"expected one outstanding task, got {[t.task_id for t in tasks]}"
        return tasks[0]

    def answer(self, task: RunTask, outcome: Outcome) -> Decision:
        if isinstance(outcome, Ok):
            return self.succeed(task, outcome.output)
        return self.fail(task, outcome.error, outcome.cause)

    def run_to_end(self, respond: Responder = echo, *, max_steps: int = 10_000) -> ExecutionFinished:
        """Answer tasks (oldest first) and fire timers (earliest first) until the execution ends."""
        for _ in range(max_steps):
            if self.finished is not None:
                return self.finished
            if self.tasks:
                task = next(iter(self.tasks.values()))
                self.answer(task, respond(task))
            elif self.timers:
                nxt = self.next_timer()
                assert nxt is not None
                self.fire(nxt[0])
            else:
                raise AssertionError("the execution waits for nothing that can happen")
        raise AssertionError("the execution did not finish")

    @property
    def history_types(self) -> list[str]:
        return [e.type for e in self.history]

    def events_of(self, type_: str) -> list[HistoryEvent]:
        return [e for e in self.history if e.type == type_]

    @property
    def status(self) -> str | None:
        return self.finished.status.value if self.finished else None

    @property
    def output(self) -> Any:
        assert self.finished is not None
        return self.finished.output


def run(
    definition: dict[str, Any] | str | StateMachine,
    execution_input: Any = None,
    respond: Responder | dict[str, Any] = echo,
    **options: Any,
) -> Harness:
    """Start an execution and drive it to its end; return the harness for assertions."""
    harness = Harness(definition, **options)
    harness.start(execution_input)
    harness.run_to_end(scripted(respond) if isinstance(respond, dict) else respond)
    return harness
