"""Task decisions checked before they are posted and followed until applied, on the real broker:
`/api/tasks/success|failure|heartbeat`, `/api/reviews/decision` and `baton review` refuse a forged
token (400 InvalidToken), an unknown execution's (404 TaskDoesNotExist) and a task no longer
waiting (410 TaskTimedOut: replayed or timed out) without posting anything; a decision the
orchestrator applies answers 200 "applied", one it has not consumed within the wait 202."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from click.testing import CliRunner

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from orchestrator.cli import main
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.base import decode
from schemas.executions import execution_id_for
from schemas.review import ReviewDecision
from schemas.tokens import TokenSigner
from steps.review.service import review_service
from tests.integration.runtime_support import eventually, read_all
from tests.integration.test_api import free_port, until_status

WAIT = 5.0  # the API's and the CLI's wait for the orchestrator to apply a decision
SIGNER = TokenSigner(OrchestratorSettings().token_secret.get_secret_value().encode())  # the orchestrators'
FORGER = TokenSigner(b"not-the-orchestrators-secret!")
ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/api/tasks/success", {"output": {"ok": True}}), ("/api/tasks/failure", {"error": "Nope"}),
    ("/api/tasks/heartbeat", {}), ("/api/reviews/decision", {"decision": "approve"})]


def review(timeout: int = 600, heartbeat: int | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"Type": "Task", "Resource": "baton:review.waitForTaskToken",
                            "Parameters": {"Question": "Ship it?", "Content.$": "$.draft",
                                           "Decisions": ["approve", "reject"]},
                            "TimeoutSeconds": timeout, "ResultPath": "$.review", "End": True}
    if heartbeat is not None:
        task["HeartbeatSeconds"] = heartbeat
    return {"StartAt": "Review", "States": {"Review": task}}


class Stack:
    """The review step service and the API for the block's duration; an orchestrator that the
    test can stop (decisions then wait on the topic) and start again."""

    def __init__(self, kafka: KafkaSettings, db_path: Path) -> None:
        self.kafka = kafka
        self.server = uvicorn.Server(uvicorn.Config(create_app(kafka, db_path=db_path, decision_wait=WAIT),
                                                    host="127.0.0.1", port=free_port(), log_level="critical",
                                                    lifespan="on"))
        self._orchestrator: tuple[asyncio.Event, asyncio.Task[None]] | None = None

    async def start_orchestrator(self) -> None:
        stop = asyncio.Event()
        orchestrator = Orchestrator(self.kafka, OrchestratorSettings(instance_id="o1", metrics_port=None))
        self._orchestrator = stop, asyncio.create_task(orchestrator.run(stop))
        await asyncio.wait_for(orchestrator.ready.wait(), 30)

    async def stop_orchestrator(self) -> None:
        assert self._orchestrator is not None
        stop, task = self._orchestrator
        stop.set()
        await asyncio.wait_for(task, 30)
        self._orchestrator = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[httpx.AsyncClient]:
        await self.start_orchestrator()
        api = asyncio.create_task(self.server.serve())
        try:
            async with review_service(settings=self.kafka):
                async def started() -> bool:
                    return self.server.started

                await eventually(started, timeout=30)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.server.config.port}",
                                             timeout=60) as client:
                    yield client
        finally:
            self.server.should_exit = True
            await asyncio.wait_for(api, 30)
            if self._orchestrator is not None:
                await self.stop_orchestrator()


async def start(client: httpx.AsyncClient, name: str, definition: dict[str, Any]) -> str:
    response = await client.post("/api/executions", json={"definition": definition, "state_machine": "review",
                                                          "name": name, "input": {"draft": f"draft {name}"}})
    assert response.status_code == 201, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def token_of(client: httpx.AsyncClient, execution_id: str) -> str:
    async def pending() -> str | None:
        reviews = (await client.get("/api/reviews")).json()
        return next((r["task_token"] for r in reviews if r["execution_id"] == execution_id), None)

    token: str = await eventually(pending, timeout=30)
    return token


async def posted(kafka: KafkaSettings) -> list[ReviewDecision]:
    return [decode(ReviewDecision, r.value) for r in await read_all(kafka, kafka.topics.review_decisions)]


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert (response.status_code, response.headers["content-type"]) == (status, "application/json"), response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    message: str = error["message"]
    return message


def test_the_task_routes_check_the_token_and_report_whether_it_was_applied(kafka: KafkaSettings,
                                                                           tmp_path: Path) -> None:
    async def scenario() -> None:
        stack = Stack(kafka, tmp_path / "rm.sqlite")
        async with stack.running() as client:
            waiting = await start(client, "waiting", review(heartbeat=300))
            expiring = await start(client, "expiring", review(timeout=1))
            later = await start(client, "later", review())
            token = await token_of(client, waiting)
            expired = await token_of(client, expiring)
            later_token = await token_of(client, later)
            _, task_id = SIGNER.verify(token)
            forged = FORGER.sign(waiting, task_id)
            nowhere = SIGNER.sign(execution_id_for("review", "no-such-execution"), task_id)
            await until_status(client, expiring, "FAILED")  # States.Timeout: its token is stale now

            for path, body in ROUTES:
                message = refused(await client.post(path, json={"task_token": forged, **body}), 400, "InvalidToken")
                assert "signature does not match" in message
                message = refused(await client.post(path, json={"task_token": nowhere, **body}), 404,
                                  "TaskDoesNotExist")
                assert "no-such-execution" in message
                message = refused(await client.post(path, json={"task_token": expired, **body}), 410, "TaskTimedOut")
                assert "no longer waiting" in message
            assert await posted(kafka) == []  # nothing refused reached the orchestrator

            beat = await client.post("/api/tasks/heartbeat", json={"task_token": token})
            assert (beat.status_code, beat.json()["status"]) == (200, "applied"), beat.text
            done = await client.post("/api/tasks/success", json={"task_token": token, "output": {"ok": True}})
            assert done.status_code == 200, done.text
            assert done.json() == {"execution_id": waiting, "outcome": "success", "status": "applied",
                                   "message": "applied"}
            assert (await until_status(client, waiting, "SUCCEEDED"))["output"]["review"] == {"ok": True}
            for path, body in ROUTES:  # replayed: the task no longer waits
                refused(await client.post(path, json={"task_token": token, **body}), 410, "TaskTimedOut")
            assert [d.outcome for d in await posted(kafka)] == ["heartbeat", "success"]

            # The orchestrator is down: the decision is posted, not applied within the wait (202);
            # it is applied once the orchestrator is back.
            await stack.stop_orchestrator()
            accepted = await client.post("/api/reviews/decision", json={"task_token": later_token,
                                                                         "decision": "approve"})
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["status"] == "accepted"
            assert accepted.json()["message"] == f"accepted, not yet applied after {WAIT:g} s"
            await stack.start_orchestrator()
            assert (await until_status(client, later, "SUCCEEDED"))["output"]["review"]["approved"] is True
            assert not [r for r in await read_all(kafka, kafka.topics.dlq)]

    asyncio.run(scenario())


async def baton(kafka: KafkaSettings, *args: str) -> tuple[int, str]:
    """`baton review ARGS` against the test's topics (in a worker thread, as a person would)."""
    where = ["--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix]
    result = await asyncio.to_thread(CliRunner().invoke, main, ["review", *args, *where])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_baton_review_checks_the_token_and_reports_whether_it_was_applied(kafka: KafkaSettings,
                                                                          tmp_path: Path) -> None:
    async def scenario() -> None:
        stack = Stack(kafka, tmp_path / "rm.sqlite")
        async with stack.running() as client:
            waiting = await start(client, "waiting", review(heartbeat=300))
            later = await start(client, "later", review())
            token = await token_of(client, waiting)
            later_token = await token_of(client, later)
            _, task_id = SIGNER.verify(token)

            code, output = await baton(kafka, "approve", FORGER.sign(waiting, task_id))
            assert code == 2 and "the task token is not valid" in error_line(output)
            code, output = await baton(kafka, "reject", SIGNER.sign(execution_id_for("review", "gone"), task_id))
            assert code == 2 and "an execution this cluster does not know" in error_line(output)
            assert await posted(kafka) == []

            code, output = await baton(kafka, "heartbeat", token)
            assert (code, output.strip()) == (0, f"heartbeat sent: state 'Review' of {waiting} (applied)"), output
            code, output = await baton(kafka, "approve", token, "--comment", "fine")
            assert (code, output.strip()) == (0, f"approved: state 'Review' of {waiting} (applied)"), output
            assert (await until_status(client, waiting, "SUCCEEDED"))["output"]["review"]["comment"] == "fine"
            code, output = await baton(kafka, "approve", token)  # replayed: refused before posting
            line = error_line(output)
            assert code == 2 and "no pending review has this token" in line and "no longer waiting" in line
            assert len(await posted(kafka)) == 2
            code, output = await baton(kafka, "approve", token, "--no-check")  # posted: the orchestrator refuses
            assert code == 2 and "no longer waiting" in error_line(output), output
            assert len(await posted(kafka)) == 3
            letters = await read_all(kafka, kafka.topics.dlq)
            assert len(letters) == 1 and b"stale_task_token" in letters[0].value

            await stack.stop_orchestrator()
            code, output = await baton(kafka, "reject", later_token, "--wait", "1", "--cause", "not now")
            assert code == 0, output
            assert output.strip() == (f"rejected (Review.Rejected): state 'Review' of {later} "
                                      "(accepted, not yet applied after 1 s)")
            await stack.start_orchestrator()
            failed = await until_status(client, later, "FAILED")
            assert (failed["error"], failed["cause"]) == ("Review.Rejected", "not now")

    asyncio.run(scenario())

