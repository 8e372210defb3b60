"""One module per ASL state type, found by its ASL name; each `execute(decider, run, state)` runs
its state once the run has entered it. `children` joins the child runs of Parallel and Map."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.asl.execution import Run
from orchestrator.asl.model import State
from orchestrator.asl.states import children, choice, fail, map_, parallel, pass_, succeed, task, wait  # noqa: F401

if TYPE_CHECKING:
    from orchestrator.asl.decider import Decider

HANDLERS: dict[str, Callable[[Decider, Run, State], None]] = {
    "Pass": pass_.execute,
    "Task": task.execute,
    "Choice": choice.execute,
    "Wait": wait.execute,
    "Succeed": succeed.execute,
    "Fail": fail.execute,
    "Parallel": parallel.execute,
    "Map": map_.execute,
}
