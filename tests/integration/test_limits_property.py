"""Property: around every quota (just under, at, just over; wide and deep), the local runner and
the Kafka runtime decide the same outcome. Hypothesis draws a batch of executions; the local runner
runs each in-process, the orchestrator and the real fn step service run them all at once on the
broker, and each execution's status, error and output must agree.

Small quotas (8 KiB payloads, 600 history events, 50 transitions a decision) keep each example
cheap while crossing every limit; the same Quotas object configures both sides."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafka_io import KafkaSettings
from orchestrator.asl.model import parse_definition
from orchestrator.local.runner import TaskResolver, run_execution
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings, Quotas
from steps.fn.service import fn_service
from steps.sdk import load_steps
from tests.integration.runtime_support import RuntimeClient

STEPS = "tests.integration.steps_for_tests"
QUOTAS = Quotas(max_payload_bytes=8192, max_history_events=600, max_transitions_per_decision=50)
Q = QUOTAS.max_payload_bytes
NEAR = st.sampled_from([-2, -1, 0, 1, 2])  # bytes from the quota


def _chain(length: int) -> dict[str, Any]:
    states: dict[str, Any] = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(length - 1)}
    states[f"S{length - 1}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "S0", "States": states}


def _string_of(total: int, key: str = "t") -> dict[str, str]:
    """{key: "xx..x"} of exactly `total` bytes of compact JSON."""
    return {key: "x" * max(0, total - len(f'{{"{key}":""}}'))}


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    kind = draw(st.sampled_from(["input", "result", "pass_result", "chain", "wide", "deep", "map"]))
    near = draw(NEAR)
    one_pass = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    if kind == "input":
        return one_pass, _string_of(Q + near)
    if kind == "result":  # a task result around the quota
        task = {"Type": "Task", "Resource": "baton:fn:sized", "Parameters": {"bytes": Q + near}, "End": True}
        return {"StartAt": "T", "States": {"T": task}}, {}
    if kind == "pass_result":  # a state output around the quota
        return {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": _string_of(Q + near), "End": True}}}, {}
    if kind == "chain":  # 2 + 2n events: around the history quota
        return _chain((QUOTAS.max_history_events - 2) // 2 + near), {"n": 1}
    if kind == "wide":
        keys = draw(st.integers(1, 400))
        return one_pass, {f"k{i:04d}": i for i in range(keys)}
    if kind == "deep":
        return one_pass, _deep(draw(st.integers(1, 60)))
    items = draw(st.integers(0, 40))  # a Map whose collected results cross the quota
    item_bytes = draw(st.sampled_from([100, 200, 400]))
    processor = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "baton:fn:sized",
                                                  "Parameters": {"bytes": item_bytes}, "End": True}}}
    return {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 5,
                                             "ItemProcessor": processor, "End": True}}}, {"items": list(range(items))}


async def _local(definition: dict[str, Any], execution_input: Any) -> tuple[str, str | None, Any]:
    resolver = TaskResolver(steps=load_steps([STEPS]))
    result = await run_execution(parse_definition(definition), execution_input, resolver=resolver,
                                 limits=QUOTAS.decider_limits())
    return result.status, result.error, result.output


async def _on_kafka(kafka: KafkaSettings, batch: list[tuple[dict[str, Any], Any]]) -> list[tuple[str, str | None, Any]]:
    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="prop", metrics_port=None), quotas=QUOTAS)
    task = asyncio.create_task(orchestrator.run(stop))
    try:
        async with fn_service([STEPS], settings=kafka, max_output_bytes=Q), RuntimeClient(kafka) as client:
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            ids = [await client.start(definition, execution_input) for definition, execution_input in batch]
            outcomes = await client.wait(ids, timeout=120)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return [(outcomes[i].status, outcomes[i].error, outcomes[i].output) for i in ids]


async def _agree(kafka: KafkaSettings, batch: list[tuple[dict[str, Any], Any]]) -> list[tuple[str, str | None]]:
    local = [await _local(definition, execution_input) for definition, execution_input in batch]
    remote = await _on_kafka(kafka, batch)
    for (definition, execution_input), here, there in zip(batch, local, remote):
        assert here == there, (str(definition)[:200], str(execution_input)[:200], here, there)
    return [(status, error) for status, error, _ in local]


def _grid() -> list[tuple[dict[str, Any], Any]]:
    """Each limit at quota - 1, at it, and + 1 (the chain's length moves by whole states)."""
    one_pass = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    task = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "baton:fn:sized", "Parameters": {}, "End": True}}}
    batch: list[tuple[dict[str, Any], Any]] = []
    for near in (-1, 0, 1):
        sized = {"StartAt": "T", "States": {"T": {**task["States"]["T"], "Parameters": {"bytes": Q + near}}}}
        batch += [(one_pass, _string_of(Q + near)), (sized, {}),
                  ({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": _string_of(Q + near), "End": True}}}, {}),
                  (_chain((QUOTAS.max_history_events - 2) // 2 + near), {"n": 1})]
    return batch


def test_at_each_quota_the_local_runner_and_the_kafka_runtime_agree(kafka: KafkaSettings) -> None:
    outcomes = asyncio.run(_agree(kafka, _grid()))
    # Just under and at each quota succeed; just over fails with AWS's error name.
    assert outcomes[:8] == [("SUCCEEDED", None)] * 8
    assert outcomes[8:] == [("FAILED", "States.DataLimitExceeded")] * 3 + [("FAILED", "States.Runtime")]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(cases(), min_size=12, max_size=12))
def test_the_local_runner_and_the_kafka_runtime_agree_around_the_quotas(
        kafka: KafkaSettings, batch: list[tuple[dict[str, Any], Any]]) -> None:
    outcomes = asyncio.run(_agree(kafka, batch))
    assert {status for status, _ in outcomes} <= {"SUCCEEDED", "FAILED"}
