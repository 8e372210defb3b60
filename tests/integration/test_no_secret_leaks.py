"""A failing workflow leaks no secret: planted credentials searched for everywhere a run leaves text.

The run, on the real broker under a unique topic prefix, with the real orchestrator, http and llm
step services and API in this process:

- an HTTP Task through connection `partner` (BASIC auth whose password, and a secret query
  parameter and header, come from the environment through a connections file) calls a careless
  partner API that answers 500 and echoes every credential it got: plain, decoded from the Basic
  header, and base64. The Task's failure is caught;
- an LLM Task (streamed) calls a provider whose key comes from the environment; the provider's
  gateway answers 401 quoting the key, as some do. It is not caught: the execution FAILS;
- the API (with a bearer token, and a page login with `?token=`) serves the execution.

Then every topic of the prefix (read uncommitted: aborted writes too), every log record of the
process at DEBUG (and what went to stdout/stderr), every API answer and the /metrics text of the
orchestrator and both step services are searched for each planted secret: the plain value and
each of its base64 forms (every alignment, both alphabets, so base64 of anything containing the
secret is found too), also inside base64 fields such as a dead letter's `value_b64`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import start_http_server

from kafka_io import KafkaSettings, topic_partitions
from orchestrator.api.app import create_app
from orchestrator.api.auth import TokenAuthorizer, TokenStore
from orchestrator.runtime.metrics import OrchestratorMetrics
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from steps.http.service import http_service
from steps.http.settings import HttpSettings
from steps.llm.config import LLMSettings, ProviderConfig
from steps.llm.service import llm_service
from steps.service import serve
from tests.integration.runtime_support import eventually
from tests.integration.test_api import free_port, until_status

HTTP_SECRET = f"pl4nted-http-{secrets.token_hex(12)}"
LLM_KEY = f"sk-pl4nted-llm-{secrets.token_hex(12)}"
USERNAME = "baton-client"


def base64_forms(secret: str) -> set[str]:
    """Every run of base64 characters that encodes `secret` alone, whatever surrounds it.

    Found by encoding the secret between two different fillers at each of the three alignments
    and keeping the characters both encodings share (independent of the code under test).
    """
    forms: set[str] = set()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            low = encode(b"\x00" * shift + secret.encode() + b"\x00" * 3).decode()
            high = encode(b"\xff" * shift + secret.encode() + b"\xff" * 3).decode()
            same = "".join(a if a == b else "\n" for a, b in zip(low, high))
            forms.add(max(same.split("\n"), key=len))
    return forms


def needles() -> dict[str, set[str]]:
    return {name: {value} | base64_forms(value) for name, value in (("http secret", HTTP_SECRET), ("llm key", LLM_KEY))}


class CarelessServer:
    """A partner API and an LLM gateway that echo every credential they get in their error answers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                headers = {name: value for name, value in self.headers.items()}
                outer.seen.append({"path": self.path, "headers": headers, "body": body})
                if self.path.startswith("/partner/"):
                    credentials = headers.get("Authorization", "").partition(" ")[2]
                    echo = {"error": "upstream failed", "you_sent": {
                        "headers": headers, "query": urlsplit(self.path).query, "body": body,
                        "credentials": credentials,
                        "credentials_decoded": base64.b64decode(credentials).decode(errors="replace"),
                        "key_b64": base64.b64encode(headers.get("X-Partner-Key", "").encode()).decode()}}
                    self._answer(500, echo, {"X-Echo-Key": headers.get("X-Partner-Key", "")})
                elif self.path == "/v1/chat/completions":
                    key = headers.get("Authorization", "").removeprefix("Bearer ")
                    self._answer(401, {"error": {
                        "message": f"Incorrect API key provided: {key} (as base64: "
                                   f"{base64.b64encode(key.encode()).decode()})",
                        "type": "invalid_request_error", "code": "invalid_api_key"}}, {})
                else:
                    self._answer(404, {"error": "no such path"}, {})

            def _answer(self, status: int, document: Any, headers: dict[str, str]) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test's own server: its log is not Baton's

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def every_log_record() -> Iterator[list[str]]:
    """Every record logged in the process at DEBUG and up, formatted with its traceback."""
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def workflow(server: str) -> dict[str, Any]:
    return {"StartAt": "CallPartner", "States": {
        "CallPartner": {
            "Type": "Task", "Resource": "arn:aws:states:::http:invoke",
            "Parameters": {"ApiEndpoint": f"{server}/partner/orders", "Method": "POST",
                           "InvocationConfig": {"ConnectionArn": "partner"}, "RequestBody": {"item.$": "$.item"}},
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.partner_error", "Next": "Summarise"}],
            "Next": "Summarise"},
        "Summarise": {
            "Type": "Task", "Resource": "baton:llm",
            "Parameters": {"Provider": "leaky", "Model": "gpt-test", "Stream": True,
                           "Prompt": "Explain this failure to the customer: {{ failure }}",
                           "Variables": {"failure.$": "$.partner_error.Error"}},
            "End": True}}}


