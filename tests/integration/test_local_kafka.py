"""The local broker really does Kafka transactions: read_committed hides aborted writes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.local_kafka import ensure_up, stop

SCENARIO_TIMEOUT_S = 60.0
COMMITTED = [b"c0", b"c1", b"c2"]
ABORTED = [b"a0", b"a1", b"a2"]
LAST = b"c3"  # committed after the aborted transaction: readers stop once they see it


def test_read_committed_sees_committed_and_not_aborted(kafka_bootstrap: str,
                                                      topic_prefix: str) -> None:
    topic = f"{topic_prefix}tx"
    asyncio.run(asyncio.wait_for(_scenario(kafka_bootstrap, topic), SCENARIO_TIMEOUT_S))


async def _scenario(bootstrap: str, topic: str) -> None:
    await _create_topic(bootstrap, topic)
    try:
        await _produce_committed_aborted_committed(bootstrap, topic)
        committed_view = await _read_until_last(bootstrap, topic, "read_committed")
        assert committed_view == [*COMMITTED, LAST]
        # Control: the aborted records were written; the isolation level is what hides them.
        uncommitted_view = await _read_until_last(bootstrap, topic, "read_uncommitted")
        assert uncommitted_view == [*COMMITTED, *ABORTED, LAST]
    finally:
        await _delete_topic(bootstrap, topic)


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        response: Any = await admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1)])
        errors = [(name, code) for name, code, *_ in response.topic_errors if code != 0]
        assert not errors, f"create_topics failed: {errors}"
    finally:
        await admin.close()


async def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def _produce_committed_aborted_committed(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                transactional_id=f"{topic}.producer", request_timeout_ms=10_000)
    await producer.start()
    try:
        async with producer.transaction():
            for value in COMMITTED:
                await producer.send_and_wait(topic, value, key=b"execution-1")

        await producer.begin_transaction()
        for value in ABORTED:
            await producer.send_and_wait(topic, value, key=b"execution-1")
        await producer.abort_transaction()

        async with producer.transaction():
            await producer.send_and_wait(topic, LAST, key=b"execution-1")
    finally:
        await producer.stop()


async def _read_until_last(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    """Values of partition 0 from the beginning until LAST (bounded by the scenario timeout)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation_level,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        seen: list[bytes] = []
        while LAST not in seen:
            batches = await consumer.getmany(timeout_ms=500)
            seen += [record.value for records in batches.values() for record in records
                     if record.value is not None]
        return seen
    finally:
        await consumer.stop()


@pytest.mark.skipif(bool(os.environ.get("BATON_KAFKA_BOOTSTRAP")),
                    reason="an external cluster is not managed by infra.local_kafka")
def test_ensure_up_reuses_the_running_broker(kafka_bootstrap: str) -> None:
    again = ensure_up(timeout=30)
    assert again.bootstrap == kafka_bootstrap
    assert not again.started_here
    stop(again)  # a no-op for a broker this call did not start
    assert ensure_up(timeout=30).bootstrap == kafka_bootstrap
