"""Which stack a service belongs to: the broker and topic prefix it serves, and the id `baton dev`
gives each stack it starts (BATON_STACK_ID in its children's environment).

Every Baton service says it: the orchestrator's and the step services' `/metrics` carry a
`baton_stack_info` series, and the API answers `GET /healthz` with the same fields. So `baton dev`
can tell a service of its own stack on a port (the same broker and prefix: reused) from another
stack's (refused: its executions would never reach this one's) or from something that is not
Baton at all.
"""

from __future__ import annotations

import os

import httpx
from prometheus_client import CollectorRegistry, Info
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ValidationError

from kafka_io import KafkaSettings, new_admin

STACK_ID_ENV = "BATON_STACK_ID"
_PROBE_TIMEOUT_S = 1.5


class StackIdentity(BaseModel):
    """What a service serves: its stack's id ("" outside `baton dev`), topic prefix and broker."""

    stack_id: str = ""
    topic_prefix: str
    kafka_bootstrap: str

    @classmethod
    def of(cls, settings: KafkaSettings) -> StackIdentity:
        """This process's identity: its Kafka settings and BATON_STACK_ID."""
        return cls(stack_id=os.environ.get(STACK_ID_ENV, ""), topic_prefix=settings.topic_prefix,
                   kafka_bootstrap=settings.kafka_bootstrap)

    def serves_the_same_topics(self, other: StackIdentity) -> bool:
        """Whether both read and write the same topics (a service either could use)."""
        return (self.topic_prefix, self.kafka_bootstrap) == (other.topic_prefix, other.kafka_bootstrap)

    def __str__(self) -> str:
        named = f"stack {self.stack_id}, " if self.stack_id else ""
        return f"{named}topic prefix {self.topic_prefix!r} on {self.kafka_bootstrap}"


def register_stack_info(registry: CollectorRegistry, settings: KafkaSettings) -> None:
    """Add `baton_stack_info{stack_id, topic_prefix, kafka_bootstrap} 1` to a service's metrics."""
    info = Info("baton_stack", "The stack this service belongs to: BATON_STACK_ID, topic prefix, Kafka bootstrap.",
                registry=registry)
    info.info(StackIdentity.of(settings).model_dump())


def identity_at(port: int, host: str = "127.0.0.1") -> StackIdentity | None:
    """The identity of the Baton service answering on `port` (the API's /healthz, or a service's
    /metrics), None when what answers there is not a Baton service (or says no identity)."""
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=_PROBE_TIMEOUT_S) as client:
            health = client.get("/healthz")
            if health.status_code == 200 and health.headers.get("content-type", "").startswith("application/json"):
                return StackIdentity.model_validate(health.json())
            metrics = client.get("/metrics")
    except (httpx.HTTPError, ValidationError, ValueError):
        return None
    if metrics.status_code != 200:
        return None
    try:
        for family in text_string_to_metric_families(metrics.text):
            if family.name in ("baton_stack", "baton_stack_info"):  # an Info, or read back as a gauge
                for sample in family.samples:
                    return StackIdentity.model_validate(sample.labels)
    except (ValueError, ValidationError):
        pass
    return None


async def cluster_id(settings: KafkaSettings) -> str | None:
    """The Kafka cluster's id (the same through any of its bootstrap addresses), None if not told."""
    admin = new_admin(settings)
    try:
        await admin.start()
        described = await admin.describe_cluster()
    finally:
        await admin.close()
    found = described.get("cluster_id")
    return str(found) if found else None
