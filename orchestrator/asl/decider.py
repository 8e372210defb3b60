"""The decider: a pure, deterministic function from (execution state, event) to (new state, effects).

    decision = decide(machine, state, event, env)

`env` injects everything that would otherwise make the result depend on the world: the time of
the event, a seed for randomness (jitter, States.MathRandom, States.UUID) and the task-token
signer. Given the same arguments, `decide` returns the same decision. It never mutates its
input state. The Kafka runtime, the local runner and TestState all call it; nothing else
interprets ASL.

Inside, an execution is a set of *runs*: the root run, one per Parallel branch and one per Map
iteration. A run advances through instantaneous states (Pass, Choice, Succeed, Fail) until it
waits on a task, a timer or its child runs.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from orchestrator.asl import choice, errors, resources
from orchestrator.asl.dataflow import (
    Scope,
    error_output,
    merge_result,
    read_path_field,
    resolve_template,
    select,
    to_json,
)
from orchestrator.asl.execution import (
    CancelTask,
    Effect,
    Event,
    ExecutionFinished,
    ExecutionState,
    ExecutionStatus,
    FanOut,
    HistoryEvent,
    PendingTask,
    PendingTimer,
    RedriveExecution,
    Run,
    RunTask,
    StartExecution,
    StartTimer,
    StopExecution,
    TaskFailed,
    TaskHeartbeat,
    TaskSucceeded,
    TimerFired,
)
from orchestrator.asl.model import ABSENT, State, StateMachine
from orchestrator.asl.retry import find_catcher, next_retry
from orchestrator.asl.timestamps import format_timestamp, parse_timestamp

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
# All the variables one run can see, at most (AWS developer guide, "Passing data between states
# with variables", variable size limits: 256 KiB per variable and per Assign, 10 MiB in total).
DEFAULT_MAX_VARIABLES_BYTES = 10 * 1024 * 1024
ROOT = "r"

# Errors raised by the interpreter itself get AWS's "where" prefix on their cause.
_PREFIXED = frozenset({errors.RUNTIME, errors.QUERY_EVALUATION_ERROR, errors.INTRINSIC_FAILURE})
_RETRIABLE_TYPES = frozenset({"Task", "Parallel", "Map"})


@dataclass(frozen=True)
class Environment:
    """What the world supplies to one decision."""

    now: datetime
    seed: int = 0
    task_token: Callable[[str], str] = field(default=lambda task_id: task_id)
    # The payload quota; also the limit of one variable and of one state's Assign.
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_variables_bytes: int = DEFAULT_MAX_VARIABLES_BYTES
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


def decide(machine: StateMachine, state: ExecutionState, event: Event, env: Environment) -> Decision:
    """Apply one event to an execution; return the new state and the effects to carry out."""
    return _Decider(machine, state.model_copy(deep=True), env).apply(event)


class _Decider:
    def __init__(self, machine: StateMachine, state: ExecutionState, env: Environment) -> None:
        self.machine = machine
        self.s = state
        self.env = env
        self.rng = random.Random(env.seed)
        self.now = env.now.timestamp()
        self.timestamp = format_timestamp(env.now)
        self.effects: list[Effect] = []
        self.ready: deque[str] = deque()
        self.inspection: dict[str, Any] = {}

    # ------------------------------------------------------------ entry point

    def apply(self, event: Event) -> Decision:
        if isinstance(event, RedriveExecution):
            self._redrive()
            self._drain()
            return Decision(self.s, self.effects, self.inspection)
        if self.s.status is not ExecutionStatus.RUNNING and not isinstance(event, StartExecution):
            return Decision(self.s, [])  # late events for a finished execution are ignored
        if isinstance(event, StartExecution):
            self._start(event)
        elif isinstance(event, TaskSucceeded):
            self._task_succeeded(event)
        elif isinstance(event, TaskFailed):
            self._task_failed(event)
        elif isinstance(event, TaskHeartbeat):
            self._heartbeat(event)
        elif isinstance(event, TimerFired):
            self._timer_fired(event)
        elif isinstance(event, StopExecution):
            self._stop(event)
        self._drain()
        return Decision(self.s, self.effects, self.inspection)

    def _drain(self) -> None:
        while self.ready and self.s.status is ExecutionStatus.RUNNING:
            run = self.s.runs.get(self.ready.popleft())
            if run is not None and run.status == "running":
                self._execute(run)

    # ------------------------------------------------------------ helpers

    def _history(self, type_: str, details: dict[str, Any] | None = None) -> int:
        self.s.last_event_id += 1
        self.effects.append(
            HistoryEvent(
                id=self.s.last_event_id,
                previous_event_id=self.s.last_event_id - 1,
                timestamp=self.timestamp,
                type=type_,
                details=details or {},
            )
        )
        return self.s.last_event_id

    def _next_id(self, prefix: str) -> str:
        self.s.seq += 1
        return f"{prefix}{self.s.seq}"

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _machine_of(self, run: Run) -> StateMachine:
        machine = self.machine
        for state_name, index in run.scope:
            state = machine.states[state_name]
            if index >= 0:
                machine = state.branches[index]
            else:
                assert state.processor is not None
                machine = state.processor
        return machine

    def _state_of(self, run: Run) -> State:
        assert run.current is not None
        return self._machine_of(run).states[run.current]

    def _context(self, run: Run, state: State, **extra: Any) -> dict[str, Any]:
        context: dict[str, Any] = {
            "Execution": {
                "Id": self.s.execution_id,
                "Input": self.s.input,
                "StartTime": self.s.start_time,
                "Name": self.s.name,
                "RoleArn": self.env.role_arn,
                "RedriveCount": self.s.redrive_count,
            },
            "StateMachine": {"Id": self.s.state_machine_id, "Name": self.s.state_machine_name},
            "State": {"EnteredTime": run.entered_time, "Name": state.name},
        }
        if state.type in _RETRIABLE_TYPES:
            context["State"]["RetryCount"] = run.retry_count
        context.update(extra)
        return context

    def _scope(self, run: Run, state: State, **extra: Any) -> Scope:
        return Scope(self._context(run, state, **extra), run.variables, self.rng, self._new_uuid)

    def _set_timer(self, purpose: Any, fire_at: float, run_id: str | None, task_id: str | None = None) -> str:
        timer_id = self._next_id("t")
        self.s.timers[timer_id] = PendingTimer(run_id=run_id, purpose=purpose, task_id=task_id, fire_at=fire_at)
        self.effects.append(StartTimer(timer_id=timer_id, fire_at=fire_at))
        return timer_id

    def _check_size(self, state: State, value: Any, what: str = "a result") -> None:
        """States.DataLimitExceeded past the payload quota (256 KiB by default, configurable)."""
        if len(to_json(value).encode()) > self.env.max_payload_bytes:
            verb = "returned" if what == "a result" else "has"
            raise errors.StatesError(
                errors.DATA_LIMIT_EXCEEDED,
                f"The state/task '{state.name}' {verb} {what} with a size exceeding "
                "the maximum number of bytes service limit.",
            )

    # ------------------------------------------------------------ execution lifecycle

    def _start(self, event: StartExecution) -> None:
        if self.s.runs or self.s.last_event_id:
            return  # idempotent: the execution already started
        self.s.input = event.input
        self.s.start_time = self.timestamp
        self._history("ExecutionStarted", {"input": event.input, "roleArn": self.env.role_arn})
        if self.machine.timeout_seconds:
            self._set_timer("execution_timeout", self.now + self.machine.timeout_seconds, None)
        root = Run(id=ROOT, variables=copy.deepcopy(dict(self.env.variables)))
        self.s.runs[ROOT] = root
        self._enter(root, self.machine.start_at, event.input)

    def _finish(self, status: ExecutionStatus, output: Any = None, error: str | None = None,
                cause: str | None = None) -> None:
        root = self.s.runs.get(ROOT)
        if self.env.single_state and root is not None and root.variables:
            # TestState's inspectionData.variables: the variables after the state.
            self.inspection["variables"] = copy.deepcopy(root.variables)
        if status is not ExecutionStatus.SUCCEEDED and root is not None and root.current is not None:
            self.s.redrive_point = {"state": root.current, "input": root.raw_input, "variables": root.variables}
        else:
            self.s.redrive_point = None
        self.s.status = status
        self.s.output, self.s.error, self.s.cause = output, error, cause
        for task_id, pending in self.s.tasks.items():
            self.effects.append(CancelTask(task_id=task_id, resource=pending.resource))
        self.s.tasks.clear()
        self.s.timers.clear()
        self.s.runs.clear()
        if status is ExecutionStatus.SUCCEEDED:
            self._history("ExecutionSucceeded", {"output": output})
        elif status is ExecutionStatus.FAILED:
            self._history("ExecutionFailed", _error_details(error, cause))
        elif status is ExecutionStatus.TIMED_OUT:
            self._history("ExecutionTimedOut", _error_details(error, cause))
        else:
            self._history("ExecutionAborted", _error_details(error, cause))
        self.effects.append(ExecutionFinished(status=status, output=output, error=error, cause=cause))

    def _redrive(self) -> None:
        """RedriveExecution: only an execution that did not succeed, and knows where it stopped."""
        point = self.s.redrive_point
        if self.s.status in (ExecutionStatus.RUNNING, ExecutionStatus.SUCCEEDED) or point is None:
            return
        self.s.status = ExecutionStatus.RUNNING
        self.s.output = self.s.error = self.s.cause = None
        self.s.redrive_count += 1
        self.s.redrive_point = None
        self._history("ExecutionRedriven", {"redriveCount": self.s.redrive_count})
        if self.machine.timeout_seconds:
            self._set_timer("execution_timeout", self.now + self.machine.timeout_seconds, None)
        root = Run(id=ROOT, variables=point.get("variables") or {})
        self.s.runs[ROOT] = root
        self._enter(root, point["state"], point["input"])

    def _stop(self, event: StopExecution) -> None:
        self._finish(ExecutionStatus.ABORTED, error=event.error, cause=event.cause)

    # ------------------------------------------------------------ states

    def _inspect(self, run: Run, stage: str, value: Any) -> None:
        if self.env.single_state and run.parent is None:
            self.inspection[stage] = copy.deepcopy(value)

    def _enter(self, run: Run, name: str, raw_input: Any) -> None:
        if self.env.single_state and run.parent is None and run.entries:
            self.inspection["nextState"] = name
            self._finish(ExecutionStatus.SUCCEEDED, output=raw_input)
            return
        run.current = name
        run.raw_input = raw_input
        run.effective_input = None
        run.status = "running"
        run.entries[name] = run.entries.get(name, 0) + 1
        state = self._state_of(run)
        run.retry_attempts = [0] * len(state.retry)
        run.retry_count = 0
        run.entered_time = self.timestamp
        run.entered_event_id = self._history(
            f"{state.type}StateEntered", {"name": name, "input": raw_input}
        )
        self.ready.append(run.id)

    def _execute(self, run: Run) -> None:
        state = self._state_of(run)
        handler = getattr(self, f"_run_{state.type.lower()}")
        try:
            handler(run, state)
        except errors.StatesError as exc:
            self._state_failed(run, state, exc.error, exc.cause, raised_here=True)

    def _exit(self, run: Run, state: State, output: Any, assigned: dict[str, Any]) -> None:
        self._leave(run, state, output, assigned)
        if state.end or state.type == "Succeed":
            self._run_succeeded(run, output)
        else:
            assert state.next is not None
            self._enter(run, state.next, output)

    def _leave(self, run: Run, state: State, output: Any, assigned: dict[str, Any]) -> None:
        """Check the output, apply the state's assignments and write its `<Type>StateExited` event.

        Assignments take effect only here, when the state is left: every expression of the state
        (Output, ResultPath, OutputPath and the other assignments) saw the variables from before
        it (AWS developer guide, "Passing data between states with variables", evaluation order).
        Like AWS's history, the event lists the assigned variables, each value JSON-encoded
        (StateExitedEventDetails.assignedVariables), when there are any.
        """
        self._check_size(state, output)
        self._assign(run, state, assigned)
        details: dict[str, Any] = {"name": state.name, "output": output}
        if assigned:
            details["assignedVariables"] = {name: to_json(value) for name, value in assigned.items()}
            details["assignedVariablesDetails"] = {"truncated": False}
        self._history(f"{state.type}StateExited", details)

    def _assign(self, run: Run, state: State, assigned: dict[str, Any]) -> None:
        """Apply one state's assignments, within AWS's rules on scope and size.

        A Parallel branch or Map iteration reads the variables of the scopes around it but cannot
        assign them (AWS developer guide, "Passing data between states with variables", variable
        scope). This is enforced when it happens, against the variables the outer scope has then,
        as LocalStack's interpreter does: AWS accepted a definition whose branch and whose
        Parallel's Catcher assign the same name (conformance case PARALLEL_CATCH_ERROR_VARIABLE_SAMPLING).
        Sizes (same guide, variable size limits): one variable, and one state's assignments
        together, within the payload quota (256 KiB by default); all the variables a run sees
        within 10 MiB by default.
        """
        if not assigned:
            return
        parent = self.s.runs.get(run.parent) if run.parent is not None else None
        outer = sorted(set(assigned) & set(parent.variables)) if parent is not None else []
        if outer:
            raise errors.StatesError(
                errors.RUNTIME,
                f"The state '{state.name}' cannot assign the variable '{outer[0]}': it belongs to an outer "
                "scope, which a Parallel branch or Map iteration can read but not assign.",
            )
        limit = self.env.max_payload_bytes
        total = 0
        for name, value in assigned.items():
            size = len(to_json(value).encode())
            total += size
            if size > limit:
                raise errors.StatesError(
                    errors.DATA_LIMIT_EXCEEDED,
                    f"The state/task '{state.name}' assigned the variable '{name}' a value of {size} bytes, "
                    f"exceeding the maximum number of bytes service limit ({limit}) for one variable.",
                )
        if total > limit:
            raise errors.StatesError(
                errors.DATA_LIMIT_EXCEEDED,
                f"The state/task '{state.name}' assigned {total} bytes of variables, exceeding the maximum "
                f"number of bytes service limit ({limit}) for the variables assigned by one state.",
            )
        merged = {**run.variables, **assigned}
        size = len(to_json(merged).encode())
        if size > self.env.max_variables_bytes:
            raise errors.StatesError(
                errors.DATA_LIMIT_EXCEEDED,
                f"The state/task '{state.name}' brought the variables of the execution to {size} bytes, "
                f"exceeding the maximum number of bytes service limit ({self.env.max_variables_bytes}) "
                "for all variables.",
            )
        run.variables.update(copy.deepcopy(assigned))

    @staticmethod
    def _assignments(template: Any, value: Any, scope: Scope) -> dict[str, Any]:
        """Assign (JSONPath flavour), evaluated but not yet applied: `$` is the state's result (or
        its effective input, for Choice and Wait; the error output, in a Catcher)."""
        if template is ABSENT or template is None:
            return {}
        assigned: dict[str, Any] = resolve_template(template, value, scope)
        return assigned

    # JSONata: `{% %}` expressions see $states (input, result, errorOutput, context) and the variables.

    def _jsonata(self, run: Run, scope: Scope, template: Any, field: str, **states: Any) -> Any:
        from orchestrator.asl import jsonata

        bound = {"input": run.raw_input, "context": scope.context, **states}
        return jsonata.evaluate_template(
            template, field=field, states=bound, variables=run.variables, rng=self.rng, new_uuid=self._new_uuid
        )

    def _field(self, run: Run, state: State, scope: Scope, name: str, **states: Any) -> Any:
        """A literal field, or in a JSONata state possibly an expression (Seconds, Items, Error, ...)."""
        value = state.get(name)
        if state.is_jsonata and value is not ABSENT:
            return self._jsonata(run, scope, value, name, **states)
        return value

    def _finish_jsonata(self, run: Run, scope: Scope, output_template: Any, assign_template: Any,
                        default: Any, **states: Any) -> tuple[Any, dict[str, Any]]:
        """JSONata Output and Assign, evaluated (Assign first, as AWS reports its errors first) but
        not applied: both see the variables as they were before this state."""
        assigned: dict[str, Any] = {}
        if assign_template is not ABSENT and assign_template is not None:
            assigned = self._jsonata(run, scope, assign_template, "Assign", **states)
        output = (self._jsonata(run, scope, output_template, "Output", **states)
                  if output_template is not ABSENT else default)
        return output, assigned

    def _passthrough_output(self, run: Run, state: State, scope: Scope, effective: Any,
                            rule: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Output and assignments of a state without a result (Choice, Wait, Succeed, JSONata Pass)."""
        source = rule if rule is not None else state.raw
        if state.is_jsonata:
            return self._finish_jsonata(run, scope, source.get("Output", ABSENT), source.get("Assign", ABSENT),
                                        run.raw_input)
        assigned = self._assignments(source.get("Assign", ABSENT), effective, scope)
        output = select(state.get("OutputPath"), effective, scope)
        return output, assigned

    def _task_input(self, run: Run, state: State, scope: Scope) -> Any:
        """InputPath then Parameters (JSONPath), or Arguments (JSONata): what the task/branches get."""
        if state.is_jsonata:
            arguments = state.get("Arguments")
            effective = run.raw_input if arguments is ABSENT else self._jsonata(run, scope, arguments, "Arguments")
            self._inspect(run, "afterArguments", effective)
            self._check_size(state, effective, what="an input")
            return effective
        effective = select(state.get("InputPath"), run.raw_input, scope)
        self._inspect(run, "afterInputPath", effective)
        if state.has("Parameters"):
            effective = resolve_template(state.get("Parameters"), effective, scope)
            self._inspect(run, "afterParameters", effective)
        self._check_size(state, effective, what="an input")
        return effective

    def _run_pass(self, run: Run, state: State) -> None:
        scope = self._scope(run, state)
        if state.is_jsonata:
            self._exit(run, state, *self._passthrough_output(run, state, scope, run.raw_input))
            return
        effective = select(state.get("InputPath"), run.raw_input, scope)
        self._inspect(run, "afterInputPath", effective)
        if state.has("Parameters"):
            effective = resolve_template(state.get("Parameters"), effective, scope)
            self._inspect(run, "afterParameters", effective)
        result = copy.deepcopy(state.get("Result")) if state.has("Result") else effective
        self._inspect(run, "result", result)
        self._exit(run, state, *self._result_to_output(run, state, result, scope))

    def _result_to_output(self, run: Run, state: State, result: Any, scope: Scope) -> tuple[Any, dict[str, Any]]:
        """The output and the assignments of a state with a result (Pass, Task, Parallel, Map)."""
        if state.is_jsonata:
            output, assigned = self._finish_jsonata(run, scope, state.get("Output"), state.get("Assign"), result,
                                                    result=result)
            self._inspect(run, "output", output)
            return output, assigned
        assigned = self._assignments(state.get("Assign"), result, scope)
        merged = merge_result(state.get("ResultPath"), run.raw_input, result)
        self._inspect(run, "afterResultPath", merged)
        output = select(state.get("OutputPath"), merged, scope)
        self._inspect(run, "output", output)
        return output, assigned

    def _run_succeed(self, run: Run, state: State) -> None:
        scope = self._scope(run, state)
        effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
        self._exit(run, state, *self._passthrough_output(run, state, scope, effective))

    def _run_fail(self, run: Run, state: State) -> None:
        scope = self._scope(run, state)
        error = self._field(run, state, scope, "Error")
        cause = self._field(run, state, scope, "Cause")
        error = None if error is ABSENT else error
        cause = None if cause is ABSENT else cause
        if state.has("ErrorPath"):
            error = _string_field("ErrorPath", state.get("ErrorPath"), run.raw_input, scope)
        if state.has("CausePath"):
            cause = _string_field("CausePath", state.get("CausePath"), run.raw_input, scope)
        for field_name, value in (("Error", error), ("Cause", cause)):
            if value is not None and not isinstance(value, str):
                raise errors.StatesError(
                    errors.QUERY_EVALUATION_ERROR if state.is_jsonata else errors.RUNTIME,
                    f"The {field_name} of a Fail state must be a string, not {to_json(value)}",
                )
        self._run_failed(run, error, cause)

    def _run_choice(self, run: Run, state: State) -> None:
        scope = self._scope(run, state)
        effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
        target: str | None = None
        matched: dict[str, Any] | None = None
        for rule in state.get("Choices"):
            if self._rule_matches(run, state, scope, rule, effective):
                target, matched = rule["Next"], rule
                break
        if target is None:
            target = state.get("Default", None)
            if target is None:
                raise errors.StatesError(errors.NO_CHOICE_MATCHED, "No Matches!")
        output, assigned = self._passthrough_output(run, state, scope, effective, matched)
        self._leave(run, state, output, assigned)
        self._enter(run, target, output)

    def _rule_matches(self, run: Run, state: State, scope: Scope, rule: dict[str, Any], effective: Any) -> bool:
        if not state.is_jsonata:
            return choice.evaluate_rule(rule, effective, context=scope.context, variables=run.variables)
        value = rule.get("Condition")
        outcome = self._jsonata(run, scope, value, "Condition") if isinstance(value, str) else value
        if not isinstance(outcome, bool):
            raise errors.StatesError(
                errors.QUERY_EVALUATION_ERROR,
                f"The JSONata expression '{_expression_text(value)}' specified for the field 'Condition' returned "
                f"an unexpected result type. Expected 'boolean', but was '{_json_type(outcome)}' for value: "
                f"{to_json(outcome)}",
            )
        return outcome

    def _run_wait(self, run: Run, state: State) -> None:
        scope = self._scope(run, state)
        effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
        fire_at = self._wait_until(run, state, effective, scope)
        if fire_at <= self.now:
            self._leave_wait(run, state)
            return
        run.status = "waiting"
        run.timer_id = self._set_timer("wait", fire_at, run.id)

    def _leave_wait(self, run: Run, state: State) -> None:
        """A Wait's Output/OutputPath and Assign are evaluated when the wait is over, as the state is
        left; nothing else runs in this run meanwhile, so they see what they would have seen at entry."""
        scope = self._scope(run, state)
        effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
        self._exit(run, state, *self._passthrough_output(run, state, scope, effective))

    def _wait_until(self, run: Run, state: State, effective: Any, scope: Scope) -> float:
        if state.has("Seconds"):
            seconds = self._field(run, state, scope, "Seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise errors.StatesError(
                    errors.QUERY_EVALUATION_ERROR if state.is_jsonata else errors.RUNTIME,
                    f"The Seconds field must be a non-negative integer, not {to_json(seconds)}",
                )
            return self.now + float(seconds)
        if state.has("Timestamp"):
            stamp = self._field(run, state, scope, "Timestamp")
            try:
                return parse_timestamp(stamp).timestamp()
            except (TypeError, ValueError):
                raise errors.StatesError(
                    errors.QUERY_EVALUATION_ERROR if state.is_jsonata else errors.RUNTIME,
                    f"The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: "
                    f"{_plain(stamp)}",
                ) from None
        if state.has("SecondsPath"):
            path = state.get("SecondsPath")
            value = read_path_field("SecondsPath", path, effective, scope)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
                raise errors.StatesError(
                    errors.RUNTIME,
                    f"The SecondsPath parameter cannot be parsed as a long value: {path} == {_plain(value)}",
                )
            if value < 0:
                raise errors.StatesError(
                    errors.RUNTIME, f"The SecondsPath parameter references a negative value: {path} == {_plain(value)}"
                )
            return self.now + float(value)
        path = state.get("TimestampPath")
        value = read_path_field("TimestampPath", path, effective, scope)
        try:
            return parse_timestamp(value).timestamp()
        except (TypeError, ValueError):
            raise errors.StatesError(
                errors.RUNTIME,
                "The TimestampPath parameter does not reference a valid ISO-8601 extended offset "
                f"date-time format string: {path} == {_plain(value)}",
            ) from None

    # ------------------------------------------------------------ Task

    def _run_task(self, run: Run, state: State) -> None:
        machine_key = f"{run.id}/{state.name}/{run.entries[state.name]}/{run.retry_count}"
        task_id = f"{self.s.execution_id}/{machine_key}"
        resource = resources.parse_resource(state.get("Resource"))
        token = self.env.task_token(task_id) if resource.pattern == resources.CALLBACK else None
        extra = {"Task": {"Token": token}} if token is not None else {}
        scope = self._scope(run, state, **extra)
        effective = self._task_input(run, state, scope)
        run.effective_input = effective
        timeout = self._seconds_field(run, state, "TimeoutSeconds", scope)
        heartbeat = self._seconds_field(run, state, "HeartbeatSeconds", scope)
        self.s.tasks[task_id] = PendingTask(
            run_id=run.id, state_name=state.name, resource=resource.uri, attempt=run.retry_count,
            heartbeat_seconds=heartbeat,
        )
        pending = self.s.tasks[task_id]
        if timeout is not None:
            pending.timeout_timer = self._set_timer("task_timeout", self.now + timeout, run.id, task_id)
        if heartbeat is not None:
            pending.heartbeat_timer = self._set_timer("heartbeat", self.now + heartbeat, run.id, task_id)
        run.status = "waiting"
        run.task_id = task_id
        prefix = resource.history_prefix
        scheduled: dict[str, Any] = {
            "resourceType": resource.resource_type,
            "resource": resource.resource_name,
            "region": "local",
            "parameters": to_json(effective),
        }
        if prefix == "LambdaFunction":
            scheduled = {"resource": resource.uri, "input": to_json(effective)}
        if timeout is not None:
            scheduled["timeoutInSeconds"] = int(timeout)
        if heartbeat is not None:
            scheduled["heartbeatInSeconds"] = int(heartbeat)
        self._history(f"{prefix}Scheduled", scheduled)
        self._history(f"{prefix}Started", _resource_details(resource))
        self.effects.append(
            RunTask(
                task_id=task_id, resource=resource.uri, parameters=effective, state_name=state.name,
                attempt=run.retry_count, task_token=token, timeout_seconds=timeout, heartbeat_seconds=heartbeat,
            )
        )

    def _seconds_field(self, run: Run, state: State, name: str, scope: Scope) -> float | None:
        if state.has(name):
            value = self._field(run, state, scope, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise errors.StatesError(
                    errors.QUERY_EVALUATION_ERROR if state.is_jsonata else errors.RUNTIME,
                    f"The {name} field must be a positive integer, not {to_json(value)}",
                )
            return float(value)
        if state.has(name + "Path"):
            path = state.get(name + "Path")
            value = read_path_field(name + "Path", path, run.raw_input, scope)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise errors.StatesError(
                    errors.RUNTIME, f"The {name}Path parameter must be a positive integer: {path} == {_plain(value)}"
                )
            return float(value)
        if name == "TimeoutSeconds" and state.type == "Task":
            return None
        return None

    def _settle_task(self, task_id: str, outcome: str, details: dict[str, Any]) -> tuple[Run, State] | None:
        """Stop awaiting a task (it succeeded, failed or timed out) and record it in the history."""
        pending = self.s.tasks.pop(task_id, None)
        if pending is None:
            return None  # a duplicate or late result: the task is no longer awaited
        for timer in (pending.timeout_timer, pending.heartbeat_timer):
            if timer:
                self.s.timers.pop(timer, None)
        run = self.s.runs[pending.run_id]
        run.task_id = None
        run.status = "running"
        resource = resources.parse_resource(pending.resource)
        self._history(f"{resource.history_prefix}{outcome}", {**_resource_details(resource), **details})
        return run, self._state_of(run)

    def _task_succeeded(self, event: TaskSucceeded) -> None:
        settled = self._settle_task(event.task_id, "Succeeded", {"output": to_json(event.output)})
        if settled is not None:
            self._apply_result(*settled, event.output)

    def _apply_result(self, run: Run, state: State, result: Any) -> None:
        """ResultSelector, then Assign/ResultPath/OutputPath (or JSONata Output), then leave the state."""
        try:
            self._check_size(state, result)
            scope = self._scope(run, state)
            self._inspect(run, "result", result)
            if state.has("ResultSelector") and not state.is_jsonata:
                result = resolve_template(state.get("ResultSelector"), result, scope)
                self._inspect(run, "afterResultSelector", result)
            self._exit(run, state, *self._result_to_output(run, state, result, scope))
        except errors.StatesError as exc:
            self._state_failed(run, state, exc.error, exc.cause, raised_here=True)

    def _task_failed(self, event: TaskFailed) -> None:
        settled = self._settle_task(event.task_id, "Failed", _error_details(event.error, event.cause))
        if settled is not None:
            self._state_failed(*settled, event.error, event.cause)

    def _heartbeat(self, event: TaskHeartbeat) -> None:
        pending = self.s.tasks.get(event.task_id)
        if pending is None or pending.heartbeat_seconds is None:
            return
        if pending.heartbeat_timer:
            self.s.timers.pop(pending.heartbeat_timer, None)
        pending.heartbeat_timer = self._set_timer(
            "heartbeat", self.now + pending.heartbeat_seconds, pending.run_id, event.task_id
        )

    # ------------------------------------------------------------ timers

    def _timer_fired(self, event: TimerFired) -> None:
        timer = self.s.timers.pop(event.timer_id, None)
        if timer is None:
            return  # cancelled or already handled
        if timer.purpose == "execution_timeout":
            self._finish(ExecutionStatus.TIMED_OUT, error=errors.TIMEOUT,
                         cause="The execution timed out.")
            return
        assert timer.run_id is not None
        run = self.s.runs.get(timer.run_id)
        if run is None:
            return
        state = self._state_of(run)
        if timer.purpose == "wait":
            run.timer_id = None
            run.status = "running"
            try:
                self._leave_wait(run, state)
            except errors.StatesError as exc:
                self._state_failed(run, state, exc.error, exc.cause, raised_here=True)
        elif timer.purpose == "retry":
            run.timer_id = None
            run.status = "running"
            self.ready.append(run.id)
        else:
            assert timer.task_id is not None
            error = errors.TIMEOUT if timer.purpose == "task_timeout" else errors.HEARTBEAT_TIMEOUT
            pending = self.s.tasks.get(timer.task_id)
            settled = self._settle_task(timer.task_id, "TimedOut", _error_details(error, None))
            if settled is not None and pending is not None:
                self.effects.append(CancelTask(task_id=timer.task_id, resource=pending.resource))
                self._state_failed(*settled, error, None)

    # ------------------------------------------------------------ failure handling

    def _state_failed(self, run: Run, state: State, error: str | None, cause: str | None,
                      raised_here: bool = False, failed_event: str | None = None) -> None:
        """Retry, then Catch, then fail the run (ASL spec, "Retrying after an error", "Fallback states").

        `failed_event` (MapStateFailed, ParallelStateFailed) is written once the state has really
        failed, not before each retry, as AWS's history shows.
        """
        if raised_here and error is not None:
            cause = self._where(run, state, error, cause)
        name = error or ""  # a Fail state without Error still fails, and States.ALL still matches it
        if state.type in _RETRIABLE_TYPES:
            retry = next_retry(state.retry, run.retry_attempts, name, self.rng)
            if retry is not None and self.env.single_state and run.parent is None:
                self.inspection["retry"] = {"retrierIndex": retry.retrier_index,
                                            "delaySeconds": retry.delay_seconds,
                                            "retryCount": run.retry_count}
                self._finish(ExecutionStatus.FAILED, error=error, cause=cause)
                return
            if failed_event and retry is None:
                self._history(failed_event)
            if retry is not None:
                run.retry_attempts[retry.retrier_index] += 1
                run.retry_count += 1
                run.status = "waiting"
                run.timer_id = self._set_timer("retry", self.now + retry.delay_seconds, run.id)
                return
            catcher = find_catcher(state.catch, name)
            if catcher is not None:
                if self.env.single_state and run.parent is None:
                    self.inspection["caught"] = {"error": error, "cause": cause}
                try:
                    scope = self._scope(run, state)
                    failure = error_output(name, cause)
                    if state.is_jsonata:
                        output, assigned = self._finish_jsonata(run, scope, catcher.output, catcher.assign, failure,
                                                                errorOutput=failure)
                    else:
                        assigned = self._assignments(catcher.assign, failure, scope)
                        output = merge_result(catcher.result_path, run.raw_input, failure)
                    self._leave(run, state, output, assigned)
                except errors.StatesError as exc:
                    self._run_failed(run, exc.error, self._where(run, state, exc.error, exc.cause))
                    return
                self._enter(run, catcher.next, output)
                return
        self._run_failed(run, error, cause)

    @staticmethod
    def _where(run: Run, state: State, error: str, cause: str | None) -> str | None:
        """AWS prefixes the causes of errors raised by the interpreter itself with where they happened."""
        if error not in _PREFIXED:
            return cause
        return (f"An error occurred while executing the state '{state.name}' "
                f"(entered at the event id #{run.entered_event_id}). {cause or ''}").rstrip()

    def _run_failed(self, run: Run, error: str | None, cause: str | None) -> None:
        run.status = "failed"
        run.error, run.cause = error, cause
        if run.parent is None:
            self._finish(ExecutionStatus.FAILED, error=error, cause=cause)
        else:
            self._child_finished(run)

    def _run_succeeded(self, run: Run, output: Any) -> None:
        run.status = "succeeded"
        run.output = output
        if run.parent is None:
            self._finish(ExecutionStatus.SUCCEEDED, output=output)
        else:
            self._child_finished(run)

    def _abort(self, run_id: str | None) -> None:
        """Cancel a run and everything under it (a sibling branch failed, or its Map gave up)."""
        run = self.s.runs.pop(run_id, None) if run_id else None
        if run is None:
            return
        if run.task_id and run.task_id in self.s.tasks:
            pending = self.s.tasks.pop(run.task_id)
            self.effects.append(CancelTask(task_id=run.task_id, resource=pending.resource))
        for timer_id in [t for t, timer in self.s.timers.items() if timer.run_id == run.id]:
            del self.s.timers[timer_id]
        if run.fanout:
            for child in run.fanout.children:
                self._abort(child)

    # ------------------------------------------------------------ Parallel and Map

    def _run_parallel(self, run: Run, state: State) -> None:
        scope = self._scope(run, state)
        effective = self._task_input(run, state, scope)
        self._history("ParallelStateStarted")
        fanout = FanOut(kind="parallel", results=[None] * len(state.branches), effective_input=effective)
        run.fanout = fanout
        run.status = "waiting"
        for index, branch in enumerate(state.branches):
            child = self._spawn(run, state, index, index)
            fanout.children.append(child.id)
            fanout.running += 1
            self._enter(child, branch.start_at, copy.deepcopy(effective))

    def _spawn(self, parent: Run, state: State, scope_index: int, index: int) -> Run:
        child = Run(
            id=self._next_id("r"),
            scope=[*parent.scope, (state.name, scope_index)],
            parent=parent.id,
            index=index,
            variables=copy.deepcopy(parent.variables),
        )
        self.s.runs[child.id] = child
        return child

    def _run_map(self, run: Run, state: State) -> None:
        scope = self._scope(run, state)
        effective, items = self._map_items(run, state, scope)
        fanout = FanOut(
            kind="map",
            children=[None] * len(items),
            results=[None] * len(items),
            items=copy.deepcopy(items),
            max_concurrency=self._map_number(state, "MaxConcurrency", effective, scope, run) or 0,
            tolerated_count=self._map_number(state, "ToleratedFailureCount", effective, scope, run),
            tolerated_percentage=self._map_number(state, "ToleratedFailurePercentage", effective, scope, run),
            effective_input=effective,
        )
        run.fanout = fanout
        run.status = "waiting"
        self._history("MapStateStarted", {"length": len(items)})
        if not items:
            self._fanout_done(run, state)
            return
        self._launch_items(run, state)

    def _map_items(self, run: Run, state: State, scope: Scope) -> tuple[Any, list[Any]]:
        """The Map's effective input and its items (ItemsPath, or JSONata Items)."""
        if state.is_jsonata:
            raw_items = state.get("Items")
            if raw_items is ABSENT:
                if not isinstance(run.raw_input, list):
                    raise errors.StatesError(
                        errors.QUERY_EVALUATION_ERROR,
                        f"Map state input must be an array but was: {to_json(run.raw_input)}",
                    )
                return run.raw_input, run.raw_input
            items = self._jsonata(run, scope, raw_items, "Items")
            if not isinstance(items, list):
                raise errors.StatesError(
                    errors.QUERY_EVALUATION_ERROR,
                    f"The JSONata expression '{_expression_text(raw_items)}' specified for the field 'Items' "
                    f"returned an unexpected result type. Expected 'array', but was '{_json_type(items)}' "
                    f"for value: {to_json(items)}",
                )
            return run.raw_input, items
        effective = select(state.get("InputPath"), run.raw_input, scope)
        items_path = state.get("ItemsPath", "$")
        items = read_path_field("ItemsPath", items_path, effective, scope)
        if not isinstance(items, list):
            raise errors.StatesError(
                errors.RUNTIME,
                f"Invalid path '{items_path}': the value is not an array: {to_json(items)}",
            )
        return effective, items

    def _map_number(self, state: State, name: str, data: Any, scope: Scope, run: Run | None = None) -> Any:
        """MaxConcurrency, ToleratedFailureCount, ToleratedFailurePercentage, or their Path form."""
        if state.has(name):
            if run is not None and state.is_jsonata:
                return self._field(run, state, scope, name)
            return state.get(name)
        if not state.has(name + "Path"):
            return None
        path = state.get(name + "Path")
        value = read_path_field(name + "Path", path, data, scope)
        is_percentage = name == "ToleratedFailurePercentage"
        number = not isinstance(value, bool) and isinstance(value, (int, float))
        if not number or (not is_percentage and value != int(value)):
            kind = "float" if is_percentage else "integer"
            raise errors.StatesError(
                errors.RUNTIME,
                f"The {name}Path field refers to value \"{_plain(value)}\" which is not a valid {kind}: {path}",
            )
        if is_percentage:
            if not 0 <= value <= 100:
                raise errors.StatesError(errors.RUNTIME, f"{name} must be between 0 and 100.")
            return float(value)
        if value < 0:
            raise errors.StatesError(errors.RUNTIME, f"{name} cannot be negative.")
        return int(value)

    def _launch_items(self, run: Run, state: State) -> None:
        fanout = run.fanout
        assert fanout is not None and state.processor is not None
        while fanout.next_index < len(fanout.items) and (
            fanout.max_concurrency == 0 or fanout.running < fanout.max_concurrency
        ):
            index = fanout.next_index
            fanout.next_index += 1
            item = fanout.items[index]
            selector = state.get("ItemSelector", state.get("Parameters"))
            if selector is not ABSENT:
                scope = self._scope(run, state, Map={"Item": {"Index": index, "Value": item}})
                if state.is_jsonata:
                    item = self._jsonata(run, scope, selector, "ItemSelector")
                else:
                    item = resolve_template(selector, fanout.effective_input, scope)
            child = self._spawn(run, state, -1, index)
            child.map_item = {"Index": index, "Value": fanout.items[index]}
            fanout.children[index] = child.id
            fanout.running += 1
            self._history("MapIterationStarted", {"name": state.name, "index": index})
            self._enter(child, state.processor.start_at, item)

    def _child_finished(self, child: Run) -> None:
        parent = self.s.runs[child.parent or ""]
        self.s.runs.pop(child.id, None)
        fanout = parent.fanout
        state = self._state_of(parent)
        if fanout is None:
            return
        fanout.running -= 1
        fanout.finished += 1
        if fanout.kind == "parallel":
            if child.status == "failed":
                self._fanout_failed(parent, state, child.error, child.cause)
                return
            fanout.results[child.index] = child.output
            if fanout.finished == len(fanout.results):
                self._fanout_done(parent, state)
            return
        if child.status == "failed":
            self._history("MapIterationFailed", {"name": state.name, "index": child.index})
            fanout.failed += 1
            fanout.results[child.index] = error_output(child.error or "", child.cause)
            if self._tolerance_exceeded(fanout):
                tolerant = fanout.tolerated_count is not None or fanout.tolerated_percentage is not None
                if tolerant:
                    self._fanout_failed(
                        parent, state, errors.EXCEED_TOLERATED_FAILURE_THRESHOLD,
                        "The specified tolerated failure threshold was exceeded",
                    )
                else:
                    self._fanout_failed(parent, state, child.error, child.cause)
                return
        else:
            self._history("MapIterationSucceeded", {"name": state.name, "index": child.index})
            fanout.results[child.index] = child.output
        if fanout.finished == len(fanout.items):
            self._fanout_done(parent, state)
        else:
            try:
                self._launch_items(parent, state)
            except errors.StatesError as exc:
                self._fanout_failed(parent, state, exc.error, exc.cause, raised_here=True)

    @staticmethod
    def _tolerance_exceeded(fanout: FanOut) -> bool:
        """Without a threshold any failure fails the Map; with both, exceeding either does
        (AWS guide, "Tolerated failure threshold for Distributed Map state")."""
        if fanout.tolerated_count is None and fanout.tolerated_percentage is None:
            return fanout.failed > 0
        if fanout.tolerated_count is not None and fanout.failed > fanout.tolerated_count:
            return True
        percentage = fanout.failed * 100.0 / len(fanout.items)
        return fanout.tolerated_percentage is not None and percentage > fanout.tolerated_percentage

    def _fanout_failed(self, run: Run, state: State, error: str | None, cause: str | None,
                       raised_here: bool = False) -> None:
        fanout = run.fanout
        if fanout is not None:
            for child in fanout.children:
                self._abort(child)
        run.fanout = None
        run.status = "running"
        self._state_failed(run, state, error, cause, raised_here=raised_here,
                           failed_event=f"{state.type}StateFailed")

    def _fanout_done(self, run: Run, state: State) -> None:
        fanout = run.fanout
        assert fanout is not None
        results = fanout.results
        run.fanout = None
        run.status = "running"
        self._history(f"{state.type}StateSucceeded")
        self._apply_result(run, state, results)


# ---------------------------------------------------------------- small pure helpers


def _plain(value: Any) -> str:
    """A value as AWS prints it inside a cause: strings bare, everything else as JSON."""
    return value if isinstance(value, str) else to_json(value)


def _expression_text(value: Any) -> str:
    """The expression inside `{% ... %}`, as AWS quotes it in causes."""
    text = str(value).strip()
    if text.startswith("{%") and text.endswith("%}"):
        text = text[2:-2]
    return text.strip()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _string_field(field_name: str, path: str, data: Any, scope: Scope) -> Any:
    """ErrorPath / CausePath: "must select a field that contains a string value" (AWS, Fail state)."""
    value = read_path_field(field_name, path, data, scope)
    if not isinstance(value, str):
        raise errors.StatesError(
            errors.RUNTIME, f"The {field_name} '{path}' must reference a string, not {to_json(value)}"
        )
    return value


def _error_details(error: str | None, cause: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if error is not None:
        details["error"] = error
    if cause is not None:
        details["cause"] = cause
    return details


def _resource_details(resource: resources.Resource) -> dict[str, Any]:
    if resource.history_prefix == "LambdaFunction":
        return {}
    return {"resourceType": resource.resource_type, "resource": resource.resource_name}


def utc(now: datetime | None = None) -> datetime:
    """An aware UTC datetime (helper for callers building an Environment)."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc)


__all__ = ["Decision", "Environment", "decide", "new_execution", "utc", "timedelta"]
