"""The retrieval step (`baton:retrieve`) and the knowledge bases it searches (`baton kb add`).

    from steps.retrieval import EmbeddingsClient, KnowledgeBase, build_knowledge_base, retrieval_service

Embeddings come from any OpenAI-compatible `/v1/embeddings` API (`EmbeddingsSettings`, env
BATON_EMBEDDINGS_*); vectors are indexed with usearch. See `service.py` for the Task Parameters and
`errors.py` for the ASL error names a definition can Retry and Catch.
"""

from steps.retrieval.chunking import Passage, split_document
from steps.retrieval.embeddings import EmbeddingsClient
from steps.retrieval.errors import (
    EmbeddingsError,
    EmbeddingsInvalidResponse,
    EmbeddingsRejected,
    EmbeddingsTimeout,
    EmbeddingsUnavailable,
    InvalidParameters,
    KnowledgeBaseError,
    KnowledgeBaseMismatch,
    KnowledgeBaseNotFound,
    RetrievalError,
)
from steps.retrieval.knowledge_base import (
    Hit,
    KnowledgeBase,
    KnowledgeBases,
    Manifest,
    build_knowledge_base,
    list_knowledge_bases,
)
from steps.retrieval.service import RetrievalHandler, RetrievalTask, retrieval_service
from steps.retrieval.settings import EmbeddingsSettings, KnowledgeBaseSettings

__all__ = [
    "EmbeddingsClient", "EmbeddingsError", "EmbeddingsInvalidResponse", "EmbeddingsRejected", "EmbeddingsSettings",
    "EmbeddingsTimeout", "EmbeddingsUnavailable", "Hit", "InvalidParameters", "KnowledgeBase", "KnowledgeBaseError",
    "KnowledgeBaseMismatch", "KnowledgeBaseNotFound", "KnowledgeBaseSettings", "KnowledgeBases", "Manifest",
    "Passage", "RetrievalError", "RetrievalHandler", "RetrievalTask", "build_knowledge_base",
    "list_knowledge_bases", "retrieval_service", "split_document",
]
