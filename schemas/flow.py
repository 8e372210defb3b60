"""Flow control's contract between the orchestrator and a flow-controlled step service.

A flow-controlled service (the LLM service with `flow_control` limits, steps/llm/flow.py) must
see every command that shares a limit on one partition, so that the replica owning that
partition (the consumer group decides, and moves it on a crash) is the only one admitting them.
The orchestrator therefore keys such a service's run commands by `flow_key` instead of placing
them on the execution's partition (`BATON_FLOW_CONTROLLED_SERVICES`, orchestrator/settings.py).

The Task's own Parameters carry the tenant and priority, so they can be taken from the
execution's context with ASL's usual paths, e.g.
`"FlowControl": {"Tenant.$": "$$.Execution.Input.tenant", "Priority": 5}`.
"""

from __future__ import annotations

from typing import Any

FLOW_PARAMETER = "FlowControl"  # the Task parameter that carries Tenant and Priority

__all__ = ["FLOW_PARAMETER", "flow_key", "without_flow_parameter"]


def flow_key(parameters: Any) -> str:
    """The partition key of a flow-controlled command: the model the Task names (`Model`, or
    Bedrock's `ModelId`), "" when it names none (the service's default model)."""
    if isinstance(parameters, dict):
        for name in ("Model", "ModelId"):
            value = parameters.get(name)
            if isinstance(value, str):
                return value
    return ""


def without_flow_parameter(parameters: Any) -> Any:
    """The Parameters without `FlowControl` (which only the flow controller reads)."""
    if isinstance(parameters, dict) and FLOW_PARAMETER in parameters:
        return {k: v for k, v in parameters.items() if k != FLOW_PARAMETER}
    return parameters
