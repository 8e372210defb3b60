"""What flow control adds to each LLM command when nothing contends (target: under 1 ms).

    python -m bench.flow [--commands 2000] [--rounds 5]

Runs the llm service's own per-command path (`_outcome`: parse the FlowControl parameter, pick
the model's gate, admit, call the handler, release) on the same commands twice, with and without
a `flow_control` limit that is never reached, against an in-process OpenAI-compatible answer
(httpx.MockTransport: no network, so the handler's own work is the whole baseline and the
difference is not lost in a provider's latency). Rounds alternate the two modes so machine
drift hits both alike. No broker is needed: the services are built, never started. Prints JSON:
the microseconds per command each way, the difference, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import httpx

from kafka_io import KafkaSettings
from schemas.steps import StepCommand
from steps.llm.config import load_settings
from steps.llm.service import LLMStepService, llm_service

ANSWER = {"id": "bench", "object": "chat.completion", "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


def _service(flow_control: dict[str, Any] | None) -> LLMStepService:
    settings = load_settings(providers={"stub": {"kind": "openai", "base_url": "http://stub/v1", "stream": False}},
                             models={"m": {"provider": "stub"}}, flow_control=flow_control or {})
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=ANSWER))
    return llm_service(settings, kafka=KafkaSettings(), transport=transport)


def _commands(count: int) -> list[StepCommand]:
    return [StepCommand(execution_id=f"e{i % 7}", task_id=f"t{i}", service="llm", resource="baton:llm",
                        parameters={"Model": "m", "Prompt": "Say ok", "MaxTokens": 4,
                                    "FlowControl": {"Tenant": f"tenant-{i % 3}", "Priority": i % 2}})
            for i in range(count)]


async def _time_per_command(service: LLMStepService, commands: list[StepCommand]) -> float:
    began = time.perf_counter()
    for command in commands:
        result = await service._outcome(command, time.monotonic())
        assert result is not None and result.kind == "succeeded", result
    return (time.perf_counter() - began) / len(commands) * 1e6


async def measure(commands: int, rounds: int) -> dict[str, Any]:
    plain = _service(None)
    limited = _service({"limits": {"m": {"max_concurrency": 1000, "requests_per_minute": 10_000_000,
                                         "tokens_per_minute": 10_000_000_000}},
                        "tenant_max_concurrency": 1000})
    batch = _commands(commands)
    await _time_per_command(plain, batch[:200])  # warm up both (imports, pools, template cache)
    await _time_per_command(limited, batch[:200])
    without, with_flow = [], []
    for _ in range(rounds):
        without.append(await _time_per_command(plain, batch))
        with_flow.append(await _time_per_command(limited, batch))
    for service in (plain, limited):
        await service.llm.aclose()
    base, flow = statistics.median(without), statistics.median(with_flow)
    return {"commands_per_round": commands, "rounds": rounds,
            "without_flow_control_us_per_command": round(base, 1),
            "with_flow_control_us_per_command": round(flow, 1),
            "overhead_us_per_command": round(flow - base, 1),
            "ratio_with_over_without": round(flow / base, 3),
            "target_us": 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.commands, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
