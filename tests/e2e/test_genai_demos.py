"""The five GenAI demos of examples/genai/ end to end: the real broker, the real orchestrator, the
llm, review, retrieval and http step services, the offline model (two servers: smollm2 and
smollm2-b), the offline embeddings and the demo's orders API, driven by the demo's own runner
(`orchestrator.demo.run_demos`, what `baton demo` does).

One stack and one run of all five demos (started together) serve the whole module; each test
asserts structure, never wording: SUCCEEDED, the branches taken, models routed by name, the
streamed chunks in order before the end, the HTTP call made, the retrieved sources used.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from orchestrator.demo import DemoRun, connections_config, demo_input, llm_config, run_demos  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run_stack(bootstrap: str, prefix: str, kb_dir: Path, embeddings_url: str, servers: list[Any],
                     api_port: int) -> dict[str, DemoRun]:
    from orchestrator.runtime.service import Orchestrator
    from orchestrator.runtime.topics import ensure_topics
    from kafka_io import KafkaSettings
    from orchestrator.settings import OrchestratorSettings
    from steps.http import load_connections
    from steps.llm.config import LLMSettings
    from steps.llm.service import llm_service
    from steps.retrieval.service import retrieval_service
    from steps.retrieval.settings import EmbeddingsSettings, KnowledgeBaseSettings
    from steps.http.service import http_service
    from steps.review.service import review_service

    kafka = KafkaSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix, partitions=3)
    await ensure_topics(kafka)
    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id=f"{prefix}-o1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop))
    inputs = {"intent-api": {**demo_input("intent-api"), "api_base": f"http://127.0.0.1:{api_port}"}}
    try:
        async with (llm_service(LLMSettings(**llm_config(servers)), kafka=kafka),
                    review_service(settings=kafka),
                    retrieval_service(EmbeddingsSettings(base_url=embeddings_url), KnowledgeBaseSettings(dir=kb_dir),
                                      settings=kafka),
                    http_service(load_connections(json.dumps(connections_config(api_port))), settings=kafka)):
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            return await run_demos(kafka, auto_approve=True, inputs=inputs, emit=print, show_stream=False,
                                   timeout=150)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture(scope="module")
def orders_api() -> Iterator[tuple[int, Any]]:
    sys.path.insert(0, str(REPO / "examples" / "genai" / "intent-api"))
    import server  # the demo's stdlib API

    port = _free_port()
    api = server.serve(port)
    try:
        yield port, server.OrdersAPI
    finally:
        api.shutdown()
        api.server_close()


@pytest.fixture(scope="module")
def runs(kafka_bootstrap: str, orders_api: tuple[int, Any], tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[dict[str, DemoRun]]:  # noqa: F811
    from infra import local_embeddings, local_model
    from orchestrator.cli import main

    servers = local_model.ensure_up()
    embeddings = local_embeddings.ensure_up()
    try:
        kb_dir = tmp_path_factory.mktemp("kb")
        built = CliRunner().invoke(main, ["kb", "add", str(REPO / "examples" / "insurance" / "kb"), "--name",
                                          "insurance", "--kb-dir", str(kb_dir), "--embeddings-url",
                                          embeddings.base_url])
        assert built.exit_code == 0, built.output
        prefix = f"genai{_free_port()}"
        yield asyncio.run(_run_stack(kafka_bootstrap, prefix, kb_dir, embeddings.base_url, servers, orders_api[0]))
    finally:
        local_embeddings.stop(embeddings)
        local_model.stop(servers)


def _succeeded(run: DemoRun) -> dict[str, Any]:
    assert run.status == "SUCCEEDED", (run.status, run.error, run.cause, run.states)
    assert isinstance(run.output, dict)
    return run.output


def _task_models(run: DemoRun) -> list[str]:
    return [e["taskSucceededEventDetails"]["output"]["Model"] for e in run.history
            if e.get("type") == "TaskSucceeded" and isinstance(e.get("taskSucceededEventDetails", {}).get("output"), dict)
            and "Model" in e["taskSucceededEventDetails"]["output"]]


def _assert_streamed_before_end(run: DemoRun) -> None:
    assert run.chunks, "no chunk streamed"
    seqs = [seq for seq, _, _, _ in run.chunks]
    assert seqs == list(range(len(seqs))), seqs
    assert run.chunks[-1][2] and not any(final for _, _, final, _ in run.chunks[:-1])
    assert "".join(text for _, text, _, _ in run.chunks).strip()
    assert run.ended is not None and run.chunks[-1][3] <= run.ended + 0.5


def test_story_outline_parallel_chapters_edit(runs: dict[str, DemoRun]) -> None:
    run = runs["story"]
    output = _succeeded(run)
    assert len(output["outline"]["chapters"]) == 2 and output["outline"]["title"]
    assert [d["model"] for d in output["drafts"]] == ["smollm2", "smollm2"]  # cheap model for drafts
    assert output["story"]["model"] == "smollm2-b"  # better model for the edit
    assert run.states.count("DraftChapter") == 2 and run.states[-1] == "Edit"
    _assert_streamed_before_end(run)
    assert "".join(t for _, t, _, _ in run.chunks).strip() == output["story"]["text"].strip()


def test_travel_parallel_research_review_streamed_itinerary(runs: dict[str, DemoRun]) -> None:
    run = runs["travel"]
    output = _succeeded(run)
    assert [r["aspect"] for r in output["research"]] == ["the weather", "the sights", "the food"]
    assert {"Weather", "Sights", "Food"} <= set(run.states)
    assert run.reviewed and output["review"]["decision"] == "approve" and output["review"]["approved"] is True
    assert run.states.index("ReviewPlan") < run.states.index("Itinerary")
    assert output["plan"]["model"] == output["itinerary"]["model"] == "smollm2-b"
    _assert_streamed_before_end(run)


def test_diet_choice_on_constraints(runs: dict[str, DemoRun]) -> None:
    run = runs["diet"]
    output = _succeeded(run)
    assert run.states == ["CheckConstraints", "Vegan", "Advice"]  # vegan and not diabetic
    assert output["diet"]["style"] == "vegan" and output["advice"]["model"] == "smollm2"
    assert output["advice"]["text"].strip()


def test_insurance_answer_uses_retrieved_knowledge(runs: dict[str, DemoRun]) -> None:
    run = runs["insurance"]
    output = _succeeded(run)
    assert output["sources"][0] == "home-insurance.md"
    assert run.states == ["Retrieve", "Answer", "Respond"] and output["model"] == "smollm2-b"
    answer = next(e for e in run.history if e.get("type") == "TaskScheduled"
                  and "insurance:answer@v1" in json.dumps(e))
    assert "PromptRef" in json.dumps(answer)


def test_intent_request_http_call_conditional_answer(runs: dict[str, DemoRun], orders_api: tuple[int, Any]) -> None:
    run = runs["intent-api"]
    output = _succeeded(run)
    assert output["classified"]["intent"] == "order_status"
    assert run.states[:4] == ["ClassifyIntent", "RouteIntent", "BuildRequest", "CallOrdersApi"]
    assert output["api"]["status"] == 200
    calls = orders_api[1].calls
    assert calls and calls[-1]["body"] == output["request"]["body"]  # the generated body was sent
    expected = {True: {"delayed": "ApologiseForDelay", "shipped": "ConfirmShipping"}}
    order = output["api"]["order"]
    branch = expected.get(order["found"], {}).get(order.get("status"), "OrderNotFound")
    assert run.states[-2:] == ["OrderFound?", branch]
    assert output["answer"]["text"]
