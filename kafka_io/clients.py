"""Kafka clients built from `KafkaSettings`."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaClient

from kafka_io.errors import MissingTopic
from kafka_io.settings import KafkaSettings


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
