"""The base of every step service: consume step commands, run a handler, publish step results.

(Over 400 lines: one class, the consume/run/answer/commit cycle, whose hooks subclasses such as
the llm service's flow control override; its bookkeeping is in steps/bookkeeping.py.)

A `StepService` is a FastStream Kafka subscriber on `Topics.commands(service)` (consumer group
`<prefix>-step-<service>`, e.g. `baton-step-fn`) that answers each `StepCommand` with a
`StepResult` on `Topics.results`, keyed by execution id. What it guarantees:

- At-least-once: a command's offset is committed only after its result is published. Commands
  run concurrently (a slow task must not hold up its partition, and a cancel must reach it), so
  offsets are committed per partition up to the oldest command still in flight.
- Idempotency: `task_id` is the key. A duplicate of a finished task re-publishes the remembered
  result (bounded LRU) instead of running again; a duplicate of a running task is dropped.
- Bad input never stops the service: a message that is not a `StepCommand` goes to the DLQ with
  the reason and the original bytes, and the partition moves on.
- Heartbeats every `heartbeat_seconds / 2` while a task runs; `TimeoutSeconds` bounds the run.
- Integration patterns: request-response (publish the output), `.sync` (the handler returns
  `Pending` and the service polls `handler.poll(job_id)` until the job finishes) and
  `.waitForTaskToken` (the handler hands the token on; the result arrives later with the token,
  so only a failure to hand it on is published here).
- `kind="cancel"` cancels the task if it runs here (best effort).

Run one with `async with StepService(...)`, `serve(...)` (adds `/metrics`), or `.app()` for FastStream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from faststream import FastStream
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.middlewares import AckPolicy
from prometheus_client import (
    CollectorRegistry,
    start_http_server,
)
from pydantic_core import to_json

from infra.stack import register_stack_info
from kafka_io import KafkaSettings
from kafka_io.faststream_security import broker_security
from kafka_io.payloads import PayloadStore, PayloadStoreError, open_payload_store
from schemas.base import decode, encode
from schemas.dlq import DeadLetter
from schemas.errors import BatonError
from schemas.payloads import PayloadError
from schemas.steps import StepCommand, StepResult
from steps.bookkeeping import StepMetrics, _Offsets, _Published, _Recent
from steps.sdk.handler import FunctionHandler, Handler, StepHandler, run_to_outcome
from steps.sdk.payloads import failed_for, offload_result, resolve_command

log = logging.getLogger(__name__)

DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024  # ASL's payload limit
COMMIT_INTERVAL_SECONDS = 0.1  # at most ten offset commits a second


class StepServiceError(BatonError):
    """The service cannot start (missing topics, bad security settings); the message says why."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: StepService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._service._partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._service._partitions_assigned(set(assigned))


