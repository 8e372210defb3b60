"""Every error the retrieval step and its knowledge bases can raise, as ASL error names.

One exception per ASL error name; each carries `error` (the name the task fails with) and `cause`
(one line for a person: what went wrong, where, and what to do). API keys never appear in a cause.

    Baton.Retrieval.EmbeddingsUnavailable   the embeddings API cannot be reached, or answered
                                            429 / 5xx (transient: Retry it)
    Baton.Retrieval.EmbeddingsTimeout       no answer within `timeout_seconds` (transient)
    Baton.Retrieval.EmbeddingsRejected      any other 4xx: bad key, unknown model, input too long
    Baton.Retrieval.EmbeddingsInvalidResponse  not the OpenAI `/v1/embeddings` shape, or vectors
                                            of the wrong count or size
    Baton.Retrieval.KnowledgeBaseNotFound   no knowledge base of that name (`baton kb add` it)
    Baton.Retrieval.KnowledgeBaseMismatch   the knowledge base was embedded with another model
                                            (or dimension) than the service uses now: rebuild it
    Baton.Retrieval.InvalidParameters       the Task's Parameters are wrong
    Baton.Retrieval.KnowledgeBaseError      a knowledge base cannot be built or read (no
                                            documents, unreadable files, corrupt index)
"""

from __future__ import annotations

from typing import ClassVar

from schemas.errors import BatonError


class RetrievalError(BatonError):
    """Base of the retrieval errors: `error` is the ASL error name, `cause` the explanation."""

    error: ClassVar[str] = "Baton.Retrieval.Error"

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class EmbeddingsError(RetrievalError):
    """Base of the errors of the embeddings API."""


class EmbeddingsUnavailable(EmbeddingsError):
    error = "Baton.Retrieval.EmbeddingsUnavailable"


class EmbeddingsTimeout(EmbeddingsError):
    error = "Baton.Retrieval.EmbeddingsTimeout"


class EmbeddingsRejected(EmbeddingsError):
    error = "Baton.Retrieval.EmbeddingsRejected"


class EmbeddingsInvalidResponse(EmbeddingsError):
    error = "Baton.Retrieval.EmbeddingsInvalidResponse"


class KnowledgeBaseNotFound(RetrievalError):
    error = "Baton.Retrieval.KnowledgeBaseNotFound"


class KnowledgeBaseMismatch(RetrievalError):
    error = "Baton.Retrieval.KnowledgeBaseMismatch"


class KnowledgeBaseError(RetrievalError):
    error = "Baton.Retrieval.KnowledgeBaseError"


class InvalidParameters(RetrievalError):
    error = "Baton.Retrieval.InvalidParameters"
