"""The `http` step service: `baton:http` and `arn:aws:states:::http:invoke` Tasks as HTTP requests.

One pooled `httpx.AsyncClient` serves every task of the service (keep-alive across tasks, a
bounded number of connections). A task:

1. validates its Parameters (`request.parse_call`) and resolves its connection by name;
2. merges the connection's headers, query parameters and body fields, serialises the body;
3. authenticates (API key, basic, bearer, OAuth client credentials with a cached token);
4. sends the request within `timeout_seconds` (AWS: 60 s) and reads at most `max_response_bytes`;
5. answers with `{ResponseBody, Headers, StatusCode, StatusText}` on 2xx, or fails with
   `States.Http.StatusCode.NNN` (the same object as the cause), `States.Http.Socket`, ... (see
   `errors`). With OAuth, a 401 drops the cached token and the request is sent once more with a
   fresh one.

Credentials never leave the service: they are not in the Task's parameters (only the connection
name is), and any secret value the API echoes back is replaced by "***" in the result and cause.

Run it with `baton step http` or `BATON_HTTP_CONNECTIONS=conns.yaml faststream run --factory
steps.http.service:app`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from faststream import FastStream
from prometheus_client import CollectorRegistry, Counter, Histogram

from kafka_io import KafkaSettings
from schemas.steps import StepCommand
from steps.http.auth import Credentials, TokenCache, credentials
from steps.http.connections import Connection, ConnectionRegistry, OAuthClientCredentials, load_connections
from steps.http.errors import (
    ConnectionFailure,
    HttpTaskError,
    InvalidParameters,
    SocketFailure,
    StatusCodeFailure,
    UnsupportedResponse,
)
from steps.http.guard import networks, request_guard
from steps.http.request import HttpCall, PreparedRequest, parse_call, prepare
from steps.http.response import Redactor, check_content_type, read_body, task_result
from steps.http.settings import HttpSettings
from steps.sdk.handler import StepHandler, StepOutput
from steps.sdk.redact import quiet_http_client_logs
from steps.service import StepService

log = logging.getLogger(__name__)
REQUEST_RECORD_BYTES = 4096  # of a request body kept in the task metadata

SERVICE = "http"


class HttpMetrics:
    """HTTP-level metrics, next to the step service's own (same registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Histogram(
            "baton_http_request_seconds",
            "HTTP Task requests by connection, method and outcome (2xx, 4xx, 5xx, socket, ...).",
            ["connection", "method", "outcome"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.tokens = Counter(
            "baton_http_oauth_token_requests",
            "OAuth token requests by connection and outcome (fetched, refused, failed, socket).",
            ["connection", "outcome"], registry=registry)


class HttpHandler(StepHandler):
    """Runs HTTP Tasks. `invoke(parameters)` is the same without a step command (TestState, local)."""

    def __init__(self, connections: ConnectionRegistry | None = None, settings: HttpSettings | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.settings = settings or HttpSettings()
        quiet_http_client_logs()  # URLs (query secrets) and response headers (echoed credentials)
        self.connections = connections if connections is not None else load_connections(self.settings.connections)
        self.metrics = HttpMetrics(registry or CollectorRegistry())
        self.client = httpx.AsyncClient(
            transport=transport,  # the seam tests use (httpx.MockTransport)
            timeout=httpx.Timeout(self.settings.timeout_seconds, connect=self.settings.connect_timeout_seconds),
            limits=httpx.Limits(max_connections=self.settings.max_connections,
                                max_keepalive_connections=self.settings.max_keepalive_connections),
            follow_redirects=self.settings.follow_redirects,
            event_hooks={"request": [request_guard(networks(self.settings.blocked_networks))]},
        )
        self.tokens = TokenCache(self.client, timeout_seconds=self.settings.timeout_seconds,
                                 on_fetch=lambda name, outcome: self.metrics.tokens.labels(name, outcome).inc())

    async def run(self, command: StepCommand) -> StepOutput:
        return await self.invoke(command.parameters)

    async def invoke(self, parameters: Any) -> StepOutput:
        """The task's result for these Parameters, or an `HttpTaskError` (a `StepError`)."""
        call = parse_call(parameters)
        connection = self._connection(call)
        redactor = Redactor(connection.secrets() if connection is not None else [])
        try:
            request = prepare(call, connection.invocation if connection is not None else None,
                              user_agent=self.settings.user_agent)
            started = time.monotonic()
            result, attempts = await self._send(request, connection, redactor)
        except HttpTaskError as exc:
            if exc.cause:  # an API may echo a credential into an error page
                exc.cause = redactor.text(exc.cause)
                exc.args = (f"{exc.error}: {exc.cause}",)
            raise
        metadata = {"http": {"method": call.method, "endpoint": call.where, "status_code": result["StatusCode"],
                             "attempts": attempts, "connection": connection.name if connection else None,
                             "latency_ms": round((time.monotonic() - started) * 1000, 3),
                             "request": _request_record(request, redactor)}}
        return StepOutput(redactor.value(result), metadata)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _connection(self, call: HttpCall) -> Connection | None:
        if call.connection is None:
            if self.settings.require_connection:
                raise InvalidParameters("InvocationConfig.ConnectionArn is required (BATON_HTTP_REQUIRE_CONNECTION)")
            return None
        connection = self.connections.get(call.connection)
        if not connection.allows(call.endpoint):
            raise ConnectionFailure(
                "AccessDenied",
                f"connection {connection.name!r} may not be used for {call.where}: it is limited to "
                f"{', '.join(connection.endpoints)}")
        return connection

    async def _send(self, request: PreparedRequest, connection: Connection | None, redactor: Redactor) -> tuple[dict[str, Any], int]:
        name = connection.name if connection is not None else ""
        auth = await credentials(connection, self.tokens)
        redactor.add(auth.secrets)
        result = await self._exchange(request, auth, name)
        attempts = 1
        if result["StatusCode"] == 401 and connection is not None and auth.token is not None \
                and isinstance(connection.auth, OAuthClientCredentials):
            # The token expired early or was revoked: one more try with a fresh one.
            self.tokens.invalidate(name, auth.token)
            auth = await credentials(connection, self.tokens)
            redactor.add(auth.secrets)
            result = await self._exchange(request, auth, name)
            attempts = 2
        if result["StatusCode"] // 100 != 2:
            raise StatusCodeFailure(redactor.value(result))
        return result, attempts

    async def _exchange(self, request: PreparedRequest, auth: Credentials, connection: str) -> dict[str, Any]:
        """One request and its answer as the task's result shape (any status)."""
        names = {header.lower() for header, _ in auth.headers}
        headers = [(k, v) for k, v in request.headers if k.lower() not in names] + auth.headers
        timeout = self.settings.timeout_seconds
        started = time.monotonic()
        outcome = "socket"
        try:
            async with asyncio.timeout(timeout) as deadline:
                async with self.client.stream(request.method, request.url, headers=headers,
                                              content=request.content) as response:
                    outcome = f"{response.status_code // 100}xx"
                    check_content_type(response.headers)
                    body = await read_body(response, self.settings.max_response_bytes)
                    result = task_result(response.status_code, response.reason_phrase, response.headers, body)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise SocketFailure(f"{request.method} {request.where} did not complete within {timeout:g} seconds") \
                from None
        except httpx.TimeoutException as exc:
            raise SocketFailure(f"{request.method} {request.where} timed out ({type(exc).__name__})") from None
        except httpx.DecodingError:
            raise UnsupportedResponse(
                f"the response of {request.method} {request.where} cannot be decoded "
                "(its Content-Encoding does not match its body)") from None
        except httpx.RequestError as exc:
            raise SocketFailure(f"{request.method} {request.where} failed: {type(exc).__name__}: {exc}") from None
        finally:
            elapsed = time.monotonic() - started
            self.metrics.requests.labels(connection, request.method, outcome).observe(elapsed)
        log.debug("%s %s -> %s in %.0f ms", request.method, request.where, result["StatusCode"], elapsed * 1000)
        return result


def _request_record(request: PreparedRequest, redactor: Redactor) -> dict[str, Any]:
    """The request as sent, for inspection (TestState) and the history: secrets redacted, the body
    capped. The connection's authentication headers are added per attempt and never shown."""
    body = (request.content or b"")[:REQUEST_RECORD_BYTES].decode("utf-8", "replace")
    return {"method": request.method, "url": redactor.text(request.url),
            "headers": [[name, redactor.text(value)] for name, value in request.headers],
            "body": redactor.text(body)}


class HttpStepService(StepService):
    """A `StepService` that also closes the handler's HTTP client when it stops."""

    def __init__(self, handler: HttpHandler, **options: Any) -> None:
        super().__init__(SERVICE, handler, **options)
        self.http = handler

    async def _drain(self) -> None:
        # Both ways of stopping (`stop()` and the FastStream app's shutdown) end here.
        try:
            await super()._drain()
        finally:
            await self.http.aclose()


def http_service(
    connections: ConnectionRegistry | None = None,
    *,
    http_settings: HttpSettings | None = None,
    settings: KafkaSettings | None = None,
    registry: CollectorRegistry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **options: Any,
) -> HttpStepService:
    """The `http` step service. Connections default to the file named by BATON_HTTP_CONNECTIONS
    (a `ConnectionConfigError` says what is wrong with it); `options` go to `StepService`."""
    registry = registry or CollectorRegistry()
    handler = HttpHandler(connections, http_settings, transport=transport, registry=registry)
    return HttpStepService(handler, settings=settings, registry=registry, **options)


def app() -> FastStream:
    """`faststream run --factory steps.http.service:app`: settings from the environment
    (BATON_KAFKA_BOOTSTRAP, BATON_TOPIC_PREFIX, BATON_HTTP_CONNECTIONS, ...)."""
    return http_service().app()
