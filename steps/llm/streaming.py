"""Streamed tokens on `baton.streams`: the publisher a streamed LLM task uses, and the reader.

Publishing (`TokenStream`): the provider hands each piece of text to `feed`, which never blocks
generation; one sender task per streamed task publishes what has accumulated as a `StreamChunk`
(seq 0, 1, 2, ...), keyed by execution id, and waits for the broker's acknowledgement before it
sends the next. So chunks are ordered (one partition per key, one sender, an idempotent producer),
and when Kafka is slower than the model, pieces are coalesced into fewer, larger chunks instead of
queueing up. `close` sends what is left and then the chunk with `final: true`; the LLM service
calls it before it publishes the task's result, so a reader sees the whole stream before the
execution moves on. A failing stream never fails the task: the answer is in the result anyway.

Reading (`follow_stream`): assign the one partition the execution's key maps to, start a bit
before now (`since_seconds`), and yield that execution's chunks in order until a final one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from kafka_io import KafkaSettings, new_consumer, new_producer
from schemas.base import decode, encode
from schemas.streams import StreamChunk

log = logging.getLogger(__name__)

Send = Callable[[str, bytes, bytes], Awaitable[object]]  # (topic, value, key) -> ack


class TokenStream:
    """The ordered chunks of one task's answer (see the module docstring)."""

    def __init__(self, send: Send, topic: str, execution_id: str, task_id: str) -> None:
        self._send = send
        self._topic = topic
        self.execution_id = execution_id
        self.task_id = task_id
        self._key = execution_id.encode()
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._failed: BaseException | None = None
        self.seq = 0  # chunks sent so far (the next chunk's seq)
        self._sender = asyncio.create_task(self._run())

    @property
    def failed(self) -> bool:
        return self._failed is not None

    def feed(self, text: str) -> None:
        """Queue a piece of text (non-blocking)."""
        if text and self._failed is None:
            self._pending.append(text)
            self._wake.set()

    async def close(self) -> int:
        """Send what is left, then the final chunk; return the number of chunks sent (with the final).

        Also called when the task failed, so a reader is never left waiting for a final chunk.
        """
        self._closing = True
        self._wake.set()
        await asyncio.gather(self._sender, return_exceptions=True)
        if self._failed is None:
            await self._publish("", final=True)
        return self.seq

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                await self._publish(text, final=False)
                if self._failed is not None:
                    return
            if self._closing and not self._pending:
                return

    async def _publish(self, text: str, *, final: bool) -> None:
        chunk = StreamChunk(execution_id=self.execution_id, task_id=self.task_id, seq=self.seq, text=text,
                            final=final)
        try:
            await self._send(self._topic, encode(chunk), self._key)
        except Exception as exc:  # the stream is a convenience; the result carries the whole answer
            self._failed = exc
            log.warning("stream of task %s stopped at seq %d: %s", self.task_id, self.seq, exc)
            return
        self.seq += 1


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition Kafka's default partitioner (murmur2) puts a key in."""
    return int(DefaultPartitioner()(key, sorted(partitions), sorted(partitions)))


async def follow_stream(settings: KafkaSettings, execution_id: str, *, since_seconds: float = 3600.0,
                        all_tasks: bool = False, idle_timeout: float | None = None) -> AsyncIterator[StreamChunk]:
    """Yield the execution's stream chunks in order until a final chunk (or, with `all_tasks`,
    until `idle_timeout` passes with no chunk).

    Starts at chunks published `since_seconds` ago, so a reader that attaches late misses nothing.
    A task re-run after a crash starts again at seq 0: its chunks are yielded again (a reader sees
    the restart as seq going back to 0). Raises TimeoutError after `idle_timeout` seconds without a
    chunk when no final chunk ended the stream.
    """
    topic = settings.topics.streams
    key = execution_id.encode()
    tp = TopicPartition(topic, partition_for(key, await _partitions(settings, topic)))
    consumer = new_consumer(settings)
    await consumer.start()
    try:
        consumer.assign([tp])
        start_ms = int((time.time() - since_seconds) * 1000)
        offsets = await consumer.offsets_for_times({tp: start_ms})
        found = offsets.get(tp)
        if found is not None:
            consumer.seek(tp, found.offset)
        else:
            await consumer.seek_to_end(tp)  # nothing that recent: only what comes from now on
        last_seen = time.monotonic()
        seen: dict[str, int] = {}  # task id -> last seq yielded
        while True:
            batch = await consumer.getmany(tp, timeout_ms=500)
            records = batch.get(tp, [])
            if not records:
                if idle_timeout is not None and time.monotonic() - last_seen > idle_timeout:
                    if all_tasks and seen:
                        return
                    raise TimeoutError(f"no stream chunk of {execution_id} for {idle_timeout:g} s")
                continue
            last_seen = time.monotonic()
            for record in records:
                if record.key != key:
                    continue
                try:
                    chunk = decode(StreamChunk, record.value)
                except ValueError:
                    continue  # not a chunk: someone else's record on the topic
                previous = seen.get(chunk.task_id)
                if previous is not None and chunk.seq <= previous and chunk.seq != 0:
                    continue  # a duplicate delivery
                seen[chunk.task_id] = chunk.seq
                yield chunk
                if chunk.final and not all_tasks:
                    return
    finally:
        await consumer.stop()


async def _partitions(settings: KafkaSettings, topic: str) -> list[int]:
    """The topic's partitions (a producer is the public way to ask aiokafka for them)."""
    producer = new_producer(settings, idempotent=False)
    await producer.start()
    try:
        found = await asyncio.wait_for(producer.partitions_for(topic), timeout=15)
    except (KafkaError, TimeoutError):
        raise RuntimeError(f"topic {topic} does not exist or has no partitions (run `baton kafka topics`)") from None
    finally:
        await producer.stop()
    return sorted(found)
