"""Wait: Seconds, Timestamp, SecondsPath, TimestampPath (or JSONata expressions) arm a timer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.asl import causes, errors
from orchestrator.asl.dataflow import Scope, read_path_field, select, to_json
from orchestrator.asl.execution import Run
from orchestrator.asl.model import State
from orchestrator.asl.timestamps import parse_timestamp

if TYPE_CHECKING:
    from orchestrator.asl.decider import Decider


def execute(d: Decider, run: Run, state: State) -> None:
    scope = d.scope(run, state)
    effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
    fire_at = wait_until(d, run, state, effective, scope)
    if fire_at <= d.now:
        leave_wait(d, run, state)
        return
    run.status = "waiting"
    run.timer_id = d.set_timer("wait", fire_at, run.id)


def leave_wait(d: Decider, run: Run, state: State) -> None:
    """A Wait's Output/OutputPath and Assign are evaluated when the wait is over, as the state is
    left; nothing else runs in this run meanwhile, so they see what they would have seen at entry."""
    scope = d.scope(run, state)
    effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
    d.exit(run, state, *d.passthrough_output(run, state, scope, effective))


def wait_until(d: Decider, run: Run, state: State, effective: Any, scope: Scope) -> float:
    if state.has("Seconds"):
        seconds = d.field(run, state, scope, "Seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise errors.StatesError(
                errors.QUERY_EVALUATION_ERROR if state.is_jsonata else errors.RUNTIME,
                f"The Seconds field must be a non-negative integer, not {to_json(seconds)}",
            )
        return d.now + float(seconds)
    if state.has("Timestamp"):
        stamp = d.field(run, state, scope, "Timestamp")
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
        return d.now + float(value)
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
