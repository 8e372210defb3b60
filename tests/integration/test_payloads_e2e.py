"""Large payloads through a workflow on the real broker, with Kafka's default 1 MiB records (the
claim check, docs/payloads.md): an fn step returns a 20 MiB document, a Pass reads its fields
with JSONPath, a Choice tests it with JSONata, an LLM step's prompt template reads it and a
provider stub answers 5 MiB; the execution succeeds and its output is fetched by the client and
the API. Then the bad inputs: an object gone missing, one corrupted, one over the limit."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kafka_io import KafkaSettings
from kafka_io.payloads import PayloadSettings, PayloadStore, open_payload_store
from orchestrator.api.app import create_app
from orchestrator.client.payloads import resolve_payloads
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.base import encode
from schemas.executions import StopExecution
from schemas.payloads import is_reference, scope_of
from steps.fn.service import fn_service
from steps.llm.config import LLMSettings
from steps.llm.service import llm_service
from steps.sdk import step
from tests.integration.runtime_support import RuntimeClient, eventually, read_all
from tests.reliability.provider_stub import ProviderStub

MIB = 1024 * 1024
ANSWER_BYTES = 5 * MIB
STORE: dict[str, Any] = {}  # the document the fn step returns, made once per test


@step("payloads_big_document")
async def big_document(event: dict[str, Any]) -> dict[str, Any]:
    """A 20 MiB document with a few small fields around its body."""
    return {"title": "The annual report", "pages": 420, "body": STORE["body"], "sections": ["a", "b"]}


@step("payloads_big_result")
async def big_result(event: dict[str, Any]) -> dict[str, Any]:
    return {"document": STORE["body"][: 2 * MIB]}


class BigAnswers(ProviderStub):
    """An OpenAI-compatible provider answering 5 MiB, and recording the prompts it was sent."""

    prompts: list[str] = []

    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        self.prompts.append(str(body["messages"][-1]["content"]))
        self._send(handler, 200, {
            "id": "big", "object": "chat.completion", "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "A" * (ANSWER_BYTES - 2)},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 1_300_000, "total_tokens": 1_300_050}})


DEFINITION: dict[str, Any] = {"StartAt": "Fetch", "States": {
    "Fetch": {"Type": "Task", "Resource": "baton:fn:payloads_big_document", "ResultPath": "$.doc", "Next": "Fields"},
    "Fields": {"Type": "Pass", "Parameters": {"title.$": "$.doc.title", "pages.$": "$.doc.pages",
                                              "first.$": "States.ArrayGetItem($.doc.sections, 0)", "doc.$": "$.doc"},
               "Next": "Route"},
    "Route": {"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [
        {"Condition": "{% $states.input.pages > 400 and $length($states.input.doc.body) > 20000000 %}",
         "Next": "Summarise"}], "Default": "WrongRoute"},
    "WrongRoute": {"Type": "Fail", "Error": "WrongRoute"},
    "Summarise": {"Type": "Task", "Resource": "baton:llm", "Parameters": {
        "Model": "m", "Variables.$": "$",
        "Prompt": "Summarise '{{ title }}' ({{ doc.body | length }} characters, section {{ first }})."},
        "ResultSelector": {"text.$": "$.Text"}, "ResultPath": "$.answer", "Next": "Measure"},
    "Measure": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": (
        "{% {'title': $states.input.title, 'answerLength': $length($states.input.answer.text), "
        "'answer': $states.input.answer.text, 'body': $states.input.doc.body} %}"), "End": True},
}}


@asynccontextmanager
async def running(kafka: KafkaSettings, store: PayloadStore, base_url: str) -> AsyncIterator[None]:
    """The orchestrator, the fn and llm services on the real broker, sharing one payload store."""
    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="payloads-o1", metrics_port=None),
                                payloads=store)
    task = asyncio.create_task(orchestrator.run(stop))
    llm = LLMSettings(providers={"stub": {"kind": "openai", "base_url": base_url, "stream": False}},
                      models={"m": {"provider": "stub"}})
    try:
        async with fn_service([__name__], settings=kafka, drain_seconds=0.5, payloads=store), \
                llm_service(llm, kafka=kafka, drain_seconds=0.5, payloads=store):
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def check_api(kafka: KafkaSettings, store: PayloadStore, db: Path, execution: str,
                    reference: dict[str, Any]) -> None:
    """The API shows the output's references and answers the value of one (GET .../payloads/DIGEST)."""
    app = create_app(kafka, db_path=db)
    app.state.payload_store = store
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            async def described() -> dict[str, Any] | None:
                if not server.started:
                    return None
                response = await api.get(f"/api/executions/{execution}")
                return response.json() if response.status_code == 200 and response.json()["status"] == "SUCCEEDED" \
                    else None
            view = await eventually(described, timeout=60)
            assert view["output"]["body"] == reference
            fetched = await api.get(f"/api/executions/{execution}/payloads/{reference['sha256']}")
            assert fetched.status_code == 200 and fetched.json() == STORE["body"]
            assert len(fetched.content) == reference["bytes"]
            unknown = await api.get(f"/api/executions/{execution}/payloads/{'0' * 64}")
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "PayloadNotFound"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)


