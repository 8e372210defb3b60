"""Parallel: one child run per branch, joined in branch order (shared fan-out pieces: children.py)."""

from __future__ import annotations

import copy

from orchestrator.asl.context import StateContext, StateHooks
from orchestrator.asl.execution import FanOut, Run
from orchestrator.asl.model import State
from orchestrator.asl.processing import task_input
from orchestrator.asl.states.children import count_ended, fanout_done, fanout_failed, preset, spawn


def execute(ctx: StateContext, run: Run, state: State) -> None:
    scope = ctx.scope(run, state)
    effective = task_input(ctx, run, state, scope)
    ctx.history("ParallelStateStarted")
    fanout = FanOut(kind="parallel", results=[None] * len(state.branches), effective_input=effective)
    run.fanout = fanout
    run.status = "waiting"
    done = preset(run, fanout)  # a redrive reruns only the branches that did not succeed
    for index, branch in enumerate(state.branches):
        if index in done:
            fanout.children.append(None)
            continue
        child = spawn(ctx, run, state, index, index)
        fanout.children.append(child.id)
        fanout.running += 1
        ctx.enter(child, branch.start_at, copy.deepcopy(effective))


def child_done(ctx: StateContext, run: Run, state: State, child: Run) -> None:
    """A branch ended: the first to fail fails the Parallel; once all succeed, their results join."""
    fanout = count_ended(run)
    if fanout is None:
        return
    if child.status == "failed":
        fanout_failed(ctx, run, state, child.error, child.cause)
        return
    fanout.results[child.index] = child.output
    fanout.succeeded.append(child.index)
    if fanout.finished == len(fanout.results):
        fanout_done(ctx, run, state)


HOOKS = StateHooks(execute, child_done=child_done)
