"""Pass: InputPath, Parameters, Result, then ResultPath and OutputPath (or JSONata Output)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from orchestrator.asl.dataflow import resolve_template, select
from orchestrator.asl.execution import Run
from orchestrator.asl.model import State

if TYPE_CHECKING:
    from orchestrator.asl.decider import Decider


def execute(d: Decider, run: Run, state: State) -> None:
    scope = d.scope(run, state)
    if state.is_jsonata:
        d.exit(run, state, *d.passthrough_output(run, state, scope, run.raw_input))
        return
    effective = select(state.get("InputPath"), run.raw_input, scope)
    d.inspect(run, "afterInputPath", effective)
    if state.has("Parameters"):
        effective = resolve_template(state.get("Parameters"), effective, scope)
        d.inspect(run, "afterParameters", effective)
    result = copy.deepcopy(state.get("Result")) if state.has("Result") else effective
    d.inspect(run, "result", result)
    d.exit(run, state, *d.result_to_output(run, state, result, scope))
