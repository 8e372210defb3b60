"""The LLM step service with a REAL model (SmolLM2-135M served by xllamacpp on 127.0.0.1, two
servers for two model names) on the real broker, driven by the real orchestrator.

Temperature 0 and few tokens; the assertions are about structure (routing, chunk order, usage
counted, JSON parsed, errors caught), never about wording.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from infra.local_model import LocalModelError, ModelServer, ensure_up, llm_config, stop
from kafka_io import KafkaSettings
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.base import decode
from schemas.executions import execution_id_for
from schemas.steps import StepResult
from schemas.streams import StreamChunk
from orchestrator.cli.llm import stream as stream_command
from steps.llm.config import LLMSettings
from steps.llm.service import LLMStepService, llm_service
from steps.llm.streaming import follow_stream
from tests.integration.runtime_support import RuntimeClient, read_all

CITY_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "country"], "properties": {
    "city": {"type": "string", "maxLength": 24}, "country": {"type": "string", "maxLength": 24}}}


@pytest.fixture(scope="module")
def models() -> Iterator[list[ModelServer]]:
    """The two local model servers (smollm2, smollm2-b), started unless they already run."""
    try:
        servers = ensure_up()
    except LocalModelError as error:
        pytest.fail(f"the local model did not start: {error}\n{error.log_tail}", pytrace=False)
    try:
        yield servers
    finally:
        stop(servers)



def settings_for(servers: list[ModelServer]) -> LLMSettings:
    config = llm_config(servers)
    # "smollm2-impatient" is the first server behind a provider that allows 5 ms for a whole
    # answer: a real provider timeout, to Retry and then Catch to a fallback model.
    config["providers"]["impatient"] = {"kind": "openai", "base_url": servers[0].base_url, "timeout_seconds": 0.005}
    config["models"]["smollm2-impatient"] = {"provider": "impatient", "model": servers[0].alias}
    return LLMSettings(**config)


@contextlib.asynccontextmanager
async def running(kafka: KafkaSettings, settings: LLMSettings) -> AsyncIterator[LLMStepService]:
    """The orchestrator and the llm step service on the real broker, for the block's duration."""
    stop_event = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="llm-o1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop_event))
    try:
        service = llm_service(settings, kafka=kafka)
        async with service:
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            yield service
    finally:
        stop_event.set()
        await asyncio.wait_for(task, 30)


def llm(**parameters: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "baton:llm",
            "Parameters": {"Temperature": 0, "MaxTokens": 24, "Variables.$": "$", **parameters}}


ANSWER = {"text.$": "$.Text", "model.$": "$.Model", "served_by.$": "$.ResponseModel", "provider.$": "$.Provider"}

CHAIN = {"StartAt": "Outline", "States": {
    "Outline": {**llm(Model="smollm2", Prompt="Write one sentence about {{ topic }}."),
                "ResultSelector": ANSWER, "ResultPath": "$.outline", "Next": "Polish"},
    "Polish": {**llm(Model="smollm2-b", System="You edit text.", Prompt="Make this shorter: {{ outline.text }}"),
               "ResultSelector": ANSWER, "ResultPath": "$.polished", "End": True}}}

STREAMED = {"StartAt": "Answer", "States": {
    "Answer": {**llm(Model="smollm2", Prompt="Explain {{ topic }} to a child.", MaxTokens=32, Stream=True),
               "ResultSelector": {"text.$": "$.Text"}, "ResultPath": "$.answer", "Next": "Afterwards"},
    # The execution goes on after the streamed step: the stream must be complete before it ends.
    "Afterwards": {"Type": "Wait", "Seconds": 1, "End": True}}}

JSON_MODE = {"StartAt": "Extract", "States": {
    "Extract": {**llm(Model="smollm2", Prompt="Name a city in {{ country }} and its country, as JSON.",
                      JsonSchema=CITY_SCHEMA, MaxTokens=64),
                "ResultSelector": {"json.$": "$.Json"}, "End": True}}}

