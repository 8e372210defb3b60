"""A client of the OpenAI-compatible embeddings API (`POST {base_url}/embeddings`), over httpx.

    client = EmbeddingsClient(EmbeddingsSettings())
    query = await client.embed_query("does my policy cover floods?")   # (dim,) float32
    passages = await client.embed_passages(["...", "..."])               # (n, dim) float32
    await client.aclose()

Vectors come back L2-normalised, so a dot product is their cosine similarity, whatever the
provider returns. Failures raise the `EmbeddingsError` subclasses of `steps.retrieval.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt

from steps.retrieval.errors import (
    EmbeddingsInvalidResponse,
    EmbeddingsRejected,
    EmbeddingsTimeout,
    EmbeddingsUnavailable,
)
from steps.retrieval.settings import EmbeddingsSettings

Vectors = npt.NDArray[np.float32]
Kind = Literal["query", "passage"]


class EmbeddingsClient:
    """One pooled HTTP client for one embeddings endpoint. `transport` is a seam for tests."""

    def __init__(self, settings: EmbeddingsSettings | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings or EmbeddingsSettings()
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        self._url = self.settings.base_url.rstrip("/") + "/embeddings"
        self._http = httpx.AsyncClient(headers=headers, timeout=self.settings.timeout_seconds, transport=transport)

    @property
    def model(self) -> str:
        return self.settings.model

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> EmbeddingsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def embed_query(self, text: str) -> Vectors:
        """The vector of one search query."""
        vectors: Vectors = (await self.embed([text], "query"))[0]
        return vectors

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """The vectors of passages to index, one row each (requests of `batch_size` texts)."""
        return await self.embed(texts, "passage")

    async def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        """One row per text, L2-normalised; an empty input gives an empty (0, 0) array."""
        prefix = self.settings.query_prefix if kind == "query" else self.settings.passage_prefix
        rows: list[Vectors] = []
        size = self.settings.batch_size
        for start in range(0, len(texts), size):
            batch = [prefix + text for text in texts[start:start + size]]
            rows.append(await self._request(batch, kind))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        if len({row.shape[1] for row in rows}) > 1:
            raise EmbeddingsInvalidResponse(f"{self._url} returned vectors of different sizes across requests")
        return _normalised(np.concatenate(rows) if len(rows) > 1 else rows[0])

    async def _request(self, batch: list[str], kind: Kind) -> Vectors:
        body: dict[str, Any] = {"model": self.settings.model, "input": batch, "encoding_format": "float"}
        if self.settings.input_type:
            body["input_type"] = kind
        try:
            response = await self._http.post(self._url, json=body)
        except httpx.TimeoutException:
            raise EmbeddingsTimeout(f"the embeddings API at {self._url} did not answer within "
                                    f"{self.settings.timeout_seconds:g} s") from None
        except httpx.HTTPError as exc:
            raise EmbeddingsUnavailable(
                f"cannot reach the embeddings API at {self._url} ({type(exc).__name__}: {exc}); is it running? "
                "(`python -m infra.local_embeddings up` starts the offline one; BATON_EMBEDDINGS_BASE_URL "
                "names another)") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise EmbeddingsUnavailable(f"the embeddings API at {self._url} answered {response.status_code}: "
                                        f"{_message(response)}")
        if response.status_code >= 400:
            raise EmbeddingsRejected(f"the embeddings API at {self._url} refused the request "
                                     f"({response.status_code}, model {self.settings.model!r}): {_message(response)}")
        return _vectors(response, len(batch), self._url)


def _vectors(response: httpx.Response, expected: int, url: str) -> Vectors:
    try:
        payload = response.json()
        data = sorted(payload["data"], key=lambda item: int(item.get("index", 0)))
        vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EmbeddingsInvalidResponse(f"{url} did not answer in the OpenAI embeddings shape "
                                        f"({type(exc).__name__}: {exc})") from None
    if vectors.ndim != 2 or vectors.shape[0] != expected or vectors.shape[1] == 0:
        raise EmbeddingsInvalidResponse(f"{url} returned {vectors.shape[0] if vectors.ndim else 0} vectors "
                                        f"for {expected} texts")
    if not np.all(np.isfinite(vectors)):
        raise EmbeddingsInvalidResponse(f"{url} returned vectors that are not finite numbers")
    return vectors


def _normalised(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (vectors / norms).astype(np.float32)
    return out


def _message(response: httpx.Response) -> str:
    """The error message of an OpenAI-style error body, else the start of the body."""
    try:
        payload = response.json()
        message = payload["error"]["message"] if isinstance(payload.get("error"), dict) else payload.get("error")
        if message:
            return str(message)[:300]
    except (ValueError, AttributeError, TypeError, KeyError):
        pass
    return response.text[:300] or response.reason_phrase
