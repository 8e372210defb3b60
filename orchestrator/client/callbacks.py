"""Task-token decisions (SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat) checked before they
are posted, and followed until the orchestrator has applied or refused them.

The orchestrator is the judge of a decision: it verifies the token's signature and that the task
is still awaited, and dead-letters a decision it refuses. Before this module a caller saw "202
accepted" for a forged or replayed token and had to read `baton.dlq` to learn otherwise. Now the
API (`orchestrator.api.tasks`) and `baton review` check first, with what they can see:

- the signature, with the orchestrators' secret (`OrchestratorSettings.token_secret`);
- the execution and the task, from the compacted state topic: the latest snapshot of the
  execution lists the tasks it awaits (the snapshot is committed in the same transaction as the
  command that handed the token out, so a genuine token's task is there before anyone holds it).

After posting, `OutcomeWatch` reads the orchestrator's own record of having consumed the decision:
the input positions it commits to the state topic in the same transaction as the decision's
effects (`orchestrator.runtime.service`, key `__baton_input_positions__`, one record per partition
number). Once the position of the decision's partition is past the decision's offset, the
decision was applied unless that same transaction dead-lettered it (a record in the DLQ naming
its topic, partition and offset). Within the wait neither: "accepted, not yet applied".
"""

from __future__ import annotations

import time
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from kafka_io import KafkaSettings, new_consumer, topic_partitions
from schemas.base import decode
from schemas.dlq import DeadLetter
from schemas.errors import BatonError
from schemas.executions import InputPositions
from schemas.tokens import InvalidToken, TokenSigner

CALLBACK_SUFFIX = ".waitForTaskToken"  # only callback tasks hand out tokens
Refusal = Literal["invalid_token", "unknown_execution", "not_waiting", "refused"]
Outcome = Literal["applied", "accepted"]
_POLL_MS = 100
# The orchestrator's dead-letter reasons (`Rejected` in orchestrator.runtime.service) for a decision.
_REASONS: dict[str, Refusal] = {"invalid_task_token": "invalid_token", "stale_task_token": "not_waiting",
                                "unknown_execution": "unknown_execution"}


class DecisionRefused(BatonError):
    """A decision that cannot apply; `kind` says why (the API's status), `str()` is one line."""

    def __init__(self, kind: Refusal, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def verify_token(token: str, secret: SecretStr) -> tuple[str, str]:
    """(execution id, task id) of a genuine token; DecisionRefused("invalid_token") otherwise."""
    try:
        return TokenSigner(secret.get_secret_value().encode()).verify(token.strip())
    except InvalidToken as exc:
        raise DecisionRefused("invalid_token", f"the task token is not valid: {exc} (forged, or signed with "
                                               "another BATON_TOKEN_SECRET than this one)") from None


def unknown_execution(execution_id: str) -> DecisionRefused:
    return DecisionRefused("unknown_execution", f"the task token names an execution this cluster does not know: "
                                                f"{execution_id}")


def not_waiting(execution_id: str) -> DecisionRefused:
    return DecisionRefused("not_waiting", f"the task is no longer waiting for a decision: it was decided, timed "
                                          f"out or its execution ended ({execution_id})")


# ------------------------------------------------------------ what a snapshot awaits


class _Task(BaseModel):
    model_config = ConfigDict(extra="ignore")
    resource: str = ""


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str = "RUNNING"
    tasks: dict[str, _Task] = {}


class _Snapshot(BaseModel):
    """Only what the checks need of an `ExecutionSnapshot`: the definition is skipped, not built."""

    model_config = ConfigDict(extra="ignore")
    state: _State


def awaited_callbacks(value: bytes) -> frozenset[str] | None:
    """The callback tasks a state-topic snapshot awaits (empty once the execution has ended);
    None for a record that is not a snapshot."""
    try:
        state = _Snapshot.model_validate_json(value).state
    except (ValidationError, ValueError):
        return None
    if state.status != "RUNNING":
        return frozenset()
    return frozenset(task_id for task_id, task in state.tasks.items() if task.resource.endswith(CALLBACK_SUFFIX))


def execution_partition(execution_id: str, partitions: list[int]) -> int:
    """The partition of an execution's records in the co-partitioned topics: the producers' default
    partitioner on the execution id, which keys the start request and every decision."""
    from orchestrator.registry.store import partition_for  # Kafka's murmur2 partitioner on a key

    return partition_for(execution_id, partitions)


async def awaited_tasks(settings: KafkaSettings, execution_id: str, timeout: float) -> frozenset[str] | None:
    """The callback tasks `execution_id` awaits, from its latest snapshot in the state topic read
    to its end (for the CLI; the API follows the topic instead). None: no snapshot names it."""
    topic = settings.topics.state
    tp = TopicPartition(topic, execution_partition(execution_id, (await topic_partitions(settings, [topic]))[topic]))
    consumer = _consumer(settings)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        deadline = time.monotonic() + timeout
        latest: frozenset[str] | None = None
        key = execution_id.encode()
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout:g} s")
            for record in (await consumer.getmany(tp, timeout_ms=500, max_records=5000)).get(tp, []):
                if record.key == key:
                    latest = None if record.value is None else awaited_callbacks(record.value)
        return latest
    finally:
        await consumer.stop()


