"""Dead letters: events that could not be processed, with the reason and the original bytes."""

from __future__ import annotations

from schemas.base import Envelope


class DeadLetter(Envelope):
    reason: str
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    value_b64: str | None = None  # the original value, or its first bytes when it was too big
    value_size: int | None = None  # the original value's size in bytes
    value_truncated: bool = False
