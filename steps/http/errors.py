"""Every error the HTTP task can fail with, as the ASL error names Step Functions uses.

Each is a `StepError`, so the step service publishes it as the task's failure: `error` is the
name a definition's Retry and Catch match, `cause` one line for a person. Names and meanings
follow the Step Functions developer guide, "Call HTTPS APIs" ([https] below) and "Handling
errors" ([errors]):

    States.Http.StatusCode.NNN     the API answered with a non-2xx status NNN; the cause is the
                                   JSON of the response, shaped like a successful result
    States.Http.Socket             no answer: connection refused or reset, DNS failure, or the
                                   request took longer than the timeout (AWS: 60 seconds)
    States.Runtime                 the Task's Parameters cannot be used (missing ApiEndpoint, bad
                                   Method, a forbidden header, a string RequestBody with
                                   connection body parameters) or the response is unsupported
                                   (binary content type, not text): terminal, as on AWS
    States.DataLimitExceeded       the response is larger than the payload limit (terminal)
    Events.ConnectionResource.*    the named connection is unknown (ResourceNotFound), may not
                                   call this endpoint (AccessDenied), or its OAuth token request
                                   was refused (InvalidConnectionState) or failed (InternalError)

Causes never contain a secret: no credential, token, or URL with the connection's query values.
"""

from __future__ import annotations

import json
from typing import Any

from schemas.errors import BatonError
from steps.sdk.step import StepError

STATUS_CODE_PREFIX = "States.Http.StatusCode."
SOCKET = "States.Http.Socket"
RUNTIME = "States.Runtime"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
CONNECTION_PREFIX = "Events.ConnectionResource."

MAX_CAUSE_CHARS = 32_768  # Step Functions' limit on a failure's cause


class HttpTaskError(StepError):
    """Base of the HTTP task's failures."""

    error_name = "States.TaskFailed"

    def __init__(self, cause: str) -> None:
        super().__init__(self.error_name, _bounded(cause))


class InvalidParameters(HttpTaskError):
    """The Task's Parameters cannot be used to start the request ([https] "HTTP Task fields")."""

    error_name = RUNTIME

    def __init__(self, cause: str) -> None:
        super().__init__(f"The Parameters of the HTTP Task cannot be used: {cause}")


class UnsupportedResponse(HttpTaskError):
    """A binary content type or a body that is not text ([https] "Unsupported HTTP Task responses")."""

    error_name = RUNTIME


class ResponseTooLarge(HttpTaskError):
    error_name = DATA_LIMIT_EXCEEDED


class SocketFailure(HttpTaskError):
    """No HTTP answer arrived: the network failed or the request timed out."""

    error_name = SOCKET


class StatusCodeFailure(HttpTaskError):
    """A non-2xx answer; `response` is the result the task would have had (in the cause as JSON)."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.status_code = int(response["StatusCode"])
        self.error_name = f"{STATUS_CODE_PREFIX}{self.status_code}"
        cause = json.dumps(response, ensure_ascii=False)
        if len(cause) > MAX_CAUSE_CHARS:  # keep the cause valid JSON: cut the body, not the JSON
            body = json.dumps(response.get("ResponseBody"), ensure_ascii=False)
            room = max(0, MAX_CAUSE_CHARS - (len(cause) - len(body)) - 100)
            cause = json.dumps({**response, "ResponseBody": body[:room] + "... (truncated)"},
                               ensure_ascii=False)
        super().__init__(cause)


class ConnectionFailure(HttpTaskError):
    """A problem with the named connection; the error name says which ([https] "Connection errors")."""

    def __init__(self, kind: str, cause: str) -> None:
        self.error_name = f"{CONNECTION_PREFIX}{kind}"
        super().__init__(cause)


def connection_not_found(name: str, known: list[str]) -> ConnectionFailure:
    listed = ", ".join(sorted(known)) or "none are configured"
    return ConnectionFailure(
        "ResourceNotFound",
        f"no connection named {name!r} (known: {listed}); add it to the file named by "
        "BATON_HTTP_CONNECTIONS and restart the http step service")


class ConnectionConfigError(BatonError, ValueError):
    """The connections configuration cannot be loaded; the message says where and why."""


def _bounded(cause: str) -> str:
    if len(cause) <= MAX_CAUSE_CHARS:
        return cause
    return cause[: MAX_CAUSE_CHARS - 20] + "... (truncated)"
