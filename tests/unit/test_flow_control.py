"""Flow control's gate (steps/llm/flow.py) in memory: limits, fair shares, priority, 429 pauses,
cancellation, the configuration's errors, and the orchestrator keying commands by model."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition

from schemas.flow import flow_key, without_flow_parameter
from steps.bookkeeping import _Offsets, finished_runs_metadata, parse_finished_runs
from steps.llm.config import ConfigError, load_settings
from steps.llm.flow import FlowControlSettings, FlowLimit, Gate


def _gate(limit: FlowLimit, **settings: object) -> Gate:
    return Gate("local/m", limit, FlowControlSettings.model_validate(settings))


async def _run(gate: Gate, tenant: str, log: list[str], *, priority: int = 0, hold: float = 0.01,
               tokens: int = 1) -> None:
    permit = await gate.admit(tenant, priority, tokens)
    log.append(tenant)
    await asyncio.sleep(hold)
    permit.release()


def test_concurrency_is_never_exceeded() -> None:
    async def main() -> int:
        gate = _gate(FlowLimit(max_concurrency=3))
        peak = 0

        async def call() -> None:
            nonlocal peak
            permit = await gate.admit("t")
            peak = max(peak, gate.running)
            await asyncio.sleep(0.005)
            permit.release()

        await asyncio.gather(*(call() for _ in range(40)))
        return peak

    assert asyncio.run(main()) == 3


def test_requests_per_window_count_from_the_end_of_each_call() -> None:
    async def main() -> list[float]:
        gate = _gate(FlowLimit(requests_per_minute=600), window_seconds=0.2)  # 2 per 0.2 s
        starts: list[float] = []

        async def call() -> None:
            permit = await gate.admit("t")
            starts.append(time.monotonic())
            permit.release()

        await asyncio.gather(*(call() for _ in range(6)))
        return starts

    starts = asyncio.run(main())
    for i in range(2, len(starts)):  # any three starts span more than one window
        assert starts[i] - starts[i - 2] >= 0.2


def test_tenants_share_fairly_and_weights_tilt_it() -> None:
    async def main(weights: dict[str, float]) -> list[str]:
        gate = _gate(FlowLimit(max_concurrency=1), tenant_weights=weights)
        log: list[str] = []
        # Tenant a queues 30 calls before b's 10 arrive: b still gets every other turn.
        tasks = [asyncio.create_task(_run(gate, "a", log, hold=0.001)) for _ in range(30)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(_run(gate, "b", log, hold=0.001)) for _ in range(10)]
        await asyncio.gather(*tasks)
        return log

    even = asyncio.run(main({}))
    first_twenty = even[:20]
    assert abs(first_twenty.count("a") - first_twenty.count("b")) <= 2, even
    tilted = asyncio.run(main({"a": 3.0}))
    assert tilted[:20].count("a") >= 13, tilted


def test_higher_priority_goes_first_and_tenant_cap_holds() -> None:
    async def main() -> list[str]:
        gate = _gate(FlowLimit(max_concurrency=1), tenant_max_concurrency=1)
        log: list[str] = []
        blocker = asyncio.create_task(_run(gate, "x", log, hold=0.05))
        await asyncio.sleep(0)
        low = [asyncio.create_task(_run(gate, "low", log)) for _ in range(3)]
        high = [asyncio.create_task(_run(gate, "high", log, priority=5)) for _ in range(3)]
        await asyncio.gather(blocker, *low, *high)
        return log

    assert asyncio.run(main()) == ["x", "high", "high", "high", "low", "low", "low"]


def test_back_off_pauses_admission_and_a_cancelled_wait_leaves_no_trace() -> None:
    async def main() -> tuple[float, int, int]:
        gate = _gate(FlowLimit(max_concurrency=2))
        gate.back_off(0.15)
        began = time.monotonic()
        permit = await gate.admit("t")
        paused = time.monotonic() - began
        waiting = asyncio.create_task(gate.admit("t"))
        blocked = asyncio.create_task(gate.admit("t"))
        await asyncio.sleep(0.01)
        blocked.cancel()
        second = await waiting
        await asyncio.gather(blocked, return_exceptions=True)
        counts = (gate.running, gate.waiting)
        permit.release()
        second.release()
        return paused, *counts

    paused, running, waiting = asyncio.run(main())
    assert paused >= 0.14 and running == 2 and waiting == 0


@pytest.mark.parametrize("limit, message", [
    ({"max_concurrency": "8"}, "a limit must be a number, not '8'"),
    ({"requests_per_minute": -5}, "greater than or equal to 1"),
    ({"tokens_per_minute": 0}, "greater than or equal to 1"),
    ({"max_concurency": 3}, "Extra inputs are not permitted"),
])
def test_a_bad_limit_is_a_config_error_naming_the_field(limit: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(flow_control={"limits": {"smollm2": limit}})
    assert "flow_control.limits.smollm2" in str(caught.value) and message in str(caught.value)


def test_a_bad_weight_or_window_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tenant_weights.a: a weight must be a number above 0"):
        load_settings(flow_control={"tenant_weights": {"a": "2"}})
    with pytest.raises(ConfigError, match="flow_control.window_seconds"):
        load_settings(flow_control={"window_seconds": -1})


def test_commands_are_keyed_by_the_model_they_name() -> None:
    assert flow_key({"Model": "smollm2", "Prompt": "hi"}) == "smollm2"
    assert flow_key({"ModelId": "anthropic.claude", "Body": {}}) == "anthropic.claude"
    assert flow_key({"Prompt": "hi"}) == "" and flow_key(None) == ""
    assert without_flow_parameter({"Model": "m", "FlowControl": {"Tenant": "a"}}) == {"Model": "m"}


def test_offsets_finished_past_the_commit_point_travel_in_its_metadata() -> None:
    tp = TopicPartition("t", 0)
    offsets = _Offsets()
    for offset in range(10, 20):
        offsets.start(tp, offset)
    for offset in (10, 13, 14, 17, 19):  # finished out of order; 11 is the oldest still in flight
        offsets.finish(tp, offset)
    mark, runs = offsets.progress(tp) or (0, [])
    assert (mark, runs) == (11, [(13, 15), (17, 18), (19, 20)])
    assert parse_finished_runs(mark, finished_runs_metadata(mark, runs)) == runs
    assert parse_finished_runs(mark, "someone else's metadata") == []
    many = [(mark + 2 * i, mark + 2 * i + 1) for i in range(5000)]
    assert len(finished_runs_metadata(mark, many)) <= 4000  # what does not fit is only redelivered


def test_the_overhead_bench_runs() -> None:
    from bench.flow import measure

    report = asyncio.run(measure(commands=40, rounds=1))
    assert report["with_flow_control_us_per_command"] > 0 and report["ratio_with_over_without"] > 0


def test_the_orchestrator_keys_a_flow_controlled_service_by_model() -> None:
    from datetime import datetime, timezone

    from orchestrator.asl.decider import Environment, decide, new_execution
    from orchestrator.asl.execution import StartExecution
    from orchestrator.asl.model import parse_definition
    from orchestrator.runtime.translate import effects_to_records
    from schemas.topics import Topics

    definition = {"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "baton:llm", "End": True,
        "Parameters": {"Model": "smart", "Prompt": "hi", "FlowControl": {"Tenant.$": "$$.Execution.Input.tenant"}}}}}
    state = new_execution(execution_id="arn:baton:states:local:execution:M:e1", name="e1",
                          state_machine_id="arn:baton:states:local:stateMachine:M", state_machine_name="M")
    env = Environment(now=datetime(2026, 1, 2, tzinfo=timezone.utc), seed=7, task_token=lambda t: "tok")
    decision = decide(parse_definition(definition), state, StartExecution(input={"tenant": "acme"}), env)
    topics = Topics("t")
    plain = effects_to_records(topics, decision.state, decision.effects, machine_name="M", partition=2)
    keyed = effects_to_records(topics, decision.state, decision.effects, machine_name="M", partition=2,
                               flow_controlled=frozenset({"llm"}))
    command = [r for r in plain if r.topic == topics.commands("llm")][0]
    assert (command.key, command.partition) == (decision.state.execution_id.encode(), 2)
    command = [r for r in keyed if r.topic == topics.commands("llm")][0]
    assert (command.key, command.partition) == (b"smart", None)  # the producer hashes the model
    assert b'"Tenant":"acme"' in (command.value or b"")  # the context path was evaluated


def test_a_new_owner_counts_its_predecessors_window() -> None:
    async def main() -> tuple[int, float]:
        old = _gate(FlowLimit(requests_per_minute=300), window_seconds=0.4)  # 2 per 0.4 s
        for _ in range(2):
            (await old.admit("t")).release()
        snapshot = old.window_snapshot(time.time())
        assert sum(n for _, n, _ in snapshot) == 2
        new = _gate(FlowLimit(requests_per_minute=300), window_seconds=0.4)
        new.seed(snapshot, time.time())
        began = time.monotonic()
        (await new.admit("t")).release()  # waits until the predecessor's requests leave the window
        return len(snapshot), time.monotonic() - began

    buckets, waited = asyncio.run(main())
    assert buckets >= 1 and waited >= 0.3
