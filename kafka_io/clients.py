"""Kafka clients built from `KafkaSettings`, with Baton's defaults written down once.

Every client takes `KafkaSettings.client_options()`: the bootstrap addresses, the security
protocol, TLS and the SASL login. On top of that, unless the caller says otherwise:

- a consumer reads committed records only (records of an aborted transaction, such as those of
  an orchestrator that crashed mid-batch, are never seen) and commits no offsets by itself;
  `fast_fetch` makes it wait `KafkaSettings.fetch_max_wait_ms` for data on the broker instead of
  aiokafka's 500 ms (see that setting);
- a producer is idempotent: a send retried after a lost acknowledgement is not written twice.

Any other keyword goes to aiokafka as is. The clients are returned unstarted. The orchestrator's
transactional producer and group consumer (`orchestrator.runtime.service`) and the step
services' FastStream broker (`steps.service`) are still built where they are configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from kafka_io.errors import MissingTopic
from kafka_io.settings import KafkaSettings


def new_consumer(settings: KafkaSettings, *topics: str, group_id: str | None = None,
                 isolation_level: str = "read_committed", auto_commit: bool = False, fast_fetch: bool = False,
                 **options: Any) -> AIOKafkaConsumer:
    """A consumer subscribed to `topics` (none: the caller assigns partitions itself)."""
    if fast_fetch:
        options["fetch_max_wait_ms"] = settings.fetch_max_wait_ms
    return AIOKafkaConsumer(*topics, **settings.client_options(), group_id=group_id,
                            isolation_level=isolation_level, enable_auto_commit=auto_commit, **options)


def new_producer(settings: KafkaSettings, *, idempotent: bool = True, **options: Any) -> AIOKafkaProducer:
    """A producer; `transactional_id=...` makes it transactional (and so idempotent in any case)."""
    return AIOKafkaProducer(**settings.client_options(), enable_idempotence=idempotent, **options)


def new_admin(settings: KafkaSettings, **options: Any) -> AIOKafkaAdminClient:
    """An admin client: creating topics, reading and checking their configs."""
    return AIOKafkaAdminClient(**settings.client_options(), **options)


async def topic_partitions(settings: KafkaSettings, topics: Sequence[str]) -> dict[str, list[int]]:
    """The partition ids of each topic; MissingTopic names those that do not exist."""
    # A client of its own: a consumer only learns about topics it has subscribed to or assigned.
    client = AIOKafkaClient(**settings.client_options())
    try:
        await client.bootstrap()
        cluster = await client.fetch_all_metadata()
    finally:
        await client.close()
    missing = [topic for topic in topics if topic not in cluster.topics()]
    if missing:
        what = f"topic {missing[0]} does" if len(missing) == 1 else f"topics {', '.join(missing)} do"
        raise MissingTopic(f"{what} not exist at {settings.kafka_bootstrap} "
                           "(create Baton's topics first, or check the topic prefix)")
    return {topic: sorted(cluster.partitions_for_topic(topic) or ()) for topic in topics}
