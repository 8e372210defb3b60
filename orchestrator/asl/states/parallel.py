"""Parallel: one child run per branch, joined in branch order (see children.py)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from orchestrator.asl.execution import FanOut, Run
from orchestrator.asl.model import State
from orchestrator.asl.states import children

if TYPE_CHECKING:
    from orchestrator.asl.decider import Decider


def execute(d: Decider, run: Run, state: State) -> None:
    scope = d.scope(run, state)
    effective = d.task_input(run, state, scope)
    d.history("ParallelStateStarted")
    fanout = FanOut(kind="parallel", results=[None] * len(state.branches), effective_input=effective)
    run.fanout = fanout
    run.status = "waiting"
    done = children.preset(run, fanout)  # a redrive reruns only the branches that did not succeed
    for index, branch in enumerate(state.branches):
        if index in done:
            fanout.children.append(None)
            continue
        child = children.spawn(d, run, state, index, index)
        fanout.children.append(child.id)
        fanout.running += 1
        d.enter(child, branch.start_at, copy.deepcopy(effective))