FALLBACK = {"StartAt": "Draft", "States": {
    "Draft": {**llm(Model="smollm2-impatient", Prompt="Count from 1 to 40."),
              "Retry": [{"ErrorEquals": ["Baton.LLM.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 1}],
              "Catch": [{"ErrorEquals": ["Baton.LLM.Timeout", "Baton.LLM.Unavailable"], "ResultPath": "$.error",
                         "Next": "Fallback"}],
              "End": True},
    "Fallback": {**llm(Model="smollm2-b", Prompt="Say hello.", MaxTokens=8), "ResultSelector": ANSWER,
                 "ResultPath": "$.fallback", "End": True}}}


def test_llm_workflows_with_a_real_model(kafka: KafkaSettings, models: list[ModelServer]) -> None:
    """A two-model chain routed by model name, a streamed step whose chunks arrive in order before
    the execution ends, JSON mode, and a provider timeout retried then caught to a fallback model;
    usage and timings in the step results and the service's metrics."""
    settings = settings_for(models)
    stream_name = f"streamed-{time.time_ns()}"
    stream_execution = execution_id_for("llm", stream_name)
    arrivals: list[tuple[float, StreamChunk]] = []

    async def collect() -> None:
        async for chunk in follow_stream(kafka, stream_execution, since_seconds=60, idle_timeout=60):
            arrivals.append((time.monotonic(), chunk))

    async def scenario() -> None:
        async with running(kafka, settings) as service, RuntimeClient(kafka) as client:
            reader = asyncio.create_task(collect())
            await asyncio.sleep(0.5)  # the reader is attached before the stream starts (not required)
            ids = {
                "chain": await client.start(CHAIN, {"topic": "Apache Kafka"}, machine="llm"),
                "stream": await client.start(STREAMED, {"topic": "rain"}, machine="llm", name=stream_name),
                "json": await client.start(JSON_MODE, {"country": "France"}, machine="llm"),
                "fallback": await client.start(FALLBACK, {}, machine="llm"),
            }
            assert ids["stream"] == stream_execution
            outcomes = await client.wait([ids["stream"]], timeout=90)
            stream_ended = time.monotonic()
            outcomes.update(await client.wait(list(ids.values()), timeout=90))
            await asyncio.wait_for(reader, 10)
            statuses = {label: (o.status, o.error, o.cause) for label, o in
                        ((label, outcomes[ids[label]]) for label in ids)}
            assert all(status == "SUCCEEDED" for status, _, _ in statuses.values()), statuses

            # Two steps, two model names, two servers: routed by the model name alone.
            chain = outcomes[ids["chain"]].output
            assert (chain["outline"]["model"], chain["outline"]["served_by"], chain["outline"]["provider"]) == \
                ("smollm2", "smollm2", "smollm2")
            assert (chain["polished"]["model"], chain["polished"]["served_by"], chain["polished"]["provider"]) == \
                ("smollm2-b", "smollm2-b", "smollm2-b")
            assert chain["outline"]["text"].strip() and chain["polished"]["text"].strip()

            # Streamed: ordered, one final chunk last, the whole answer, all before the execution ended.
            chunks = [chunk for _, chunk in arrivals]
            assert len(chunks) >= 3
            assert [c.seq for c in chunks] == list(range(len(chunks)))
            assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
            assert len({c.task_id for c in chunks}) == 1
            answer = outcomes[ids["stream"]].output["answer"]["text"]
            assert "".join(c.text for c in chunks) == answer
            assert arrivals[-1][0] < stream_ended

            # JSON mode: parsed and valid against the schema.
            extracted = outcomes[ids["json"]].output["json"]
            assert set(extracted) == {"city", "country"} and all(isinstance(v, str) for v in extracted.values())

            # The provider's timeout is Baton.LLM.Timeout: retried once, then caught to the fallback model.
            fallback = outcomes[ids["fallback"]].output
            assert fallback["error"]["Error"] == "Baton.LLM.Timeout"
            assert "timeout_seconds" in fallback["error"]["Cause"]
            assert (fallback["fallback"]["model"], fallback["fallback"]["served_by"]) == ("smollm2-b", "smollm2-b")
            history = (await client.history())[ids["fallback"]]
            failed = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
            assert failed == ["Baton.LLM.Timeout", "Baton.LLM.Timeout"]

            # Usage and timings travel in each step result's metadata ...
            results = [decode(StepResult, r.value) for r in await read_all(kafka, kafka.topics.results)]
            succeeded = [r for r in results if r.kind == "succeeded"]
            assert len(succeeded) == 5
            for result in succeeded:
                meta = result.metadata
                assert meta["model"] in ("smollm2", "smollm2-b") and meta["provider"] == meta["model"]
                assert meta["input_tokens"] > 0 and meta["output_tokens"] > 0
                assert 0 < meta["time_to_first_token_ms"] <= meta["latency_ms"]
                assert meta["prompt"]["messages"][-1]["role"] == "user"
            streamed = next(r for r in succeeded if r.execution_id == ids["stream"])
            assert streamed.metadata["stream_chunks"] == len(chunks)
            # ... into the execution history (the rendered prompt, tokens, latency, time to first token) ...
            recorded = [e["taskSucceededEventDetails"]["metadata"] for e in (await client.history())[ids["stream"]]
                        if e["type"] == "TaskSucceeded"]
            assert recorded and recorded[-1]["output_tokens"] > 0 and recorded[-1]["time_to_first_token_ms"] > 0
            assert recorded[-1]["prompt"]["messages"][-1]["content"] == "Explain rain to a child."
            assert streamed.metadata["prompt"]["messages"][-1]["content"] == "Explain rain to a child."

            # ... and in the service's /metrics.
            text = generate_latest(service.registry).decode()
            for model in ("smollm2", "smollm2-b"):
                for direction in ("input", "output"):
                    tokens = service.registry.get_sample_value("baton_llm_tokens_total", {
                        "provider": model, "model": model, "direction": direction})
                    assert tokens is not None and tokens > 0
            assert 'baton_llm_time_to_first_token_seconds_count{model="smollm2",provider="smollm2"}' in text
            assert service.registry.get_sample_value("baton_llm_requests_total", {
                "provider": "impatient", "model": "smollm2-impatient", "outcome": "Baton.LLM.Timeout"}) == 2

            # `baton stream EXEC` prints the same text, attached after the fact.
            printed = await asyncio.to_thread(
                CliRunner().invoke, stream_command,
                [stream_execution, "--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix,
                 "--timeout", "20"])
            assert printed.exit_code == 0, printed.output
            assert printed.output == answer + "\n"

    asyncio.run(scenario())
