"""Knowledge bases: a folder of documents, cut into passages, embedded, and indexed for search.

A knowledge base named NAME lives in `<root>/NAME/` (root: `KnowledgeBaseSettings.dir`, by default
`.baton/kb`):

- `vectors.usearch`: a usearch HNSW index (cosine, float32) of the passages' vectors, keyed by
  passage id;
- `passages.sqlite`: the passages (id, source document, position, heading path, text);
- `manifest.json`: how it was built: embeddings model and dimension, counts, source folder, time,
  and a build id that changes with every build (a running service reloads on a new one).

`build_knowledge_base` writes a new build into a temporary folder beside the old one and then
swaps it in, so a reader sees the old build or the new one, never half of one. Searching with a
vector from another model than the one the knowledge base was built with is refused
(`KnowledgeBaseMismatch`): its scores would be meaningless.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

from steps.retrieval.chunking import TEXT_SUFFIXES, Passage, split_document
from steps.retrieval.embeddings import EmbeddingsClient, Vectors
from steps.retrieval.errors import KnowledgeBaseError, KnowledgeBaseMismatch, KnowledgeBaseNotFound

FORMAT = 1
INDEX_FILE = "vectors.usearch"
PASSAGES_FILE = "passages.sqlite"
MANIFEST_FILE = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Manifest:
    """What a knowledge base holds and how it was built."""

    name: str
    model: str
    dim: int
    passages: int
    documents: int
    source_folder: str
    built_at: str
    build_id: str
    embeddings_url: str = ""
    metric: str = "cos"
    format: int = FORMAT

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})
        except (OSError, ValueError, TypeError) as exc:
            raise KnowledgeBaseError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class Hit:
    """A passage found for a query; `score` is the cosine similarity (1 = same direction)."""

    text: str
    source: str
    title: str
    score: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def check_name(name: str) -> str:
    """A knowledge base's name is a folder name: letters, digits, `_ . -`, at most 64."""
    if not _NAME.match(name):
        raise KnowledgeBaseError(f"invalid knowledge base name {name!r}: use 1-64 letters, digits, '_', '.' "
                                 "or '-', starting with a letter or digit")
    return name


def find_documents(folder: Path) -> list[Path]:
    """The .md, .markdown and .txt files under `folder` (recursively; hidden ones skipped), in path order."""
    if not folder.is_dir():
        raise KnowledgeBaseError(f"{folder} is not a folder")
    found = [path for path in folder.rglob("*")
             if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES
             and not any(part.startswith(".") for part in path.relative_to(folder).parts)]
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


def read_passages(folder: Path, max_chars: int) -> tuple[list[Passage], int]:
    """(every passage of every document under `folder`, the number of documents with text)."""
    passages: list[Passage] = []
    documents = 0
    for path in find_documents(folder):
        source = path.relative_to(folder).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KnowledgeBaseError(f"cannot read {path} as UTF-8 text: {exc}") from None
        pieces = split_document(text, source, max_chars=max_chars)
        documents += bool(pieces)
        passages.extend(pieces)
    if not passages:
        raise KnowledgeBaseError(f"no text found in .md or .txt files under {folder}")
    return passages, documents


async def build_knowledge_base(folder: Path, name: str, root: Path, client: EmbeddingsClient, *,
                               max_chars: int = 1000,
                               on_progress: Callable[[int, int], None] | None = None) -> Manifest:
    """Cut the documents of `folder` into passages, embed them, and (re)place knowledge base `name`.

    `on_progress(done, total)` is called after each batch of passages is embedded.
    """
    check_name(name)
    passages, documents = read_passages(folder, max_chars)
    texts = [p.embedded_text for p in passages]
    rows: list[Vectors] = []
    step = client.settings.batch_size
    for start in range(0, len(texts), step):
        rows.append(await client.embed_passages(texts[start:start + step]))
        if on_progress is not None:
            on_progress(min(start + step, len(texts)), len(texts))
    vectors = np.concatenate(rows)
    manifest = Manifest(
        name=name, model=client.model, dim=int(vectors.shape[1]), passages=len(passages), documents=documents,
        source_folder=str(folder.resolve()), built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_id=uuid.uuid4().hex, embeddings_url=client.settings.base_url)
    _write(root, manifest, passages, vectors)
    return manifest


