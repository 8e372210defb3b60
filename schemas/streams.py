"""Streamed LLM tokens, keyed by execution id, ordered by `seq`, ended by a chunk with `final`."""

from __future__ import annotations

from schemas.base import Envelope


class StreamChunk(Envelope):
    task_id: str
    seq: int
    text: str = ""
    final: bool = False