def test_a_20_mib_document_and_a_5_mib_answer_pass_through_a_workflow(kafka: KafkaSettings, tmp_path: Path) -> None:
    STORE["body"] = ("lorem ipsum dolor sit amet " * (21 * MIB // 27 + 1))[: 21 * MIB - 100]
    store = open_payload_store(PayloadSettings(payload_store=str(tmp_path / "payloads")))
    assert store is not None

    async def scenario() -> None:
        with BigAnswers(max_concurrency=4, max_per_window=100, window_seconds=1) as stub:
            async with running(kafka, store, stub.base_url), RuntimeClient(kafka) as client:
                began = time.monotonic()
                execution = await client.start(DEFINITION, {"request": "summarise"}, machine="payloads")
                status = (await client.wait([execution], timeout=120))[execution]
                elapsed = time.monotonic() - began
                assert status.status == "SUCCEEDED", (status.error, status.cause)
                assert is_reference(status.output["body"]) and is_reference(status.output["answer"])
                output = await resolve_payloads(status.output, execution, store=store)
                assert output["title"] == "The annual report" and output["answerLength"] == ANSWER_BYTES - 2
                assert output["body"] == STORE["body"] and output["answer"] == "A" * (ANSWER_BYTES - 2)
                assert stub.prompts == [f"Summarise 'The annual report' ({len(STORE['body'])} characters, section a)."]
                history = await read_all(kafka, kafka.topics.history)
                commands = await read_all(kafka, kafka.topics.commands("llm"))
                records = [*history, *commands, *await read_all(kafka, kafka.topics.events),
                           *await read_all(kafka, kafka.topics.results), *await read_all(kafka, kafka.topics.state)]
                assert max(len(r.value or b"") for r in records) < MIB  # Kafka's default record limit held
                print(f"\n20 MiB document + 5 MiB answer: {elapsed:.1f} s; largest record "
                      f"{max(len(r.value or b'') for r in records):,} bytes; "
                      f"{len(list((tmp_path / 'payloads').rglob('*')))} store entries")
                # The history shows references; the API answers their JSON on demand.
                text = b"".join(r.value for r in history if r.value)
                assert b'"$baton.payload"' in text
                await check_api(kafka, store, tmp_path / "readmodel.db", execution, status.output["body"])
    asyncio.run(scenario())
    digest = hashlib.sha256(json.dumps(STORE["body"]).encode()).hexdigest()
    assert any(p.name == digest for p in (tmp_path / "payloads").rglob("*"))


def test_a_missing_or_corrupt_payload_is_an_asl_error_catch_routes(kafka: KafkaSettings, tmp_path: Path) -> None:
    """A result whose object vanished (or was altered) before the orchestrator read it fails
    the task with Baton.Payload.Missing (Baton.Payload.Corrupt), which a Catch routes; the
    orchestrator goes on deciding."""
    STORE["body"] = "x" * (3 * MIB)
    root = tmp_path / "payloads"
    settings = PayloadSettings(payload_store=str(root))

    class Vanishing(PayloadStore):
        """The step service's view of the store: what it writes is removed (or altered) at once."""

        mode = "missing"

        def put(self, key: str, data: bytes) -> None:
            super().put(key, data)
            if self.mode == "missing":
                (root / key).unlink()
            else:
                (root / key).write_bytes(data[:-2] + b'!"')

    orchestrators = open_payload_store(settings)
    steps = Vanishing(open_payload_store(settings).backend, PayloadSettings(payload_store=str(root),  # type: ignore[union-attr]
                                                                            payload_cache_bytes=0))
    assert orchestrators is not None
    definition = {"StartAt": "Read", "States": {
        "Read": {"Type": "Task", "Resource": "baton:fn:payloads_big_result", "End": True,
                 "Catch": [{"ErrorEquals": ["Baton.Payload.Missing", "Baton.Payload.Corrupt"],
                            "ResultPath": "$.error", "Next": "Caught"}]},
        "Caught": {"Type": "Pass", "End": True}}}

    async def scenario() -> None:
        stop = asyncio.Event()
        orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="payloads-o2", metrics_port=None),
                                    payloads=orchestrators)
        task = asyncio.create_task(orchestrator.run(stop))
        try:
            async with fn_service([__name__], settings=kafka, drain_seconds=0.5, payloads=steps), \
                    RuntimeClient(kafka) as client:
                await asyncio.wait_for(orchestrator.ready.wait(), 30)
                missing = await client.start(definition, {}, machine="broken")
                first = (await client.wait([missing], timeout=60))[missing]
                Vanishing.mode = "corrupt"
                corrupt = await client.start(definition, {"other": 1}, machine="broken")
                second = (await client.wait([corrupt], timeout=60))[corrupt]
                fine = await client.start({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, {})
                third = (await client.wait([fine], timeout=60))[fine]
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
        assert first.status == "SUCCEEDED" and first.output["error"]["Error"] == "Baton.Payload.Missing"
        assert "missing from the payload store" in first.output["error"]["Cause"]
        assert second.status == "SUCCEEDED" and second.output["error"]["Error"] == "Baton.Payload.Corrupt"
        assert third.status == "SUCCEEDED"  # the orchestrator goes on
    asyncio.run(scenario())


def test_retention_removes_what_an_execution_stored(kafka: KafkaSettings, tmp_path: Path) -> None:
    """Once a closed execution's retention ends (its tombstone committed), its objects are gone;
    another execution's stay."""
    STORE["body"] = "y" * (2 * MIB)
    store = open_payload_store(PayloadSettings(payload_store=str(tmp_path / "payloads")))
    assert store is not None
    definition = {"StartAt": "Read", "States": {"Read": {"Type": "Task", "Resource": "baton:fn:payloads_big_result",
                                                         "End": True}}}

    async def scenario() -> None:
        stop = asyncio.Event()
        orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="payloads-o3", metrics_port=None,
                                                                retention=3), payloads=store)
        task = asyncio.create_task(orchestrator.run(stop))
        try:
            async with fn_service([__name__], settings=kafka, drain_seconds=0.5, payloads=store), \
                    RuntimeClient(kafka) as client:
                await asyncio.wait_for(orchestrator.ready.wait(), 30)
                done = await client.start(definition, {}, machine="kept")
                assert (await client.wait([done], timeout=60))[done].status == "SUCCEEDED"
                folder = tmp_path / "payloads" / scope_of(done)
                assert any(folder.iterdir())
                parked = await client.start({"StartAt": "Nap", "States": {"Nap": {
                    "Type": "Wait", "Seconds": 600, "End": True}}}, {"doc": "z" * (300 * 1024)}, machine="parked")
                await eventually(lambda: _exists(tmp_path / "payloads" / scope_of(parked)), timeout=30)

                async def removed() -> bool:
                    return not folder.exists()
                await eventually(removed, timeout=30)
                assert (tmp_path / "payloads" / scope_of(parked)).exists()
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
    asyncio.run(scenario())


