"""What every `baton bench` workload runs on: a deployment of `baton orchestrator` and step
processes on a fresh topic prefix of the real local broker, a client that starts executions and
waits for their ends, the workload definitions, and the figures read from /proc and the history."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import signal
import socket
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

from kafka_io import KafkaSettings, new_consumer
from orchestrator.client import BatonClient
from orchestrator.runtime.topics import delete_topics, ensure_topics
from schemas.base import decode
from schemas.executions import ExecutionStatus, HistoryRecord, execution_id_for, parse_execution_event

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
                status = parse_execution_event(record.value)
                if not isinstance(status, ExecutionStatus):
                    continue  # an ExecutionExpired (BATON_RETENTION): not a status
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
