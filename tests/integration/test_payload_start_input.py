"""A large execution input, on the real broker with Kafka's default 1 MiB records: a client with a
payload store (BATON_PAYLOAD_STORE) puts the input's large parts there and publishes a start of a
few hundred bytes; the orchestrator resolves them and the execution reads the value whole. An
input whose object is gone fails its execution with Baton.Payload.Missing, saying so; without a
store the client refuses the input at the payload quota, as before."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kafka_io import KafkaSettings
from kafka_io.payloads import PayloadSettings, open_payload_store
from orchestrator.client import BatonClient
from orchestrator.quotas import QuotaExceeded
from schemas.payloads import is_reference
from tests.integration.runtime_support import RuntimeClient, read_all, running_orchestrator

MIB = 1024 * 1024
MEASURE = {"StartAt": "Measure", "QueryLanguage": "JSONata", "States": {"Measure": {
    "Type": "Pass", "End": True,
    "Output": "{% {'title': $states.input.title, 'length': $length($states.input.body)} %}"}}}


def test_a_large_input_travels_by_reference_and_a_missing_one_fails_its_execution(
        kafka: KafkaSettings, tmp_path: Path) -> None:
    # The client's store and the orchestrator's, as in a deployment: one folder, two processes'
    # handles (each with its own cache of what it wrote or read).
    settings = PayloadSettings(payload_store=str(tmp_path / "payloads"))
    store, orchestrators = open_payload_store(settings), open_payload_store(settings)
    assert store is not None and orchestrators is not None
    body = "report " * (3 * MIB // 7)

    async def scenario() -> tuple[Any, Any, list[Any]]:
        async with running_orchestrator(kafka, "input-o1", payloads=orchestrators), \
                BatonClient(kafka, payloads=store) as client, RuntimeClient(kafka) as runtime:
            whole = await client.start_and_wait(definition=MEASURE, input={"title": "Q3", "body": body}, timeout=60)
            # A start whose input object vanished before the orchestrator read it.
            request = await client.offload_input(client.start_request(
                definition=MEASURE, input={"title": "gone", "body": body + "!"}))
            assert is_reference(request.input["body"])
            for path in (tmp_path / "payloads").rglob("*"):
                if path.is_file() and path.stat().st_size > MIB:
                    path.unlink()
            await client.send(request)
            gone = (await runtime.wait([request.execution_id], timeout=60))[request.execution_id]
            return whole, gone, await read_all(kafka, kafka.topics.start)

    whole, gone, starts = asyncio.run(scenario())
    assert whole.status == "SUCCEEDED", (whole.error, whole.cause)
    assert whole.output == {"title": "Q3", "length": len(body)}
    assert max(len(record.value) for record in starts) < 4096  # the input's 3 MiB stayed out of Kafka
    assert gone.status == "FAILED" and gone.error == "Baton.Payload.Missing"
    assert "the execution input" in (gone.cause or "")


def test_without_a_store_a_large_input_is_refused_before_anything_is_sent(kafka: KafkaSettings) -> None:
    async def scenario() -> None:
        async with BatonClient(kafka, payloads=None) as client:
            assert client.payloads is None  # BATON_PAYLOAD_STORE is not set in the tests
            with pytest.raises(QuotaExceeded, match="over the payload quota"):
                await client.start(definition=MEASURE, input={"body": "x" * MIB})

    asyncio.run(scenario())


def test_baton_start_sends_a_large_input_file_with_the_store_set(kafka: KafkaSettings, tmp_path: Path) -> None:
    """`baton start FILE --input @big.json` with BATON_PAYLOAD_STORE set: past the inline quota,
    the input goes by reference; without the variable the same command fails in one line."""
    from click.testing import CliRunner

    from orchestrator.cli import main

    definition, document = tmp_path / "measure.json", tmp_path / "big.json"
    definition.write_text(json.dumps(MEASURE))
    document.write_text(json.dumps({"title": "cli", "body": "z" * (2 * MIB)}))
    env = {"BATON_KAFKA_BOOTSTRAP": kafka.kafka_bootstrap, "BATON_TOPIC_PREFIX": kafka.topic_prefix}
    command = ["start", str(definition), "--input", f"@{document}", "--json"]
    refused = CliRunner().invoke(main, command, env={**env, "BATON_PAYLOAD_STORE": ""})
    assert refused.exit_code == 2 and "over the payload quota" in refused.output and "Traceback" not in refused.output
    store = open_payload_store(PayloadSettings(payload_store=str(tmp_path / "payloads")))

    async def scenario() -> Any:
        async with running_orchestrator(kafka, "input-cli", payloads=store), RuntimeClient(kafka) as runtime:
            started = await asyncio.to_thread(CliRunner().invoke, main, command,
                                              env={**env, "BATON_PAYLOAD_STORE": str(tmp_path / "payloads")})
            assert started.exit_code == 0, started.output
            execution_id = json.loads(started.output)["execution_id"]
            return (await runtime.wait([execution_id], timeout=60))[execution_id]

    status = asyncio.run(scenario())
    assert status.status == "SUCCEEDED", (status.error, status.cause)
    assert status.output == {"title": "cli", "length": 2 * MIB}
