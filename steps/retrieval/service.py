"""The `retrieval` step service: `baton:retrieve` finds the passages of a knowledge base nearest to a query.

Task Parameters (`RetrievalTask`):

    KnowledgeBase  the name given to `baton kb add FOLDER --name NAME` (required)
    Query          the text to search for (required; usually "Query.$": "$.question")
    TopK           how many passages, best first (default 3, at most 50)
    MinScore       leave out passages whose cosine similarity is below this (default: none)

Result: `{"passages": [{"text", "source", "title", "score"}, ...]}` — `source` is the document's
path inside the folder the knowledge base was built from, `title` the headings above the passage.
A Prompt template of a following `baton:llm` step can then lay out instruction + user context +
retrieved knowledge + user input. The query's embedding and search times are recorded in the
result's metadata and in the metric `baton_retrieval_seconds{phase="embed"|"search"}`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from faststream import FastStream
from prometheus_client import CollectorRegistry, Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kafka_io import KafkaSettings
from schemas.steps import StepCommand
from steps.retrieval.embeddings import EmbeddingsClient
from steps.retrieval.errors import InvalidParameters, RetrievalError
from steps.retrieval.knowledge_base import KnowledgeBases
from steps.retrieval.settings import EmbeddingsSettings, KnowledgeBaseSettings
from steps.sdk.handler import StepHandler, StepOutput
from steps.sdk.step import StepError
from steps.service import StepService

SERVICE = "retrieval"
MAX_TOP_K = 50


class RetrievalTask(BaseModel):
    """`baton:retrieve` Parameters."""

    model_config = ConfigDict(extra="forbid")

    knowledge_base: str = Field(alias="KnowledgeBase", min_length=1)
    query: str = Field(alias="Query", min_length=1)
    top_k: int = Field(default=3, alias="TopK", ge=1, le=MAX_TOP_K)
    min_score: float | None = Field(default=None, alias="MinScore", ge=-1, le=1)

    @classmethod
    def parse(cls, parameters: Any) -> RetrievalTask:
        if not isinstance(parameters, dict):
            raise InvalidParameters("baton:retrieve takes Parameters {\"KnowledgeBase\": ..., \"Query\": ..., "
                                    f"\"TopK\": ...}}, not {type(parameters).__name__}")
        try:
            return cls.model_validate(parameters)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'Parameters'}: {e['msg']}"
                                 for e in exc.errors())
            raise InvalidParameters(f"baton:retrieve Parameters: {problems}") from None


class RetrievalHandler(StepHandler):
    """Embeds the query and searches the named knowledge base."""

    def __init__(self, embeddings: EmbeddingsSettings | None = None, knowledge: KnowledgeBaseSettings | None = None,
                 *, registry: CollectorRegistry | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.client = EmbeddingsClient(embeddings, transport=transport)
        self.knowledge_bases = KnowledgeBases(Path((knowledge or KnowledgeBaseSettings()).dir))
        self.seconds = Histogram("baton_retrieval_seconds", "Time to embed a query and to search an index.",
                                 ["phase"], registry=registry or CollectorRegistry(),
                                 buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    async def run(self, command: StepCommand) -> StepOutput:
        try:
            task = RetrievalTask.parse(command.parameters)
            base = self.knowledge_bases.get(task.knowledge_base)  # before embedding: fail fast on a bad name
            started = time.perf_counter()
            vector = await self.client.embed_query(task.query)
            embedded = time.perf_counter()
            hits = base.search(vector, task.top_k, model=self.client.model, min_score=task.min_score)
            searched = time.perf_counter()
        except RetrievalError as exc:
            raise StepError(exc.error, exc.cause) from exc
        self.seconds.labels("embed").observe(embedded - started)
        self.seconds.labels("search").observe(searched - embedded)
        return StepOutput({"passages": [hit.as_json() for hit in hits]}, metadata={
            "knowledge_base": base.manifest.name, "build_id": base.manifest.build_id, "model": self.client.model,
            "embed_ms": round((embedded - started) * 1000, 3), "search_ms": round((searched - embedded) * 1000, 3)})

    async def aclose(self) -> None:
        await self.client.aclose()
        self.knowledge_bases.close()


class RetrievalStepService(StepService):
    """The retrieval `StepService`: also closes the embeddings client when it stops."""

    retrieval: RetrievalHandler

    async def _drain(self) -> None:
        try:
            await super()._drain()
        finally:
            await self.retrieval.aclose()


def retrieval_service(embeddings: EmbeddingsSettings | None = None, knowledge: KnowledgeBaseSettings | None = None,
                      *, settings: KafkaSettings | None = None, registry: CollectorRegistry | None = None,
                      transport: httpx.AsyncBaseTransport | None = None, **options: Any) -> RetrievalStepService:
    """The `retrieval` step service; settings default to the environment (BATON_EMBEDDINGS_*, BATON_KB_DIR).

    `options` are passed to `StepService` (max_concurrency, remember, drain_seconds, ...).
    """
    registry = registry or CollectorRegistry()
    handler = RetrievalHandler(embeddings, knowledge, registry=registry, transport=transport)
    service = RetrievalStepService(SERVICE, handler, settings=settings, registry=registry, **options)
    service.retrieval = handler
    return service


def app() -> FastStream:
    """`faststream run --factory steps.retrieval.service:app` (BATON_KAFKA_*, BATON_EMBEDDINGS_*, BATON_KB_DIR)."""
    return retrieval_service().app()