async def read_topic(settings: KafkaSettings, topic: str) -> list[bytes]:
    """Key, value and headers of every record of `topic`, aborted transactions included."""
    consumer = AIOKafkaConsumer(**settings.client_options(), isolation_level="read_uncommitted",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (await topic_partitions(settings, [topic]))[topic]]
        assert partitions, topic
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[bytes] = []
        deadline = time.monotonic() + 30
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            assert time.monotonic() < deadline, f"reading {topic} took over 30 s"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    found += [record.key or b"", record.value or b"", *(value for _, value in record.headers)]
        return found
    finally:
        await consumer.stop()


_BASE64ISH = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def texts_of(value: bytes) -> list[str]:
    """The record as text, plus the decoding of every base64-looking run in it (dead letters keep
    the original bytes as `value_b64`)."""
    text = value.decode(errors="replace")
    found = [text]
    for run in _BASE64ISH.findall(text):
        with contextlib.suppress(binascii.Error, ValueError):
            found.append(base64.b64decode(run + "=" * (-len(run) % 4), altchars=b"-_" if "-" in run or "_" in run
                                          else None).decode(errors="replace"))
    return found


def leaks(where: str, text: str) -> list[str]:
    return [f"{name} ({'plain' if form in (HTTP_SECRET, LLM_KEY) else 'base64'}) in {where}: "
            f"...{text[max(0, text.index(form) - 60):text.index(form) + 20]!r}"
            for name, forms in needles().items() for form in forms if form in text]



