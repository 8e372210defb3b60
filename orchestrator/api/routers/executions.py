"""Executions: start, list, describe, history, states, graph, stop and redrive.

Start, stop and redrive publish on the start topic keyed by execution id through
`orchestrator.client.BatonClient`, as `baton start|stop|redrive` do; reads come from the read model.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kafka_io import kafka_errors
from kafka_io.payloads import offloaded_limit
from orchestrator.api.backend import backend_of
from orchestrator.api.checks import parse_machine
from orchestrator.api.errors import ApiError
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.progress import progress
from orchestrator.api.readmodel import TERMINAL_STATUSES
from orchestrator.api.roles import requires
from orchestrator.asl.budget import BudgetError, parse_budget
from orchestrator.client import NAME_MAX, NAME_SYMBOLS, input_quotas, valid_name
from orchestrator.graph import state_runs, to_mermaid, to_svg
from orchestrator.quotas import check_payload
from orchestrator.settings import Quotas

REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")

router = APIRouter(prefix="/api/executions", tags=["executions"], route_class=GuardedRoute)
viewer, operator = requires("viewer"), requires("operator")


class StartRequest(BaseModel):
    state_machine: str | None = Field(None, description="A registered state machine (NAME, NAME:VERSION, "
                                                        "NAME:ALIAS), or a label for an inline definition.")
    definition: dict[str, Any] | None = Field(None, description="Inline ASL, validated before it is sent.")
    name: str | None = Field(None, description="The execution name (default: a UUID); the same name starts once.")
    input: Any = Field(default_factory=dict)
    budget: Any = Field(None, description='The execution\'s budget, {"MaxTokens": N, "MaxCost": USD}; it tightens '
                                          "the definition's (docs/budgets.md).")


class StopRequest(BaseModel):
    error: str | None = None
    cause: str | None = None


@router.post("", status_code=201, dependencies=[operator])
async def start_execution(body: StartRequest, request: Request) -> dict[str, Any]:
    """Start an execution of an inline definition or a registered state machine."""
    backend = backend_of(request)
    if body.definition is None and not body.state_machine:
        raise ApiError(400, "BadRequest", "give a definition or the name of a registered state machine")
    quotas: Quotas = request.app.state.quotas
    if body.definition is not None:
        parse_machine(body.definition, quotas)
    # With BATON_PAYLOAD_STORE the client puts the input's large parts in the store.
    check_payload(body.input, input_quotas(quotas, offloaded_limit()))
    if body.budget is not None:
        try:
            parse_budget(body.budget)
        except BudgetError as exc:
            raise ApiError(400, "InvalidBudget", f"budget: {exc}") from None
    state_machine = body.state_machine or "inline"
    name = body.name or str(uuid.uuid4())
    if not valid_name(name):
        raise ApiError(400, "InvalidName", f"name must be 1 to {NAME_MAX} characters, without whitespace "
                                           f"or any of {NAME_SYMBOLS}")
    with kafka_errors(backend.settings):  # an unknown state machine: StateMachineNotFound, 404
        execution_id = await backend.client.start(state_machine, definition=body.definition,
                                                  input=body.input, name=name, budget=body.budget)
    if body.definition is not None:
        backend.definitions.by_execution.setdefault(execution_id, body.definition)
    return {"execution_id": execution_id, "state_machine": state_machine, "name": name}


@router.get("", dependencies=[viewer])
async def list_executions(request: Request, response: Response, status: str | None = None,
                          state_machine: str | None = None,
                          name: str | None = Query(None, description="A part of the execution's name (any case)."),
                          started_after: str | None = Query(None, description="Started at or after (ISO 8601 UTC)."),
                          started_before: str | None = Query(None, description="Started before (ISO 8601 UTC)."),
                          limit: int = Query(100, ge=1, le=1000),
                          offset: int = Query(0, ge=0, description="Skip this many (the next page: offset + limit)."),
                          ) -> list[dict[str, Any]]:
    """Executions, most recently started first; X-Total-Count is how many match the filters."""
    model = backend_of(request).model
    filters: dict[str, Any] = {"status": status.upper() if status else None, "state_machine": state_machine,
                               "name": name, "started_after": started_after, "started_before": started_before}
    views = model.list(limit=limit, offset=offset, **filters)
    response.headers["X-Total-Count"] = str(model.count(**filters))
    return [view.model_dump(mode="json") for view in views]


@router.get("/{execution}", dependencies=[viewer])
async def describe_execution(execution: str, request: Request) -> dict[str, Any]:
    """One execution by id (or by name when unique): status, input, output, error, times."""
    return backend_of(request).describe(execution).model_dump(mode="json")


@router.get("/{execution}/history", dependencies=[viewer])
async def execution_history(execution: str, request: Request) -> list[dict[str, Any]]:
    """Every history event, oldest first."""
    backend = backend_of(request)
    return backend.model.history(backend.describe(execution).execution_id)


@router.get("/{execution}/states", dependencies=[viewer])
async def execution_states(execution: str, request: Request) -> dict[str, Any]:
    """What each state did so far: status, input, output, error, retries, model, tokens."""
    backend = backend_of(request)
    view = backend.describe(execution)
    return progress(view, backend.model.history(view.execution_id))


@router.get("/{execution}/graph", dependencies=[viewer])
async def execution_graph(execution: str, request: Request,
                          format: Literal["svg", "mermaid"] = "svg") -> Response:
    """The execution's definition as SVG coloured by state status, or as Mermaid."""
    backend = backend_of(request)
    view = backend.describe(execution)
    machine = backend.machine_of(view.execution_id)
    if machine is None:
        raise ApiError(404, "DefinitionNotFound", f"the definition of {view.execution_id} is not known yet "
                                                  f"(it is read from {backend.settings.topics.state})")
    if format == "mermaid":
        return Response(to_mermaid(machine), media_type="text/plain")
    runs = state_runs(backend.model.history(view.execution_id))
    return Response(to_svg(machine, runs), media_type="image/svg+xml")


@router.post("/{execution}/stop", status_code=202, dependencies=[operator])
async def stop_execution(execution: str, request: Request, body: StopRequest | None = None) -> dict[str, Any]:
    """Ask the orchestrator to abort a running execution."""
    backend = backend_of(request)
    view = backend.describe(execution)
    if view.status in TERMINAL_STATUSES:
        raise ApiError(409, "ExecutionEnded", f"{view.execution_id} has already ended ({view.status}); "
                                              "nothing to stop")
    body = body or StopRequest()
    with kafka_errors(backend.settings):
        await backend.client.stop(view.execution_id, error=body.error, cause=body.cause)
    return {"execution_id": view.execution_id, "requested": "stop"}


@router.post("/{execution}/redrive", status_code=202, dependencies=[operator])
async def redrive_execution(execution: str, request: Request) -> dict[str, Any]:
    """Restart a FAILED, TIMED_OUT or ABORTED execution from the states that did not succeed."""
    backend = backend_of(request)
    view = backend.describe(execution)
    if view.status not in REDRIVABLE:
        raise ApiError(409, "NotRedrivable", f"only {', '.join(REDRIVABLE)} executions can be redriven; "
                                             f"{view.execution_id} is {view.status}")
    with kafka_errors(backend.settings):
        await backend.client.redrive(view.execution_id)
    return {"execution_id": view.execution_id, "requested": "redrive"}