# ------------------------------------------------------------ after posting


class OutcomeWatch:
    """Whether the orchestrator applied one posted decision. Enter it before publishing (it notes
    where the state and dead-letter topics end), then ask `outcome` with the record's position."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._committed = _consumer(settings)
        # read_uncommitted only to learn high watermarks: a dead letter of the transaction that
        # consumed the decision may still wait for its commit marker when the positions show.
        self._uncommitted = _consumer(settings, "read_uncommitted")
        self._state: dict[int, TopicPartition] = {}
        self._dlq: list[TopicPartition] = []
        self._from: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> OutcomeWatch:
        topics = self.settings.topics
        partitions = await topic_partitions(self.settings, [topics.state, topics.dlq])
        self._state = {p: TopicPartition(topics.state, p) for p in partitions[topics.state]}
        self._dlq = [TopicPartition(topics.dlq, p) for p in partitions[topics.dlq]]
        try:
            await self._committed.start()
            await self._uncommitted.start()
            self._from = await self._committed.end_offsets([*self._state.values(), *self._dlq])
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for consumer in (self._committed, self._uncommitted):
            await consumer.stop()

    async def outcome(self, partition: int, offset: int, timeout: float) -> Outcome:
        """"applied" once the orchestrator has consumed the decision at (`partition`, `offset`) of
        the decisions topic without refusing it; "accepted" if the wait ran out first;
        DecisionRefused when it was dead-lettered."""
        decisions = self.settings.topics.review_decisions
        state = self._state[partition]
        consumer = self._committed
        consumer.assign([state, *self._dlq])
        for tp in (state, *self._dlq):
            consumer.seek(tp, self._from[tp])
        positions_key = _positions_key()
        deadline = time.monotonic() + timeout
        dlq_end: dict[TopicPartition, int] | None = None
        while True:
            batches = await consumer.getmany(timeout_ms=_POLL_MS)
            for tp, records in batches.items():
                for record in records:
                    if tp == state and record.key == positions_key:
                        if dlq_end is None and _consumed(record.value, decisions, offset):
                            dlq_end = await self._uncommitted.end_offsets(self._dlq)
                    elif tp != state:
                        _check_dead_letter(record.value, decisions, partition, offset)
            if dlq_end is not None and all([await consumer.position(tp) >= end for tp, end in dlq_end.items()]):
                return "applied"
            if time.monotonic() >= deadline:
                return "accepted"


def _positions_key() -> bytes:
    from orchestrator.runtime.engine import OFFSETS_KEY  # imported late: the orchestrator's engine comes with it

    return OFFSETS_KEY.encode()


def _consumed(value: bytes | None, topic: str, offset: int) -> bool:
    try:
        positions = decode(InputPositions, value)
    except ValueError:
        return False
    return positions.offsets.get(topic, -1) > offset


def _check_dead_letter(value: bytes | None, topic: str, partition: int, offset: int) -> None:
    try:
        letter = decode(DeadLetter, value)
    except ValueError:
        return
    if (letter.source_topic, letter.partition, letter.offset) == (topic, partition, offset):
        reason, _, detail = letter.reason.partition(":")
        kind = _REASONS.get(reason, "refused")
        if kind == "not_waiting":
            raise not_waiting(letter.execution_id)
        raise DecisionRefused(kind, f"the orchestrator refused the decision: {reason}: {detail.strip()}")


def _consumer(settings: KafkaSettings, isolation_level: str = "read_committed") -> AIOKafkaConsumer:
    return new_consumer(settings, isolation_level=isolation_level, auto_offset_reset="earliest")


def describe_outcome(outcome: Outcome, wait: float) -> str:
    return "applied" if outcome == "applied" else f"accepted, not yet applied after {wait:g} s"

