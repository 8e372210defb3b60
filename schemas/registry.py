"""The state machine registry: one record per state machine on the compacted `statemachines` topic.

The record is keyed by the state machine's name and holds everything about it: the draft
definition (what `deploy` last stored), the published versions (immutable, numbered 1, 2, ...)
and the aliases (a name for one version, or for two versions with weights summing to 100).
One record per name means compaction keeps exactly what must be kept: the latest record of every
state machine. A tombstone (null value) removes a state machine.

Registry records are not execution events, so they carry the envelope's `schema_version`, `id`
and `timestamp`, and the state machine `name` (the Kafka key) in place of an execution id.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _now() -> datetime:
    return datetime.now(timezone.utc)


class StateMachineVersion(BaseModel):
    """A published version: immutable once written; deleted only when no alias points to it."""

    model_config = ConfigDict(extra="ignore")

    version: int = Field(ge=1)
    definition: dict[str, Any]
    definition_hash: str  # sha256 of the canonical JSON of `definition`
    description: str | None = None
    created: datetime


class AliasRoute(BaseModel):
    """One version an alias routes to, and the percentage of executions it gets."""

    version: int = Field(ge=1)
    weight: int = Field(ge=0, le=100)


class StateMachineAlias(BaseModel):
    """A name for one version (weight 100) or two versions whose weights sum to 100."""

    model_config = ConfigDict(extra="ignore")

    name: str
    routes: list[AliasRoute] = Field(min_length=1, max_length=2)
    description: str | None = None
    updated: datetime


class StateMachineRecord(BaseModel):
    """A registered state machine: its draft definition, its published versions and its aliases;
    keyed by `name` on the compacted registry topic (the latest record per name is the truth)."""

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: datetime = Field(default_factory=_now)
    name: str
    revision: int = Field(default=1, ge=1)  # +1 on every write of this name
    definition: dict[str, Any]  # the draft: what `baton start NAME` runs
    definition_hash: str
    description: str | None = None
    created: datetime
    updated: datetime
    versions: list[StateMachineVersion] = Field(default_factory=list)  # ascending by number
    # The highest version number ever published: numbers are never reused, even after a delete.
    last_version: int = Field(default=0, ge=0)
    aliases: dict[str, StateMachineAlias] = Field(default_factory=dict)
