"""`baton kb add | search | list`: build and try the knowledge bases the retrieval step searches.

    baton kb add examples/insurance/kb --name insurance
    baton kb search insurance "is water damage from a burst pipe covered?" --top-k 3
    baton kb list

Knowledge bases live under `--kb-dir` (env BATON_KB_DIR, default `.baton/kb`): run the retrieval
step service (`baton step retrieval`) with the same folder. Embeddings come from the API named by
BATON_EMBEDDINGS_BASE_URL (default: the offline server of `python -m infra.local_embeddings up`).
Every failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from orchestrator.cli._shared import fail, print_json

F = TypeVar("F", bound=Callable[..., Any])


def _options(command: F) -> F:
    command = click.option("--model", help="Embeddings model (default: BATON_EMBEDDINGS_MODEL or the local one).")(command)
    command = click.option("--embeddings-url", help="OpenAI-compatible API root, e.g. http://127.0.0.1:8095/v1 "
                                                    "(default: BATON_EMBEDDINGS_BASE_URL).")(command)
    command = click.option("--kb-dir", help="Where knowledge bases live (default: BATON_KB_DIR or .baton/kb).")(command)
    return command


def _settings(kb_dir: str | None, embeddings_url: str | None, model: str | None) -> tuple[Any, Any]:
    from steps.retrieval.settings import EmbeddingsSettings, KnowledgeBaseSettings

    try:
        embeddings, knowledge = EmbeddingsSettings(), KnowledgeBaseSettings()
    except ValidationError as exc:
        fail(f"invalid BATON_EMBEDDINGS_* / BATON_KB_* environment: {str(exc).splitlines()[0]}")
    updates = {key: value for key, value in (("base_url", embeddings_url), ("model", model)) if value}
    embeddings = embeddings.model_copy(update=updates)
    if kb_dir:
        knowledge = knowledge.model_copy(update={"dir": Path(kb_dir)})
    return embeddings, knowledge


@click.group()
def kb() -> None:
    """Knowledge bases for the retrieval step (baton:retrieve)."""


@kb.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The knowledge base's name (default: the folder's name). An existing one is replaced.")
@click.option("--chunk-chars", type=click.IntRange(min=100), default=None,
              help="At most this many characters per passage (default: BATON_KB_CHUNK_CHARS or 1000).")
@_options
def add(folder: Path, name: str | None, chunk_chars: int | None, kb_dir: str | None, embeddings_url: str | None,
        model: str | None) -> None:
    """Build knowledge base NAME from the .md and .txt files under FOLDER (replacing it if it exists)."""
    from steps.retrieval.embeddings import EmbeddingsClient
    from steps.retrieval.errors import RetrievalError
    from steps.retrieval.knowledge_base import build_knowledge_base

    embeddings, knowledge = _settings(kb_dir, embeddings_url, model)
    name = name or folder.resolve().name

    def progress(done: int, total: int) -> None:
        click.echo(f"\rembedding passages: {done}/{total}", nl=done == total, err=True)

    async def build() -> Any:
        async with EmbeddingsClient(embeddings) as client:
            return await build_knowledge_base(folder, name, Path(knowledge.dir), client,
                                              max_chars=chunk_chars or knowledge.chunk_chars, on_progress=progress)

    started = time.perf_counter()
    try:
        manifest = asyncio.run(build())
    except RetrievalError as exc:
        fail(exc.cause)
    except OSError as exc:
        fail(f"cannot write the knowledge base under {knowledge.dir}: {exc}")
    click.echo(f"{manifest.name}: {manifest.documents} documents, {manifest.passages} passages, "
               f"model {manifest.model} ({manifest.dim} dimensions), built in {time.perf_counter() - started:.2f} s "
               f"-> {Path(knowledge.dir) / manifest.name}")


@kb.command()
@click.argument("name")
@click.argument("query")
@click.option("--top-k", type=click.IntRange(min=1, max=50), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@_options
def search(name: str, query: str, top_k: int, as_json: bool, kb_dir: str | None, embeddings_url: str | None,
           model: str | None) -> None:
    """Search knowledge base NAME for QUERY, as the retrieval step does."""
    from steps.retrieval.embeddings import EmbeddingsClient
    from steps.retrieval.errors import RetrievalError
    from steps.retrieval.knowledge_base import KnowledgeBase

    embeddings, knowledge = _settings(kb_dir, embeddings_url, model)

    async def find() -> tuple[list[Any], float, float]:
        base = KnowledgeBase.open(Path(knowledge.dir), name)
        try:
            async with EmbeddingsClient(embeddings) as client:
                started = time.perf_counter()
                vector = await client.embed_query(query)
                embedded = time.perf_counter()
                hits = base.search(vector, top_k, model=client.model)
                return hits, embedded - started, time.perf_counter() - embedded
        finally:
            base.close()

    try:
        hits, embed_seconds, search_seconds = asyncio.run(find())
    except RetrievalError as exc:
        fail(exc.cause)
    timing = {"embed_ms": round(embed_seconds * 1000, 3), "search_ms": round(search_seconds * 1000, 3)}
    if as_json:
        print_json({"passages": [hit.as_json() for hit in hits], **timing})
        return
    for rank, hit in enumerate(hits, 1):
        text = " ".join(hit.text.split())
        click.echo(f"{rank}. {hit.score:.4f}  {hit.source}  ({hit.title})")
        click.echo(f"   {text[:240]}{'...' if len(text) > 240 else ''}")
    click.echo(f"(query embedded in {timing['embed_ms']:.1f} ms, index searched in {timing['search_ms']:.2f} ms)",
               err=True)


@kb.command(name="list")
@click.option("--kb-dir", help="Where knowledge bases live (default: BATON_KB_DIR or .baton/kb).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(kb_dir: str | None, as_json: bool) -> None:
    """The knowledge bases that exist, with their model and size."""
    from dataclasses import asdict

    from steps.retrieval.errors import RetrievalError
    from steps.retrieval.knowledge_base import list_knowledge_bases

    _, knowledge = _settings(kb_dir, None, None)
    try:
        manifests = list_knowledge_bases(Path(knowledge.dir))
    except RetrievalError as exc:
        fail(exc.cause)
    if as_json:
        click.echo(json.dumps([asdict(m) for m in manifests], indent=2))
        return
    if not manifests:
        click.echo(f"no knowledge bases in {knowledge.dir} (add one with `baton kb add FOLDER --name NAME`)")
    for m in manifests:
        click.echo(f"{m.name}: {m.documents} documents, {m.passages} passages, model {m.model} ({m.dim}), "
                   f"built {m.built_at} from {m.source_folder}")
