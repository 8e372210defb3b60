"""The envelope every event shares, and its wire format (UTF-8 JSON, or zlib-compressed UTF-8
JSON for a record that would not fit the topic's max.message.bytes otherwise)."""

from __future__ import annotations

import os
import zlib
from datetime import datetime, timezone
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

E = TypeVar("E", bound=BaseModel)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Envelope(BaseModel):
    """Fields common to all events. Unknown fields are kept out (forward-compatible readers)."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    id: str = Field(default_factory=lambda: os.urandom(16).hex())  # a uuid4's 128 random bits, cheaper
    execution_id: str
    timestamp: datetime = Field(default_factory=_now)


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json(exclude_none=False).encode()


# zlib's first byte at every compression level (deflate, 32 KiB window); JSON text never starts so.
ZLIB_MAGIC = 0x78
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # a compressed record never inflates past this (a zip bomb)


def compress(value: bytes) -> bytes:
    """The compressed form of a record too big for its topic as JSON (readers use `inflate`)."""
    return zlib.compress(value, 6)


def inflate(data: bytes) -> bytes:
    """A record's JSON: as it is, or inflated when it was written compressed."""
    if not data or data[0] != ZLIB_MAGIC:
        return data
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise ValueError(f"a compressed record that does not inflate: {exc}") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"a compressed record inflating past {MAX_INFLATED_BYTES} bytes")
    return text


def decode(model: type[E], data: bytes | None) -> E:
    """Parse bytes into an event; pydantic.ValidationError (a ValueError) says what is wrong."""
    if data is None:
        raise ValueError("empty message (no value)")
    return model.model_validate_json(inflate(data))
