"""The HTTP handler over httpx's MockTransport: auth, the OAuth token cache, result shape, errors,
and secrets kept out of results and causes. (The real-server, real-broker path is in
tests/integration/test_http_service.py.)"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from steps.http.auth import TokenCache
from steps.http.connections import load_connections
from steps.http.errors import HttpTaskError
from steps.http.service import HttpHandler
from steps.http.settings import HttpSettings
from steps.sdk.handler import StepOutput

CLIENT_SECRET = "client-secret-value"
API_KEY = "api-key-value-123"
CONNECTIONS = json.dumps({
    "oauth": {"auth": {"type": "OAUTH_CLIENT_CREDENTIALS", "token_url": "https://auth.test/token",
                       "client_id": "baton", "client_secret": CLIENT_SECRET, "scope": "read",
                       "parameters": {"body": {"audience": "api"}}},
              "invocation": {"query": {"sig": {"secret": "query-secret-value"}}}},
    "key": {"auth": {"type": "API_KEY", "name": "X-Api-Key", "value": API_KEY},
            "endpoints": ["https://api.test/"]},
    "basic": {"auth": {"type": "BASIC", "username": "ana", "password": "pass-word-1"}},
})

Route = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


class FakeServer:
    """Routes by path; issues tokens tok-1, tok-2, ... and accepts only the current one."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.calls: Counter[str] = Counter()
        self.requests: list[httpx.Request] = []
        self.issued = 0
        self.valid_tokens: set[str] = set()
        self.routes["/token"] = self._token

    def _token(self, request: httpx.Request) -> httpx.Response:
        expected = "Basic " + base64.b64encode(f"baton:{CLIENT_SECRET}".encode()).decode()
        form = parse_qs(request.content.decode())
        if request.headers.get("authorization") != expected or form.get("grant_type") != ["client_credentials"]:
            return httpx.Response(401, json={"error": "invalid_client", "error_description": CLIENT_SECRET})
        assert form["scope"] == ["read"] and form["audience"] == ["api"]
        self.issued += 1
        token = f"tok-{self.issued}-abcdef"
        self.valid_tokens.add(token)
        return httpx.Response(200, json={"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def authorised(self, request: httpx.Request) -> bool:
        return request.headers.get("authorization", "").removeprefix("Bearer ") in self.valid_tokens

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls[request.url.path] += 1
        self.requests.append(request)
        route = self.routes.get(request.url.path)
        if route is None:
            return httpx.Response(404, text="not found")
        response = route(request)
        return await response if asyncio.iscoroutine(response) else response  # type: ignore[return-value]


def handler(server: FakeServer, **settings: Any) -> HttpHandler:
    return HttpHandler(load_connections(CONNECTIONS, {}), HttpSettings(**settings),
                       transport=httpx.MockTransport(server))


def invoke(h: HttpHandler, **parameters: Any) -> StepOutput:
    async def go() -> StepOutput:
        try:
            return await h.invoke({"Method": "GET", **parameters})
        finally:
            await h.aclose()
    return asyncio.run(go())


def failure(h: HttpHandler, **parameters: Any) -> HttpTaskError:
    with pytest.raises(HttpTaskError) as caught:
        invoke(h, **parameters)
    return caught.value


def echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"authorization": request.headers.get("authorization"),
                                     "query": str(request.url.query, "ascii")},
                          headers=[("X-Multi", "a"), ("X-Multi", "b")])


# --- OAuth client credentials ---------------------------------------------------------------------


def test_oauth_token_is_fetched_once_for_concurrent_tasks_and_kept_out_of_results() -> None:
    server = FakeServer()
    server.routes["/api"] = lambda r: echo(r) if server.authorised(r) else httpx.Response(401)
    h = handler(server)

    async def go() -> list[StepOutput]:
        try:
            return await asyncio.gather(*[h.invoke({"ApiEndpoint": "https://api.test/api", "Method": "GET",
                                                    "InvocationConfig": {"ConnectionArn": "oauth"}})
                                          for _ in range(5)])
        finally:
            await h.aclose()

    outputs = asyncio.run(go())
    assert server.issued == 1 and server.calls["/token"] == 1 and server.calls["/api"] == 5
    result = outputs[0].value
    assert result["StatusCode"] == 200 and result["StatusText"] == "OK"
    assert result["Headers"]["x-multi"] == ["a", "b"]
    # The API echoed the bearer token and the connection's secret query value: both redacted.
    assert result["ResponseBody"] == {"authorization": "***", "query": "sig=***"}
    assert "tok-1" not in json.dumps([o.value for o in outputs])
    http = dict(outputs[0].metadata["http"])
    latency, request = http.pop("latency_ms"), http.pop("request")
    assert http == {"method": "GET", "endpoint": "https://api.test/api",
                    "status_code": 200, "attempts": 1, "connection": "oauth"}
    # The request as sent, for TestState's inspection data: the connection's secret query value
    # redacted, its bearer token (added per attempt) never shown.
    assert latency > 0 and request == {"method": "GET", "url": "https://api.test/api?sig=***",
                                       "headers": [["User-Agent", "Baton|HttpInvoke"]], "body": ""}
    assert "tok-1" not in json.dumps([o.metadata for o in outputs])


