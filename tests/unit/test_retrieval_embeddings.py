"""The embeddings client against a fake OpenAI-compatible server (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from steps.retrieval.embeddings import EmbeddingsClient
from steps.retrieval.errors import (
    EmbeddingsInvalidResponse,
    EmbeddingsRejected,
    EmbeddingsTimeout,
    EmbeddingsUnavailable,
)
from steps.retrieval.settings import EmbeddingsSettings


def _settings(**fields: Any) -> EmbeddingsSettings:
    return EmbeddingsSettings(base_url="http://embeddings.test/v1", **fields)


def _answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    data = [{"object": "embedding", "index": i, "embedding": [3.0, 4.0 + i]} for i in range(len(body["input"]))]
    return httpx.Response(200, json={"object": "list", "data": list(reversed(data)), "model": body["model"]})


def _embed(settings: EmbeddingsSettings, handler: Any, texts: list[str], kind: str = "passage") -> np.ndarray:
    async def go() -> np.ndarray:
        async with EmbeddingsClient(settings, transport=httpx.MockTransport(handler)) as client:
            return await client.embed(texts, kind)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_requests_are_openai_shaped_batched_and_vectors_normalised() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _answer(request)

    settings = _settings(model="e5", api_key=SecretStr("sk-test"), batch_size=2, passage_prefix="passage: ")
    vectors = _embed(settings, handler, ["a", "b", "c"])
    assert vectors.shape == (3, 2) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(vectors[0], [0.6, 0.8], rtol=1e-6)  # sorted back by "index"
    bodies = [json.loads(r.content) for r in seen]
    assert [b["input"] for b in bodies] == [["passage: a", "passage: b"], ["passage: c"]]
    assert all(b["model"] == "e5" and b["input_type"] == "passage" and b["encoding_format"] == "float"
               for b in bodies)
    assert seen[0].url == "http://embeddings.test/v1/embeddings"
    assert seen[0].headers["authorization"] == "Bearer sk-test"


def test_input_type_can_be_left_out_for_openai() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return _answer(request)

    _embed(_settings(input_type=False, query_prefix="query: "), handler, ["q"], "query")
    assert bodies == [{"model": "multilingual-e5-small-q4", "input": ["query: q"], "encoding_format": "float"}]


@pytest.mark.parametrize(("response", "error", "words"), [
    (httpx.Response(429, json={"error": {"message": "slow down"}}), EmbeddingsUnavailable, "slow down"),
    (httpx.Response(503, text="overloaded"), EmbeddingsUnavailable, "503"),
    (httpx.Response(400, json={"error": {"message": "unknown model"}}), EmbeddingsRejected, "unknown model"),
    (httpx.Response(200, json={"data": [{"embedding": [1.0]}, {"embedding": [1.0]}]}), EmbeddingsInvalidResponse,
     "2 vectors for 1 texts"),
    (httpx.Response(200, text="not json"), EmbeddingsInvalidResponse, "OpenAI embeddings shape"),
])
def test_provider_failures_map_to_asl_errors(response: httpx.Response, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        _embed(_settings(api_key=SecretStr("sk-secret")), lambda request: response, ["x"])
    assert "sk-secret" not in str(caught.value)


def test_unreachable_and_slow_servers() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(EmbeddingsUnavailable, match="infra.local_embeddings up"):
        _embed(_settings(), refuse, ["x"])
    with pytest.raises(EmbeddingsTimeout) as caught:
        _embed(_settings(), slow, ["x"])
    assert caught.value.error == "Baton.Retrieval.EmbeddingsTimeout"