class StepService:
    """A step service: `async with StepService("fn", handler, settings=...):` runs it."""

    def __init__(
        self,
        service: str,
        handler: Handler,
        *,
        settings: KafkaSettings | None = None,
        registry: CollectorRegistry | None = None,
        max_concurrency: int = 32,
        remember: int = 10_000,  # finished task ids kept for duplicates (also bounded to 64 MiB)
        drain_seconds: float = 10.0,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        payloads: PayloadStore | None = None,
    ) -> None:
        self.service = service
        self.handler = handler if isinstance(handler, StepHandler) else FunctionHandler(handler)
        self.settings = settings or KafkaSettings()
        self.topics = self.settings.topics
        # A registry per service, so several services (or tests) can share a process.
        self.registry = registry or CollectorRegistry()
        self.metrics = StepMetrics(self.registry)
        # Group ids are cluster-wide: the prefix keeps deployments sharing a cluster apart.
        self.group_id = f"{self.settings.topic_prefix}-step-{service}"
        self._drain_seconds = drain_seconds
        self._max_output_bytes = max_output_bytes
        # The claim check's store (docs/payloads.md): given, or BATON_PAYLOAD_STORE's (None: off).
        self.payloads = payloads if payloads is not None else open_payload_store()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._offsets = _Offsets()
        self._recent = _Recent(remember)
        self._cancelled = _Recent(remember)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._draining = False
        self._commit_wanted = asyncio.Event()
        self._commit_lock = asyncio.Lock()  # commits of a partition never overtake one another
        self._committer: asyncio.Task[None] | None = None
        self.broker = KafkaBroker(
            self.settings.bootstrap_servers,
            security=broker_security(self.settings),
            client_id=self.group_id,
            acks="all",
            enable_idempotence=True,  # producer retries never duplicate a result
            middlewares=[KafkaPrometheusMiddleware(registry=self.registry, app_name=self.group_id)],
            # The handler takes the raw record (see _raw_record): no dependency injection per
            # message, which FastStream would resolve on a worker thread, one thread hop each.
            apply_types=False,
            # "Received"/"Processed" for every command is noise at INFO and a cost on the hot path.
            log_level=logging.DEBUG,
        )
        self.subscriber = self.broker.subscriber(
            # Topics are provisioned by infra, never created by a service.
            Topic(self.topics.commands(service), declare=False),
            group_id=self.group_id,
            ack_policy=AckPolicy.MANUAL,  # we commit explicit offsets after publishing
            auto_offset_reset="earliest",  # a new group answers commands that already wait
            # Commands of an aborted orchestrator transaction never run (it will decide again).
            isolation_level="read_committed",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            listener=_Rebalance(self),
            decoder=_raw_record,
        )
        self.subscriber(self._on_message)

    async def __aenter__(self) -> StepService:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                       tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, check the topics exist, and start consuming."""
        try:
            await self._prepare()
            await self.broker.start()
        except BaseException:
            await self.broker.stop()
            raise
        await self._begin()

    async def stop(self) -> None:
        """Stop taking commands, let running tasks finish (up to `drain_seconds`), commit, close.

        Tasks still running after that are cancelled and their offsets stay uncommitted, so the
        commands are redelivered to the next owner of the partition. Calling it again does nothing.
        """
        if not self._draining:
            await self._drain()
            await self.broker.stop()

    def app(self) -> FastStream:
        """The service as a FastStream app, for `faststream run` (and `faststream docs` AsyncAPI)."""
        return FastStream(self.broker, on_startup=[self._prepare], after_startup=[self._begin],
                          on_shutdown=[self._drain])

    async def _prepare(self) -> None:
        await self._check_topics(await self.broker.connect())

    async def _begin(self) -> None:
        self._committer = asyncio.create_task(self._commit_loop())
        log.info("step service %r consuming %s as group %s", self.service,
                 self.topics.commands(self.service), self.group_id)

    async def _drain(self) -> None:
        self._draining = True
        running = list(self._running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=self._drain_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._committer is not None:
            self._committer.cancel()
            await asyncio.gather(self._committer, return_exceptions=True)
        await self._commit()
        await self.broker.stop()

    def extra_topics(self) -> list[str]:
        """Topics a particular service also needs (checked at start like its own)."""
        return []

    async def _check_topics(self, new_consumer: Callable[[], AIOKafkaConsumer]) -> None:
        # Before subscribing: a consumer would wait on a missing topic's metadata, logging errors.
        probe = new_consumer()
        await probe.start()
        try:
            existing = await probe.topics()
        finally:
            await probe.stop()
        needed = [self.topics.commands(self.service), self.topics.results, self.topics.dlq,
                  *self.extra_topics()]
        missing = [name for name in needed if name not in existing]
        if missing:
            raise StepServiceError(
                f"step service {self.service!r}: topic(s) {', '.join(missing)} do not exist on "
                f"{self.settings.kafka_bootstrap}; provision them first (see infra/)")

    # --- consuming -------------------------------------------------------------------------------

    async def _on_message(self, record: ConsumerRecord[Any, Any]) -> None:
        if self._draining:
            return  # not tracked, so not committed: redelivered after the restart
        tp = TopicPartition(record.topic, record.partition)
        # Tracked until done: if a publish below fails, the commit point stays before this record.
        self._offsets.start(tp, record.offset)
        try:
            command = decode(StepCommand, record.value)
        except ValueError as exc:
            await self._dead_letter(record, f"not a StepCommand: {exc}")
            self._done(tp, record.offset)
            return
        self.metrics.commands.labels(self.service, command.kind).inc()
        if command.kind == "cancel":
            self._cancel(command.task_id)
            self._done(tp, record.offset)
            return
        if command.task_id in self._recent or command.task_id in self._running \
                or command.task_id in self._cancelled:
            await self._answer_duplicate(command)
            self._done(tp, record.offset)
            return
        await self._slots.acquire()
        if self._draining:
            self._slots.release()
            return
        task = asyncio.create_task(self._execute(command, tp, record.offset),
                                   name=f"{self.service}:{command.task_id}")
        self._running[command.task_id] = task
        # A callback, not `finally`: a task cancelled before it first runs never enters its body.
        task.add_done_callback(lambda done: self._task_ended(done, command.task_id, tp, record.offset))

    def _task_ended(self, task: asyncio.Task[None], task_id: str, tp: TopicPartition, offset: int) -> None:
        self._running.pop(task_id, None)
        self._slots.release()
        if task.cancelled() and task_id in self._cancelled:
            self._done(tp, offset)  # cancelled on request: nothing left to do for it
        # Cancelled at shutdown: the offset stays uncommitted and the command is redelivered.

    async def _answer_duplicate(self, command: StepCommand) -> None:
        self.metrics.results.labels(self.service, "duplicate").inc()
        if command.task_id in self._recent:
            remembered = self._recent.get(command.task_id)
            if remembered is not None:
                await self._send(self.topics.results, remembered.value, remembered.key)
        # A running duplicate publishes when it finishes; a cancelled one never runs again.

    def _cancel(self, task_id: str) -> None:
        self._cancelled.put(task_id, None)
        task = self._running.get(task_id)
        if task is not None:
            task.cancel()

    async def _partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Before records of `assigned` arrive (a subclass may read what their last owner committed)."""

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before the group moves `revoked` elsewhere (a subclass may first settle its tasks there)."""
        await self._commit()  # last chance to commit what finished here
        self._offsets.forget(revoked)

    def _done(self, tp: TopicPartition, offset: int) -> None:
        self._offsets.finish(tp, offset)
        self._commit_wanted.set()

    # --- running a task --------------------------------------------------------------------------

    async def _execute(self, command: StepCommand, tp: TopicPartition, offset: int) -> None:
        started = time.monotonic()
        self.metrics.running.labels(self.service).inc()
        outcome = "cancelled"
        try:
            result = await self._outcome(command, started)
            published: _Published | None = None
            if result is not None:
                result, value = self._encoded(await offload_result(self.payloads, result))
                published = _Published(result.execution_id.encode(), value)
                await self._send(self.topics.results, published.value, published.key)
            outcome = "handed_off" if result is None else result.kind
            self._recent.put(command.task_id, published)
            self._done(tp, offset)
        except Exception:  # publishing failed: leave the offset uncommitted (redelivered later)
            log.exception("step %s: could not publish the result of task %s", self.service, command.task_id)
            outcome = "unpublished"
        finally:
            self.metrics.running.labels(self.service).dec()
            self.metrics.results.labels(self.service, outcome).inc()
            self.metrics.duration.labels(self.service, outcome).observe(time.monotonic() - started)

    async def _outcome(self, command: StepCommand, started: float) -> StepResult | None:
        """Run the handler (and poll a `.sync` job) to a result; None when a callback took over."""
        try:
            command = await resolve_command(self.payloads, command, self.service)
        except (PayloadError, PayloadStoreError) as exc:
            return failed_for(command, exc)
        heartbeat = self._start_heartbeat(command)
        try:
            outcome = await run_to_outcome(self.handler, command)
        finally:
            if heartbeat is not None:
                # Awaited, so no beat is sent after the final result (same key, so same order).
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
        if outcome.handed_off:
            return None  # the result comes later, with the task token
        if not outcome.succeeded:
            return StepResult(execution_id=command.execution_id, kind="failed", task_id=command.task_id,
                              error=outcome.error, cause=outcome.cause, result_key=command.result_key,
                              metadata=outcome.metadata)
        return StepResult(execution_id=command.execution_id, kind="succeeded", task_id=command.task_id,
                          output=outcome.output, metadata=outcome.metadata, result_key=command.result_key)

    def _encoded(self, result: StepResult) -> tuple[StepResult, bytes]:
        """The result as published; one too big (or not JSON) fails the task, as ASL's limit does."""
        try:
            value = encode(result)
        except Exception as exc:  # output that is not JSON-serialisable
            failed = result.model_copy(update={"kind": "failed", "output": None, "error": "States.Runtime",
                                               "cause": f"the task output is not JSON: {exc}"})
            return failed, encode(failed)
        if len(value) <= self._max_output_bytes:
            return result, value
        # The quota is on the output, measured as compact JSON the way the decider (and so the
        # local runner) measures it, not on the record around it.
        size = len(to_json(result.output))
        if size <= self._max_output_bytes:
            return result, value
        failed = result.model_copy(update={
            "kind": "failed", "output": None, "error": "States.DataLimitExceeded",
            "cause": f"the task result is {size} bytes, over the limit of {self._max_output_bytes} bytes"})
        return failed, encode(failed)

    def _start_heartbeat(self, command: StepCommand) -> asyncio.Task[None] | None:
        if not command.heartbeat_seconds or command.heartbeat_seconds <= 0:
            return None
        return asyncio.create_task(self._heartbeat(command, command.heartbeat_seconds / 2))

    async def _heartbeat(self, command: StepCommand, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            beat = StepResult(execution_id=command.execution_id, kind="heartbeat", task_id=command.task_id,
                              result_key=command.result_key)
            try:
                await self._send(self.topics.results, encode(beat), command.execution_id.encode())
            except KafkaError:  # a missed beat is survivable; the next one may get through
                log.warning("step %s: heartbeat of task %s not published", self.service, command.task_id)

    # --- producing and committing ----------------------------------------------------------------

    async def _send(self, topic: str, value: bytes, key: bytes | None) -> None:
        await self.broker.publish(value, topic, key=key)

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        key: bytes | None = record.key
        letter = DeadLetter(
            execution_id=_text_or_empty(key), reason=reason, source_topic=record.topic,
            partition=record.partition, offset=record.offset,
            key_b64=base64.b64encode(key).decode() if key is not None else None,
            value_b64=base64.b64encode(record.value).decode() if record.value is not None else None)
        await self._send(self.topics.dlq, encode(letter), key)
        self.metrics.dead_letters.labels(f"step-{self.service}").inc()
        log.warning("step %s: %s[%d]@%d sent to the DLQ: %s", self.service, record.topic,
                    record.partition, record.offset, reason[:200])

    async def _commit_loop(self) -> None:
        # Commits are coalesced: the tasks finishing within an interval cost one commit request.
        # Committing later only means more redelivered duplicates after a crash (answered from
        # the task-id memory or run again, as at-least-once allows); a revoke or stop commits now.
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit()
            await asyncio.sleep(COMMIT_INTERVAL_SECONDS)

    async def _commit(self) -> None:
        async with self._commit_lock:
            consumer = self.subscriber.consumer
            if consumer is None:
                return
            assigned = consumer.assignment()
            offsets = {tp: mark for tp, mark in self._offsets.committable().items() if tp in assigned}
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # e.g. a rebalance in progress: the next commit catches up
                log.warning("step %s: offset commit failed: %s", self.service, exc)
                return
            self._offsets.committed(offsets)


async def _raw_record(message: KafkaMessage) -> ConsumerRecord[Any, Any]:
    """The subscriber's decoder: the handler gets the aiokafka record itself (offsets included)."""
    record = message.raw_message
    assert isinstance(record, ConsumerRecord)  # a single-message subscriber
    return record


def _text_or_empty(key: bytes | None) -> str:
    try:
        return key.decode() if key is not None else ""
    except UnicodeDecodeError:
        return ""


async def serve(service: StepService, stop: asyncio.Event, metrics_port: int | None = None,
                metrics_host: str = "0.0.0.0") -> None:
    """Run a step service until `stop` is set, with `/metrics` on `metrics_port` (if given)."""
    server = None
    if metrics_port is not None:
        with contextlib.suppress(ValueError):  # served before, with the same registry: already there
            register_stack_info(service.registry, service.settings)  # which stack this is (infra.stack)
        server = start_http_server(metrics_port, metrics_host, registry=service.registry)[0]
    try:
        async with service:
            await stop.wait()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
