"""Fail: the run fails with Error/Cause, their Path forms, or JSONata expressions."""

from __future__ import annotations

from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.context import StateContext, StateHooks
from orchestrator.asl.dataflow import Scope, read_path_field, to_json
from orchestrator.asl.execution import Run
from orchestrator.asl.model import ABSENT, State
from orchestrator.asl.processing import field


def execute(ctx: StateContext, run: Run, state: State) -> None:
    scope = ctx.scope(run, state)
    error = field(run, state, scope, "Error")
    cause = field(run, state, scope, "Cause")
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
    # A Fail state has no Retry or Catch: failing the state fails its run, with this error as is.
    ctx.fail(run, state, error, cause)


def _string_field(field_name: str, path: str, data: Any, scope: Scope) -> Any:
    """ErrorPath / CausePath: "must select a field that contains a string value" (AWS, Fail state)."""
    value = read_path_field(field_name, path, data, scope)
    if not isinstance(value, str):
        raise errors.StatesError(
            errors.RUNTIME, f"The {field_name} '{path}' must reference a string, not {to_json(value)}"
        )
    return value


HOOKS = StateHooks(execute)
