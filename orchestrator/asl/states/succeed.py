"""Succeed: the run ends here with its (filtered) input as output."""

from __future__ import annotations

from orchestrator.asl.context import StateContext, StateHooks
from orchestrator.asl.dataflow import select
from orchestrator.asl.execution import Run
from orchestrator.asl.model import State
from orchestrator.asl.processing import passthrough_output


def execute(ctx: StateContext, run: Run, state: State) -> None:
    scope = ctx.scope(run, state)
    effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
    ctx.exit(run, state, *passthrough_output(run, state, scope, effective))


HOOKS = StateHooks(execute)
