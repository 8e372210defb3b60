"""The benchmark workloads of `baton bench` (W1-W5 and the Kafka floor), on the real local broker.

Every workload gets a fresh topic prefix and its own `baton orchestrator` / `baton step fn`
processes (as they are deployed), so one workload's backlog never slows the next one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.structs import TopicPartition

from infra.progress import bar
from kafka_io import KafkaSettings, new_consumer, new_producer
from orchestrator.client import BatonClient
from orchestrator.runtime.topics import delete_topics, ensure_topics
from schemas.base import decode
from schemas.executions import ExecutionStatus, HistoryRecord, execution_id_for

ROOT = Path(__file__).resolve().parents[1]
STEPS_MODULE = "bench.steps"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- definitions


def chain(steps: int, resource: str = "baton:fn:noop") -> dict[str, Any]:
    names = [f"S{i}" for i in range(steps)]
    states: dict[str, Any] = {}
    for i, name in enumerate(names):
        state: dict[str, Any] = {"Type": "Task", "Resource": resource}
        if i + 1 < steps:
            state["Next"] = names[i + 1]
        else:
            state["End"] = True
        states[name] = state
    return {"StartAt": names[0], "States": states}


def parallel(branches: int) -> dict[str, Any]:
    # State names must be unique across the whole definition.
    branch_list = [{"StartAt": f"T{i}", "States": {f"T{i}": {"Type": "Task", "Resource": "baton:fn:noop", "End": True}}}
                   for i in range(branches)]
    return {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": branch_list, "End": True}}}


def map_items(concurrency: int) -> dict[str, Any]:
    return {"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": concurrency,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "baton:fn:noop",
                                                          "End": True}}},
        "End": True}}}


# --------------------------------------------------------------------------- processes


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Service:
    """`baton orchestrator` or `baton step fn` as a separate OS process."""

    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdout=out,
                                            stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss(self) -> int:
        return proc_rss_bytes(self.pid)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Deployment:
    """A fresh topic prefix with N orchestrators and M fn services on it."""

    bootstrap: str
    orchestrators: int = 1
    fns: int = 1
    partitions: int = 3
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="baton-bench-")))
    settings: KafkaSettings = field(init=False)
    services: list[Service] = field(default_factory=list)
    orchestrator_services: list[Service] = field(default_factory=list)
    fn_services: list[Service] = field(default_factory=list)
    metrics_ports: list[int] = field(default_factory=list)
    keep_topics: bool = False  # leave the topics after exit (e.g. to inspect them)

    def __post_init__(self) -> None:
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        self.settings = KafkaSettings(kafka_bootstrap=self.bootstrap, topic_prefix=prefix,
                                      partitions=self.partitions)

    def env(self) -> dict[str, str]:
        # The orchestrators' state stores in the deployment's own folder (BATON_STATE_DIR).
        return dict(os.environ, PYTHONPATH=str(ROOT), BATON_KAFKA_BOOTSTRAP=self.bootstrap,
                    BATON_TOPIC_PREFIX=self.settings.topic_prefix, BATON_STATE_DIR=str(self.workdir))

    def orchestrator(self, index: int) -> Service:
        port = _free_port()
        self.metrics_ports.append(port)
        command = [sys.executable, "-m", "orchestrator.cli", "orchestrator", "--instance-id", f"bench-o{index}",
                   "--metrics-port", str(port), "--bootstrap", self.bootstrap,
                   "--topic-prefix", self.settings.topic_prefix]
        return Service(command, self.env(), self.workdir / f"orchestrator-{index}.log")

    def batches(self) -> tuple[float, float]:
        """(transactions, events in them) so far, summed over the orchestrators' /metrics."""
        count = events = 0.0
        for port in self.metrics_ports:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            for line in text.splitlines():
                if line.startswith("baton_batch_events_count "):
                    count += float(line.split()[1])
                elif line.startswith("baton_batch_events_sum "):
                    events += float(line.split()[1])
        return count, events

    def fn(self, index: int) -> Service:
        command = [sys.executable, "-m", "orchestrator.cli", "step", "fn", "--module", STEPS_MODULE,
                   "--metrics-port", "0"]
        return Service(command, self.env(), self.workdir / f"fn-{index}.log")

    def __enter__(self) -> Deployment:
        asyncio.run(ensure_topics(self.settings))
        self.orchestrator_services = [self.orchestrator(i) for i in range(self.orchestrators)]
        self.fn_services = [self.fn(i) for i in range(self.fns)]
        self.services = [*self.orchestrator_services, *self.fn_services]
        for service in self.services:
            service.start()
        self.wait_assigned()
        return self

    def wait_assigned(self, timeout: float = 60.0) -> None:
        """Until every orchestrator owns partitions and the group has settled (no rebalance mid-run)."""
        deadline = time.monotonic() + timeout
        while True:
            logs = [s.log_text() for s in self.orchestrator_services]
            owned = [re.findall(r"assigned partitions \[([0-9, ]*)\]", text) for text in logs]
            if all(o and o[-1] for o in owned):
                count = sum(len(o[-1].split(",")) for o in owned)
                fn_owned = [re.findall(r"assigned to partitions: \((.*)\)", s.log_text()) for s in self.fn_services]
                fn_count = sum(o[-1].count("TopicPartition(") for o in fn_owned if o)
                if count == self.partitions and fn_count == (self.partitions if self.fn_services else 0):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"orchestrators did not settle: {owned}")
            time.sleep(0.2)
        time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        for service in self.services:
            service.stop()
        # The logs stay for inspection; the orchestrators' state stores (a soak's are GiBs) go.
        shutil.rmtree(self.workdir / "orchestrator", ignore_errors=True)
        # A broker that keeps every run's topics slows down (thousands of partitions on one node).
        if not self.keep_topics:
            asyncio.run(delete_topics(self.settings))

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each service process, and of the broker when it is the local one."""
        cpu = {s.log.stem: s.cpu() for s in self.services}
        broker = _local_broker_pid(self.bootstrap)
        if broker is not None:
            cpu["broker"] = proc_cpu_seconds(broker)
        return cpu


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _local_broker_pid(bootstrap: str) -> int | None:
    """The pid of infra/local_kafka.py's broker if `bootstrap` is it (its CPU counts in a run too)."""
    from infra.broker_process import default_paths, recorded_broker

    record = recorded_broker(default_paths())
    if record is None or not bootstrap.endswith(f":{record['port']}"):
        return None
    return record["pid"]


