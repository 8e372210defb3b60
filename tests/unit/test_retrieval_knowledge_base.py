"""Knowledge bases (build, swap, search with usearch) and the retrieval handler, with a fake
embeddings server: words hashed into a small vector, so shared words mean nearby vectors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from schemas.steps import StepCommand
from steps.retrieval.embeddings import EmbeddingsClient
from steps.retrieval.errors import KnowledgeBaseError, KnowledgeBaseMismatch, KnowledgeBaseNotFound
from steps.retrieval.knowledge_base import (
    KnowledgeBase,
    KnowledgeBases,
    Manifest,
    build_knowledge_base,
    list_knowledge_bases,
)
from steps.retrieval.service import RetrievalHandler
from steps.retrieval.settings import EmbeddingsSettings, KnowledgeBaseSettings
from steps.sdk.step import StepError

DIM = 128
DOCS = {
    "home.md": "# Home\n\n## Water\n\nA burst pipe flooding the kitchen is covered.\n\n## Fire\n\nFire and smoke are covered.",
    "car.md": "# Car\n\n## Glass\n\nA cracked windscreen is repaired without excess.",
    "travel/luggage.txt": "Lost luggage at the airport is refunded up to 2000 EUR.",
    ".hidden/secret.md": "burst pipe burst pipe burst pipe",
    "notes.pdf": "burst pipe",
}


def _vector(text: str) -> list[float]:
    vector = np.zeros(DIM, dtype=np.float32)
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
    return vector.tolist()


def fake_embeddings(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    data = [{"index": i, "embedding": _vector(text)} for i, text in enumerate(body["input"])]
    return httpx.Response(200, json={"data": data, "model": body["model"]})


def _client(model: str = "fake") -> EmbeddingsClient:
    return EmbeddingsClient(EmbeddingsSettings(base_url="http://fake/v1", model=model, batch_size=2),
                            transport=httpx.MockTransport(fake_embeddings))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    for name, text in DOCS.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    return docs


def _build(folder: Path, root: Path, name: str = "insurance", model: str = "fake") -> Manifest:
    async def go() -> Manifest:
        async with _client(model) as client:
            return await build_knowledge_base(folder, name, root, client, max_chars=300)

    return asyncio.run(go())


def test_build_then_search_ranks_the_matching_document_first(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    manifest = _build(folder, root)
    assert (manifest.documents, manifest.passages, manifest.dim, manifest.model) == (3, 4, DIM, "fake")
    assert sorted(p.name for p in (root / "insurance").iterdir()) == [
        "manifest.json", "passages.sqlite", "vectors.usearch"]
    base = KnowledgeBase.open(root, "insurance")
    try:
        hits = base.search(np.asarray(_vector("burst pipe in the kitchen"), dtype=np.float32) /
                           np.linalg.norm(_vector("burst pipe in the kitchen")), 2, model="fake")
        assert [h.source for h in hits][0] == "home.md" and hits[0].title == "Home > Water"
        assert hits[0].score > hits[1].score
        assert base.search(np.asarray(_vector("x"), dtype=np.float32), 3, min_score=1.01) == []
        with pytest.raises(KnowledgeBaseMismatch, match="rebuild"):
            base.search(np.zeros(DIM, dtype=np.float32), 1, model="another-model")
        with pytest.raises(KnowledgeBaseMismatch, match="dimensional"):
            base.search(np.zeros(7, dtype=np.float32), 1)
    finally:
        base.close()
    assert [m.name for m in list_knowledge_bases(root)] == ["insurance"]


def test_rebuild_swaps_in_a_new_build_that_a_cache_reloads(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    first = _build(folder, root)
    cache = KnowledgeBases(root)
    assert cache.get("insurance").manifest.build_id == first.build_id
    assert cache.get("insurance") is cache.get("insurance")
    (folder / "pets.md").write_text("# Pets\n\nVet fees for dogs are covered.")
    second = _build(folder, root)
    reloaded = cache.get("insurance")
    assert reloaded.manifest.build_id == second.build_id and reloaded.manifest.documents == 4
    assert [p.name for p in root.iterdir()] == ["insurance"]  # no staging or retired folders left
    cache.close()


def test_build_refusals(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KnowledgeBaseError, match="no text found"):
        _build(empty, tmp_path / "kb")
    with pytest.raises(KnowledgeBaseError, match="not a folder"):
        _build(tmp_path / "missing", tmp_path / "kb")
    with pytest.raises(KnowledgeBaseError, match="invalid knowledge base name"):
        _build(empty, tmp_path / "kb", name="../escape")
    with pytest.raises(KnowledgeBaseNotFound, match="baton kb add"):
        KnowledgeBase.open(tmp_path / "kb", "nothing")


def _command(parameters: Any) -> StepCommand:
    return StepCommand(execution_id="e", task_id="e/t", service="retrieval", resource="baton:retrieve",
                       parameters=parameters)


def test_the_handler_returns_passages_and_fails_with_asl_errors(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    _build(folder, root)
    handler = RetrievalHandler(EmbeddingsSettings(base_url="http://fake/v1", model="fake"),
                               KnowledgeBaseSettings(dir=root), transport=httpx.MockTransport(fake_embeddings))

    async def run(parameters: Any) -> Any:
        return await handler.run(_command(parameters))

    async def scenario() -> None:
        output = await run({"KnowledgeBase": "insurance", "Query": "my windscreen is cracked", "TopK": 2})
        passages = output.value["passages"]
        assert passages[0]["source"] == "car.md" and set(passages[0]) == {"text", "source", "title", "score"}
        assert len(passages) == 2
        assert output.metadata["embed_ms"] >= 0 and output.metadata["search_ms"] >= 0
        for parameters, error in [
            ({"KnowledgeBase": "insurance"}, "Baton.Retrieval.InvalidParameters"),
            ({"KnowledgeBase": "insurance", "Query": "q", "TopK": 0}, "Baton.Retrieval.InvalidParameters"),
            ({"KnowledgeBase": "insurance", "Query": "q", "Extra": 1}, "Baton.Retrieval.InvalidParameters"),
            ("just text", "Baton.Retrieval.InvalidParameters"),
            ({"KnowledgeBase": "other", "Query": "q"}, "Baton.Retrieval.KnowledgeBaseNotFound"),
        ]:
            with pytest.raises(StepError) as caught:
                await run(parameters)
            assert caught.value.error == error, parameters
        await handler.aclose()

    asyncio.run(scenario())
