"""Child runs of Parallel and Map: spawning, counting, joining, failing together, cancelling.

What the two fan-out states share; each joins its children in its own `child_done` hook.
"""

from __future__ import annotations

import copy
from typing import Any

from orchestrator.asl import budget
from orchestrator.asl.context import StateContext
from orchestrator.asl.execution import CancelTask, FanOut, Run
from orchestrator.asl.model import State
from orchestrator.asl.processing import apply_result


def spawn(ctx: StateContext, parent: Run, state: State, scope_index: int, index: int) -> Run:
    child = Run(
        id=ctx.next_id("r"),
        scope=[*parent.scope, (state.name, scope_index)],
        parent=parent.id,
        index=index,
        variables=copy.deepcopy(parent.variables),
    )
    ctx.execution.runs[child.id] = child
    return child


def count_ended(run: Run) -> FanOut | None:
    """Count a child that ended in its parent's fan-out; None when the parent no longer waits."""
    fanout = run.fanout
    if fanout is None:
        return None
    fanout.running -= 1
    fanout.finished += 1
    return fanout


def fanout_failed(ctx: StateContext, run: Run, state: State, error: str | None, cause: str | None,
                  raised_here: bool = False) -> None:
    fanout = run.fanout
    if fanout is not None:
        run.failed_fanout = completed(fanout, state.name)
        for child in fanout.children:
            abort(ctx, child)
    run.fanout = None
    run.status = "running"
    ctx.fail(run, state, error, cause, raised_here=raised_here, failed_event=f"{state.type}StateFailed")


def completed(fanout: FanOut, state_name: str) -> dict[str, Any]:
    """The children of a fan-out that succeeded, with their results: what a redrive keeps."""
    return {"state": state_name, "results": {index: fanout.results[index] for index in fanout.succeeded}}


def preset(run: Run, fanout: FanOut) -> set[int]:
    """Seed a new fan-out with a redrive's completed children (results, counted finished);
    the indexes not to run again. A retry or a first run has none."""
    done = run.redrive_completed or {}
    run.redrive_completed = None
    run.failed_fanout = None
    for index, result in done.items():
        if 0 <= index < len(fanout.results):
            fanout.results[index] = result
            fanout.succeeded.append(index)
            fanout.finished += 1
            fanout.redriven = True
    return set(fanout.succeeded)


def fanout_done(ctx: StateContext, run: Run, state: State) -> None:
    fanout = run.fanout
    assert fanout is not None
    results = fanout.results
    run.fanout = None
    run.status = "running"
    ctx.history(f"{state.type}StateSucceeded")
    apply_result(ctx, run, state, results)


def abort(ctx: StateContext, run_id: str | None) -> None:
    """Cancel a run and everything under it (a sibling branch failed, or its Map gave up)."""
    execution = ctx.execution
    run = execution.runs.pop(run_id, None) if run_id else None
    if run is None:
        return
    if run.task_id and run.task_id in execution.tasks:
        pending = execution.tasks.pop(run.task_id)
        ctx.emit(CancelTask(task_id=run.task_id, resource=pending.resource))
        if execution.budget is not None:
            budget.release(execution.budget, run.task_id)
    for timer_id in [t for t, timer in execution.timers.items() if timer.run_id == run.id]:
        del execution.timers[timer_id]
    if run.fanout:
        for child in run.fanout.children:
            abort(ctx, child)
