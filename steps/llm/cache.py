"""The opt-in response cache of the LLM step: a deterministic call answered before is answered again
from a local SQLite file instead of by the provider.

Made for iterating on a workflow: re-running it while editing a later state does not pay (in time
or money) for the earlier states again. Only deterministic calls are cached (`cacheable`):
temperature 0, or a seed on a provider that honours one; any other call is a "skip". The key
(`cache_key`) is a SHA-256 over everything that shapes the answer: the provider (configured name,
kind and endpoint), the model name sent to it, the rendered system prompt and messages, and the
sampling parameters (temperature, top_p, max_tokens, stop, response format, JSON schema, seed).

One SQLite file (`responses.sqlite` in the configured folder) in WAL mode with a busy timeout, so
several step-service processes and `baton llm cache` share it safely. An entry lives
`ttl_seconds`; an expired one is a miss and is deleted. Only answers of tasks that succeeded are
stored, so a Retry after a bad answer never gets the same bad answer from the cache.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.llm.config import ProviderConfig
from steps.llm.providers import ChatRequest

KEY_VERSION = 1  # part of every key: bump it when the key's fields or the stored answer change
FILE_NAME = "responses.sqlite"
_BUSY_TIMEOUT_MS = 5_000  # another process writing: wait this long for its lock, not fail at once
_SEEDED_KINDS = frozenset({"openai", "huggingface"})  # Anthropic's API takes no seed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    answer TEXT NOT NULL,
    stored_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    last_hit_at REAL
);
CREATE INDEX IF NOT EXISTS responses_expiry ON responses (expires_at);
"""


def cacheable(request: ChatRequest, kind: str) -> bool:
    """True if the call is deterministic: temperature 0, or a seed the provider's API honours."""
    if request.tools or any(m.role == "tool" or m.tool_calls for m in request.messages):
        return False  # a cached answer keeps no tool calls: an agent's turns always reach the model
    return request.temperature == 0 or (request.seed is not None and kind in _SEEDED_KINDS)


def cache_key(provider: str, config: ProviderConfig, request: ChatRequest) -> str:
    """The hex SHA-256 naming the answer to `request` on `provider` (see the module docstring)."""
    fields = {
        "version": KEY_VERSION,
        "provider": provider,
        "kind": config.kind,
        "base_url": config.base_url.rstrip("/"),
        "model": request.model,
        "system": request.system,
        "messages": [[message.role, message.content] for message in request.messages],
        # Numbers as floats: a Bedrock body's `0` and a Task's `0.0` are the same temperature.
        "temperature": _number(request.temperature),
        "top_p": _number(request.top_p),
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "response_format": request.response_format,
        "json_schema": request.json_schema,
        "seed": request.seed,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class CachedAnswer:
    """What a provider answered (text, response model, finish reason) and what that call used."""

    text: str
    model: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    stored_at: float = 0.0  # epoch seconds, set by the cache

    def to_json(self) -> str:
        return json.dumps({"text": self.text, "model": self.model, "finish_reason": self.finish_reason,
                           "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                           "latency_ms": self.latency_ms}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, stored_at: float) -> CachedAnswer:
        data: dict[str, Any] = json.loads(text)
        return cls(text=str(data["text"]), model=str(data["model"]), finish_reason=data.get("finish_reason"),
                   input_tokens=data.get("input_tokens"), output_tokens=data.get("output_tokens"),
                   latency_ms=data.get("latency_ms"), stored_at=stored_at)


@dataclass(frozen=True)
class CacheStats:
    path: Path
    entries: int  # live and expired-but-not-yet-purged
    expired: int
    hits: int  # answers served from the cache, over the live entries' lifetimes
    size_bytes: int  # the database file and its WAL
    oldest: float | None  # stored_at, epoch seconds
    newest: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "entries": self.entries, "expired": self.expired, "hits": self.hits,
                "size_bytes": self.size_bytes, "oldest": self.oldest, "newest": self.newest}


class ResponseCache:
    """The answers in `<folder>/responses.sqlite`. Methods block (SQLite): call them from a thread.

    One connection, used under a lock, so the handler's worker threads may share an instance;
    other processes open their own and SQLite's file locks keep them consistent.
    """

    def __init__(self, folder: Path, ttl_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILE_NAME
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        """The connection, opened (and the folder and table created) on first use."""
        if self._connection is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                         check_same_thread=False)
            try:
                connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                connection.execute("PRAGMA journal_mode = WAL")  # readers never wait for a writer
                connection.execute("PRAGMA synchronous = NORMAL")  # a lost entry is only a future miss
                connection.executescript(_SCHEMA)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def get(self, key: str) -> CachedAnswer | None:
        """The live answer stored under `key`, counting the hit; None (and the entry purged) if expired."""
        now = self._clock()
        with self._lock:
            db = self._db()
            row = db.execute("SELECT answer, stored_at, expires_at FROM responses WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            answer, stored_at, expires_at = row
            if expires_at <= now:
                db.execute("DELETE FROM responses WHERE key = ? AND expires_at <= ?", (key, now))
                return None
            db.execute("UPDATE responses SET hits = hits + 1, last_hit_at = ? WHERE key = ?", (now, key))
        return CachedAnswer.from_json(answer, stored_at)

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Store `answer` under `key` for `ttl_seconds` (replacing an older one), and purge expired entries."""
        now = self._clock()
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT OR REPLACE INTO responses (key, answer, stored_at, expires_at) VALUES (?, ?, ?, ?)",
                           (key, answer.to_json(), now, now + self.ttl_seconds))
                db.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))  # indexed: cheap
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def clear(self, *, expired_only: bool = False) -> int:
        """Delete every entry (or only the expired ones); the number deleted."""
        with self._lock:
            db = self._db()
            if expired_only:
                cursor = db.execute("DELETE FROM responses WHERE expires_at <= ?", (self._clock(),))
            else:
                cursor = db.execute("DELETE FROM responses")
            deleted = cursor.rowcount
            if not expired_only:
                db.execute("VACUUM")  # give the space back: a cleared cache should be small on disk
            return deleted

    def stats(self) -> CacheStats:
        now = self._clock()
        with self._lock:
            entries, expired, hits, oldest, newest = self._db().execute(
                "SELECT COUNT(*), COALESCE(SUM(expires_at <= ?), 0), COALESCE(SUM(hits), 0), MIN(stored_at), "
                "MAX(stored_at) FROM responses", (now,)).fetchone()
        size = sum(p.stat().st_size for p in (self.path, self.path.with_name(FILE_NAME + "-wal")) if p.exists())
        return CacheStats(path=self.path, entries=int(entries), expired=int(expired), hits=int(hits),
                          size_bytes=size, oldest=oldest, newest=newest)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
