"""The benchmark workloads of `baton bench` (W1-W5 and the Kafka floor), on the real local broker.

Every workload gets a fresh topic prefix and its own `baton orchestrator` / `baton step fn`
processes (as they are deployed), so one workload's backlog never slows the next one.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.harness import (
    Client,
    Deployment,
    chain,
    histories,
    map_items,
    parallel,
    pct,
    task_cycles_ms,
)
from infra.progress import bar
from kafka_io import KafkaSettings, new_consumer, new_producer


async def floor(settings: KafkaSettings, samples: int) -> dict[str, Any]:
    """Raw aiokafka produce -> consume round trips: plain, and transactional with read_committed."""
    topic = settings.topics.dlq  # any topic of the run's own prefix
    out: dict[str, Any] = {}
    for mode in ("plain", "transactional"):
        tx = mode == "transactional"
        producer = new_producer(settings, idempotent=False, linger_ms=0,
                                **({"transactional_id": f"bench-floor-{uuid.uuid4().hex[:6]}"} if tx else {}))
        consumer = new_consumer(settings, topic, group_id=f"bench-floor-{uuid.uuid4().hex[:6]}",
                                isolation_level="read_committed" if tx else "read_uncommitted", auto_commit=True,
                                auto_offset_reset="latest")
        await producer.start()
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=1000)
            times: list[float] = []
            for i in range(samples + 10):
                began = time.perf_counter()
                if tx:
                    async with producer.transaction():
                        await producer.send_and_wait(topic, b"x", key=str(i).encode())
                else:
                    await producer.send_and_wait(topic, b"x", key=str(i).encode())
                while not any((await consumer.getmany(timeout_ms=1000)).values()):
                    pass
                if i >= 10:  # warm-up
                    times.append((time.perf_counter() - began) * 1000)
            out[mode] = {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(pct(times, 0.99), 2),
                         "samples": samples}
        finally:
            await producer.stop()
            await consumer.stop()
    return out


# --------------------------------------------------------------------------- W1 / W5: chains


async def _drive_chain(deployment: Deployment, executions: int, in_flight: int, steps: int,
                       tag: str) -> dict[str, Any]:
    definition = chain(steps)
    async with Client(deployment.settings) as client:
        warm = await client.start(definition, f"{tag}-warmup")
        await client.wait({warm}, 120)
        cpu_before = deployment.cpu()
        batches_before = deployment.batches()
        ids: list[str] = []
        begin = time.perf_counter()
        deadline = time.monotonic() + 170
        with bar(f"{tag} executions", total=executions, unit="exec") as progress:
            while len(ids) < executions or not set(ids) <= client.done.keys():
                finished = len(set(ids) & client.done.keys())
                progress.update(finished - progress.n)
                while len(ids) < executions and len(ids) - finished < in_flight:
                    ids.append(await client.start(definition, f"{tag}-{len(ids)}"))
                await client.flush()
                await client.poll(50)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{tag}: {executions - finished} executions not finished")
        elapsed = time.perf_counter() - begin
        cpu_after = deployment.cpu()
        batches_after = deployment.batches()
    transactions = batches_after[0] - batches_before[0]
    transitions = executions * steps
    latencies = [(client.done[e] - client.started_at[e]) * 1000 for e in ids]
    cpu = {name: round(cpu_after[name] - cpu_before[name], 2) for name in cpu_after}
    return {
        "executions": executions, "in_flight": in_flight, "steps": steps,
        "orchestrators": deployment.orchestrators, "fn_services": deployment.fns,
        "seconds": round(elapsed, 2),
        "executions_per_s": round(executions / elapsed, 1),
        "transitions_per_s": round(transitions / elapsed, 1),
        "execution_latency_p50_ms": round(statistics.median(latencies), 1),
        "execution_latency_p99_ms": round(pct(latencies, 0.99), 1),
        "cpu_seconds": cpu,
        "cpu_ms_per_transition": {name: round(1000 * v / transitions, 3) for name, v in cpu.items()},
        "orchestrator_transactions": int(transactions),
        "events_per_transaction": round((batches_after[1] - batches_before[1]) / transactions, 1)
        if transactions else None,
        "ids": ids,
    }


async def w1(deployment: Deployment, executions: int, in_flight: int, steps: int = 10,
             tag: str = "w1") -> dict[str, Any]:
    result = await _drive_chain(deployment, executions, in_flight, steps, tag)
    ids = set(result.pop("ids"))
    history = {k: v for k, v in (await histories(deployment.settings)).items() if k in ids}
    cycles = task_cycles_ms(history)
    result["task_overhead_p50_ms"] = round(statistics.median(cycles), 2)
    result["task_overhead_p99_ms"] = round(pct(cycles, 0.99), 2)
    result["tasks_measured"] = len(cycles)
    return result


# --------------------------------------------------------------------------- W2: fan-out


async def w2(deployment: Deployment, branches: int, items: int, concurrency: int,
             task_p50_ms: float, unloaded_p50_ms: float, transitions_per_s: float) -> dict[str, Any]:
    """One Parallel and one Map, each timed from its start to its end.

    The ideal is what the fan-out would take if it added nothing to the cost of its tasks: the
    longer of the critical path (waves x the unloaded per-Task time) and the box's capacity
    (tasks / the transitions per second W1 reached on it). Also given: the ratio to waves x W1's
    per-Task p50 at 50 in flight (the first definition used, kept for comparison)."""
    out: dict[str, Any] = {}
    async with Client(deployment.settings) as client:
        warm = await client.start(chain(1), "w2-warmup")
        await client.wait({warm}, 120)
        for label, definition, execution_input, waves in (
            ("parallel", parallel(branches), {}, 1),
            ("map", map_items(concurrency), {"items": list(range(items))}, -(-items // concurrency)),
        ):
            began = time.perf_counter()
            execution_id = await client.start(definition, f"w2-{label}", execution_input)
            await client.wait({execution_id}, 170)
            wall = client.done[execution_id] - began
            count = branches if label == "parallel" else items
            ideal = max(waves * unloaded_p50_ms / 1000, count / transitions_per_s)
            loaded_path = waves * task_p50_ms / 1000
            out[label] = {"tasks": count, "waves": waves, "wall_seconds": round(wall, 3),
                          "ideal_seconds": round(ideal, 3), "ratio_to_ideal": round(wall / ideal, 2),
                          "ratio_to_loaded_path": round(wall / loaded_path, 2),
                          "tasks_per_s": round(count / wall, 1)}
            if label == "map":
                out[label]["max_concurrency"] = concurrency
    out["ideal"] = ("max(waves x unloaded per-Task p50, tasks / W1 transitions per s): the fan-out's tasks "
                    "at the cost of a chain's, with nothing added for fanning out")
    return out


# --------------------------------------------------------------------------- W3: start burst


async def w3(deployment: Deployment, executions: int) -> dict[str, Any]:
    definition = chain(1)
    async with Client(deployment.settings) as client:
        warm = await client.start(definition, "w3-warmup")
        await client.wait({warm}, 120)
        cpu_before = deployment.cpu()
        began = time.perf_counter()
        ids = {await client.start(definition, f"w3-{i}") for i in range(executions)}
        await client.flush()
        published = time.perf_counter() - began
        await client.wait(ids, 170)
        elapsed = time.perf_counter() - began
        cpu_after = deployment.cpu()
    return {"executions": executions, "publish_seconds": round(published, 2), "seconds": round(elapsed, 2),
            "executions_per_s": round(executions / elapsed, 1),
            "cpu_seconds": {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after}}


# --------------------------------------------------------------------------- W4: waiting


async def w4(deployment: Deployment, executions: int) -> dict[str, Any]:
    definition = chain(1, "baton:fn:noop.waitForTaskToken")
    orchestrator = deployment.orchestrator_services[0]
    async with Client(deployment.settings) as client:
        warm = await client.start(chain(1), "w4-warmup")
        await client.wait({warm}, 120)
        await asyncio.sleep(1.0)
        rss_before = orchestrator.rss()
        began = time.perf_counter()
        ids = {await client.start(definition, f"w4-{i}") for i in range(executions)}
        await client.wait(ids, 170, running=True)
        park_seconds = time.perf_counter() - began
        await asyncio.sleep(1.0)
        rss_after = orchestrator.rss()
    # Restart: SIGTERM (a clean leave) then a fresh process restores every waiting execution.
    restores_before = orchestrator.log_text().count("restored in")
    orchestrator.stop()
    restarted = time.perf_counter()
    orchestrator.start()
    deadline = time.monotonic() + 170
    while orchestrator.log_text().count("restored in") <= restores_before:
        if time.monotonic() > deadline:
            raise TimeoutError("orchestrator did not restore")
        await asyncio.sleep(0.1)
    ready = time.perf_counter() - restarted
    restores = [float(x) for x in re.findall(r"restored in ([0-9.]+)s", orchestrator.log_text())]
    rss_restored = orchestrator.rss()
    return {"executions": executions, "park_seconds": round(park_seconds, 2),
            "rss_before_mib": round(rss_before / 2**20, 1), "rss_parked_mib": round(rss_after / 2**20, 1),
            "rss_per_waiting_execution_kib": round((rss_after - rss_before) / executions / 1024, 2),
            "restore_seconds": restores[-1] if restores else None,
            "restart_to_ready_seconds": round(ready, 2),
            "rss_after_restore_mib": round(rss_restored / 2**20, 1)}


# --------------------------------------------------------------------------- the whole run


@dataclass
class Scale:
    floor_samples: int
    w1_executions: int
    w1_in_flight: int
    w2_branches: int
    w2_items: int
    w2_concurrency: int
    w3_executions: int
    w4_executions: int
    w5_executions: int
    w1_unloaded: int


FULL = Scale(200, 500, 50, 100, 1000, 100, 5000, 10000, 500, 30)
QUICK = Scale(50, 60, 20, 20, 100, 20, 300, 500, 60, 10)


def run_all(bootstrap: str, scale: Scale, only: set[str] | None = None,
            progress: Any = print) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def wanted(name: str) -> bool:
        return only is None or name in only

    def timed(name: str, fn: Any) -> None:
        began = time.perf_counter()
        progress(f"running {name} ...")
        results[name] = fn()
        results[name]["bench_seconds"] = round(time.perf_counter() - began, 1)

    with Deployment(bootstrap) as d:
        if wanted("floor"):
            timed("floor", lambda: asyncio.run(floor(d.settings, scale.floor_samples)))
        if wanted("w1"):
            timed("w1", lambda: asyncio.run(w1(d, scale.w1_executions, scale.w1_in_flight)))
            # The same chain with one execution in flight: the unloaded per-Task path.
            unloaded = asyncio.run(w1(d, scale.w1_unloaded, 1, tag="w1u"))
            results["w1"]["unloaded"] = {k: unloaded[k] for k in (
                "executions", "transitions_per_s", "execution_latency_p50_ms", "task_overhead_p50_ms",
                "task_overhead_p99_ms")}
        if wanted("w2"):
            w1r = results.get("w1", {})
            p50 = w1r.get("task_overhead_p50_ms", 10.0)
            unloaded = w1r.get("unloaded", {}).get("task_overhead_p50_ms", 3.0)
            throughput = w1r.get("transitions_per_s", 1000.0)
            timed("w2", lambda: asyncio.run(w2(d, scale.w2_branches, scale.w2_items, scale.w2_concurrency, p50,
                                               unloaded, throughput)))
    if wanted("w3"):
        with Deployment(bootstrap) as d:
            timed("w3", lambda: asyncio.run(w3(d, scale.w3_executions)))
    if wanted("w4"):
        with Deployment(bootstrap) as d:
            timed("w4", lambda: asyncio.run(w4(d, scale.w4_executions)))
    if wanted("w5"):
        w5: dict[str, Any] = {}
        began = time.perf_counter()
        progress("running w5 ...")
        for orchestrators in (1, 2):
            with Deployment(bootstrap, orchestrators=orchestrators, fns=2) as d:
                w5[f"{orchestrators}_orchestrator"] = asyncio.run(
                    _drive_chain(d, scale.w5_executions, scale.w1_in_flight, 10, f"w5-{orchestrators}"))
                w5[f"{orchestrators}_orchestrator"].pop("ids")
        w5["speedup"] = round(w5["2_orchestrator"]["transitions_per_s"] / w5["1_orchestrator"]["transitions_per_s"], 2)
        w5["bench_seconds"] = round(time.perf_counter() - began, 1)
        results["w5"] = w5
    if "w1" in results and "floor" in results:
        w1r, fl = results["w1"], results["floor"]
        w1r["overhead_over_floor_p50"] = round(w1r["task_overhead_p50_ms"] / fl["transactional"]["p50_ms"], 1)
        w1r["overhead_over_plain_floor_p50"] = round(w1r["task_overhead_p50_ms"] / fl["plain"]["p50_ms"], 1)
        w1r["overhead_over_floor_p99"] = round(w1r["task_overhead_p99_ms"] / fl["transactional"]["p99_ms"], 1)
        if "unloaded" in w1r:
            w1r["unloaded"]["overhead_over_floor_p50"] = round(
                w1r["unloaded"]["task_overhead_p50_ms"] / fl["transactional"]["p50_ms"], 1)
    return results
