"""Succeed: the run ends here with its (filtered) input as output."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.asl.dataflow import select
from orchestrator.asl.execution import Run
from orchestrator.asl.model import State

if TYPE_CHECKING:
    from orchestrator.asl.decider import Decider


def execute(d: Decider, run: Run, state: State) -> None:
    scope = d.scope(run, state)
    effective = run.raw_input if state.is_jsonata else select(state.get("InputPath"), run.raw_input, scope)
    d.exit(run, state, *d.passthrough_output(run, state, scope, effective))