def _write(root: Path, manifest: Manifest, passages: Sequence[Passage], vectors: Vectors) -> None:
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{manifest.name}.{manifest.build_id}.tmp"
    staging.mkdir()
    try:
        index = Index(ndim=manifest.dim, metric="cos", dtype="f32")
        index.add(np.arange(len(passages), dtype=np.uint64), vectors)
        index.save(str(staging / INDEX_FILE))
        with contextlib.closing(sqlite3.connect(staging / PASSAGES_FILE)) as db, db:
            db.execute("CREATE TABLE passages (id INTEGER PRIMARY KEY, source TEXT NOT NULL, "
                       "position INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL)")
            db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?)",
                           [(i, p.source, p.position, p.title, p.text) for i, p in enumerate(passages)])
        (staging / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
        _swap_in(staging, root / manifest.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with renames only (a directory cannot be replaced in one)."""
    retired = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def list_knowledge_bases(root: Path) -> list[Manifest]:
    """The manifests of the knowledge bases under `root`, by name."""
    if not root.is_dir():
        return []
    return [Manifest.read(path / MANIFEST_FILE) for path in sorted(root.iterdir())
            if not path.name.startswith(".") and (path / MANIFEST_FILE).is_file()]


class KnowledgeBase:
    """One loaded build of a knowledge base: the index in memory, the passages in SQLite."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest = Manifest.read(folder / MANIFEST_FILE)
        if self.manifest.format != FORMAT:
            raise KnowledgeBaseError(f"{folder} has format {self.manifest.format}, this Baton reads {FORMAT}: "
                                     "rebuild it with `baton kb add`")
        index = Index.restore(str(folder / INDEX_FILE))
        if index is None or index.ndim != self.manifest.dim:
            raise KnowledgeBaseError(f"{folder / INDEX_FILE} is missing or corrupt: rebuild it with `baton kb add`")
        self.index: Index = index
        try:
            self._db = sqlite3.connect(f"{(folder / PASSAGES_FILE).as_uri()}?mode=ro", uri=True,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise KnowledgeBaseError(f"cannot open {folder / PASSAGES_FILE}: {exc}") from None

    @classmethod
    def open(cls, root: Path, name: str) -> KnowledgeBase:
        folder = root / check_name(name)
        if not (folder / MANIFEST_FILE).is_file():
            known = ", ".join(m.name for m in list_knowledge_bases(root)) or "none"
            raise KnowledgeBaseNotFound(f"no knowledge base {name!r} in {root.resolve()} (known: {known}); "
                                        f"add one with `baton kb add FOLDER --name {name}`")
        return cls(folder)

    def close(self) -> None:
        self._db.close()

    def search(self, vector: Vectors, top_k: int, *, model: str | None = None,
               min_score: float | None = None) -> list[Hit]:
        """The `top_k` passages nearest to `vector`, best first (those under `min_score` left out)."""
        if model is not None and model != self.manifest.model:
            raise KnowledgeBaseMismatch(
                f"knowledge base {self.manifest.name!r} was embedded with model {self.manifest.model!r}, "
                f"the query with {model!r}: rebuild it with `baton kb add` or point the service at that model")
        if vector.shape != (self.manifest.dim,):
            raise KnowledgeBaseMismatch(
                f"knowledge base {self.manifest.name!r} holds {self.manifest.dim}-dimensional vectors, "
                f"the query vector has shape {vector.shape}: rebuild it with the model the service uses")
        matches = self.index.search(vector, top_k)
        keys = [int(key) for key in matches.keys]
        scores = [round(1.0 - float(distance), 4) for distance in matches.distances]
        if not keys:
            return []
        rows = {row[0]: row[1:] for row in self._db.execute(
            f"SELECT id, source, title, text FROM passages WHERE id IN ({','.join('?' * len(keys))})", keys)}
        hits = [Hit(text=rows[key][2], source=rows[key][0], title=rows[key][1], score=score)
                for key, score in zip(keys, scores) if key in rows]
        return [hit for hit in hits if min_score is None or hit.score >= min_score]


class KnowledgeBases:
    """Knowledge bases loaded on first use and reloaded when a new build replaces them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[str, tuple[int, KnowledgeBase]] = {}

    def get(self, name: str) -> KnowledgeBase:
        manifest = self.root / check_name(name) / MANIFEST_FILE
        try:
            stamp = manifest.stat().st_mtime_ns
        except OSError:
            stamp = -1
        loaded = self._loaded.get(name)
        if loaded is not None and loaded[0] == stamp:
            return loaded[1]
        try:
            base = KnowledgeBase.open(self.root, name)
        except (KnowledgeBaseError, KnowledgeBaseNotFound):
            # Between the two renames of a swap the folder is briefly absent: look once more.
            time.sleep(0.02)
            base = KnowledgeBase.open(self.root, name)
        if loaded is not None:
            loaded[1].close()
        self._loaded[name] = (stamp, base)
        return base

    def close(self) -> None:
        for _, base in self._loaded.values():
            base.close()
        self._loaded.clear()
