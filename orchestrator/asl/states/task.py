"""Task: schedule a step command, then settle it on a result, a failure, a heartbeat or a timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.asl import causes, errors, resources
from orchestrator.asl.dataflow import Scope, read_path_field, to_json
from orchestrator.asl.execution import PendingTask, Run, RunTask, TaskFailed, TaskHeartbeat, TaskSucceeded
from orchestrator.asl.model import State

if TYPE_CHECKING:
    from orchestrator.asl.decider import Decider


def execute(d: Decider, run: Run, state: State) -> None:
    machine_key = f"{run.id}/{state.name}/{run.entries[state.name]}/{run.retry_count}"
    if d.s.redrive_count:
        # A redriven execution re-enters states afresh: its tasks (and tokens) must not be the
        # failed attempt's, or a late answer to that attempt would complete the new one.
        machine_key = f"redrive{d.s.redrive_count}/{machine_key}"
    task_id = f"{d.s.execution_id}/{machine_key}"
    resource = resources.parse_resource(state.get("Resource"))
    token = d.env.task_token(task_id) if resource.pattern == resources.CALLBACK else None
    extra = {"Task": {"Token": token}} if token is not None else {}
    scope = d.scope(run, state, **extra)
    effective = d.task_input(run, state, scope)
    run.effective_input = effective
    timeout = seconds_field(d, run, state, "TimeoutSeconds", scope)
    heartbeat = seconds_field(d, run, state, "HeartbeatSeconds", scope)
    d.s.tasks[task_id] = PendingTask(
        run_id=run.id, state_name=state.name, resource=resource.uri, attempt=run.retry_count,
        heartbeat_seconds=heartbeat, scheduled_at=d.now,
    )
    pending = d.s.tasks[task_id]
    if timeout is not None:
        pending.timeout_timer = d.set_timer("task_timeout", d.now + timeout, run.id, task_id)
    if heartbeat is not None:
        pending.heartbeat_timer = d.set_timer("heartbeat", d.now + heartbeat, run.id, task_id)
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
    d.history(f"{prefix}Scheduled", scheduled)
    d.history(f"{prefix}Started", causes.resource_details(resource))
    d.effects.append(
        RunTask(
            task_id=task_id, resource=resource.uri, parameters=effective, state_name=state.name,
            attempt=run.retry_count, task_token=token, timeout_seconds=timeout, heartbeat_seconds=heartbeat,
        )
    )


def seconds_field(d: Decider, run: Run, state: State, name: str, scope: Scope) -> float | None:
    if state.has(name):
        value = d.field(run, state, scope, name)
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


def settle_task(d: Decider, task_id: str, outcome: str, details: dict[str, Any]) -> tuple[Run, State] | None:
    """Stop awaiting a task (it succeeded, failed or timed out) and record it in the history."""
    pending = d.s.tasks.pop(task_id, None)
    if pending is None:
        return None  # a duplicate or late result: the task is no longer awaited
    for timer in (pending.timeout_timer, pending.heartbeat_timer):
        if timer:
            d.s.timers.pop(timer, None)
    run = d.s.runs[pending.run_id]
    run.task_id = None
    run.status = "running"
    resource = resources.parse_resource(pending.resource)
    d.history(f"{resource.history_prefix}{outcome}", {**causes.resource_details(resource), **details})
    return run, d.state_of(run)


def task_succeeded(d: Decider, event: TaskSucceeded) -> None:
    details: dict[str, Any] = {"output": to_json(event.output)}
    if event.metadata:
        details["metadata"] = event.metadata
    settled = settle_task(d, event.task_id, "Succeeded", details)
    if settled is not None:
        d.apply_result(*settled, event.output)


def task_failed(d: Decider, event: TaskFailed) -> None:
    details = causes.error_details(event.error, event.cause)
    if event.metadata:
        details["metadata"] = event.metadata
    settled = settle_task(d, event.task_id, "Failed", details)
    if settled is not None:
        d.state_failed(*settled, event.error, event.cause)


def heartbeat(d: Decider, event: TaskHeartbeat) -> None:
    pending = d.s.tasks.get(event.task_id)
    if pending is None or pending.heartbeat_seconds is None:
        return
    if pending.heartbeat_timer:
        d.s.timers.pop(pending.heartbeat_timer, None)
    pending.heartbeat_timer = d.set_timer(
        "heartbeat", d.now + pending.heartbeat_seconds, pending.run_id, event.task_id
    )
