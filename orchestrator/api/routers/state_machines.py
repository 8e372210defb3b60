"""State machines in the registry: deploy a version (as `baton deploy --publish`), list, describe.

A deploy is a registry write (`orchestrator.registry.writer.RegistryWriter`); a registry refusal
propagates to `orchestrator.api.errors` (400, 404, 409, 413 or 503).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from kafka_io import kafka_errors
from orchestrator.api.backend import backend_of
from orchestrator.api.checks import DefinitionRequest, definition_object
from orchestrator.api.errors import ApiError
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.readmodel import VersionFigures
from orchestrator.api.roles import requires
from schemas.registry import StateMachineRecord

router = APIRouter(prefix="/api/state-machines", tags=["state machines"], route_class=GuardedRoute)
viewer, operator = requires("viewer"), requires("operator")


class DeployRequest(DefinitionRequest):
    """What `baton deploy FILE --name NAME --publish` sends, plus an optional alias move."""

    name: str = Field(..., description="The state machine's name (1-80 characters, no whitespace or :).")
    description: str | None = Field(None, description="A description of the state machine and of the version.")
    alias: str | None = Field(None, description="Point this alias (created if missing) at the new version, "
                                                "in the same registry write.")


@router.post("", status_code=201, dependencies=[operator])
async def deploy_state_machine(body: DeployRequest, request: Request, response: Response) -> dict[str, Any]:
    """Deploy a definition as the next immutable version of a state machine (`baton deploy --publish`),
    optionally moving an alias to it. 201 when something changed, 200 when the registry already had
    exactly this; 400 with each fault's JSON path for an invalid definition."""
    from orchestrator.registry.model import check_alias_name, check_name
    from orchestrator.registry.writer import RegistryWriter

    backend = backend_of(request)
    check_name(body.name)  # names first: a bad alias must not leave a half-done deploy behind
    if body.alias is not None:
        check_alias_name(body.alias)
    definition = definition_object(body.definition, request.app.state.quotas)
    with kafka_errors(backend.settings):
        deployed = await RegistryWriter(backend.settings, quotas=request.app.state.quotas).deploy(
            body.name, definition, description=body.description, publish=True, alias=body.alias)
    if not deployed.changed:
        response.status_code = 200
    record, version = deployed.record, deployed.version
    return {"name": record.name, "version": version.version if version else None, "revision": record.revision,
            "definition_hash": record.definition_hash, "changed": deployed.changed,
            "alias": deployed.alias.model_dump(mode="json") if deployed.alias else None}


@router.get("", dependencies=[viewer])
async def list_state_machines(request: Request) -> list[dict[str, Any]]:
    """The registered state machines: versions, aliases, last update."""
    records = await registry(request)
    return [{"name": r.name, "revision": r.revision, "updated": r.updated.isoformat(),
             "versions": [v.version for v in r.versions], "aliases": sorted(r.aliases),
             "description": r.description} for r in sorted(records.values(), key=lambda r: r.name)]


@router.get("/{name}", dependencies=[viewer])
async def describe_state_machine(name: str, request: Request) -> dict[str, Any]:
    """One state machine: its draft, every version (with its definition) and its aliases."""
    record = (await registry(request)).get(name)
    if record is None:
        raise ApiError(404, "StateMachineNotFound", f"no state machine named {name!r} is registered")
    return record.model_dump(mode="json")


@router.get("/{name}/versions", dependencies=[viewer])
async def state_machine_versions(name: str, request: Request) -> dict[str, Any]:
    """One state machine's versions (number, description, created, hash) with what their executions
    did (count, running, success rate over the ended ones, their mean cost), its aliases and their
    weights; `draft` holds the executions of its draft or of inline definitions under its name.
    The figures cover the executions the read model holds (closed ones until their retention ends)."""
    record = (await registry(request)).get(name)
    if record is None:
        raise ApiError(404, "StateMachineNotFound", f"no state machine named {name!r} is registered")
    return versions_summary(record, backend_of(request).model.version_figures(name))


def versions_summary(record: StateMachineRecord, figures: list[VersionFigures]) -> dict[str, Any]:
    """The answer of `state_machine_versions`, which the state machine's page shows too."""
    by_version = {entry.version: entry for entry in figures}

    def measured(version: int | None) -> dict[str, Any]:
        entry = by_version.get(version) or VersionFigures(version=version, executions=0, running=0, succeeded=0,
                                                          ended=0, ended_cost_usd=0.0)
        return {"executions": entry.executions, "running": entry.running, "succeeded": entry.succeeded,
                "ended": entry.ended, "success_rate": entry.success_rate, "mean_cost_usd": entry.mean_cost_usd}

    versions = [{"version": v.version, "description": v.description, "created": v.created.isoformat(),
                 "definition_hash": v.definition_hash, **measured(v.version)} for v in reversed(record.versions)]
    # Executions of versions deleted since still count, under their number.
    deleted = sorted(n for n in by_version if n is not None and n not in {v.version for v in record.versions})
    versions += [{"version": n, "description": None, "created": None, "definition_hash": None, "deleted": True,
                  **measured(n)} for n in deleted]
    aliases = [{"name": a.name, "description": a.description, "updated": a.updated.isoformat(),
                "routes": [route.model_dump() for route in a.routes]}
               for a in sorted(record.aliases.values(), key=lambda a: a.name)]
    return {"name": record.name, "description": record.description, "revision": record.revision,
            "created": record.created.isoformat(), "updated": record.updated.isoformat(),
            "definition_hash": record.definition_hash, "versions": versions, "aliases": aliases,
            "draft": measured(None)}


async def registry(request: Request) -> dict[str, StateMachineRecord]:
    from orchestrator.registry.store import read_registry

    backend = backend_of(request)
    with kafka_errors(backend.settings):
        return await read_registry(backend.settings)