async def _exists(path: Path) -> bool:
    return path.exists()


def test_a_state_whose_payload_is_gone_dead_letters_its_inputs(kafka: KafkaSettings, tmp_path: Path) -> None:
    """An execution parked with a large value whose object is then deleted: the stop sent to it
    is dead-lettered as payload_unavailable with the reason, and the orchestrator goes on."""
    root = tmp_path / "payloads"
    store = open_payload_store(PayloadSettings(payload_store=str(root), payload_cache_bytes=0))
    assert store is not None
    parked_definition = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 600, "End": True}}}

    async def scenario() -> None:
        stop = asyncio.Event()
        orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="payloads-o4", metrics_port=None),
                                    payloads=store)
        task = asyncio.create_task(orchestrator.run(stop))
        try:
            async with RuntimeClient(kafka) as client:
                await asyncio.wait_for(orchestrator.ready.wait(), 30)
                parked = await client.start(parked_definition, {"doc": "z" * (300 * 1024)}, machine="gone")
                folder = root / scope_of(parked)
                await eventually(lambda: _exists(folder), timeout=30)
                await asyncio.sleep(0.5)  # its transaction committed
                shutil.rmtree(folder)
                await client.publish(kafka.topics.start, encode(StopExecution(execution_id=parked)), parked.encode())

                async def dead_lettered() -> list[Any]:
                    return [d for d in await client.dead_letters() if d.reason.startswith("payload_unavailable")]
                letters = await eventually(dead_lettered, timeout=30)
                assert letters[0].execution_id == parked and "missing from the payload store" in letters[0].reason
                fine = await client.start({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, {})
                assert (await client.wait([fine], timeout=30))[fine].status == "SUCCEEDED"
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
    asyncio.run(scenario())