# --------------------------------------------------------------------------- client side


class Client:
    """Publishes starts and watches terminal statuses on the events topic."""

    def __init__(self, settings: KafkaSettings, *, idempotent: bool = False,
                 producer_options: dict[str, Any] | None = None) -> None:
        self.settings = settings
        # Not idempotent and lingering 2 ms by default: the fastest way to publish a burst of starts.
        options = {"linger_ms": 2, "max_batch_size": 256 * 1024} if producer_options is None else producer_options
        self.client = BatonClient(settings, idempotent=idempotent, producer_options=options)
        self.watcher = new_consumer(settings, settings.topics.events, group_id=f"bench-{uuid.uuid4().hex[:8]}",
                                    auto_commit=True, auto_offset_reset="earliest")
        self.started_at: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.outcomes: dict[str, ExecutionStatus] = {}

    async def __aenter__(self) -> Client:
        await self.client.open()
        await self.watcher.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.watcher.stop()

    async def start(self, definition: dict[str, Any], name: str, execution_input: Any = None) -> str:
        execution_id = execution_id_for("bench", name)
        self.started_at[execution_id] = time.perf_counter()
        return await self.client.start("bench", definition=definition, name=name, acked=False,
                                       input={"n": name} if execution_input is None else execution_input)

    async def poll(self, timeout_ms: int = 200) -> None:
        batch = await self.watcher.getmany(timeout_ms=timeout_ms)
        now = time.perf_counter()
        for records in batch.values():
            for record in records:
                status = decode(ExecutionStatus, record.value)
                if status.status == "RUNNING":
                    self.running.setdefault(status.execution_id, now)
                elif status.status in TERMINAL:
                    if status.status != "SUCCEEDED":
                        raise RuntimeError(f"{status.execution_id} ended {status.status}: {status.error}")
                    self.done.setdefault(status.execution_id, now)
                    self.outcomes[status.execution_id] = status

    async def flush(self) -> None:
        await self.client.flush()

    async def wait(self, ids: set[str], timeout: float, *, running: bool = False) -> None:
        await self.client.flush()
        deadline = time.monotonic() + timeout
        seen = self.running if running else self.done
        while not ids <= seen.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids - seen.keys())} of {len(ids)} executions not "
                                   f"{'running' if running else 'finished'} after {timeout:.0f}s")
            await self.poll()


async def read_topic(settings: KafkaSettings, topic: str, timeout: float = 60.0) -> list[Any]:
    consumer = new_consumer(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout}s")
            for recs in (await consumer.getmany(timeout_ms=500, max_records=10000)).values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def histories(settings: KafkaSettings) -> dict[str, list[dict[str, Any]]]:
    by_execution: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in await read_topic(settings, settings.topics.history):
        history = decode(HistoryRecord, record.value)
        by_execution[history.execution_id].extend(history.events)
    return by_execution


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def _ts(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def task_cycles_ms(history: dict[str, list[dict[str, Any]]]) -> list[float]:
    """Per Task: TaskScheduled -> TaskSucceeded in the history (both stamped with the Kafka timestamp of
    the record that caused them), i.e. the previous event's record produced -> orchestrator consumes,
    decides and commits the command -> fn consumes it (read_committed), runs the no-op, produces the
    result. The no-op's own time (~0.05 ms) is negligible, so this is the per-Task overhead."""
    cycles: list[float] = []
    for events in history.values():
        scheduled: float | None = None
        for event in events:
            if event["type"] == "TaskScheduled":
                scheduled = _ts(event)
            elif event["type"] == "TaskSucceeded" and scheduled is not None:
                cycles.append((_ts(event) - scheduled) * 1000)
                scheduled = None
    return cycles


# --------------------------------------------------------------------------- floor


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
