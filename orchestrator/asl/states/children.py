"""Child runs of Parallel and Map: spawning, joining, failing together, cancelling."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from orchestrator.asl import errors
from orchestrator.asl.dataflow import error_output
from orchestrator.asl.execution import CancelTask, FanOut, Run
from orchestrator.asl.model import State
from orchestrator.asl.states import map_

if TYPE_CHECKING:
    from orchestrator.asl.decider import Decider


def spawn(d: Decider, parent: Run, state: State, scope_index: int, index: int) -> Run:
    child = Run(
        id=d.next_id("r"),
        scope=[*parent.scope, (state.name, scope_index)],
        parent=parent.id,
        index=index,
        variables=copy.deepcopy(parent.variables),
    )
    d.s.runs[child.id] = child
    return child


def child_finished(d: Decider, child: Run) -> None:
    parent = d.s.runs[child.parent or ""]
    d.s.runs.pop(child.id, None)
    fanout = parent.fanout
    state = d.state_of(parent)
    if fanout is None:
        return
    fanout.running -= 1
    fanout.finished += 1
    if fanout.kind == "parallel":
        if child.status == "failed":
            fanout_failed(d, parent, state, child.error, child.cause)
            return
        fanout.results[child.index] = child.output
        fanout.succeeded.append(child.index)
        if fanout.finished == len(fanout.results):
            fanout_done(d, parent, state)
        return
    if child.status == "failed":
        d.history("MapIterationFailed", {"name": state.name, "index": child.index})
        fanout.failed += 1
        fanout.results[child.index] = error_output(child.error or "", child.cause)
        if map_.tolerance_exceeded(fanout):
            tolerant = fanout.tolerated_count is not None or fanout.tolerated_percentage is not None
            if tolerant:
                fanout_failed(d, 
                    parent, state, errors.EXCEED_TOLERATED_FAILURE_THRESHOLD,
                    "The specified tolerated failure threshold was exceeded",
                )
            else:
                fanout_failed(d, parent, state, child.error, child.cause)
            return
    else:
        d.history("MapIterationSucceeded", {"name": state.name, "index": child.index})
        fanout.results[child.index] = child.output
        fanout.succeeded.append(child.index)
    if fanout.finished == len(fanout.items):
        fanout_done(d, parent, state)
    else:
        try:
            map_.launch_items(d, parent, state)
        except errors.StatesError as exc:
            fanout_failed(d, parent, state, exc.error, exc.cause, raised_here=True)


def fanout_failed(d: Decider, run: Run, state: State, error: str | None, cause: str | None,
                   raised_here: bool = False) -> None:
    fanout = run.fanout
    if fanout is not None:
        run.failed_fanout = completed(fanout, state.name)
        for child in fanout.children:
            abort(d, child)
    run.fanout = None
    run.status = "running"
    d.state_failed(run, state, error, cause, raised_here=raised_here,
                       failed_event=f"{state.type}StateFailed")


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


def fanout_done(d: Decider, run: Run, state: State) -> None:
    fanout = run.fanout
    assert fanout is not None
    results = fanout.results
    run.fanout = None
    run.status = "running"
    d.history(f"{state.type}StateSucceeded")
    d.apply_result(run, state, results)


def abort(d: Decider, run_id: str | None) -> None:
    """Cancel a run and everything under it (a sibling branch failed, or its Map gave up)."""
    run = d.s.runs.pop(run_id, None) if run_id else None
    if run is None:
        return
    if run.task_id and run.task_id in d.s.tasks:
        pending = d.s.tasks.pop(run.task_id)
        d.effects.append(CancelTask(task_id=run.task_id, resource=pending.resource))
    for timer_id in [t for t, timer in d.s.timers.items() if timer.run_id == run.id]:
        del d.s.timers[timer_id]
    if run.fanout:
        for child in run.fanout.children:
            abort(d, child)
