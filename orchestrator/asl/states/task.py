"""Task: schedule a step command, then settle it on a result, a failure, a heartbeat or a timeout."""

from __future__ import annotations

from typing import Any

from orchestrator.asl import budget, causes, errors
from orchestrator.asl.context import StateContext, StateHooks, TaskEvent
from orchestrator.asl.dataflow import Scope, read_path_field, to_json
from orchestrator.asl.execution import (
    CancelTask,
    PendingTask,
    PendingTimer,
    Run,
    RunTask,
    TaskFailed,
    TaskHeartbeat,
    TaskSucceeded,
)
from orchestrator.asl.model import State
from orchestrator.asl.processing import apply_result, field, task_input
from schemas import resources


def execute(ctx: StateContext, run: Run, state: State) -> None:
    execution = ctx.execution
    machine_key = f"{run.id}/{state.name}/{run.entries[state.name]}/{run.retry_count}"
    if execution.redrive_count:
        # A redriven execution re-enters states afresh: its tasks (and tokens) must not be the
        # failed attempt's, or a late answer to that attempt would complete the new one.
        machine_key = f"redrive{execution.redrive_count}/{machine_key}"
    if execution.start_time:
        # Tasks (and their tokens) name the run by its start time: once this execution's retention
        # has ended a new one may take its name, and must not be answered by this run's results,
        # a step service's memory of them, or this run's task tokens.
        machine_key = f"{execution.start_time}/{machine_key}"
    task_id = f"{execution.execution_id}/{machine_key}"
    resource = resources.parse_resource(state.get("Resource"))
    token = ctx.task_token(task_id) if resource.pattern == resources.CALLBACK else None
    extra = {"Task": {"Token": token}} if token is not None else {}
    scope = ctx.scope(run, state, **extra)
    effective = task_input(ctx, run, state, scope)
    run.effective_input = effective
    timeout = seconds_field(run, state, "TimeoutSeconds", scope)
    heartbeat = seconds_field(run, state, "HeartbeatSeconds", scope)
    parameters = effective
    if resources.service_for(resource.uri) == "llm":
        parameters = check_budget(ctx, run, state, task_id, effective)
        if parameters is _WAIT:
            return
    execution.tasks[task_id] = PendingTask(
        run_id=run.id, state_name=state.name, resource=resource.uri, attempt=run.retry_count,
        heartbeat_seconds=heartbeat, scheduled_at=ctx.now,
    )
    pending = execution.tasks[task_id]
    if timeout is not None:
        pending.timeout_timer = ctx.set_timer("task_timeout", ctx.now + timeout, run.id, task_id)
    if heartbeat is not None:
        pending.heartbeat_timer = ctx.set_timer("heartbeat", ctx.now + heartbeat, run.id, task_id)
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
    ctx.history(f"{prefix}Scheduled", scheduled)
    ctx.history(f"{prefix}Started", causes.resource_details(resource))
    ctx.emit(
        RunTask(
            task_id=task_id, resource=resource.uri, parameters=parameters, state_name=state.name,
            attempt=run.retry_count, task_token=token, timeout_seconds=timeout, heartbeat_seconds=heartbeat,
        )
    )


_WAIT: Any = object()


def check_budget(ctx: StateContext, run: Run, state: State, task_id: str, effective: Any) -> Any:
    """Before an LLM call: the Parameters to send (without the Task's `Budget`), or `_WAIT` when
    the call must wait for calls in flight to settle (the run waits; the decider wakes it).
    Raises Baton.LLM.InvalidBudget or Baton.LLM.BudgetExceeded (budget.py)."""
    try:
        parameters, task_limits = budget.task_budget(effective)
    except budget.BudgetError as exc:
        raise errors.StatesError(budget.INVALID_BUDGET, f"the Task's {budget.TASK_PARAMETER} is not valid: {exc}") \
            from None
    ledger = ctx.execution.budget
    if task_limits is None and (ledger is None or ledger.limits is None):
        # Nothing to check, so nothing reserved (an execution without a budget stores no more per
        # call in flight); the spend is still recorded when the call settles.
        return parameters
    if ledger is None:
        ledger = ctx.execution.budget = budget.Ledger()
    try:
        verdict = budget.gate(ledger, state.name, task_limits, task_id, parameters)
    except budget.BudgetExceededError as exc:
        raise errors.StatesError(budget.BUDGET_EXCEEDED, str(exc)) from None
    if verdict == "wait":
        budget.wait(ledger, run.id, parameters)
        run.status = "waiting"
        return _WAIT
    return parameters


