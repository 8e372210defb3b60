"""The http step service end to end: the real orchestrator and the real broker, calling a real HTTP
server this test starts on 127.0.0.1 (a token endpoint, APIs that check the bearer token, one that
answers 500 once and then 200, one that always fails, one that echoes what it got).

Done-when of issue #5 (part 2): an HTTP step with OAuth2 against a local server, including a 500
then success under Retry, through the orchestrator; and the connection's secrets never reach the
history, the step commands or the output.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kafka_io import KafkaSettings
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from steps.http import HttpSettings, http_service, load_connections
from tests.integration.runtime_support import RuntimeClient, read_all

CLIENT_ID = "baton-orders"
CLIENT_SECRET = "s3cret-client-value-7f1e"
TENANT = "acme"
CONNECTION_ARN = "arn:aws:events:us-east-1:123456789012:connection/orders/0b1c8f3e-5a2d-4e6f-9a7b-1c2d3e4f5a6b"


class ApiState:
    """What the local server has seen and issued (shared with its handler threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: list[str] = []
        self.calls: Counter[str] = Counter()


def _handler(state: ApiState) -> type[BaseHTTPRequestHandler]:
    class Api(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the step service pools its connections

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet test output)
            pass

        def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = json.dumps(body).encode() if content_type == "application/json" else str(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Served-By", "local-test")
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> str:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()

        def _authorised(self) -> bool:
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            with state.lock:
                return token in state.tokens

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            body = self._body()
            with state.lock:
                state.calls[url.path] += 1
            if url.path == "/oauth/token":
                expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.headers.get("Authorization") != expected or \
                        parse_qs(body).get("grant_type") != ["client_credentials"]:
                    return self._reply(401, {"error": "invalid_client"})
                with state.lock:
                    token = f"tok-{len(state.tokens) + 1}-{CLIENT_ID}-9c4e"
                    state.tokens.append(token)
                return self._reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
            if not self._authorised():
                return self._reply(401, {"message": "missing or bad bearer token"})
            if url.path == "/api/echo":
                return self._reply(200, {
                    "method": "POST", "query": parse_qs(url.query), "body": body,
                    "content_type": self.headers.get("Content-Type"), "tenant": self.headers.get("X-Tenant")})
            self._reply(404, {"message": "no such route"})

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            with state.lock:
                state.calls[url.path] += 1
                calls = state.calls[url.path]
            if not self._authorised():
                return self._reply(401, {"message": "missing or bad bearer token"})
            query = parse_qs(url.query)
            if url.path.startswith("/api/orders/"):
                return self._reply(200, {"id": url.path.rsplit("/", 1)[1], "total": 42.5,
                                         "expand": query.get("expand", [])})
            if url.path == "/api/flaky":
                if calls == 1:
                    return self._reply(500, {"error": "the first call always fails"})
                return self._reply(200, {"ok": True, "calls": calls, "key": query.get("key", [""])[0]})
            if url.path == "/api/broken":
                return self._reply(500, "database on fire", content_type="text/plain")
            self._reply(404, {"message": "no such route"})

    return Api


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    """The local HTTP server: (base URL, what it saw)."""
    state = ApiState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-http-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)



def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CONNECTIONS = """
connections:
  orders:
    auth:
      type: OAUTH_CLIENT_CREDENTIALS
      token_url: ${API}/oauth/token
      client_id: baton-orders
      client_secret: ${ORDERS_CLIENT_SECRET}
    invocation:
      headers: {X-Tenant: acme}
    endpoints: ["${API}/api/"]
"""


@contextlib.asynccontextmanager
async def running(kafka: KafkaSettings, base: str) -> AsyncIterator[None]:
    """The orchestrator and the http step service, both on the real broker."""
    connections = load_connections(CONNECTIONS, {"API": base, "ORDERS_CLIENT_SECRET": CLIENT_SECRET})
    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="http-o1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop))
    try:
        async with http_service(connections, http_settings=HttpSettings(timeout_seconds=10), settings=kafka):
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def http_task(resource: str = "arn:aws:states:::http:invoke", **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, **fields}


AUTH = {"InvocationConfig": {"ConnectionArn": CONNECTION_ARN}}
DEFINITION = {
    "Comment": "An order workflow calling an OAuth2-protected API",
    "StartAt": "GetOrder",
    "States": {
        "GetOrder": http_task(
            Parameters={"ApiEndpoint.$": "States.Format('{}/api/orders/{}', $.base, $.order_id)", "Method": "GET",
                        "QueryParameters": {"expand": ["items", "customer"]}, **AUTH},
            ResultSelector={"order.$": "$.ResponseBody", "status.$": "$.StatusCode", "served.$": "$.Headers.x-served-by"},
            ResultPath="$.order", Next="Flaky"),
        "Flaky": http_task(
            "baton:http",
            Parameters={"ApiEndpoint.$": "States.Format('{}/api/flaky', $.base)", "Method": "GET",
                        "QueryParameters": {"key.$": "$$.Execution.Name"},
                        "Authentication": {"ConnectionArn": "orders"}},
            Retry=[{"ErrorEquals": ["States.Http.StatusCode.500"], "IntervalSeconds": 1, "MaxAttempts": 2,
                    "BackoffRate": 1.0}],
            ResultSelector={"body.$": "$.ResponseBody", "status.$": "$.StatusCode"},
            ResultPath="$.flaky", Next="Echo"),
        "Echo": http_task(
            Parameters={"ApiEndpoint.$": "States.Format('{}/api/echo?source=workflow', $.base)", "Method": "POST",
                        "Headers": {"Content-Type": "application/x-www-form-urlencoded"},
                        "RequestBody": {"items.$": "$.tags", "note": "hello world"},
                        "Transform": {"RequestBodyEncoding": "URL_ENCODED",
                                      "RequestEncodingOptions": {"ArrayFormat": "BRACKETS"}}, **AUTH},
            ResultSelector={"body.$": "$.ResponseBody"}, ResultPath="$.echo", Next="Broken"),
        "Broken": http_task(
            Parameters={"ApiEndpoint.$": "States.Format('{}/api/broken', $.base)", "Method": "GET", **AUTH},
            Catch=[{"ErrorEquals": ["States.Http.StatusCode.500"], "ResultPath": "$.broken", "Next": "Unreachable"}],
            Next="Unreachable"),
        "Unreachable": http_task(
            Parameters={"ApiEndpoint.$": "$.closed", "Method": "GET"},
            Catch=[{"ErrorEquals": ["States.Http.Socket"], "ResultPath": "$.unreachable", "Next": "Done"}],
            Next="Done"),
        "Done": {"Type": "Succeed"},
    },
}


def test_oauth_http_workflow_with_retry_and_catch(kafka: KafkaSettings, api: tuple[str, ApiState]) -> None:
    base, state = api
    closed = f"http://127.0.0.1:{_closed_port()}/nothing-listens-here"
    execution_input = {"base": base, "order_id": "A-17", "tags": ["x", "y"], "closed": closed}

    async def scenario() -> tuple[Any, dict[str, list[dict[str, Any]]], list[bytes]]:
        async with running(kafka, base), RuntimeClient(kafka) as client:
            execution_id = await client.start(DEFINITION, execution_input, machine="orders", name="order-a17")
            outcome = (await client.wait([execution_id], timeout=60))[execution_id]
            history = await client.history()
            raw = [record.value for topic in (kafka.topics.history, kafka.topics.commands("http"),
                                              kafka.topics.events, kafka.topics.results, kafka.topics.state)
                   for record in await read_all(kafka, topic)]
            return outcome, {execution_id: history[execution_id]}, raw

    outcome, history, raw = asyncio.run(scenario())
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    output = outcome.output

    # GetOrder: the OAuth-protected API answered with the AWS result shape.
    assert output["order"] == {"order": {"id": "A-17", "total": 42.5, "expand": ["items", "customer"]},
                               "status": 200, "served": ["local-test"]}
    # Flaky: 500 on the first call, retried by the definition's Retry, 200 on the second.
    assert output["flaky"] == {"body": {"ok": True, "calls": 2, "key": "order-a17"}, "status": 200}
    assert state.calls["/api/flaky"] == 2
    # Echo: form-encoded body (BRACKETS), the endpoint's own query kept, the connection's header added.
    assert output["echo"]["body"] == {
        "method": "POST", "query": {"source": ["workflow"]}, "body": "items%5B%5D=x&items%5B%5D=y&note=hello%20world",
        "content_type": "application/x-www-form-urlencoded", "tenant": TENANT}
    # Broken: caught as States.Http.StatusCode.500 with the response as the cause.
    assert output["broken"]["Error"] == "States.Http.StatusCode.500"
    cause = json.loads(output["broken"]["Cause"])
    assert (cause["StatusCode"], cause["StatusText"], cause["ResponseBody"]) == (500, "Internal Server Error",
                                                                                  "database on fire")
    # Unreachable: nothing listens there, caught as States.Http.Socket.
    assert output["unreachable"]["Error"] == "States.Http.Socket"

    # One token for every call of the execution: fetched once, then cached.
    assert state.calls["/oauth/token"] == 1 and len(state.tokens) == 1

    # The history shows the failed attempt and the retry.
    events = next(iter(history.values()))
    failed = [e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"]
    assert failed == ["States.Http.StatusCode.500", "States.Http.StatusCode.500", "States.Http.Socket"]

    # Secrets stay out of everything on Kafka: history, commands, results, status, state.
    everything = b"".join(value for value in raw if value)
    for secret in [CLIENT_SECRET, *state.tokens]:
        assert secret.encode() not in everything, "a connection secret reached Kafka"
    assert b"Bearer" not in everything
