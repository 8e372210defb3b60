"""Every error the API answers, mapped to HTTP in this one module.

One JSON shape: `{"error": {"code", "message", "details"?}}`, with the HTTP status saying its
class: 400 a bad request, 401/403 auth, 404 unknown, 409 a conflict, 410 a task no longer
waiting, 413 over a quota, 503 Kafka (or the read model) unavailable, 500 a bug. A route raises
`ApiError` for what it refuses itself and lets the other Baton errors (quotas, registry, client,
task decisions, Kafka) propagate to the handlers `install_error_handlers` registers.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kafka_io import KafkaFailure, RecordTooLarge
from orchestrator.api.auth import AuthError
from orchestrator.api.readmodel import ReadModelError
from orchestrator.client import StateMachineNotFound
from orchestrator.quotas import QuotaExceeded
from orchestrator.registry import errors as registry
from orchestrator.client.callbacks import DecisionRefused
from schemas.errors import BatonError


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


def execution_not_found(execution: str) -> ApiError:
    return ApiError(404, "ExecutionNotFound", f"no execution {execution!r} (by id, or by name when unique)")


def invalid_definition(problems: list[dict[str, str]]) -> ApiError:
    """400 listing every fault of a definition with its JSON path (the first one in the message)."""
    return ApiError(400, "InvalidDefinition", f"invalid definition ({len(problems)} problem(s)): "
                    f"{problems[0]['path']}: {problems[0]['message']}", {"problems": problems})


def registry_error(exc: registry.RegistryError) -> ApiError:
    """The API's answer to a registry refusal: 400 for what the request got wrong, 404, 409, 413, 503."""
    if isinstance(exc, registry.InvalidDefinition):
        return invalid_definition([{"path": p.path, "message": p.message} for p in exc.problems])
    if isinstance(exc, (registry.InvalidName, registry.InvalidRouting, registry.InvalidReference)):
        return ApiError(400, type(exc).__name__, str(exc))
    if isinstance(exc, registry.NotFound):
        return ApiError(404, "StateMachineNotFound", str(exc))
    if isinstance(exc, registry.VersionInUse):
        return ApiError(409, "VersionInUse", str(exc))
    if isinstance(exc, registry.RecordTooLarge):
        return ApiError(413, "RegistryRecordTooLarge", str(exc))
    return ApiError(503, "RegistryUnavailable", str(exc))


def _decision_refused(exc: DecisionRefused) -> tuple[int, str]:
    # AWS's SendTaskSuccess errors: InvalidToken, TaskDoesNotExist, TaskTimedOut (a task
    # decided, timed out or ended: AWS answers TaskTimedOut for each).
    return {"invalid_token": (400, "InvalidToken"), "unknown_execution": (404, "TaskDoesNotExist"),
            "not_waiting": (410, "TaskTimedOut")}.get(exc.kind, (422, "DecisionRefused"))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error below in the API's JSON shape (and anything else as a JSON 500)."""

    @app.exception_handler(AuthError)
    async def refused(request: Request, exc: AuthError) -> JSONResponse:
        response = error_response(exc.status, exc.code, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(registry.RegistryError)
    async def registry_refused(request: Request, exc: registry.RegistryError) -> JSONResponse:
        mapped = registry_error(exc)
        return error_response(mapped.status, mapped.code, mapped.message, mapped.details)

    @app.exception_handler(StateMachineNotFound)
    async def unknown_state_machine(request: Request, exc: StateMachineNotFound) -> JSONResponse:
        return error_response(404, "StateMachineNotFound", str(exc))

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
        status, code = _decision_refused(exc)
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
