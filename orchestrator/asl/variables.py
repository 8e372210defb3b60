"""Workflow variables: applying one state's assignments (`Assign`) within AWS's rules."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.dataflow import to_json
from orchestrator.asl.execution import Run
from orchestrator.asl.model import State


def assign(run: Run, state: State, assigned: dict[str, Any], outer: Mapping[str, Any] | None,
           max_variable_bytes: int, max_variables_bytes: int) -> None:
    """Apply one state's assignments to its run's variables, within AWS's rules on scope and size.

    A Parallel branch or Map iteration reads the variables of the scopes around it (`outer`: its
    parent run's variables) but cannot assign them (AWS developer guide, "Passing data between
    states with variables", variable scope). This is enforced when it happens, against the
    variables the outer scope has then, as LocalStack's interpreter does: AWS accepted a
    definition whose branch and whose Parallel's Catcher assign the same name (conformance case
    PARALLEL_CATCH_ERROR_VARIABLE_SAMPLING).
    Sizes (same guide, variable size limits): one variable, and one state's assignments
    together, within the payload quota (256 KiB by default); all the variables a run sees
    within 10 MiB by default.
    """
    if not assigned:
        return
    clash = sorted(set(assigned) & set(outer)) if outer is not None else []
    if clash:
        raise errors.StatesError(
            errors.RUNTIME,
            f"The state '{state.name}' cannot assign the variable '{clash[0]}': it belongs to an outer "
            "scope, which a Parallel branch or Map iteration can read but not assign.",
        )
    limit = max_variable_bytes
    total = 0
    for name, value in assigned.items():
        size = len(to_json(value).encode())
        total += size
        if size > limit:
            raise errors.StatesError(
                errors.DATA_LIMIT_EXCEEDED,
                f"The state/task '{state.name}' assigned the variable '{name}' a value of {size} bytes, "
                f"exceeding the maximum number of bytes service limit ({limit}) for one variable.",
            )
    if total > limit:
        raise errors.StatesError(
            errors.DATA_LIMIT_EXCEEDED,
            f"The state/task '{state.name}' assigned {total} bytes of variables, exceeding the maximum "
            f"number of bytes service limit ({limit}) for the variables assigned by one state.",
        )
    merged = {**run.variables, **assigned}
    size = len(to_json(merged).encode())
    if size > max_variables_bytes:
        raise errors.StatesError(
            errors.DATA_LIMIT_EXCEEDED,
            f"The state/task '{state.name}' brought the variables of the execution to {size} bytes, "
            f"exceeding the maximum number of bytes service limit ({max_variables_bytes}) "
            "for all variables.",
        )
    run.variables.update(copy.deepcopy(assigned))
