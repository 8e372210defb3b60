"""Wait: Seconds, Timestamp, SecondsPath, TimestampPath (or JSONata expressions) arm a timer."""

from __future__ import annotations

from typing import Any

from orchestrator.asl import causes, errors
from orchestrator.asl.context import StateContext, StateHooks
from orchestrator.asl.dataflow import Scope, read_path_field, select, to_json
from orchestrator.asl.execution import PendingTimer, Run
from orchestrator.asl.model import State
from orchestrator.asl.processing import field, passthrough_output
from orchestrator.asl.timestamps import parse_timestamp


def execute(ctx: StateContext, run: Run, state: State) -> None:
    scope = ctx.scope(run, state)
    effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
    fire_at = wait_until(ctx, run, state, effective, scope)
    if fire_at <= ctx.now:
        leave_wait(ctx, run, state)
        return
    run.status = "waiting"
    run.timer_id = ctx.set_timer("wait", fire_at, run.id)


def timer_fired(ctx: StateContext, run: Run, state: State, timer: PendingTimer) -> None:
    """The wait is over."""
    if timer.purpose != "wait":
        return
    run.timer_id = None
    run.status = "running"
    leave_wait(ctx, run, state)


def leave_wait(ctx: StateContext, run: Run, state: State) -> None:
    """A Wait's Output/OutputPath and Assign are evaluated when the wait is over, as the state is
    left; nothing else runs in this run meanwhile, so they see what they would have seen at entry."""
    scope = ctx.scope(run, state)
    effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
    ctx.exit(run, state, *passthrough_output(run, state, scope, effective))


def wait_until(ctx: StateContext, run: Run, state: State, effective: Any, scope: Scope) -> float:
    if state.has("Seconds"):
        seconds = field(run, state, scope, "Seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise errors.StatesError(
                errors.QUERY_EVALUATION_ERROR if state.is_jsonata else errors.RUNTIME,
                f"The Seconds field must be a non-negative integer, not {to_json(seconds)}",
            )
        return ctx.now + float(seconds)
    if state.has("Timestamp"):
        stamp = field(run, state, scope, "Timestamp")
        try:
            return parse_timestamp(stamp).timestamp()
        except (TypeError, ValueError):
            raise errors.StatesError(
                errors.QUERY_EVALUATION_ERROR if state.is_jsonata else errors.RUNTIME,
                f"The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: "
                f"{causes.plain(stamp)}",
            ) from None
    if state.has("SecondsPath"):
        path = state.get("SecondsPath")
        value = read_path_field("SecondsPath", path, effective, scope)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise errors.StatesError(
                errors.RUNTIME,
                f"The SecondsPath parameter cannot be parsed as a long value: {path} == {causes.plain(value)}",
            )
        if value < 0:
            raise errors.StatesError(
                errors.RUNTIME, f"The SecondsPath parameter references a negative value: {path} == {causes.plain(value)}"
            )
        return ctx.now + float(value)
    path = state.get("TimestampPath")
    value = read_path_field("TimestampPath", path, effective, scope)
    try:
        return parse_timestamp(value).timestamp()
    except (TypeError, ValueError):
        raise errors.StatesError(
            errors.RUNTIME,
            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset "
            f"date-time format string: {path} == {causes.plain(value)}",
        ) from None


HOOKS = StateHooks(execute, timer_fired=timer_fired)
