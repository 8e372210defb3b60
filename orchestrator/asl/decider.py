"""The decider: a pure, deterministic function from (execution state, event) to (new state, effects).

(Over 400 lines: one class, `Decider`, whose members are the `StateContext` every state type sees.)

    decision = decide(machine, state, event, env)

`env` injects everything that would otherwise make the result depend on the world: the time of
the event, a seed for randomness (jitter, States.MathRandom, States.UUID) and the task-token
signer. Given the same arguments, `decide` returns the same decision. It never mutates its
input state. The Kafka runtime, the local runner and TestState all call it; nothing else
interprets ASL.

Inside, an execution is a set of *runs*: the root run, one per Parallel branch and one per Map
iteration. A run advances through instantaneous states (Pass, Choice, Succeed, Fail) until it
waits on a task, a timer or its child runs.

The decider calls each state's hooks by its type (`states.STATE_TYPES`); the modules of `states/`
see it only as a `context.StateContext`. Input and output processing is in `processing`, the
rules of variables in `variables`; `Environment` and `Decision` are defined in `execution`.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec

from orchestrator.asl import budget, causes, errors, variables
from orchestrator.asl.context import StateContext, TaskEvent
from orchestrator.asl.dataflow import Scope, context_object, error_output, to_json
from orchestrator.asl.execution import (
    CancelTask,
    Decision,
    Effect,
    Environment,
    Event,
    ExecutionFinished,
    ExecutionState,
    ExecutionStatus,
    FailExecution,
    HistoryEvent,
    PendingTimer,
    RedriveExecution,
    Run,
    StartExecution,
    StartTimer,
    StopExecution,
    TaskFailed,
    TaskHeartbeat,
    TaskSucceeded,
    TimerFired,
    new_execution,
)
from orchestrator.asl.model import State, StateMachine
from orchestrator.asl.processing import catcher_output, check_payload_size
from orchestrator.asl.retry import RETRIABLE_TYPES, find_catcher, next_retry
from orchestrator.asl.states import STATE_TYPES
from orchestrator.asl.states.children import completed
from orchestrator.asl.timestamps import format_timestamp, utc

ROOT = "r"

# Errors raised by the interpreter itself get AWS's "where" prefix on their cause.
_PREFIXED = frozenset({errors.RUNTIME, errors.QUERY_EVALUATION_ERROR, errors.INTRINSIC_FAILURE})

_P = ParamSpec("_P")


def decide(machine: StateMachine, state: ExecutionState, event: Event, env: Environment) -> Decision:
    """Apply one event to an execution; return the new state and the effects to carry out."""
    # The working copy: a JSON round trip through pydantic's Rust core is a third of the cost of
    # copy.deepcopy, and the state is JSON by contract (it is what the state topic stores).
    working = ExecutionState.model_validate_json(state.__pydantic_serializer__.to_json(state))
    return Decider(machine, working, env).apply(event)


def decide_in_place(machine: StateMachine, state: ExecutionState, event: Event, env: Environment) -> Decision:
    """`decide` on a state the caller owns and lets the decider change (Decision.state is it).

    For a caller that keeps its own copy to fall back on, such as the Kafka runtime (the last
    committed JSON): copying the state per event is O(state), which a 1,000-item Map pays per
    item. If this raises, the state may be half-changed and must be discarded.
    """
    return Decider(machine, state, env).apply(event)


class Decider:
    """One decision in the making: a working copy of the state, the effects so far, and the
    operations the state types share (entering and leaving states, failure handling). It is the
    `StateContext` the modules of `states/` see, and calls their hooks by state type only.
    Internal to the core: callers use `decide`."""

    def __init__(self, machine: StateMachine, state: ExecutionState, env: Environment) -> None:
        self.machine = machine
        self.execution = state
        self.env = env
        self.rng = random.Random(env.seed)
        self.now = env.now.timestamp()
        self.timestamp = format_timestamp(env.now)
        self.effects: list[Effect] = []
        self.ready: deque[str] = deque()
        self.inspection: dict[str, Any] = {}

    def apply(self, event: Event) -> Decision:
        if isinstance(event, RedriveExecution):
            self.redrive()
            self.drain()
            return Decision(self.execution, self.effects, self.inspection)
        if self.execution.status is not ExecutionStatus.RUNNING and not isinstance(event, StartExecution):
            return Decision(self.execution, [])  # late events for a finished execution are ignored
        if isinstance(event, StartExecution):
            self.start(event)
        elif isinstance(event, (TaskSucceeded, TaskFailed, TaskHeartbeat)):
            self.task_event(event)
        elif isinstance(event, TimerFired):
            self.timer_fired(event)
        elif isinstance(event, StopExecution):
            self.stop(event)
        elif isinstance(event, FailExecution):
            if not self.execution.last_event_id:  # refused before it started: it exists, and says why
                self.execution.start_time = self.timestamp
                self.history("ExecutionStarted", {"input": None, "inputDetails": {"truncated": True},
                                                  "roleArn": self.env.role_arn})
            self.finish(ExecutionStatus.FAILED, error=event.error, cause=event.cause)
        self.drain()
        return Decision(self.execution, self.effects, self.inspection)

    def drain(self) -> None:
        steps = 0
        while (self.ready or self.wake()) and self.execution.status is ExecutionStatus.RUNNING:
            if self.execution.last_event_id >= self.env.max_history_events:
                # AWS: "If the execution history reaches this quota the execution will fail." A loop
                # of Pass/Choice states ends here too, a budget of transitions at a time (below).
                self.finish(ExecutionStatus.FAILED, error=errors.RUNTIME,
                            cause=f"The execution reached the maximum number of events in its history "
                                  f"({self.env.max_history_events}).")
                return
            run_id = self.ready.popleft()
            run = self.execution.runs.get(run_id)
            if run is not None and run.status == "running":
                steps += 1
                if steps > self.env.max_transitions_per_decision and not self.env.single_state:
                    self.pause([run_id, *self.ready])
                    return
                self.execute(run)

    def wake(self) -> bool:
        """Ready the runs whose LLM calls waited for room in the budget, once a call settled."""
        ledger = self.execution.budget
        if ledger is None or not ledger.released:
            return False
        # Runs cancelled while they waited (their Map or Parallel failed) hold no place in the queue.
        ledger.waiting = [w for w in ledger.waiting if w.run_id in self.execution.runs]
        for run_id in budget.wake(ledger):
            run = self.execution.runs.get(run_id)
            # A run cancelled meanwhile (its Map or Parallel failed) is gone, or is not this wait.
            if run is not None and run.status == "waiting" and run.task_id is None and run.timer_id is None \
                    and run.fanout is None:
                run.status = "running"
                self.ready.append(run_id)
        return bool(self.ready)

    def pause(self, ready: list[str]) -> None:
        """Yield: the ready runs go on in a later decision, each when its immediately due "yield"
        timer fires, so other executions move in between and each decision's records stay small."""
        self.ready.clear()
        for run_id in dict.fromkeys(ready):
            run = self.execution.runs.get(run_id)
            if run is not None and run.status == "running":
                self.set_timer("yield", self.now, run_id)

    def history(self, type_: str, details: dict[str, Any] | None = None) -> int:
        self.execution.last_event_id += 1
        self.effects.append(
            HistoryEvent(
                id=self.execution.last_event_id,
                previous_event_id=self.execution.last_event_id - 1,
                timestamp=self.timestamp,
                type=type_,
                details=details or {},
            )
        )
        return self.execution.last_event_id

    def next_id(self, prefix: str) -> str:
        self.execution.seq += 1
        return f"{prefix}{self.execution.seq}"

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(self, effect: Effect) -> None:
        self.effects.append(effect)

    def task_token(self, task_id: str) -> str:
        return self.env.task_token(task_id)

    def state_of(self, run: Run) -> State:
        assert run.current is not None
        return self.machine.nested(run.scope).states[run.current]

    def scope(self, run: Run, state: State, **extra: Any) -> Scope:
        context = context_object(self.execution, run, state, self.env.role_arn, **extra)
        return Scope(context, run.variables, self.rng, self.new_uuid)

    def set_timer(self, purpose: Any, fire_at: float, run_id: str | None, task_id: str | None = None) -> str:
        timer_id = self.next_id("t")
        self.execution.timers[timer_id] = PendingTimer(run_id=run_id, purpose=purpose, task_id=task_id, fire_at=fire_at)
        self.effects.append(StartTimer(timer_id=timer_id, fire_at=fire_at))
        return timer_id

    def check_size(self, state: State, value: Any, what: str = "a result") -> None:
        check_payload_size(state, value, self.env.max_payload_bytes, what)

    def start(self, event: StartExecution) -> None:
        if self.execution.runs or self.execution.last_event_id:
            return  # idempotent: the execution already started
        self.execution.start_time = self.timestamp
        size = len(to_json(event.input).encode())
        if size > self.env.max_payload_bytes:
            # Refused as AWS's StartExecution would be, but recorded: the execution exists and
            # says why it failed; its input is not kept (the quota bounds every record after).
            self.history("ExecutionStarted", {"input": None, "inputDetails": {"truncated": True},
                                              "roleArn": self.env.role_arn})
            self.finish(ExecutionStatus.FAILED, error=errors.DATA_LIMIT_EXCEEDED,
                        cause=f"The execution input is {size} bytes, exceeding the maximum number of bytes "
                              f"service limit ({self.env.max_payload_bytes}).")
            return
        self.execution.input = event.input
        limits, refused = budget.limits_at_start(self.machine.raw, event.budget)
        started: dict[str, Any] = {"input": event.input, "roleArn": self.env.role_arn}
        if limits is not None:  # Baton's: the budget the execution runs under (docs/budgets.md)
            started["budget"] = limits.as_json()
            self.execution.budget = budget.Ledger(limits=limits)
        self.history("ExecutionStarted", started)
        if refused is not None:
            self.finish(ExecutionStatus.FAILED, error=budget.INVALID_BUDGET, cause=refused)
            return
        if self.machine.timeout_seconds:
            self.set_timer("execution_timeout", self.now + self.machine.timeout_seconds, None)
        root = Run(id=ROOT, variables=copy.deepcopy(dict(self.env.variables)))
        self.execution.runs[ROOT] = root
        self.enter(root, self.machine.start_at, event.input)

    def finish(self, status: ExecutionStatus, output: Any = None, error: str | None = None,
                cause: str | None = None) -> None:
        root = self.execution.runs.get(ROOT)
        if self.env.single_state and root is not None and root.variables:
            # TestState's inspectionData.variables: the variables after the state.
            self.inspection["variables"] = copy.deepcopy(root.variables)
        if status is not ExecutionStatus.SUCCEEDED and root is not None and root.current is not None:
            self.execution.redrive_point = {"state": root.current, "input": root.raw_input, "variables": root.variables}
            # A Parallel or Map that failed (or was stopped) keeps its children that succeeded.
            fanout = (completed(root.fanout, root.current) if root.fanout is not None
                      else root.failed_fanout)
            if fanout is not None and fanout["state"] == root.current:
                self.execution.redrive_point["completed"] = fanout["results"]
        else:
            self.execution.redrive_point = None
        self.execution.status = status
        self.execution.output, self.execution.error, self.execution.cause = output, error, cause
        for task_id, pending in self.execution.tasks.items():
            self.effects.append(CancelTask(task_id=task_id, resource=pending.resource))
        self.execution.tasks.clear()
        self.execution.timers.clear()
        self.execution.runs.clear()
        if self.execution.budget is not None:  # calls in flight are no longer awaited, nor charged
            self.execution.budget.reserved.clear()
            self.execution.budget.waiting.clear()
            self.execution.budget.released = False
        if status is ExecutionStatus.SUCCEEDED:
            self.history("ExecutionSucceeded", {"output": output})
        elif status is ExecutionStatus.FAILED:
            self.history("ExecutionFailed", causes.error_details(error, cause))
        elif status is ExecutionStatus.TIMED_OUT:
            self.history("ExecutionTimedOut", causes.error_details(error, cause))
        else:
            self.history("ExecutionAborted", causes.error_details(error, cause))
        self.effects.append(ExecutionFinished(status=status, output=output, error=error, cause=cause))

    def redrive(self) -> None:
        """RedriveExecution: only an execution that did not succeed, and knows where it stopped."""
        point = self.execution.redrive_point
        if self.execution.status in (ExecutionStatus.RUNNING, ExecutionStatus.SUCCEEDED) or point is None:
            return
        self.execution.status = ExecutionStatus.RUNNING
        self.execution.output = self.execution.error = self.execution.cause = None
        self.execution.redrive_count += 1
        self.execution.redrive_point = None
        self.history("ExecutionRedriven", {"redriveCount": self.execution.redrive_count})
        if self.machine.timeout_seconds:
            self.set_timer("execution_timeout", self.now + self.machine.timeout_seconds, None)
        root = Run(id=ROOT, variables=point.get("variables") or {})
        self.execution.runs[ROOT] = root
        self.enter(root, point["state"], point["input"])
        # For that state's execution only (enter clears it for any later state).
        root.redrive_completed = {int(index): result for index, result in (point.get("completed") or {}).items()}

    def stop(self, event: StopExecution) -> None:
        self.finish(ExecutionStatus.ABORTED, error=event.error, cause=event.cause)

    def inspect(self, run: Run, stage: str, value: Any) -> None:
        if self.env.single_state and run.parent is None:
            self.inspection[stage] = copy.deepcopy(value)

    def enter(self, run: Run, name: str, raw_input: Any) -> None:
        if self.env.single_state and run.parent is None and run.entries:
            self.inspection["nextState"] = name
            self.finish(ExecutionStatus.SUCCEEDED, output=raw_input)
            return
        run.current = name
        run.raw_input = raw_input
        run.effective_input = None
        run.redrive_completed = None
        run.status = "running"
        run.entries[name] = run.entries.get(name, 0) + 1
        state = self.state_of(run)
        run.retry_attempts = [0] * len(state.retry)
        run.retry_count = 0
        run.entered_time = self.timestamp
        run.entered_event_id = self.history(
            f"{state.type}StateEntered", {"name": name, "input": raw_input}
        )
        self.ready.append(run.id)

    def execute(self, run: Run) -> None:
        state = self.state_of(run)
        self.dispatch(STATE_TYPES[state.type].execute, run, state)

    def dispatch(self, hook: Callable[Concatenate[StateContext, Run, State, _P], None], run: Run, state: State,
                 *args: _P.args, **kwargs: _P.kwargs) -> None:
        """Call a hook of the run's state; a StatesError it raises fails the state (Retry, Catch)."""
        try:
            hook(self, run, state, *args, **kwargs)
        except errors.StatesError as exc:
            self.fail(run, state, exc.error, exc.cause, raised_here=True)

    def task_event(self, event: TaskEvent) -> None:
        pending = self.execution.tasks.get(event.task_id)
        if pending is None:
            return  # a duplicate or late answer: the task is no longer awaited
        run = self.execution.runs[pending.run_id]
        state = self.state_of(run)
        self.dispatch(STATE_TYPES[state.type].task_event, run, state, event)

    def exit(self, run: Run, state: State, output: Any, assigned: dict[str, Any]) -> None:
        self.leave(run, state, output, assigned)
        if state.end or state.type == "Succeed":
            self.run_succeeded(run, output)
        else:
            assert state.next is not None
            self.enter(run, state.next, output)

    def leave(self, run: Run, state: State, output: Any, assigned: dict[str, Any]) -> None:
        """Check the output, apply the state's assignments and write its `<Type>StateExited` event.

        Assignments take effect only here, when the state is left: every expression of the state
        (Output, ResultPath, OutputPath and the other assignments) saw the variables from before
        it (AWS developer guide, "Passing data between states with variables", evaluation order).
        Like AWS's history, the event lists the assigned variables, each value JSON-encoded
        (StateExitedEventDetails.assignedVariables), when there are any.
        """
        self.check_size(state, output)
        self.assign(run, state, assigned)
        details: dict[str, Any] = {"name": state.name, "output": output}
        if assigned:
            details["assignedVariables"] = {name: to_json(value) for name, value in assigned.items()}
            details["assignedVariablesDetails"] = {"truncated": False}
        self.history(f"{state.type}StateExited", details)

    def assign(self, run: Run, state: State, assigned: dict[str, Any]) -> None:
        """Apply the assignments (see `variables.assign`); a branch's or an iteration's outer scope
        is its parent run's."""
        parent = self.execution.runs.get(run.parent) if run.parent is not None else None
        outer = parent.variables if parent is not None else None
        variables.assign(run, state, assigned, outer, self.env.max_payload_bytes, self.env.max_variables_bytes)

    def timer_fired(self, event: TimerFired) -> None:
        timer = self.execution.timers.pop(event.timer_id, None)
        if timer is None:
            return  # cancelled or already handled
        if timer.purpose == "execution_timeout":
            self.finish(ExecutionStatus.TIMED_OUT, error=errors.TIMEOUT,
                         cause="The execution timed out.")
            return
        assert timer.run_id is not None
        run = self.execution.runs.get(timer.run_id)
        if run is None:
            return
        state = self.state_of(run)
        if timer.purpose == "retry":
            run.timer_id = None
            run.status = "running"
            self.ready.append(run.id)
        elif timer.purpose == "yield":
            self.ready.append(run.id)
        else:  # the state's own timer: a Wait's, a Task's timeout or heartbeat
            self.dispatch(STATE_TYPES[state.type].timer_fired, run, state, timer)

    def fail(self, run: Run, state: State, error: str | None, cause: str | None,
             raised_here: bool = False, failed_event: str | None = None) -> None:
        """Retry, then Catch, then fail the run (ASL spec, "Retrying after an error", "Fallback states").

        `failed_event` (MapStateFailed, ParallelStateFailed) is written once the state has really
        failed, not before each retry, as AWS's history shows.
        """
        if raised_here and error is not None:
            cause = self.where(run, state, error, cause)
        name = error or ""  # a Fail state without Error still fails, and States.ALL still matches it
        if state.type in RETRIABLE_TYPES:
            retry = next_retry(state.retry, run.retry_attempts, name, self.rng)
            if retry is not None and self.env.single_state and run.parent is None:
                self.inspection["retry"] = {"retrierIndex": retry.retrier_index,
                                            "delaySeconds": retry.delay_seconds,
                                            "retryCount": run.retry_count}
                self.finish(ExecutionStatus.FAILED, error=error, cause=cause)
                return
            if failed_event and retry is None:
                self.history(failed_event)
            if retry is not None:
                run.retry_attempts[retry.retrier_index] += 1
                run.retry_count += 1
                run.status = "waiting"
                run.timer_id = self.set_timer("retry", self.now + retry.delay_seconds, run.id)
                return
            catcher = find_catcher(state.catch, name)
            if catcher is not None:
                if self.env.single_state and run.parent is None:
                    self.inspection["caught"] = {"error": error, "cause": cause}
                try:
                    failure = error_output(name, cause)
                    output, assigned = catcher_output(run, state, catcher, failure, self.scope(run, state))
                    self.leave(run, state, output, assigned)
                except errors.StatesError as exc:
                    self.run_failed(run, exc.error, self.where(run, state, exc.error, exc.cause))
                    return
                self.enter(run, catcher.next, output)
                return
        self.run_failed(run, error, cause)

    @staticmethod
    def where(run: Run, state: State, error: str, cause: str | None) -> str | None:
        """AWS prefixes the causes of errors raised by the interpreter itself with where they happened."""
        if error not in _PREFIXED:
            return cause
        return (f"An error occurred while executing the state '{state.name}' "
                f"(entered at the event id #{run.entered_event_id}). {cause or ''}").rstrip()

    def run_failed(self, run: Run, error: str | None, cause: str | None) -> None:
        run.status = "failed"
        run.error, run.cause = error, cause
        if run.parent is None:
            self.finish(ExecutionStatus.FAILED, error=error, cause=cause)
        else:
            self.child_ended(run)

    def run_succeeded(self, run: Run, output: Any) -> None:
        run.status = "succeeded"
        run.output = output
        if run.parent is None:
            self.finish(ExecutionStatus.SUCCEEDED, output=output)
        else:
            self.child_ended(run)

    def child_ended(self, child: Run) -> None:
        """A branch or iteration ended: it leaves the runs, and its parent's state takes it."""
        parent = self.execution.runs[child.parent or ""]
        self.execution.runs.pop(child.id, None)
        state = self.state_of(parent)
        self.dispatch(STATE_TYPES[state.type].child_done, parent, state, child)


__all__ = ["Decision", "Environment", "decide", "new_execution", "utc", "timedelta"]
