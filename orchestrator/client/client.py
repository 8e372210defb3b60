"""`BatonClient`: start, stop and redrive executions, and wait for their end, over Kafka.

Requests go to the start topic keyed by the execution id, through one producer the client opens
and closes (`async with BatonClient(settings) as client:`). By default the producer is idempotent
with `orchestrator.quotas.start_producer_options` (a start may carry a definition and an input
each at its quota); a caller that publishes many starts fast (the benches) passes its own
`producer_options` (linger, batch size) and starts with `acked=False`, then `flush()`.

Inputs and definitions are checked against `Quotas` before anything is published
(`QuotaExceeded`), as are execution names (`InvalidName`) and, for a start by name, that the
registry knows the state machine (`StateMachineNotFound`).

With a payload store (BATON_PAYLOAD_STORE, docs/payloads.md) an input's parts over the offload
threshold are stored there and the start carries references: the input may then be as large as
the offloaded limit (BATON_MAX_OFFLOADED_PAYLOAD) and the record stays small.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from kafka_io import KafkaSettings, new_admin, new_consumer, new_producer, topic_partitions
from kafka_io.payloads import PayloadStore, open_payload_store
from orchestrator.asl.budget import BudgetError, parse_budget
from orchestrator.quotas import check_definition, check_payload, payload_bytes, start_producer_options
from orchestrator.settings import OrchestratorSettings, Quotas
from schemas.base import Envelope, decode, encode
from schemas.errors import BatonError
from schemas.executions import (
    ExecutionStatus,
    RedriveExecution,
    StartExecution,
    StopExecution,
    execution_id_for,
)

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
NAME_MAX = 80  # Step Functions' limit on execution names
NAME_SYMBOLS = '<>{}[]?*"#%\\^|~`$&,;:/'  # Step Functions' rule; ":" would also split the id


def input_quotas(quotas: Quotas, offloaded_limit: int | None) -> Quotas:
    """The quotas for an execution input: with a payload store (its `offloaded_limit`) the input's
    large parts travel as references, so it may be as large as that (the decider applies the same
    once the orchestrator has the store); without one, `quotas` as they are."""
    if offloaded_limit is None:
        return quotas
    return quotas.model_copy(update={"max_payload_bytes": max(quotas.max_payload_bytes, offloaded_limit)})


class InvalidName(BatonError, ValueError):
    """An execution name Step Functions would refuse."""


class InvalidBudget(BatonError, ValueError):
    """A budget that is not {"MaxTokens": whole number >= 0, "MaxCost": USD >= 0}."""


class StateMachineNotFound(BatonError):
    """A start naming no registered state machine, version or alias (the registry's message)."""


class WaitTimedOut(BatonError, TimeoutError):
    """The execution did not end within the wait; it may still be running."""

    def __init__(self, execution_id: str, timeout: float) -> None:
        super().__init__(f"{execution_id} did not end within {timeout:g}s; it may still be running")
        self.execution_id, self.timeout = execution_id, timeout


class NoOrchestrator(BatonError):
    """Nothing consumes the start topic: no orchestrator is in the orchestrators' consumer group."""

    def __init__(self, execution_id: str, settings: KafkaSettings, group_id: str, seconds: float) -> None:
        super().__init__(f"no orchestrator consumes {settings.topics.start} at {settings.kafka_bootstrap} (consumer "
                         f"group {group_id} had no members for {seconds:g}s): start one (`baton orchestrator`, or "
                         f"`baton dev`); {execution_id} is published and runs once one does")
        self.execution_id = execution_id


def valid_name(name: str) -> bool:
    """Whether Step Functions would accept `name` as an execution name."""
    return 0 < len(name) <= NAME_MAX and not any(c.isspace() or c in NAME_SYMBOLS for c in name)


class Producer(Protocol):
    """What the client needs of a Kafka producer (aiokafka's `AIOKafkaProducer` is one)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, *, key: bytes) -> Any: ...

    async def send_and_wait(self, topic: str, value: bytes, *, key: bytes) -> Any: ...

    async def flush(self) -> None: ...


class BatonClient:
    """Start, stop and redrive executions; an async context manager over one producer."""

    def __init__(self, settings: KafkaSettings, *, quotas: Quotas | None = None, idempotent: bool = True,
                 producer_options: Mapping[str, Any] | None = None, producer: Producer | None = None,
                 payloads: PayloadStore | None = None) -> None:
        """`producer`: another transport for the records (`orchestrator.client.testing`'s
        in-memory one in unit tests); by default an aiokafka producer on `settings`. `payloads`:
        where a large input's parts go; by default the store BATON_PAYLOAD_STORE names, if any."""
        self.settings = settings
        self.quotas = quotas if quotas is not None else Quotas()
        self._own_payloads = payloads is None
        self.payloads = payloads if payloads is not None else open_payload_store()
        options = start_producer_options(self.quotas) if producer_options is None else dict(producer_options)
        self._check_topics = producer is None
        self._producer: Producer = producer if producer is not None else new_producer(
            settings, idempotent=idempotent, **options)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> None:
        # Checked first: a send to a missing topic would wait for its metadata until a timeout.
        if self._check_topics:
            await topic_partitions(self.settings, [self.settings.topics.start])
        await self._producer.start()

    async def close(self) -> None:
        try:
            await self._producer.stop()
        finally:
            if self._own_payloads and self.payloads is not None:
                self.payloads.close()

    # ------------------------------------------------------------ requests

    def start_request(self, state_machine: str = "inline", *, definition: dict[str, Any] | None = None,
                      input: Any = None, name: str | None = None, budget: Any = None) -> StartExecution:
        """The start record, checked against the quotas, the naming rule and the budget's form
        (nothing is sent). `budget`: {"MaxTokens", "MaxCost"}, tightening the definition's."""
        if budget is not None:
            try:
                parse_budget(budget)
            except BudgetError as exc:
                raise InvalidBudget(f"budget: {exc}") from None
        if definition is not None:
            check_definition(definition, self.quotas)
        execution_input = {} if input is None else input
        check_payload(execution_input, self.input_quotas)
        name = name if name is not None else str(uuid.uuid4())
        if not valid_name(name):
            raise InvalidName(f"name must be 1 to {NAME_MAX} characters, without whitespace or any of {NAME_SYMBOLS}")
        return StartExecution(execution_id=execution_id_for(state_machine, name), state_machine=state_machine,
                              definition=definition, name=name, input=execution_input, budget=budget)

    async def start(self, state_machine: str = "inline", *, definition: dict[str, Any] | None = None,
                    input: Any = None, name: str | None = None, check_registered: bool = True,
                    acked: bool = True, budget: Any = None) -> str:
        """Start an execution of `definition` (inline) or of the registered `state_machine` (a name,
        `name:version` or `name:alias`); return its execution id. The same name starts it once.

        `acked=False` returns once the record is queued in the producer (see `flush`)."""
        request = self.start_request(state_machine, definition=definition, input=input, name=name, budget=budget)
        if definition is None and check_registered:
            await self.check_registered(state_machine, request.name)
        request = await self.offload_input(request)
        await self.send(request, acked=acked)
        return request.execution_id

    @property
    def input_quotas(self) -> Quotas:
        """The quotas an execution input is checked against here (`input_quotas`)."""
        return input_quotas(self.quotas, self.payloads.limit if self.payloads is not None else None)

    async def offload_input(self, request: StartExecution) -> StartExecution:
        """The start with its input's parts over the offload threshold in the payload store (the
        claim check), or unchanged without a store or when the input is small."""
        if self.payloads is None or payload_bytes(request.input) <= self.payloads.threshold:
            return request
        offloaded = await asyncio.to_thread(self.payloads.offload, request.input, request.execution_id)
        return request.model_copy(update={"input": offloaded})

    async def stop(self, execution_id: str, *, error: str | None = None, cause: str | None = None) -> str:
        """Ask the orchestrator to abort a running execution."""
        await self.send(StopExecution(execution_id=execution_id, error=error, cause=cause))
        return execution_id

    async def redrive(self, execution_id: str) -> str:
        """Restart a FAILED, TIMED_OUT or ABORTED execution from the states that did not succeed."""
        await self.send(RedriveExecution(execution_id=execution_id))
        return execution_id

    async def check_registered(self, reference: str, execution_name: str) -> None:
        """Refuse a start naming no registered state machine, version or alias before publishing
        it (the orchestrator would only dead-letter it)."""
        from orchestrator.registry.errors import RegistryError
        from orchestrator.registry.model import resolve
        from orchestrator.registry.store import read_registry

        try:
            resolve(await read_registry(self.settings), reference, execution_name)
        except RegistryError as exc:
            raise StateMachineNotFound(str(exc)) from None

    async def send(self, request: StartExecution | StopExecution | RedriveExecution, *,
                   acked: bool = True) -> RecordMetadata | None:
        """Publish a request on the start topic, keyed by its execution id."""
        return await self.publish(self.settings.topics.start, request, acked=acked)

    async def publish(self, topic: str, record: Envelope, *, acked: bool = True) -> RecordMetadata | None:
        """Publish any Baton record keyed by its execution id (a task decision, for one)."""
        key = record.execution_id.encode()
        if acked:
            metadata: RecordMetadata = await self._producer.send_and_wait(topic, encode(record), key=key)
            return metadata
        await self._producer.send(topic, encode(record), key=key)
        return None

    async def flush(self) -> None:
        """Send every queued record (`acked=False`) and wait for the broker's acknowledgements."""
        await self._producer.flush()

    # ------------------------------------------------------------ waiting

    async def start_and_wait(self, state_machine: str = "inline", *, definition: dict[str, Any] | None = None,
                             input: Any = None, name: str | None = None, timeout: float = 300.0,
                             check_registered: bool = True,
                             on_started: Callable[[str], None] = lambda execution_id: None,
                             orchestrator_grace: float = 5.0, budget: Any = None) -> ExecutionStatus:
        """Start an execution and return its terminal status from the events topic (`WaitTimedOut`
        after `timeout` seconds). `on_started` is called with the execution id once it is published.
        `NoOrchestrator` when no orchestrator is in the orchestrators' consumer group within
        `orchestrator_grace` seconds (nothing would end the wait)."""
        request = self.start_request(state_machine, definition=definition, input=input, name=name, budget=budget)
        if definition is None and check_registered:
            await self.check_registered(state_machine, request.name)
        request = await self.offload_input(request)
        consumer = new_consumer(self.settings)
        try:
            await consumer.start()
            topic = self.settings.topics.events
            partitions = [TopicPartition(topic, p) for p in (await topic_partitions(self.settings, [topic]))[topic]]
            consumer.assign(partitions)
            # Fix the positions at the end (read_committed: the last stable offsets) before
            # publishing, so a status written right after the start is read, not skipped.
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)
            await self.send(request)
            on_started(request.execution_id)
            waiting = asyncio.create_task(_terminal_status(consumer, request.execution_id))
            watching = asyncio.create_task(self._require_orchestrator(request.execution_id, min(orchestrator_grace,
                                                                                               timeout)))
            try:
                async with asyncio.timeout(timeout):
                    done, _ = await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_EXCEPTION)
                    if waiting not in done:  # the watch raised: nothing will ever end this wait
                        watching.result()
                    return await waiting
            except TimeoutError:
                raise WaitTimedOut(request.execution_id, timeout) from None
            finally:
                for task in (waiting, watching):
                    task.cancel()
                await asyncio.gather(waiting, watching, return_exceptions=True)
        finally:
            await consumer.stop()

    async def _require_orchestrator(self, execution_id: str, grace: float) -> None:
        """Return once the orchestrators' consumer group has a member (one is consuming the start);
        NoOrchestrator when it had none for `grace` seconds. A failure to ask says nothing."""
        group_id = OrchestratorSettings().group_id or f"{self.settings.topic_prefix}-orchestrator"  # BATON_GROUP_ID
        began = asyncio.get_running_loop().time()
        while True:
            members = await group_members(self.settings, group_id)
            if members is None or members > 0:
                return
            waited = asyncio.get_running_loop().time() - began
            if waited >= grace:
                raise NoOrchestrator(execution_id, self.settings, group_id, grace)
            await asyncio.sleep(min(1.0, grace - waited))


async def _terminal_status(consumer: AIOKafkaConsumer, execution_id: str) -> ExecutionStatus:
    while True:
        batches = await consumer.getmany(timeout_ms=1000)
        for messages in batches.values():
            for message in messages:
                try:
                    status = decode(ExecutionStatus, message.value)
                except ValueError:
                    continue  # not ours to judge: the orchestrator dead-letters bad events
                if status.execution_id == execution_id and status.status in TERMINAL_STATUSES:
                    return status


async def group_members(settings: KafkaSettings, group_id: str) -> int | None:
    """How many members the consumer group has now (0: none, or no such group); None when the
    broker could not say."""
    admin = new_admin(settings)
    try:
        await admin.start()
        # One group per call: aiokafka misreads a response that describes several.
        response = (await admin.describe_consumer_groups([group_id]))[0]
        groups = response.to_object()["groups"]
        return len(groups[0]["members"]) if groups and groups[0]["error_code"] == 0 else None
    except KafkaError:
        return None
    finally:
        await admin.close()
