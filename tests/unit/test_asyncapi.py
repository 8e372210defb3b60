"""The AsyncAPI document: every topic, with its event model's exact JSON schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, TypeAdapter

from orchestrator.cli.kafka import asyncapi
from schemas.asyncapi import Contract, asyncapi_document, contracts
from schemas.base import SCHEMA_VERSION
from schemas.dlq import DeadLetter
from schemas.executions import ExecutionSnapshot, ExecutionStatus, HistoryRecord
from schemas.review import ReviewDecision, ReviewRequest
from schemas.steps import StepCommand, StepResult
from schemas.streams import StreamChunk
from schemas.topics import Topics

TOPICS = Topics("acme")
SERVICES = ("fn", "llm", "http", "review", "retrieval", "mcp")
REF = "#/components/schemas/{model}"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document(TOPICS)


def payload_of(document: dict[str, Any], topic: str) -> dict[str, Any]:
    """The payload schema of the topic's (only) message, with its $ref resolved."""
    (ref,) = document["channels"][topic]["messages"].values()
    message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
    return resolve(document, message["payload"])


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in schema:
        return schema
    prefix = "#/components/schemas/"
    assert schema["$ref"].startswith(prefix)
    resolved: dict[str, Any] = document["components"]["schemas"][schema["$ref"][len(prefix):]]
    return resolved


def test_every_topic_is_a_channel_in_design_order(document: dict[str, Any]) -> None:
    expected = TOPICS.all_fixed() + [TOPICS.commands(s) for s in SERVICES]

    assert list(document["channels"]) == expected
    assert [c["address"] for c in document["channels"].values()] == expected
    assert list(document["operations"]) == expected
    assert document["asyncapi"] == "3.0.0" and document["info"]["title"] == "Baton"


@pytest.mark.parametrize("topic, model", [
    (TOPICS.results, StepResult),
    (TOPICS.review_requests, ReviewRequest),
    (TOPICS.review_decisions, ReviewDecision),
    (TOPICS.state, ExecutionSnapshot),
    (TOPICS.history, HistoryRecord),
    (TOPICS.events, ExecutionStatus),
    (TOPICS.streams, StreamChunk),
    (TOPICS.dlq, DeadLetter),
    *[(TOPICS.commands(s), StepCommand) for s in SERVICES],
])
def test_payload_is_the_event_models_schema(document: dict[str, Any], topic: str,
                                            model: type[BaseModel]) -> None:
    payload = payload_of(document, topic)

    assert payload == model.model_json_schema()
    assert payload["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert {"id", "execution_id", "timestamp"} <= set(payload["required"]) | set(payload["properties"])


def test_start_topic_carries_the_discriminated_request_union(document: dict[str, Any]) -> None:
    payload = payload_of(document, TOPICS.start)
    expected = TypeAdapter(contracts(TOPICS)[0].payload).json_schema(ref_template=REF)

    assert payload["oneOf"] == expected["oneOf"]
    assert payload["discriminator"] == "kind"  # AsyncAPI's form of pydantic's discriminator
    kinds = []
    for member in payload["oneOf"]:
        schema = resolve(document, member)
        assert schema == expected["$defs"][schema["title"]]
        assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
        kinds.append(schema["properties"]["kind"]["const"])
    assert kinds == ["start", "stop", "redrive"]


def test_state_machine_registry_is_documented_as_an_object(document: dict[str, Any]) -> None:
    # No event model for the registry yet (see schemas/asyncapi.py): a free-form JSON object.
    assert payload_of(document, TOPICS.statemachines)["type"] == "object"


def test_directions_keys_and_compaction(document: dict[str, Any]) -> None:
    actions = {name: op["action"] for name, op in document["operations"].items()}
    for topic in (TOPICS.start, TOPICS.results, TOPICS.review_decisions, TOPICS.commands("fn")):
        assert actions[topic] == "receive"
    for topic in (TOPICS.review_requests, TOPICS.state, TOPICS.history, TOPICS.events,
                  TOPICS.streams, TOPICS.dlq):
        assert actions[topic] == "send"

    for topic, channel in document["channels"].items():
        config = channel["bindings"]["kafka"].get("topicConfiguration")
        assert (config == {"cleanup.policy": ["compact"]}) == (topic in TOPICS.compacted)
    for message in document["components"]["messages"].values():
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert "correlationId" not in message


def test_descriptions_come_from_the_models(document: dict[str, Any]) -> None:
    channels = document["channels"]
    assert "A task's outcome or sign of life" in channels[TOPICS.results]["description"]
    assert "Publishing it twice" in document["components"]["schemas"]["StartExecution"]["description"]
    # A model without a docstring does not inherit the Envelope's.
    assert "Fields common to all events" not in channels[TOPICS.streams]["description"]
    for channel in channels.values():
        assert channel["description"]


def test_services_and_server_are_configurable() -> None:
    document = asyncapi_document(Topics("x"), services=("fn", "summarise"), bootstrap="kafka:9092")

    assert Topics("x").commands("summarise") in document["channels"]
    assert Topics("x").commands("llm") not in document["channels"]
    assert [s["host"] for s in document["servers"].values()] == ["kafka:9092"]
    json.dumps(document)  # plain JSON types only


def test_contract_table_covers_topics() -> None:
    table = contracts(TOPICS, SERVICES)
    assert all(isinstance(c, Contract) for c in table)
    assert [c.topic for c in table] == TOPICS.all_fixed() + [TOPICS.commands(s) for s in SERVICES]
    assert {c.topic for c in table if c.compacted} == TOPICS.compacted
    assert "StartExecution" in TypeAdapter(table[0].payload).json_schema(ref_template=REF)["$defs"]


def test_cli_writes_json_and_yaml(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "asyncapi.json"
    result = runner.invoke(asyncapi, ["--output", str(out), "--prefix", "acme"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(out.read_text())["channels"]) == list(asyncapi_document(TOPICS)["channels"])

    result = runner.invoke(asyncapi, ["--format", "yaml", "--prefix", "acme"])
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["channels"][TOPICS.dlq]["address"] == TOPICS.dlq

    result = runner.invoke(asyncapi, ["--output", str(tmp_path / "missing" / "x.json")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot write") and "Traceback" not in result.output