def test_a_401_refreshes_the_token_once() -> None:
    server = FakeServer()
    server.routes["/api"] = lambda r: echo(r) if server.authorised(r) else httpx.Response(401)

    async def go() -> tuple[StepOutput, StepOutput]:
        h = handler(server)
        try:
            call = {"ApiEndpoint": "https://api.test/api", "Method": "GET", "InvocationConfig": {"ConnectionArn": "oauth"}}
            first = await h.invoke(call)
            server.valid_tokens.clear()  # revoked on the server's side
            second = await h.invoke(call)
            return first, second
        finally:
            await h.aclose()

    first, second = asyncio.run(go())
    assert first.metadata["http"]["attempts"] == 1 and second.metadata["http"]["attempts"] == 2
    assert server.issued == 2 and second.value["StatusCode"] == 200


def test_an_api_that_keeps_answering_401_fails_with_its_status_after_one_refresh() -> None:
    server = FakeServer()
    server.routes["/api"] = lambda r: httpx.Response(401, json={"message": "nope"})
    error = failure(handler(server), ApiEndpoint="https://api.test/api", InvocationConfig={"ConnectionArn": "oauth"})
    assert error.error == "States.Http.StatusCode.401"
    assert server.calls["/api"] == 2 and server.issued == 2


def test_token_endpoint_refusal_and_failure_are_connection_errors() -> None:
    server = FakeServer()
    server.routes["/token"] = lambda r: httpx.Response(401, json={"error": "invalid_client",
                                                                   "error_description": CLIENT_SECRET})
    refused = failure(handler(server), ApiEndpoint="https://api.test/api", InvocationConfig={"ConnectionArn": "oauth"})
    assert refused.error == "Events.ConnectionResource.InvalidConnectionState"
    assert "(invalid_client)" in (refused.cause or "") and CLIENT_SECRET not in (refused.cause or "")
    server.routes["/token"] = lambda r: httpx.Response(503)
    broken = failure(handler(server), ApiEndpoint="https://api.test/api", InvocationConfig={"ConnectionArn": "oauth"})
    assert broken.error == "Events.ConnectionResource.InternalError"
    server.routes["/token"] = lambda r: httpx.Response(200, json={"token_type": "Bearer"})
    empty = failure(handler(server), ApiEndpoint="https://api.test/api", InvocationConfig={"ConnectionArn": "oauth"})
    assert empty.error == "Events.ConnectionResource.InvalidConnectionState" and "access_token" in (empty.cause or "")


def test_the_token_cache_refreshes_before_expiry() -> None:
    now = [0.0]
    server = FakeServer()
    registry = load_connections(CONNECTIONS, {})
    connection = registry.get("oauth")
    assert connection.auth is not None and connection.auth.type == "OAUTH_CLIENT_CREDENTIALS"

    async def go() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            cache = TokenCache(client, clock=lambda: now[0])
            tokens = [await cache.token(connection, connection.auth)]  # type: ignore[arg-type]
            now[0] = 3600 - 31  # before the 30 s margin: still cached
            tokens.append(await cache.token(connection, connection.auth))  # type: ignore[arg-type]
            now[0] = 3600 - 29  # inside the margin: fetched again
            tokens.append(await cache.token(connection, connection.auth))  # type: ignore[arg-type]
            cache.invalidate("oauth", "some-other-token")  # not the cached one: kept
            tokens.append(await cache.token(connection, connection.auth))  # type: ignore[arg-type]
            return tokens

    assert asyncio.run(go()) == ["tok-1-abcdef", "tok-1-abcdef", "tok-2-abcdef", "tok-2-abcdef"]


# --- other auth types and connection rules --------------------------------------------------------


def test_api_key_and_basic_headers() -> None:
    server = FakeServer()
    server.routes["/h"] = lambda r: httpx.Response(200, json={
        "key": r.headers.get("x-api-key"), "auth": r.headers.get("authorization")})
    keyed = invoke(handler(server), ApiEndpoint="https://api.test/h", InvocationConfig={"ConnectionArn": "key"},
                   Headers={"X-Api-Key": "from-the-task"})  # the connection's value wins
    assert keyed.value["ResponseBody"] == {"key": "***", "auth": None}
    assert server.requests[-1].headers["x-api-key"] == API_KEY
    basic = invoke(handler(server), ApiEndpoint="https://api.test/h",
                   Authentication={"ConnectionArn": "arn:aws:events:us-east-1:1:connection/basic/abc"})
    assert server.requests[-1].headers["authorization"] == "Basic " + base64.b64encode(b"ana:pass-word-1").decode()
    assert basic.value["ResponseBody"]["auth"] == "***"


