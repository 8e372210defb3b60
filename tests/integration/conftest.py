"""The integration tests' Kafka settings: the session's broker, a prefix of the test's own."""

from __future__ import annotations

import asyncio

import pytest

from kafka_io import KafkaSettings
from orchestrator.runtime.topics import ensure_topics


@pytest.fixture
def kafka(kafka_bootstrap: str, topic_prefix: str) -> KafkaSettings:
    """Settings on the test's topic prefix, with every Baton topic provisioned (3 partitions)."""
    settings = KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix.rstrip("."), partitions=3)
    asyncio.run(ensure_topics(settings))
    return settings
