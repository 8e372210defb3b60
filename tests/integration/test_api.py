"""The HTTP API against the real broker, the real orchestrator and fn step service, over HTTP
(uvicorn on a free port on 127.0.0.1, httpx as the client)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kafka_io import KafkaSettings
from orchestrator.api.app import Authorizer, allow_all, create_app
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from steps.fn.service import fn_service
from steps.review.service import review_service
from tests.integration.runtime_support import eventually

STEPS = "tests.integration.steps_for_tests"

SEQUENCE = {"StartAt": "Prepare", "States": {
    "Prepare": {"Type": "Pass", "Result": {"a": 2, "b": 3}, "ResultPath": "$.pair", "Next": "Add"},
    "Add": {"Type": "Task", "Resource": "baton:fn:add", "InputPath": "$.pair", "ResultPath": "$.sum", "End": True}}}
WAITING = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 600, "End": True}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(kafka: KafkaSettings, db_path: Path, *, review: bool = False,
                  authorizer: Authorizer = allow_all) -> AsyncIterator[str]:
    """An orchestrator, the fn (and review) step services and the API; yields the API's base URL."""
    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="o1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(kafka, db_path=db_path, authorizer=authorizer), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    api = asyncio.create_task(server.serve())
    try:
        async with contextlib.AsyncExitStack() as services:
            await services.enter_async_context(fn_service([STEPS], settings=kafka))
            if review:
                await services.enter_async_context(review_service(settings=kafka))
            await asyncio.wait_for(orchestrator.ready.wait(), 30)

            async def started() -> bool:
                return server.started

            await eventually(started, timeout=30)
            yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(api, 30)
        stop.set()
        await asyncio.wait_for(task, 30)



async def until_status(client: httpx.AsyncClient, execution: str, *statuses: str) -> dict[str, Any]:
    async def described() -> dict[str, Any] | None:
        response = await client.get(f"/api/executions/{execution}")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] in statuses else None

    found: dict[str, Any] = await eventually(described, timeout=30)
    return found


def test_start_describe_history_list_stop_and_errors(kafka: KafkaSettings, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(kafka, tmp_path / "rm.sqlite") as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            started = await client.post("/api/executions", json={"definition": SEQUENCE, "state_machine": "adder",
                                                                 "name": "one", "input": {}})
            assert started.status_code == 201, started.text
            execution_id = started.json()["execution_id"]
            assert execution_id.endswith(":adder:one")

            done = await until_status(client, execution_id, "SUCCEEDED")
            assert done["output"] == {"pair": {"a": 2, "b": 3}, "sum": {"sum": 5}}
            assert (await client.get("/api/executions/one")).json()["execution_id"] == execution_id  # by name

            history = (await client.get(f"/api/executions/{execution_id}/history")).json()
            assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"
            states = (await client.get(f"/api/executions/{execution_id}/states")).json()["states"]
            assert states["Add"]["status"] == "SUCCEEDED" and states["Add"]["input"] == {"pair": {"a": 2, "b": 3}}
            listed = (await client.get("/api/executions", params={"status": "succeeded"})).json()
            assert [e["execution_id"] for e in listed] == [execution_id]
            svg = await client.get(f"/api/executions/{execution_id}/graph")
            assert svg.status_code == 200 and 'data-state="Add"' in svg.text and "status-succeeded" in svg.text

            waiting = (await client.post("/api/executions", json={"definition": WAITING, "name": "hold"})).json()
            await until_status(client, waiting["execution_id"], "RUNNING")
            stopped = await client.post(f"/api/executions/{waiting['execution_id']}/stop",
                                        json={"error": "Operator.Stop", "cause": "not needed"})
            assert stopped.status_code == 202, stopped.text
            aborted = await until_status(client, waiting["execution_id"], "ABORTED")
            assert aborted["error"] == "Operator.Stop"
            again = await client.post(f"/api/executions/{waiting['execution_id']}/stop")
            assert again.status_code == 409 and "already ended" in again.json()["error"]["message"]
            redriven = await client.post(f"/api/executions/{waiting['execution_id']}/redrive")
            assert redriven.status_code == 202
            await until_status(client, waiting["execution_id"], "RUNNING")

            unknown = await client.get("/api/executions/no-such-execution")
            assert unknown.status_code == 404
            assert unknown.json() == {"error": {"code": "ExecutionNotFound", "message":
                                                "no execution 'no-such-execution' (by id, or by name when unique)"}}
            assert (await client.get("/api/executions/nope/history")).json()["error"]["code"] == "ExecutionNotFound"
            bad_start = await client.post("/api/executions", json={"definition": {"StartAt": "X", "States": {}}})
            assert bad_start.status_code == 400 and bad_start.json()["error"]["code"] == "InvalidDefinition"
            bad_body = await client.post("/api/executions", content=b"not json",
                                         headers={"Content-Type": "application/json"})
            assert bad_body.status_code == 400 and set(bad_body.json()) == {"error"}

    asyncio.run(scenario())


def test_validate_test_state_sse_and_openapi(kafka: KafkaSettings, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(kafka, tmp_path / "rm.sqlite") as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            ok = await client.post("/api/validate", json={"definition": SEQUENCE})
            assert ok.status_code == 200 and ok.json()["valid"] is True
            bad = await client.post("/api/validate", json={"definition": {
                "StartAt": "Missing", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}})
            assert bad.status_code == 400
            error = bad.json()["error"]
            assert error["code"] == "InvalidDefinition" and error["message"].startswith("invalid definition")
            paths = {p["path"] for p in error["details"]["problems"]}
            assert "$.StartAt" in paths and "$.States.A.Next" in paths, paths

            tested = await client.post("/api/test-state", json={
                "definition": SEQUENCE, "state": "Add", "input": {"pair": {"a": 1, "b": 1}},
                "result": {"sum": 2}})
            assert tested.status_code == 200, tested.text
            assert tested.json()["status"] == "SUCCEEDED" and tested.json()["output"]["sum"] == {"sum": 2}
            no_state = await client.post("/api/test-state", json={"definition": SEQUENCE, "state": "Nope"})
            assert no_state.status_code == 400 and "no state named 'Nope'" in no_state.json()["error"]["message"]

            execution_id = (await client.post("/api/executions", json={"definition": SEQUENCE})).json()["execution_id"]
            await until_status(client, execution_id, "RUNNING", "SUCCEEDED")
            events: list[tuple[str, Any]] = []
            async with client.stream("GET", f"/api/executions/{execution_id}/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                kind = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((kind, json.loads(line.removeprefix("data: "))))
            assert events[-1] == ("end", {"status": "SUCCEEDED"})
            statuses = [data for kind, data in events if kind == "status"]
            assert statuses and statuses[-1]["execution"]["status"] == "SUCCEEDED"
            assert statuses[-1]["states"]["Add"]["output"]["sum"] == {"sum": 5}

            document = (await client.get("/openapi.json")).json()
            for path in ("/api/executions", "/api/executions/{execution}/stop", "/api/executions/{execution}/redrive",
                         "/api/tasks/success", "/api/tasks/failure", "/api/tasks/heartbeat", "/api/validate",
                         "/api/test-state", "/api/executions/{execution}/events", "/api/executions/{execution}/stream"):
                assert path in document["paths"], path
            bad_token = await client.post("/api/tasks/success", json={"task_token": "garbage", "output": {}})
            assert bad_token.status_code == 400 and "malformed" in bad_token.json()["error"]["message"]

    asyncio.run(scenario())
