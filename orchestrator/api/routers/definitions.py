"""Definitions without running them on Kafka: validate (as `baton validate`) and TestState (one
state with a given input, and task result or error, run in-process)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from orchestrator.api.checks import DefinitionRequest
from orchestrator.api.checks import parse_machine as _parse
from orchestrator.api.errors import ApiError
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.roles import requires
from orchestrator.quotas import check_payload
from orchestrator.settings import Quotas
from steps.inprocess import IntegrationUnavailable

router = APIRouter(route_class=GuardedRoute)
viewer = requires("viewer")


class TestStateRequest(DefinitionRequest):
    state: str
    input: Any = Field(default_factory=dict)
    result: Any = None
    has_result: bool = Field(False, description="Use `result` as the task's result (a null result counts).")
    error: str | None = None
    cause: str | None = None
    variables: dict[str, Any] | None = None


@router.post("/api/validate", dependencies=[viewer], tags=["definitions"])
async def validate(body: DefinitionRequest, request: Request) -> dict[str, Any]:
    """Validate a definition: 200 when valid, 400 with every problem and its JSON path."""
    machine = _parse(body.definition, request.app.state.quotas)
    return {"valid": True, "start_at": machine.start_at, "query_language": machine.query_language,
            "states": len(machine.states)}


@router.post("/api/test-state", dependencies=[viewer], tags=["definitions"])
async def test_state(body: TestStateRequest, request: Request) -> dict[str, Any]:
    """TestState: run one state with a given input (and task result or error). An llm, http or
    retrieval Task without a given result calls the real integration (the step services' code);
    `inspectionData` then adds the rendered prompt, model, tokens, latency and cost, or the HTTP
    request sent and its status."""
    from orchestrator.local.runner import LocalRunError, TaskResolver
    from orchestrator.local.test_state import GivenOutcome, run_test_state

    quotas: Quotas = request.app.state.quotas
    machine = _parse(body.definition, quotas)
    check_payload(body.input, quotas, "the state input")
    given = GivenOutcome(result=body.result, has_result=body.has_result or body.result is not None,
                         error=body.error, cause=body.cause)
    try:
        resolver = TaskResolver(integrations=request.app.state.integrations)
        return await run_test_state(machine, body.state, body.input, given=given, resolver=resolver,
                                    variables=body.variables)
    except LocalRunError as exc:
        raise ApiError(400, "TestStateFailed", str(exc)) from None
    except IntegrationUnavailable as exc:
        raise ApiError(503, "IntegrationUnavailable", str(exc)) from None
