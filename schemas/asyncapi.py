"""The AsyncAPI 3.0 document of Baton's topics, generated from the event models.

FastStream generates AsyncAPI from a broker's declared subscribers and publishers and their
pydantic payloads, so this module declares, on a broker that is never started, one subscriber
(topics Baton consumes) or one publisher (topics Baton produces for others to read) per topic.
Two things FastStream 0.7 cannot express are added to its output afterwards: the record key of
each topic (a Kafka message binding) and compaction (the channel binding's topicConfiguration).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from schemas.base import SCHEMA_VERSION
from schemas.dlq import DeadLetter
from schemas.executions import ExecutionRequest, ExecutionStatus, ExecutionSnapshot, HistoryRecord
from schemas.registry import StateMachineRecord
from schemas.review import ReviewDecision, ReviewRequest
from schemas.steps import StepCommand, StepResult
from schemas.streams import StreamChunk
from schemas.topics import STEP_SERVICES, Topics

ASYNCAPI_VERSION = "3.0.0"
DEFAULT_SERVICES: tuple[str, ...] = STEP_SERVICES
EXECUTION_KEY = "The execution id (UTF-8): every topic is keyed by it, so an execution's events keep their order."

Direction = Literal["receive", "send"]


@dataclass(frozen=True)
class Contract:
    """What one topic carries: its payload type, who publishes, and what the record key is.

    ``receive``: Baton consumes the topic (applications, reviewers or step services publish);
    ``send``: Baton produces it for others to read.
    """

    topic: str
    payload: Any  # a pydantic model, or an annotated union of models
    direction: Direction
    role: str
    key: str = EXECUTION_KEY
    compacted: bool = False


def contracts(topics: Topics = Topics(), services: tuple[str, ...] = DEFAULT_SERVICES) -> list[Contract]:
    """The contract of every topic of DESIGN.md, in the order of Topics.all_fixed(), then commands."""
    fixed = [
        Contract(topics.start, ExecutionRequest, "receive",
                 "Start, stop and redrive requests, published by applications (CLI, API); "
                 "the `kind` field tells them apart. Publishing a start twice starts one execution."),
        Contract(topics.results, StepResult, "receive",
                 "Step results from the step services: succeeded, failed, heartbeat, progress."),
        Contract(topics.review_requests, ReviewRequest, "send",
                 "Human-review requests: what a reviewer sees, with the task token to answer with."),
        Contract(topics.review_decisions, ReviewDecision, "receive",
                 "Reviewers' decisions (success, failure, heartbeat) carrying the task token."),
        Contract(topics.state, ExecutionSnapshot, "send",
                 "Compacted changelog of execution state: the latest snapshot per execution.",
                 compacted=True),
        Contract(topics.history, HistoryRecord, "send",
                 "Every history event of every execution, in order per execution."),
        Contract(topics.events, ExecutionStatus, "send",
                 "Execution status: one record when an execution starts and one when it ends."),
        Contract(topics.streams, StreamChunk, "send",
                 "Streamed LLM tokens of an execution, ordered by `seq`; a chunk with `final` ends a stream."),
        Contract(topics.dlq, DeadLetter, "send",
                 "Dead letters: records that could not be processed, with the reason and the original bytes.",
                 key="The original record's key, when it had one."),
        Contract(topics.statemachines, StateMachineRecord, "receive",
                 "Compacted registry of state machines (definitions, immutable versions, aliases); "
                 "every orchestrator and the API follow it.",
                 key="The state machine name.", compacted=True),
    ]
    commands = [
        Contract(topics.commands(service), StepCommand, "receive",
                 f"Step commands for the `{service}` step service; at-least-once, `task_id` is "
                 "the idempotency key.")
        for service in dict.fromkeys(services)
    ]
    return fixed + commands


def asyncapi_document(topics: Topics = Topics(), *, services: tuple[str, ...] = DEFAULT_SERVICES,
                      bootstrap: str = "127.0.0.1:9092") -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict) of every topic under ``topics.prefix``."""
    table = contracts(topics, services)
    broker = KafkaBroker(bootstrap, description="Apache Kafka: Baton's only infrastructure.")
    for contract in table:
        description = _description(contract)
        if contract.direction == "receive":
            broker.subscriber(contract.topic, title=contract.topic, description=description)(
                _handler(contract.payload))
        else:
            broker.publisher(contract.topic, title=contract.topic, description=description,
                             schema=contract.payload)
    spec = AsyncAPI(
        broker, title="Baton", version=_version(), schema_version=ASYNCAPI_VERSION,
        description=("Amazon States Language workflows for generative AI on Apache Kafka: the topics "
                     f"and their events. Every event is UTF-8 JSON with `schema_version` "
                     f"(now {SCHEMA_VERSION}), `id`, `execution_id` and `timestamp`."),
    ).to_specification()
    # Round-trip through JSON so the result holds plain JSON types only.
    document: dict[str, Any] = json.loads(spec.to_json())
    _add_kafka_bindings(document, table)
    return document


def _description(contract: Contract) -> str:
    # Only a docstring the class itself has: inherited ones describe the Envelope, not the event.
    model = contract.payload
    doc = model.__dict__.get("__doc__") if isinstance(model, type) and issubclass(model, BaseModel) else None
    return f"{contract.role} {' '.join(doc.split())}" if doc else contract.role


def _handler(payload: Any) -> Callable[[Any], Awaitable[None]]:
    """A subscriber whose signature carries the payload type; the broker never calls it."""

    async def handler(event: Any) -> None:
        raise RuntimeError("documentation-only subscriber")  # pragma: no cover

    # Real objects, not strings, so FastStream reads the type without evaluating anything.
    handler.__annotations__ = {"event": payload, "return": None}
    return handler


def _add_kafka_bindings(document: dict[str, Any], table: list[Contract]) -> None:
    """Add what FastStream cannot generate: record keys (message bindings) and compaction.

    Also lists channels and operations in the table's order (FastStream groups them by
    subscriber/publisher), so the document reads like DESIGN.md and diffs stay small.
    """
    channels: dict[str, Any] = document["channels"]
    messages: dict[str, Any] = document["components"]["messages"]
    for contract in table:
        channel = channels[contract.topic]
        if contract.compacted:
            kafka = channel.setdefault("bindings", {}).setdefault("kafka", {})
            kafka["topicConfiguration"] = {"cleanup.policy": ["compact"]}
        for ref in channel["messages"].values():
            message = messages[ref["$ref"].rsplit("/", 1)[-1]]
            # FastStream's default points at its own correlation_id header, which Baton does not
            # set: events are correlated by their key and `execution_id`.
            message.pop("correlationId", None)
            message["bindings"] = {"kafka": {"key": {"type": "string", "description": contract.key},
                                             "bindingVersion": "0.4.0"}}
    order = [contract.topic for contract in table]
    document["channels"] = {name: channels[name] for name in order}
    document["operations"] = {name: document["operations"][name] for name in order}


def _version() -> str:
    try:
        return metadata.version("baton")
    except metadata.PackageNotFoundError:
        return "0.0.0"