def seconds_field(run: Run, state: State, name: str, scope: Scope) -> float | None:
    if state.has(name):
        value = field(run, state, scope, name)
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
                errors.RUNTIME, f"The {name}Path parameter must be a positive integer: {path} == {causes.plain(value)}"
            )
        return float(value)
    if name == "TimeoutSeconds" and state.type == "Task":
        return None
    return None


def settle_task(ctx: StateContext, task_id: str, outcome: str, details: dict[str, Any]) -> Run | None:
    """Stop awaiting a task (it succeeded, failed or timed out) and record it in the history."""
    execution = ctx.execution
    pending = execution.tasks.pop(task_id, None)
    if pending is None:
        return None  # a duplicate or late result: the task is no longer awaited
    for timer in (pending.timeout_timer, pending.heartbeat_timer):
        if timer:
            execution.timers.pop(timer, None)
    run = execution.runs[pending.run_id]
    run.task_id = None
    run.status = "running"
    if execution.budget is None and budget.reports_usage(details.get("metadata")):
        execution.budget = budget.Ledger()
    if execution.budget is not None:
        charge = budget.settle(execution.budget, task_id, details.get("metadata"), pending.state_name)
        if charge is not None:
            details = {**details, "charge": charge}
    resource = resources.parse_resource(pending.resource)
    ctx.history(f"{resource.history_prefix}{outcome}", {**causes.resource_details(resource), **details})
    return run


def task_event(ctx: StateContext, run: Run, state: State, event: TaskEvent) -> None:
    """The run's task answered: a result or a failure settles it; a heartbeat re-arms its timer."""
    if isinstance(event, TaskSucceeded):
        task_succeeded(ctx, state, event)
    elif isinstance(event, TaskFailed):
        task_failed(ctx, state, event)
    else:
        heartbeat(ctx, event)


def task_succeeded(ctx: StateContext, state: State, event: TaskSucceeded) -> None:
    details: dict[str, Any] = {"output": to_json(event.output)}
    if event.metadata:
        details["metadata"] = event.metadata
    settled = settle_task(ctx, event.task_id, "Succeeded", details)
    if settled is not None:
        apply_result(ctx, settled, state, event.output)


def task_failed(ctx: StateContext, state: State, event: TaskFailed) -> None:
    details = causes.error_details(event.error, event.cause)
    if event.metadata:
        details["metadata"] = event.metadata
    settled = settle_task(ctx, event.task_id, "Failed", details)
    if settled is not None:
        ctx.fail(settled, state, event.error, event.cause)


def heartbeat(ctx: StateContext, event: TaskHeartbeat) -> None:
    pending = ctx.execution.tasks.get(event.task_id)
    if pending is None or pending.heartbeat_seconds is None:
        return
    if pending.heartbeat_timer:
        ctx.execution.timers.pop(pending.heartbeat_timer, None)
    pending.heartbeat_timer = ctx.set_timer(
        "heartbeat", ctx.now + pending.heartbeat_seconds, pending.run_id, event.task_id
    )


def timer_fired(ctx: StateContext, run: Run, state: State, timer: PendingTimer) -> None:
    """TimeoutSeconds or HeartbeatSeconds ran out: the task times out (States.Timeout or
    States.HeartbeatTimeout) and its step command is cancelled."""
    if timer.purpose not in ("task_timeout", "heartbeat"):
        return
    assert timer.task_id is not None
    error = errors.TIMEOUT if timer.purpose == "task_timeout" else errors.HEARTBEAT_TIMEOUT
    pending = ctx.execution.tasks.get(timer.task_id)
    settled = settle_task(ctx, timer.task_id, "TimedOut", causes.error_details(error, None))
    if settled is not None and pending is not None:
        ctx.emit(CancelTask(task_id=timer.task_id, resource=pending.resource))
        ctx.fail(settled, state, error, None)


HOOKS = StateHooks(execute, task_event=task_event, timer_fired=timer_fired)
