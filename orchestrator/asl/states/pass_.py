"""Pass: InputPath, Parameters, Result, then ResultPath and OutputPath (or JSONata Output)."""

from __future__ import annotations

import copy

from orchestrator.asl.context import StateContext, StateHooks
from orchestrator.asl.dataflow import resolve_template, select
from orchestrator.asl.execution import Run
from orchestrator.asl.model import State
from orchestrator.asl.processing import passthrough_output, result_to_output


def execute(ctx: StateContext, run: Run, state: State) -> None:
    scope = ctx.scope(run, state)
    if state.is_jsonata:
        ctx.exit(run, state, *passthrough_output(run, state, scope, run.raw_input))
        return
    effective = select(state.get("InputPath"), run.raw_input, scope)
    ctx.inspect(run, "afterInputPath", effective)
    if state.has("Parameters"):
        effective = resolve_template(state.get("Parameters"), effective, scope)
        ctx.inspect(run, "afterParameters", effective)
    result = copy.deepcopy(state.get("Result")) if state.has("Result") else effective
    ctx.inspect(run, "result", result)
    ctx.exit(run, state, *result_to_output(ctx, run, state, result, scope))


HOOKS = StateHooks(execute)
