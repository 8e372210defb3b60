"""The pages: the executions list, an execution (its live graph), the review inbox.

Rendered with Jinja (autoescaped); the pages' scripts call the API with the `baton_token` cookie
a `?token=` visit sets (`orchestrator.api.login`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from orchestrator.api.auth import identity_of
from orchestrator.api.backend import backend_of
from orchestrator.api.errors import ApiError
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.progress import usage_totals
from orchestrator.api.readmodel import ExecutionView
from orchestrator.api.roles import may, requires
from orchestrator.api.routers import docs
from orchestrator.api.routers.executions import REDRIVABLE
from orchestrator.api.routers.state_machines import registry, versions_summary
from orchestrator.asl.budget import spend_in_history
from orchestrator.asl.timestamps import parse_timestamp
from orchestrator.graph import state_runs, to_svg

PAGES = Path(__file__).resolve().parents[1] / "pages"

router = APIRouter(include_in_schema=False, route_class=GuardedRoute)
viewer, reviewer = requires("viewer"), requires("reviewer")

templates = Environment(loader=FileSystemLoader(PAGES / "templates"), autoescape=select_autoescape(["html"]))
templates.filters["quote"] = lambda text: quote(str(text), safe="")
templates.filters["percent"] = lambda rate: "-" if rate is None else f"{rate * 100:.1f} %"
templates.filters["usd"] = lambda cost: "-" if cost is None else f"${cost:.6f}"
templates.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)


def script_json(value: Any) -> Markup:
    """JSON to embed in a `<script type="application/json">`: `<`, `>` and `&` escaped, so a
    value holding `</script>` cannot end the element."""
    text = json.dumps(value, ensure_ascii=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


templates.filters["script_json"] = script_json


def static_files() -> StaticFiles:
    """What `/static` serves: the pages' CSS and scripts, and the API documentation's assets."""
    return StaticFiles(directory=PAGES / "static", packages=[docs.ASSETS])


def sign_in_page(status: int, path: str, had_token: bool) -> str:
    """What a browser gets instead of the API's 401 / 403 JSON on a page (`orchestrator.api.login`)."""
    return templates.get_template("sign_in.html").render(status=status, path=path, had_token=had_token)


def page(name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**values), status_code=status_code)


PAGE_SIZE = 100


@router.get("/", response_class=HTMLResponse, dependencies=[viewer])
async def executions_page(request: Request, status: str | None = None, state_machine: str | None = None,
                          name: str | None = None, started_after: str | None = None,
                          started_before: str | None = None, page_number: int = Query(1, ge=1, alias="page"),
                          ) -> HTMLResponse:
    backend = backend_of(request)
    filters: dict[str, Any] = {"status": status.upper() if status else None, "state_machine": state_machine or None,
                               "name": name or None, "started_after": started_after or None,
                               "started_before": started_before or None}
    views = backend.model.list(limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE, **filters)
    total = backend.model.count(**filters)
    # Awaiting a task token: a human review (or another system's callback), from the state topic.
    waiting = {view.execution_id for view in views
               if view.status == "RUNNING" and backend.definitions.awaited.get(view.execution_id)}
    query = {key: value for key, value in filters.items() if value}

    def page_link(number: int) -> str:
        return "/?" + urlencode({**query, "page": number})

    return page("executions.html", executions=views, filters=filters, total=total, page_number=page_number,
                page_size=PAGE_SIZE, state_machines=backend.model.state_machines(), waiting=waiting,
                previous=page_link(page_number - 1) if page_number > 1 else None,
                next=page_link(page_number + 1) if page_number * PAGE_SIZE < total else None,
                durations={view.execution_id: _duration(view) for view in views})


def _duration(view: ExecutionView) -> str:
    """How long an execution ran (so far, while it runs), as 1.234 s, 12m 05s or 2h 03m."""
    if not view.start_time:
        return "-"
    started = parse_timestamp(view.start_time)
    ended = parse_timestamp(view.stop_time) if view.stop_time else datetime.now(UTC)
    seconds = max(0.0, (ended - started).total_seconds())
    if seconds < 60:
        return f"{seconds:.3f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"


@router.get("/executions/{execution}", response_class=HTMLResponse, dependencies=[viewer])
async def execution_page(execution: str, request: Request) -> HTMLResponse:
    backend = backend_of(request)
    try:
        view = backend.describe(execution)
    except ApiError as exc:
        return page("error.html", status_code=exc.status, message=exc.message)
    history = backend.model.history(view.execution_id)
    machine = backend.machine_of(view.execution_id)
    runs = state_runs(history)
    return page("execution.html", execution=view, history=history, totals=usage_totals(history),
                budget=spend_in_history(history),
                graph=to_svg(machine, runs) if machine is not None else None,
                states={name: run.as_json() for name, run in runs.items()},
                operator=await may(request, "operator"), redrivable=REDRIVABLE,
                restart=_restart_request(view, backend.definitions.by_execution.get(view.execution_id)))


def _restart_request(view: ExecutionView, definition: dict[str, Any] | None) -> dict[str, Any] | None:
    """The POST /api/executions body that starts the same state machine again with the same input:
    by reference when it ran a registered version or alias, else inline with its pinned definition
    (None while that definition is not known yet)."""
    pin = view.alias or (str(view.version) if view.version is not None else None)
    if pin is not None:
        return {"state_machine": f"{view.state_machine}:{pin}", "input": view.input}
    if definition is None:
        return None
    return {"state_machine": view.state_machine, "definition": definition, "input": view.input}


@router.get("/state-machines", response_class=HTMLResponse, dependencies=[viewer])
async def state_machines_page(request: Request) -> HTMLResponse:
    """The registry: every state machine, its newest version, its aliases and their weights."""
    records = sorted((await registry(request)).values(), key=lambda record: record.name)
    model = backend_of(request).model
    return page("state_machines.html", records=records,
                executions={record.name: model.count(state_machine=record.name) for record in records})


@router.get("/state-machines/{name}", response_class=HTMLResponse, dependencies=[viewer])
async def state_machine_page(name: str, request: Request) -> HTMLResponse:
    """One state machine: its aliases and weights, and per version what its executions did."""
    record = (await registry(request)).get(name)
    if record is None:
        return page("error.html", status_code=404, message=f"no state machine named {name!r} is registered")
    return page("state_machine.html", machine=versions_summary(record, backend_of(request).model.version_figures(name)))


@router.get("/reviews", response_class=HTMLResponse, dependencies=[reviewer])
async def reviews_page(request: Request) -> HTMLResponse:
    identity = identity_of(request)  # the list itself comes from /api/reviews, filtered there
    queues = None if identity is None or identity.may_review(None) else sorted(identity.queues or ())
    return page("reviews.html", queues=queues)
