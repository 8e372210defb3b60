"""The HTTP API and its pages (`baton api`): FastAPI over the read model and the request topics.

The app holds a `ReadModel` that follows the history and events topics in the background, a
follower of the compacted state topic (each execution's pinned definition, for the graph), and
an idempotent producer. Writes are the same records the CLI publishes: start, stop and redrive
go to the start topic keyed by execution id through `orchestrator.client.BatonClient`, task success, failure
and heartbeat go to the review-decisions topic keyed by the execution the token names
(`steps.review`), and a deploy is a registry write (`orchestrator.registry.store.RegistryWriter`, as
`baton deploy` does). Reads come from the read model, so they see every orchestrator instance.

Every error is one JSON shape: `{"error": {"code", "message", "details"?}}`, with the HTTP status
saying its class (400 a bad request, 404 unknown, 409 a conflict, 410 a task no longer waiting,
413 over a quota, 503 Kafka unavailable, 500 a bug), all mapped in `_errors`.

Quotas (`orchestrator.settings.Quotas`, docs/limits.md): every route's body is bounded in size and
depth before it is parsed (`orchestrator.api.limits`); inputs, task outputs and definitions are
measured as the decider measures them (`orchestrator.quotas`) and refused with 413 before anything
is published.

Task decisions (`/api/tasks/*`, `/api/reviews/decision`) are checked before they are posted: the
token's signature (the orchestrators' BATON_TOKEN_SECRET), the execution and that the task still
waits (`orchestrator.api.tasks`); then the route waits a few seconds (BATON_DECISION_WAIT_SECONDS)
for the orchestrator to apply it: 200 "applied", or 202 "accepted" when the wait ran out
(`orchestrator.task_callbacks`).

Auth: every route declares the role it needs (viewer, operator, reviewer) through
`requires(role)`, which calls the app's `Authorizer`. `create_app`'s default allows all (tests,
`baton api --insecure-local`); `baton api` passes `orchestrator.api.auth.TokenAuthorizer` (Baton's
tokens, and an identity provider's JWTs when BATON_OIDC_ISSUER is set: `orchestrator.api.oidc`),
which answers 401 / 403 in the same error shape and keeps the caller's identity for the review routes.
A page visited with `?token=<token>` sets the `baton_token` cookie, so the pages' own calls carry it.

Review queues: an identity limited to some state machines' reviews (`Identity.queues`) lists only
their pending reviews, and a decision (`/api/reviews/decision`, `/api/tasks/*`) for a task of any
other execution answers 403 before anything is published (`_check_queue`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from aiokafka.structs import RecordMetadata
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field, SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from kafka_io import (
    KafkaFailure,
    KafkaSettings,
    RecordTooLarge,
    kafka_errors,
    topic_partitions,
)
from orchestrator.api.auth import COOKIE, AuthError, identity_of
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.readmodel import (
    TERMINAL_STATUSES,
    AmbiguousExecution,
    ExecutionView,
    ReadModel,
    ReadModelError,
    default_path,
)
from orchestrator.api.tasks import StateFollower, TaskState
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.model import StateMachine, parse_definition
from orchestrator.client import (
    NAME_MAX,
    NAME_SYMBOLS,
    BatonClient,
    StateMachineNotFound,
    valid_name,
)
from orchestrator.graph import state_runs, to_mermaid, to_svg
from orchestrator.quotas import QuotaExceeded, check_definition, check_payload
from orchestrator.settings import DecisionSettings, OrchestratorSettings, Quotas
from orchestrator.task_callbacks import (
    DecisionRefused,
    Outcome,
    OutcomeWatch,
    describe_outcome,
    not_waiting,
    unknown_execution,
    verify_token,
)
from schemas.base import Envelope
from schemas.errors import BatonError
from schemas.registry import StateMachineRecord
from schemas.review import ReviewDecision
from schemas.tokens import InvalidToken

log = logging.getLogger(__name__)

PAGES = Path(__file__).parent / "pages"
REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")
Role = Literal["viewer", "operator", "reviewer", "admin"]
Authorizer = Callable[[Request, Role], Awaitable[None]]
_SSE_POLL = 0.5


# ------------------------------------------------------------ errors


class ApiError(BatonError):
    """An error answered as `{"error": {"code", "message", "details"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def _not_found(execution: str) -> ApiError:
    return ApiError(404, "ExecutionNotFound", f"no execution {execution!r} (by id, or by name when unique)")


# ------------------------------------------------------------ auth hook


async def allow_all(request: Request, role: Role) -> None:
    """The Authorizer without auth (tests, `baton api --insecure-local`): every request may act."""


def requires(role: Role) -> Any:
    """A dependency that asks the app's Authorizer whether the request may act as `role`."""

    async def check(request: Request) -> None:
        authorizer: Authorizer = request.app.state.authorizer
        await authorizer(request, role)

    return Depends(check)


# ------------------------------------------------------------ request bodies


class StartRequest(BaseModel):
    state_machine: str | None = Field(None, description="A registered state machine (NAME, NAME:VERSION, "
                                                        "NAME:ALIAS), or a label for an inline definition.")
    definition: dict[str, Any] | None = Field(None, description="Inline ASL, validated before it is sent.")
    name: str | None = Field(None, description="The execution name (default: a UUID); the same name starts once.")
    input: Any = Field(default_factory=dict)


class StopRequest(BaseModel):
    error: str | None = None
    cause: str | None = None


class DefinitionRequest(BaseModel):
    definition: Any = Field(..., description="An ASL definition: a JSON object, or JSON/YAML text.")


class DeployRequest(DefinitionRequest):
    """What `baton deploy FILE --name NAME --publish` sends, plus an optional alias move."""

    name: str = Field(..., description="The state machine's name (1-80 characters, no whitespace or :).")
    description: str | None = Field(None, description="A description of the state machine and of the version.")
    alias: str | None = Field(None, description="Point this alias (created if missing) at the new version, "
                                                "in the same registry write.")


class TestStateRequest(DefinitionRequest):
    state: str
    input: Any = Field(default_factory=dict)
    result: Any = None
    has_result: bool = Field(False, description="Use `result` as the task's result (a null result counts).")
    error: str | None = None
    cause: str | None = None
    variables: dict[str, Any] | None = None


class TaskSuccess(BaseModel):
    task_token: str
    output: Any = Field(default_factory=dict)


class TaskFailure(BaseModel):
    task_token: str
    error: str = "Review.Rejected"
    cause: str | None = None


class TaskHeartbeat(BaseModel):
    task_token: str


class ReviewDecisionRequest(BaseModel):
    """A reviewer's decision, as the inbox posts it (what `baton review approve|edit|reject` does)."""

    task_token: str
    decision: Literal["approve", "edit", "reject"]
    output: Any = None  # approve: an object merged into the result; edit: the new content
    comment: str | None = None
    reviewer: str | None = None
    error: str = "Review.Rejected"
    cause: str | None = None


# ------------------------------------------------------------ Kafka side


class Backend:
    """What the routes use: the read model, the definitions, a producer, the settings."""

    def __init__(self, settings: KafkaSettings, db_path: str | Path, quotas: Quotas | None = None) -> None:
        self.settings = settings
        self.model = ReadModel(db_path)
        self.definitions = StateFollower()
        self.client = BatonClient(settings, quotas=quotas if quotas is not None else Quotas())
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        topics = self.settings.topics
        with kafka_errors(self.settings):
            await topic_partitions(self.settings, [topics.start, topics.review_decisions, topics.state])
            await self.model.catch_up(self.settings)
            await self.client.open()
        self._tasks = [asyncio.create_task(self._keep(self.model.follow(self.settings, self._stop, 0.3), "read model")),
                       asyncio.create_task(self._keep(self.definitions.follow(self.settings, self._stop),
                                                      "the state topic"))]

    async def _keep(self, work: Awaitable[None], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API keeps answering from what it has
            log.error("the API stopped following %s: %s", what, exc)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.close()
        self.model.close()

    async def publish(self, topic: str, record: Envelope) -> RecordMetadata:
        with kafka_errors(self.settings):
            metadata = await self.client.publish(topic, record)
        assert metadata is not None  # acknowledged
        return metadata

    async def task_state(self, execution_id: str, task_id: str) -> TaskState:
        """Whether the execution still awaits the callback task (`StateFollower.task_state`)."""
        def known() -> bool:
            try:
                view = self.model.describe(execution_id)
            except AmbiguousExecution:
                return False
            return view is not None and view.execution_id == execution_id

        with kafka_errors(self.settings):
            return await self.definitions.task_state(execution_id, task_id, known)

    async def post_decision(self, decision: ReviewDecision, wait: float) -> Outcome:
        """Publish a task decision, then wait up to `wait` seconds for the orchestrator to apply it."""
        with kafka_errors(self.settings):
            async with OutcomeWatch(self.settings) as watch:
                posted = await self.publish(self.settings.topics.review_decisions, decision)
                return await watch.outcome(posted.partition, posted.offset, wait)

    def describe(self, execution: str) -> ExecutionView:
        try:
            view = self.model.describe(execution)
        except AmbiguousExecution as exc:
            raise ApiError(409, "AmbiguousExecution", str(exc), {"execution_ids": exc.execution_ids}) from None
        if view is None:
            raise _not_found(execution)
        return view

    def machine_of(self, execution_id: str) -> StateMachine | None:
        definition = self.definitions.by_execution.get(execution_id)
        return parse_definition(definition, validate=False) if definition is not None else None


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _parse(definition: Any, quotas: Quotas) -> StateMachine:
    """A valid definition within its quota, or 400 with every problem and its JSON path (413 when
    it is too large: checked first, so a huge definition is not validated at all)."""
    if isinstance(definition, str):
        from orchestrator.asl.model import load_document

        try:
            definition = load_document(definition)
        except RecursionError:  # YAML text nests without limit (a JSON body's depth is checked before parsing)
            raise ApiError(400, "InvalidDefinition", "the definition nests too deeply") from None
        except ValueError as exc:
            raise ApiError(400, "InvalidDefinition", str(exc)) from None
    check_definition(definition, quotas)
    try:
        return parse_definition(definition if isinstance(definition, (str, dict)) else json.dumps(definition))
    except RecursionError:  # YAML text nests without limit (a JSON body's depth is checked before parsing)
        raise ApiError(400, "InvalidDefinition", "the definition nests too deeply") from None
    except DefinitionError as exc:
        problems = [{"path": p.path, "message": p.message} for p in exc.problems]
        raise ApiError(400, "InvalidDefinition", f"invalid definition ({len(problems)} problem(s)): "
                       f"{problems[0]['path']}: {problems[0]['message']}", {"problems": problems}) from None
    except ValueError as exc:
        raise ApiError(400, "InvalidDefinition", str(exc)) from None


def _registry_error(exc: Exception) -> ApiError:
    """The API's answer to a registry refusal: 400 for what the request got wrong, 404, 409, 503."""
    from orchestrator.registry import errors

    if isinstance(exc, errors.InvalidDefinition):
        problems = [{"path": p.path, "message": p.message} for p in exc.problems]
        return ApiError(400, "InvalidDefinition", f"invalid definition ({len(problems)} problem(s)): "
                        f"{problems[0]['path']}: {problems[0]['message']}", {"problems": problems})
    if isinstance(exc, (errors.InvalidName, errors.InvalidRouting, errors.InvalidReference)):
        return ApiError(400, type(exc).__name__, str(exc))
    if isinstance(exc, errors.NotFound):
        return ApiError(404, "StateMachineNotFound", str(exc))
    if isinstance(exc, errors.VersionInUse):
        return ApiError(409, "VersionInUse", str(exc))
    if isinstance(exc, errors.RecordTooLarge):
        return ApiError(413, "RegistryRecordTooLarge", str(exc))
    return ApiError(503, "RegistryUnavailable", str(exc))


def _definition_object(definition: Any, quotas: Quotas) -> dict[str, Any]:
    """A deployable definition: validated (400 with each fault's JSON path), as a JSON object."""
    from orchestrator.asl.model import load_document

    _parse(definition, quotas)
    loaded = load_document(definition) if isinstance(definition, str) else definition
    if not isinstance(loaded, dict):
        raise ApiError(400, "InvalidDefinition", "a definition is a JSON object with StartAt and States")
    return loaded


def _decision(make: Callable[[], ReviewDecision]) -> ReviewDecision:
    try:
        return make()
    except (InvalidToken, ValueError) as exc:
        raise ApiError(400, "InvalidDecision", str(exc)) from None


# ------------------------------------------------------------ the app


def create_app(settings: KafkaSettings, *, db_path: str | Path | None = None,
               authorizer: Authorizer = allow_all, quotas: Quotas | None = None,
               token_secret: SecretStr | None = None, decision_wait: float | None = None) -> FastAPI:
    """The API and pages for the topics of `settings`; `db_path` is the read model's file.
    `quotas`, the orchestrators' `token_secret` and the `decision_wait` (seconds) default to the
    environment's (BATON_MAX_*, BATON_TOKEN_SECRET, BATON_DECISION_WAIT_SECONDS)."""
    path = db_path if db_path is not None else default_path(settings.topic_prefix, settings.kafka_bootstrap)
    quotas = quotas if quotas is not None else Quotas()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = Backend(settings, path, quotas)
        try:
            await backend.start()
        except BaseException:
            await backend.stop()
            raise
        app.state.backend = backend
        try:
            yield
        finally:
            await backend.stop()

    app = FastAPI(title="Baton", version="0.1.0", lifespan=lifespan,
                  description="Amazon States Language workflows on Apache Kafka: executions, human review, "
                              "TestState and validation. Errors: {\"error\": {\"code\", \"message\", \"details\"}}.")
    app.state.authorizer = authorizer
    app.state.quotas = quotas
    app.state.token_secret = token_secret if token_secret is not None else OrchestratorSettings().token_secret
    app.state.decision_wait = (decision_wait if decision_wait is not None
                               else DecisionSettings().decision_wait_seconds)
    app.router.route_class = GuardedRoute  # every route below: bodies bounded before they are parsed
    hide_query_tokens()
    _errors(app)
    _login_cookie(app)
    _routes(app)
    _pages(app)
    return app


_QUERY_TOKEN = re.compile(r"([?&]token=)[^&#\s\"]*", re.IGNORECASE)


class HideQueryTokens(logging.Filter):
    """Blanks `?token=` in uvicorn's access log: a page login puts the bearer token in the URL, and
    the access log (often a file, `baton dev`'s .baton/logs/api.log) would otherwise keep it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "token=" in a.lower() for a in record.args):
            record.args = tuple(_QUERY_TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def hide_query_tokens() -> None:
    """Install `HideQueryTokens` on uvicorn's access logger (once; logging config keeps it)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideQueryTokens) for f in access.filters):
        access.addFilter(HideQueryTokens())


def _login_cookie(app: FastAPI) -> None:
    """`?token=` on a GET that was let through becomes the `baton_token` cookie (the pages' login).

    Plain ASGI (not `@app.middleware`) so streamed answers and disconnect checks are untouched.
    """
    inner = app.build_middleware_stack

    def build() -> Any:
        downstream = inner()

        async def remember_token(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope.get("method") != "GET" or b"token=" not in scope.get("query_string", b""):
                await downstream(scope, receive, send)
                return
            request = Request(scope)
            token = request.query_params.get("token")

            async def send_with_cookie(message: Any) -> None:
                if (message["type"] == "http.response.start" and token and message["status"] < 400
                        and identity_of(request) is not None):
                    cookie = Response()
                    cookie.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                                      secure=scope.get("scheme") == "https")
                    message = {**message, "headers": [*message.get("headers", []),
                                                      *[(k, v) for k, v in cookie.raw_headers if k == b"set-cookie"]]}
                await send(message)

            await downstream(scope, receive, send_with_cookie)

        return remember_token

    app.build_middleware_stack = build  # type: ignore[method-assign]


def _errors(app: FastAPI) -> None:
    @app.exception_handler(AuthError)
    async def refused(request: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        response = error_response(exc.status, exc.code, exc.message)
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"path": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
                    for e in exc.errors()]
        first = problems[0] if problems else {"path": "", "message": "invalid request"}
        return error_response(400, "BadRequest", f"{first['path']}: {first['message']}", {"problems": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HttpError")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(ReadModelError)
    @app.exception_handler(KafkaFailure)
    async def kafka_error(request: Request, exc: ReadModelError | KafkaFailure) -> JSONResponse:
        return error_response(503, "KafkaUnavailable", str(exc))

    @app.exception_handler(RecordTooLarge)
    async def record_too_large(request: Request, exc: RecordTooLarge) -> JSONResponse:
        return error_response(413, "RecordTooLarge", str(exc))

    @app.exception_handler(QuotaExceeded)
    async def over_quota(request: Request, exc: QuotaExceeded) -> JSONResponse:
        details = {"size": exc.size, "limit": exc.limit} if exc.size is not None else {"limit": exc.limit}
        return error_response(exc.status, exc.code, str(exc), details)

    @app.exception_handler(DecisionRefused)
    async def decision_refused(request: Request, exc: DecisionRefused) -> JSONResponse:
        # AWS's SendTaskSuccess errors: InvalidToken, TaskDoesNotExist, TaskTimedOut (a task
        # decided, timed out or ended: AWS answers TaskTimedOut for each).
        status, code = {"invalid_token": (400, "InvalidToken"), "unknown_execution": (404, "TaskDoesNotExist"),
                        "not_waiting": (410, "TaskTimedOut")}.get(exc.kind, (422, "DecisionRefused"))
        return error_response(status, code, str(exc))

    @app.exception_handler(sqlite3.Error)
    async def database_error(request: Request, exc: sqlite3.Error) -> JSONResponse:
        return error_response(503, "ReadModelUnavailable", f"read model database: {exc}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's default is a plain-text 500; every answer of the API keeps its JSON shape.
        # (Starlette raises the exception on after this answer, so the server logs its traceback.)
        return error_response(500, "InternalError", f"internal error ({type(exc).__name__}); the API's log has "
                                                    "the details")


def _routes(app: FastAPI) -> None:
    viewer, operator, reviewer = requires("viewer"), requires("operator"), requires("reviewer")

    @app.post("/api/executions", status_code=201, dependencies=[operator], tags=["executions"])
    async def start_execution(body: StartRequest, request: Request) -> dict[str, Any]:
        """Start an execution of an inline definition or a registered state machine."""
        backend = _backend(request)
        if body.definition is None and not body.state_machine:
            raise ApiError(400, "BadRequest", "give a definition or the name of a registered state machine")
        quotas: Quotas = request.app.state.quotas
        if body.definition is not None:
            _parse(body.definition, quotas)
        check_payload(body.input, quotas)
        state_machine = body.state_machine or "inline"
        name = body.name or str(uuid.uuid4())
        if not valid_name(name):
            raise ApiError(400, "InvalidName", f"name must be 1 to {NAME_MAX} characters, without whitespace "
                                               f"or any of {NAME_SYMBOLS}")
        try:
            with kafka_errors(backend.settings):
                execution_id = await backend.client.start(state_machine, definition=body.definition,
                                                          input=body.input, name=name)
        except StateMachineNotFound as exc:
            raise ApiError(404, "StateMachineNotFound", str(exc)) from None
        if body.definition is not None:
            backend.definitions.by_execution.setdefault(execution_id, body.definition)
        return {"execution_id": execution_id, "state_machine": state_machine, "name": name}

    @app.get("/api/executions", dependencies=[viewer], tags=["executions"])
    async def list_executions(request: Request, status: str | None = None, state_machine: str | None = None,
                              limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Executions, most recently started first."""
        views = _backend(request).model.list(status=status.upper() if status else None,
                                             state_machine=state_machine, limit=limit)
        return [view.model_dump(mode="json") for view in views]

    @app.get("/api/executions/{execution}", dependencies=[viewer], tags=["executions"])
    async def describe_execution(execution: str, request: Request) -> dict[str, Any]:
        """One execution by id (or by name when unique): status, input, output, error, times."""
        return _backend(request).describe(execution).model_dump(mode="json")

    @app.get("/api/executions/{execution}/history", dependencies=[viewer], tags=["executions"])
    async def execution_history(execution: str, request: Request) -> list[dict[str, Any]]:
        """Every history event, oldest first."""
        backend = _backend(request)
        return backend.model.history(backend.describe(execution).execution_id)

    @app.get("/api/executions/{execution}/states", dependencies=[viewer], tags=["executions"])
    async def execution_states(execution: str, request: Request) -> dict[str, Any]:
        """What each state did so far: status, input, output, error, retries, model, tokens."""
        backend = _backend(request)
        view = backend.describe(execution)
        return _progress(view, backend.model.history(view.execution_id))

    @app.get("/api/executions/{execution}/graph", dependencies=[viewer], tags=["executions"])
    async def execution_graph(execution: str, request: Request,
                              format: Literal["svg", "mermaid"] = "svg") -> Response:
        """The execution's definition as SVG coloured by state status, or as Mermaid."""
        backend = _backend(request)
        view = backend.describe(execution)
        machine = backend.machine_of(view.execution_id)
        if machine is None:
            raise ApiError(404, "DefinitionNotFound", f"the definition of {view.execution_id} is not known yet "
                                                      f"(it is read from {backend.settings.topics.state})")
        if format == "mermaid":
            return Response(to_mermaid(machine), media_type="text/plain")
        runs = state_runs(backend.model.history(view.execution_id))
        return Response(to_svg(machine, runs), media_type="image/svg+xml")

    @app.post("/api/executions/{execution}/stop", status_code=202, dependencies=[operator], tags=["executions"])
    async def stop_execution(execution: str, request: Request, body: StopRequest | None = None) -> dict[str, Any]:
        """Ask the orchestrator to abort a running execution."""
        backend = _backend(request)
        view = backend.describe(execution)
        if view.status in TERMINAL_STATUSES:
            raise ApiError(409, "ExecutionEnded", f"{view.execution_id} has already ended ({view.status}); "
                                                  "nothing to stop")
        body = body or StopRequest()
        with kafka_errors(backend.settings):
            await backend.client.stop(view.execution_id, error=body.error, cause=body.cause)
        return {"execution_id": view.execution_id, "requested": "stop"}

    @app.post("/api/executions/{execution}/redrive", status_code=202, dependencies=[operator], tags=["executions"])
    async def redrive_execution(execution: str, request: Request) -> dict[str, Any]:
        """Restart a FAILED, TIMED_OUT or ABORTED execution from the states that did not succeed."""
        backend = _backend(request)
        view = backend.describe(execution)
        if view.status not in REDRIVABLE:
            raise ApiError(409, "NotRedrivable", f"only {', '.join(REDRIVABLE)} executions can be redriven; "
                                                 f"{view.execution_id} is {view.status}")
        with kafka_errors(backend.settings):
            await backend.client.redrive(view.execution_id)
        return {"execution_id": view.execution_id, "requested": "redrive"}

    @app.get("/api/executions/{execution}/events", dependencies=[viewer], tags=["streams"],
             response_class=StreamingResponse)
    async def execution_events(execution: str, request: Request) -> StreamingResponse:
        """Server-sent events: `status` (the execution and its states) at each change, until it ends."""
        backend = _backend(request)
        execution_id = backend.describe(execution).execution_id
        return _sse(_status_events(backend, execution_id, request))

    @app.get("/api/executions/{execution}/stream", dependencies=[viewer], tags=["streams"],
             response_class=StreamingResponse)
    async def execution_tokens(execution: str, request: Request, all_tasks: bool = False,
                               idle_timeout: float = Query(300.0, gt=0)) -> StreamingResponse:
        """Server-sent events: `token` per streamed LLM chunk, then `end` (from baton.streams)."""
        backend = _backend(request)
        execution_id = backend.describe(execution).execution_id
        return _sse(_token_events(backend.settings, execution_id, all_tasks, idle_timeout))

    @app.post("/api/tasks/success", status_code=202, dependencies=[reviewer], tags=["tasks"])
    async def send_task_success(body: TaskSuccess, request: Request, response: Response) -> dict[str, Any]:
        """SendTaskSuccess: the waiting task succeeds with `output` (published to the review topic).
        200 once the orchestrator applied it, 202 if not yet within the wait; 400 InvalidToken,
        404 TaskDoesNotExist, 410 TaskTimedOut (decided, timed out or ended), 413 output too large."""
        from steps.review.decisions import check_token

        _check_queue(request, body.task_token)
        decision = _decision(lambda: ReviewDecision(execution_id=check_token(body.task_token),
                                                    task_token=body.task_token.strip(), outcome="success",
                                                    output=body.output, reviewer=_who(request)))
        return await _post_decision(request, response, decision)

    @app.post("/api/tasks/failure", status_code=202, dependencies=[reviewer], tags=["tasks"])
    async def send_task_failure(body: TaskFailure, request: Request, response: Response) -> dict[str, Any]:
        """SendTaskFailure: the waiting task fails with `error` and `cause` (statuses as SendTaskSuccess)."""
        from steps.review import decisions

        _check_queue(request, body.task_token)
        return await _post_decision(request, response, _decision(lambda: decisions.reject(body.task_token, error=body.error,
                                                                                 cause=body.cause,
                                                                                 reviewer=_who(request))))

    @app.post("/api/tasks/heartbeat", status_code=202, dependencies=[reviewer], tags=["tasks"])
    async def send_task_heartbeat(body: TaskHeartbeat, request: Request, response: Response) -> dict[str, Any]:
        """SendTaskHeartbeat: restart the waiting task's HeartbeatSeconds clock (statuses as SendTaskSuccess)."""
        from steps.review import decisions

        _check_queue(request, body.task_token)
        return await _post_decision(request, response, _decision(lambda: decisions.heartbeat(body.task_token,
                                                                                    reviewer=_who(request))))

    @app.get("/api/reviews", dependencies=[reviewer], tags=["reviews"])
    async def list_reviews(request: Request) -> list[dict[str, Any]]:
        """The reviews waiting for a decision, oldest first, each with its task token (only those of
        the caller's review queues when it is limited to some)."""
        from steps.review.inbox import pending_reviews

        backend = _backend(request)
        identity = identity_of(request)
        with kafka_errors(backend.settings):
            reviews = await pending_reviews(backend.settings, 30.0)
        return [review.as_json() for review in reviews
                if identity is None or identity.may_review(review.state_machine)]

    @app.post("/api/reviews/decision", status_code=202, dependencies=[reviewer], tags=["reviews"])
    async def decide_review(body: ReviewDecisionRequest, request: Request, response: Response) -> dict[str, Any]:
        """Approve, edit or reject a pending review (what `baton review approve|edit|reject` posts);
        statuses as `/api/tasks/success`."""
        from steps.review import decisions

        _check_queue(request, body.task_token)
        identity = identity_of(request)  # with auth, the decision records who made it, not what the body says
        reviewer = identity.name if identity is not None else body.reviewer
        if body.decision == "approve":
            decision = _decision(lambda: decisions.approve(body.task_token, body.output, reviewer=reviewer,
                                                           comment=body.comment))
        elif body.decision == "edit":
            decision = _decision(lambda: decisions.edit(body.task_token, body.output, reviewer=reviewer,
                                                        comment=body.comment))
        else:
            decision = _decision(lambda: decisions.reject(body.task_token, error=body.error, cause=body.cause,
                                                          reviewer=reviewer))
        return await _post_decision(request, response, decision)

    @app.post("/api/validate", dependencies=[viewer], tags=["definitions"])
    async def validate(body: DefinitionRequest, request: Request) -> dict[str, Any]:
        """Validate a definition: 200 when valid, 400 with every problem and its JSON path."""
        machine = _parse(body.definition, request.app.state.quotas)
        return {"valid": True, "start_at": machine.start_at, "query_language": machine.query_language,
                "states": len(machine.states)}

    @app.post("/api/state-machines", status_code=201, dependencies=[operator], tags=["state machines"])
    async def deploy_state_machine(body: DeployRequest, request: Request, response: Response) -> dict[str, Any]:
        """Deploy a definition as the next immutable version of a state machine (`baton deploy --publish`),
        optionally moving an alias to it. 201 when something changed, 200 when the registry already had
        exactly this; 400 with each fault's JSON path for an invalid definition."""
        from orchestrator.registry.errors import RegistryError
        from orchestrator.registry.model import check_alias_name, check_name
        from orchestrator.registry.store import RegistryWriter

        backend = _backend(request)
        try:  # names first: a bad alias must not leave a half-done deploy behind
            check_name(body.name)
            if body.alias is not None:
                check_alias_name(body.alias)
        except RegistryError as exc:
            raise _registry_error(exc) from None
        definition = _definition_object(body.definition, request.app.state.quotas)
        try:
            with kafka_errors(backend.settings):
                deployed = await RegistryWriter(backend.settings, quotas=request.app.state.quotas).deploy(
                    body.name, definition, description=body.description, publish=True, alias=body.alias)
        except RegistryError as exc:
            raise _registry_error(exc) from None
        if not deployed.changed:
            response.status_code = 200
        record, version = deployed.record, deployed.version
        return {"name": record.name, "version": version.version if version else None, "revision": record.revision,
                "definition_hash": record.definition_hash, "changed": deployed.changed,
                "alias": deployed.alias.model_dump(mode="json") if deployed.alias else None}

    @app.get("/api/state-machines", dependencies=[viewer], tags=["state machines"])
    async def list_state_machines(request: Request) -> list[dict[str, Any]]:
        """The registered state machines: versions, aliases, last update."""
        records = await _registry(request)
        return [{"name": r.name, "revision": r.revision, "updated": r.updated.isoformat(),
                 "versions": [v.version for v in r.versions], "aliases": sorted(r.aliases),
                 "description": r.description} for r in sorted(records.values(), key=lambda r: r.name)]

    @app.get("/api/state-machines/{name}", dependencies=[viewer], tags=["state machines"])
    async def describe_state_machine(name: str, request: Request) -> dict[str, Any]:
        """One state machine: its draft, every version (with its definition) and its aliases."""
        record = (await _registry(request)).get(name)
        if record is None:
            raise ApiError(404, "StateMachineNotFound", f"no state machine named {name!r} is registered")
        return record.model_dump(mode="json")

    @app.post("/api/test-state", dependencies=[viewer], tags=["definitions"])
    async def test_state(body: TestStateRequest, request: Request) -> dict[str, Any]:
        """TestState: run one state with a given input (and task result or error)."""
        from orchestrator.local.runner import LocalRunError, TaskResolver
        from orchestrator.local.test_state import GivenOutcome, run_test_state

        quotas: Quotas = request.app.state.quotas
        machine = _parse(body.definition, quotas)
        check_payload(body.input, quotas, "the state input")
        given = GivenOutcome(result=body.result, has_result=body.has_result or body.result is not None,
                             error=body.error, cause=body.cause)
        try:
            return await run_test_state(machine, body.state, body.input, given=given, resolver=TaskResolver(),
                                        variables=body.variables)
        except LocalRunError as exc:
            raise ApiError(400, "TestStateFailed", str(exc)) from None


async def _registry(request: Request) -> dict[str, StateMachineRecord]:
    from orchestrator.registry.errors import RegistryError
    from orchestrator.registry.store import read_registry

    backend = _backend(request)
    try:
        with kafka_errors(backend.settings):
            return await read_registry(backend.settings)
    except RegistryError as exc:
        raise _registry_error(exc) from None


def _who(request: Request) -> str | None:
    identity = identity_of(request)
    return identity.name if identity is not None else None


def _check_queue(request: Request, task_token: str) -> None:
    """403 unless the caller may review the execution `task_token` names (a no-op without a limit).

    The execution's state machine is the one the orchestrator resolved its start to, from the read
    model. An execution the read model does not know gets the same 403 as one of another queue, so
    a limited reviewer cannot probe which executions exist; a malformed token is still a 400 (that
    depends on the text alone). The orchestrator verifies the token's signature either way, and
    the signature covers the execution id read here.
    """
    from steps.review.decisions import check_token

    identity = identity_of(request)
    if identity is None or identity.may_review(None):
        return
    try:
        execution_id = check_token(task_token)
    except InvalidToken as exc:
        raise ApiError(400, "InvalidDecision", str(exc)) from None
    if not identity.may_review(_state_machine_of(_backend(request), execution_id)):
        raise AuthError(403, "Forbidden", f"the token {identity.name!r} may decide only the tasks of its review queues")


def _state_machine_of(backend: Backend, execution_id: str) -> str | None:
    """The registered name an execution runs (any version or alias), None when it is not known."""
    try:
        view = backend.model.describe(execution_id)
    except AmbiguousExecution:
        return None
    # describe() also matches names: only the exact id counts here.
    return view.state_machine if view is not None and view.execution_id == execution_id else None


async def _post_decision(request: Request, response: Response, decision: ReviewDecision) -> dict[str, Any]:
    """Check a decision as the orchestrator will (its token's signature, its execution, that the task
    still waits; 4xx and nothing is posted otherwise), post it and report whether it was applied."""
    backend = _backend(request)
    execution_id, task_id = verify_token(decision.task_token, request.app.state.token_secret)
    if decision.outcome == "success":
        check_payload(decision.output, request.app.state.quotas, "the task output")
    state = await backend.task_state(execution_id, task_id)
    if state == "unknown":
        raise unknown_execution(execution_id)
    if state == "gone":
        raise not_waiting(execution_id)
    wait: float = request.app.state.decision_wait
    outcome = await backend.post_decision(decision, wait)
    if outcome == "applied":
        response.status_code = 200
    return {"execution_id": decision.execution_id, "outcome": decision.outcome, "status": outcome,
            "message": describe_outcome(outcome, wait)}


def _progress(view: ExecutionView, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {"execution": view.model_dump(mode="json"), "events": len(history),
            "states": {name: run.as_json() for name, run in state_runs(history).items()}}


# ------------------------------------------------------------ server-sent events


def _sse(events: AsyncIterator[tuple[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        async for kind, data in events:
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _status_events(backend: Backend, execution_id: str, request: Request) -> AsyncIterator[tuple[str, Any]]:
    """A `status` event whenever the execution or its history changes; `end` once it has ended."""
    last: tuple[str, int] | None = None
    while not await request.is_disconnected():
        view = backend.model.describe(execution_id)
        if view is None:
            return
        history = backend.model.history(execution_id)
        if (view.status, len(history)) != last:
            last = (view.status, len(history))
            yield "status", _progress(view, history)
        if view.status in TERMINAL_STATUSES:
            yield "end", {"status": view.status}
            return
        await asyncio.sleep(_SSE_POLL)


async def _token_events(settings: KafkaSettings, execution_id: str, all_tasks: bool,
                        idle_timeout: float) -> AsyncIterator[tuple[str, Any]]:
    from steps.llm.streaming import follow_stream

    try:
        with kafka_errors(settings):
            async for chunk in follow_stream(settings, execution_id, all_tasks=all_tasks, idle_timeout=idle_timeout):
                yield "token", chunk.model_dump(mode="json", include={"task_id", "seq", "text", "final"})
    except TimeoutError:
        pass
    except (ReadModelError, KafkaFailure) as exc:
        yield "error", {"error": {"code": "KafkaUnavailable", "message": str(exc)}}
    yield "end", {}


# ------------------------------------------------------------ pages


def _pages(app: FastAPI) -> None:
    templates = Environment(loader=FileSystemLoader(PAGES / "templates"), autoescape=select_autoescape(["html"]))
    templates.filters["quote"] = lambda text: quote(str(text), safe="")
    templates.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
    app.mount("/static", StaticFiles(directory=PAGES / "static"), name="static")
    viewer, reviewer = requires("viewer"), requires("reviewer")

    def page(name: str, **values: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**values))

    @app.get("/", response_class=HTMLResponse, dependencies=[viewer], include_in_schema=False)
    async def executions_page(request: Request, status: str | None = None) -> HTMLResponse:
        views = _backend(request).model.list(status=status.upper() if status else None, limit=200)
        return page("executions.html", executions=views, status=status)

    @app.get("/executions/{execution}", response_class=HTMLResponse, dependencies=[viewer], include_in_schema=False)
    async def execution_page(execution: str, request: Request) -> HTMLResponse:
        backend = _backend(request)
        try:
            view = backend.describe(execution)
        except ApiError as exc:
            return HTMLResponse(templates.get_template("error.html").render(message=exc.message),
                                status_code=exc.status)
        history = backend.model.history(view.execution_id)
        machine = backend.machine_of(view.execution_id)
        runs = state_runs(history)
        return page("execution.html", execution=view, history=history,
                    graph=to_svg(machine, runs) if machine is not None else None,
                    states=json.dumps({name: run.as_json() for name, run in runs.items()}, ensure_ascii=False))

    @app.get("/reviews", response_class=HTMLResponse, dependencies=[reviewer], include_in_schema=False)
    async def reviews_page(request: Request) -> HTMLResponse:
        identity = identity_of(request)  # the list itself comes from /api/reviews, filtered there
        queues = None if identity is None or identity.may_review(None) else sorted(identity.queues or ())
        return page("reviews.html", queues=queues)