def test_connection_endpoint_limits_and_unknown_connections() -> None:
    denied = failure(handler(FakeServer()), ApiEndpoint="https://elsewhere.test/h", InvocationConfig={"ConnectionArn": "key"})
    assert denied.error == "Events.ConnectionResource.AccessDenied"
    missing = failure(handler(FakeServer()), ApiEndpoint="https://api.test/h", InvocationConfig={"ConnectionArn": "nope"})
    assert missing.error == "Events.ConnectionResource.ResourceNotFound"
    required = failure(handler(FakeServer(), require_connection=True), ApiEndpoint="https://api.test/h")
    assert required.error == "States.Runtime"


# --- responses and failures -----------------------------------------------------------------------


def test_non_2xx_fails_with_the_status_and_the_response_as_cause() -> None:
    server = FakeServer()
    server.routes["/busy"] = lambda r: httpx.Response(503, json={"retry": True}, headers={"Retry-After": "1"})
    error = failure(handler(server), ApiEndpoint="https://api.test/busy")
    assert error.error == "States.Http.StatusCode.503"
    cause = json.loads(error.cause or "")
    assert cause["StatusCode"] == 503 and cause["StatusText"] == "Service Unavailable"
    assert cause["ResponseBody"] == {"retry": True} and cause["Headers"]["retry-after"] == ["1"]


def test_redirects_are_not_followed_by_default() -> None:
    server = FakeServer()
    server.routes["/moved"] = lambda r: httpx.Response(302, headers={"Location": "https://evil.test/"})
    assert failure(handler(server), ApiEndpoint="https://api.test/moved").error == "States.Http.StatusCode.302"


def test_text_and_empty_bodies() -> None:
    server = FakeServer()
    server.routes["/text"] = lambda r: httpx.Response(200, text="héllo", headers={"Content-Type": "text/plain; charset=utf-8"})
    server.routes["/bad-json"] = lambda r: httpx.Response(200, content=b"{oops", headers={"Content-Type": "application/json"})
    server.routes["/none"] = lambda r: httpx.Response(204)
    assert invoke(handler(server), ApiEndpoint="https://api.test/text").value["ResponseBody"] == "héllo"
    assert invoke(handler(server), ApiEndpoint="https://api.test/bad-json").value["ResponseBody"] == "{oops"
    empty = invoke(handler(server), ApiEndpoint="https://api.test/none", Method="DELETE").value
    assert (empty["ResponseBody"], empty["StatusCode"], empty["StatusText"]) == ("", 204, "No Content")


@pytest.mark.parametrize(("response", "error"), [
    (httpx.Response(200, content=b"\x89PNG", headers={"Content-Type": "image/png"}), "States.Runtime"),
    (httpx.Response(200, content=b"\x00\x01", headers={"Content-Type": "application/octet-stream"}), "States.Runtime"),
    (httpx.Response(200, content=b"\xff\xfe\xfd", headers={"Content-Type": "text/plain"}), "States.Runtime"),
    (httpx.Response(200, content=b"x" * 262_145), "States.DataLimitExceeded"),
])
def test_unsupported_and_oversized_responses(response: httpx.Response, error: str) -> None:
    server = FakeServer()
    server.routes["/r"] = lambda r: response
    assert failure(handler(server), ApiEndpoint="https://api.test/r").error == error


def test_network_failures_and_timeouts_are_states_http_socket_without_secrets() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    server = FakeServer()
    server.routes["/down"] = refuse
    refused = failure(handler(server), ApiEndpoint="https://api.test/down", InvocationConfig={"ConnectionArn": "oauth"})
    assert refused.error == "States.Http.Socket"
    assert "GET https://api.test/down failed: ConnectError" in (refused.cause or "")
    assert "query-secret-value" not in (refused.cause or "") and "sig=" not in (refused.cause or "")

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(2)
        return httpx.Response(200)

    server.routes["/slow"] = slow
    timed_out = failure(handler(server, timeout_seconds=0.2), ApiEndpoint="https://api.test/slow")
    assert timed_out.error == "States.Http.Socket" and "0.2 seconds" in (timed_out.cause or "")


def test_the_request_on_the_wire() -> None:
    server = FakeServer()
    server.routes["/form"] = lambda r: httpx.Response(200, json={})
    invoke(handler(server), ApiEndpoint="https://api.test/form?x=1", Method="POST",
           QueryParameters={"y": "2 3"}, RequestBody={"a": ["b", "c"], "d": {"e": "f g"}},
           Transform={"RequestBodyEncoding": "URL_ENCODED"}, Headers={"X-Trace": "t1"})
    sent = server.requests[-1]
    assert str(sent.url) == "https://api.test/form?x=1&y=2%203"
    assert sent.content == b"a%5B0%5D=b&a%5B1%5D=c&d%5Be%5D=f%20g"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.headers["x-trace"] == "t1" and sent.headers["user-agent"] == "Baton|HttpInvoke"


def test_logs_carry_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = FakeServer()
    server.routes["/api"] = lambda r: echo(r) if server.authorised(r) else httpx.Response(401)
    invoke(handler(server), ApiEndpoint="https://api.test/api", InvocationConfig={"ConnectionArn": "oauth"})
    assert caplog.records, "expected some log output to check"
    for secret in (CLIENT_SECRET, "query-secret-value", "tok-1-abcdef"):
        assert secret not in caplog.text
