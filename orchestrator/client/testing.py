"""An in-memory transport for the client, for unit tests without a broker (FastStream's
`TestKafkaBroker` habit): `BatonClient(settings, producer=RecordingProducer())` publishes into a
list instead of Kafka, so a front end's requests can be checked record by record. Claims about
delivery, ordering across partitions or exactly-once never rest on it: those tests use the broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from schemas.base import decode

__all__ = ["RecordingProducer", "SentRecord"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class SentRecord:
    topic: str
    key: bytes
    value: bytes

    def decoded(self, model: type[M]) -> M:
        """The record's value as `model` (the same decoder the orchestrator uses)."""
        return decode(model, self.value)


@dataclass
class RecordingProducer:
    """A producer keeping what is sent, in order; `acked` sends and queued sends look alike."""

    records: list[SentRecord] = field(default_factory=list)
    started: bool = False
    flushes: int = 0

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def send(self, topic: str, value: bytes, *, key: bytes) -> Any:
        if not self.started:
            raise RuntimeError("the producer is not started: use `async with BatonClient(...)`")
        self.records.append(SentRecord(topic, key, value))
        return None

    async def send_and_wait(self, topic: str, value: bytes, *, key: bytes) -> Any:
        return await self.send(topic, value, key=key)

    async def flush(self) -> None:
        self.flushes += 1

    def on(self, topic: str) -> list[SentRecord]:
        return [record for record in self.records if record.topic == topic]