def test_a_failing_workflow_leaks_no_secret(kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PLANTED_HTTP_SECRET", HTTP_SECRET)
    monkeypatch.setenv("PLANTED_LLM_KEY", LLM_KEY)
    connections = tmp_path / "connections.yaml"  # the file holds no secret: it names the variables
    connections.write_text(
        "connections:\n  partner:\n"
        f"    auth: {{type: BASIC, username: {USERNAME}, password: '${{PLANTED_HTTP_SECRET}}'}}\n"
        "    invocation:\n"
        "      query: {signature: {secret: '${PLANTED_HTTP_SECRET}'}}\n"
        "      headers: {X-Partner-Key: {secret: '${PLANTED_HTTP_SECRET}'}}\n")
    connections.chmod(0o600)
    store = TokenStore(tmp_path / "api-tokens.json")
    api_token = store.create("leak-test", "admin")
    server = CarelessServer()
    answers: list[str] = []  # every API answer's body
    metrics: dict[str, str] = {}
    ports = {name: free_port() for name in ("orchestrator", "http", "llm", "api")}

    async def scenario() -> str:
        stop = asyncio.Event()
        orchestrator_metrics = OrchestratorMetrics()
        metrics_server = start_http_server(ports["orchestrator"], "127.0.0.1", registry=orchestrator_metrics.registry)[0]
        orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="leak-o1", metrics_port=None),
                                    orchestrator_metrics)
        http = http_service(http_settings=HttpSettings(connections=str(connections)), settings=kafka)
        llm = llm_service(LLMSettings(providers={"leaky": ProviderConfig(
            kind="openai", base_url=f"{server.url}/v1", api_key_env="PLANTED_LLM_KEY")}, default_provider="leaky"),
            kafka=kafka)
        api = uvicorn.Server(uvicorn.Config(
            create_app(kafka, db_path=tmp_path / "rm.sqlite", authorizer=TokenAuthorizer(store)),
            host="127.0.0.1", port=ports["api"], log_level="info", access_log=True, lifespan="on"))
        tasks = [asyncio.create_task(orchestrator.run(stop)), asyncio.create_task(api.serve()),
                 asyncio.create_task(serve(http, stop, ports["http"], "127.0.0.1")),
                 asyncio.create_task(serve(llm, stop, ports["llm"], "127.0.0.1"))]
        try:
            await asyncio.wait_for(orchestrator.ready.wait(), 30)

            async def api_started() -> bool:
                return api.started

            await eventually(api_started, timeout=30)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['api']}", timeout=30) as client:
                login = await client.get(f"/?token={api_token}")  # a page login: the token in the URL
                assert login.status_code == 200 and client.cookies.get("baton_token") == api_token
                client.headers["Authorization"] = f"Bearer {api_token}"
                started = await client.post("/api/executions", json={
                    "definition": workflow(server.url), "name": "leaky", "input": {"item": "book"}})
                assert started.status_code == 201, started.text
                execution_id: str = started.json()["execution_id"]
                failed = await until_status(client, execution_id, "FAILED", "SUCCEEDED")
                for path in ("", "/history", "/states"):
                    answer = await client.get(f"/api/executions/{execution_id}{path}")
                    assert answer.status_code == 200
                    answers.append(answer.text)
                answers.append((await client.get(f"/executions/{execution_id}")).text)  # the page
                for name in ("orchestrator", "http", "llm"):
                    metrics[name] = (await client.get(f"http://127.0.0.1:{ports[name]}/metrics")).text
            assert failed["status"] == "FAILED", failed
            return execution_id
        finally:
            stop.set()
            api.should_exit = True
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
            metrics_server.shutdown()
            metrics_server.server_close()

    began = time.monotonic()
    try:
        with every_log_record() as log_lines:
            execution_id = asyncio.run(scenario())
    finally:
        server.close()
    run_seconds = time.monotonic() - began

    # The secrets were really used: the careless server received each of them.
    partner = next(r for r in server.seen if r["path"].startswith("/partner/"))
    assert parse_qs(urlsplit(partner["path"]).query)["signature"] == [HTTP_SECRET]
    assert partner["headers"]["X-Partner-Key"] == HTTP_SECRET
    assert base64.b64decode(partner["headers"]["Authorization"].split()[1]).decode() == f"{USERNAME}:{HTTP_SECRET}"
    assert any(r["headers"].get("Authorization") == f"Bearer {LLM_KEY}" for r in server.seen)

    # The run failed, and why is recorded (with the echoed credentials blanked out).
    execution, history = json.loads(answers[0]), json.loads(answers[1])
    assert execution["error"] == "Baton.LLM.RequestRejected" and "HTTP 401" in execution["cause"], execution
    assert "***" in execution["cause"]
    task_failures = [e for e in history if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in task_failures] == [
        "States.Http.StatusCode.500", "Baton.LLM.RequestRejected"], task_failures
    partner_cause = json.loads(task_failures[0]["taskFailedEventDetails"]["cause"])
    assert partner_cause["ResponseBody"]["you_sent"]["headers"]["X-Partner-Key"] == "***"
    assert history[-1]["type"] == "ExecutionFailed"

    # Every topic of the prefix, read to its end.
    prefix = kafka.topic_prefix + "."

    async def every_topic() -> dict[str, list[bytes]]:
        probe = AIOKafkaConsumer(**kafka.client_options())
        await probe.start()
        try:
            names = sorted(t for t in await probe.topics() if t.startswith(prefix))
        finally:
            await probe.stop()
        return {name: await read_topic(kafka, name) for name in names}

    topics = asyncio.run(every_topic())
    expected = {kafka.topics.history, kafka.topics.events, kafka.topics.state, kafka.topics.start,
                kafka.topics.results, kafka.topics.commands("http"), kafka.topics.commands("llm"),
                kafka.topics.streams, kafka.topics.dlq, kafka.topics.review_requests,
                kafka.topics.review_decisions, kafka.topics.statemachines}
    assert expected <= set(topics), sorted(expected - set(topics))
    for busy in (kafka.topics.history, kafka.topics.events, kafka.topics.state, kafka.topics.results,
                 kafka.topics.commands("http"), kafka.topics.commands("llm"), kafka.topics.streams):
        assert topics[busy], f"{busy} is empty: the run did not go through it"
    assert any(execution_id.encode() in value for value in topics[kafka.topics.history])

    # Metrics are real: both tasks and the failed execution are counted.
    assert 'connection="partner"' in metrics["http"] and 'outcome="5xx"' in metrics["http"]
    assert "baton_llm" in metrics["llm"] and 'status="FAILED"' in metrics["orchestrator"]
    output = capfd.readouterr()
    assert "GET /?token=***" in output.out + output.err, "the API's access log was not captured"

    found: list[str] = []
    for topic, values in topics.items():
        for value in values:
            for text in texts_of(value):
                found += leaks(f"topic {topic}", text)
    for where, texts in (("log", log_lines), ("stdout", [output.out]), ("stderr", [output.err]),
                         ("API answer", answers), ("/metrics", list(metrics.values()))):
        for text in texts:
            found += leaks(where, text)
            if api_token in text:
                found.append(f"the API token in {where}")
    assert not found, "\n".join(found[:20])
    assert log_lines, "no log record was captured"
    assert run_seconds < 120
