"""One module per ASL state type, found by its ASL name. Each offers its `StateHooks` (see
`orchestrator.asl.context`), registered here by type; the decider calls them by state type and
they see a `StateContext`, never the decider. `children` holds what Parallel and Map share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from orchestrator.asl.context import StateHooks
from orchestrator.asl.states import choice, fail, map_, parallel, pass_, succeed, task, wait

STATE_TYPES: Final[Mapping[str, StateHooks]] = {
    "Pass": pass_.HOOKS,
    "Task": task.HOOKS,
    "Choice": choice.HOOKS,
    "Wait": wait.HOOKS,
    "Succeed": succeed.HOOKS,
    "Fail": fail.HOOKS,
    "Parallel": parallel.HOOKS,
    "Map": map_.HOOKS,
}
