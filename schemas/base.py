"""The envelope every event shares, and its wire format (UTF-8 JSON)."""

from __future__ import annotations

import os
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


def decode(model: type[E], data: bytes | None) -> E:
    """Parse bytes into an event; pydantic.ValidationError (a ValueError) says what is wrong."""
    if data is None:
        raise ValueError("empty message (no value)")
    return model.model_validate_json(data)
