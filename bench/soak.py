"""`baton bench soak`: a long stream of one-state executions through one orchestrator instance.

Two phases on a fresh topic prefix, one orchestrator process (no step service):
1. finished: executions of one Pass state, each finished by the decision that starts it;
2. parked: executions of one Task waiting for a task token (`.waitForTaskToken`, never decided),
   as human reviews waiting for days.
At each checkpoint of the running count (e.g. 10k, 30k, 100k, ...) the bench waits until the
orchestrator has applied every start, then records its RSS, the state topic's size on the broker's
disk, the size of its state stores, and a same-host restart (SIGTERM, start, ready): seconds from
the new process to its partitions restored, the restore's own seconds and how many state records
it read. At the end the store folder is deleted and the orchestrator restarted, as a takeover on a
new host (the whole compacted topic read). Figures and plot: docs/performance.md ("Soak")."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Deployment, Service, chain
from kafka_io import KafkaSettings
from orchestrator.client import BatonClient

ONE_STATE = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
PARKED = chain(1, "baton:fn:noop.waitForTaskToken")  # no fn service runs: the token is never used
MACHINE = "Soak"
PUBLISH_CHUNK = 5_000


def checkpoints(total: int, first: int = 10_000) -> list[int]:
    """10k, 30k, 100k, 300k, 1M, ... up to `total` (always included)."""
    marks, mark = [], first
    while mark < total:
        marks.append(mark)
        mark = mark * 3 if str(mark)[0] == "1" else mark * 10 // 3
    return [*marks, total]


async def publish(settings: KafkaSettings, definition: dict[str, Any], kind: str, first: int, count: int) -> None:
    """`count` starts through Baton's client, published in bulk (queued, then flushed per chunk)."""
    options = {"linger_ms": 5, "max_batch_size": 512 * 1024, "compression_type": "gzip"}
    async with BatonClient(settings, producer_options=options) as client:
        for chunk in range(first, first + count, PUBLISH_CHUNK):
            for i in range(chunk, min(chunk + PUBLISH_CHUNK, first + count)):
                await client.start(MACHINE, definition=definition, name=f"{kind}-{i}", input={"i": i}, acked=False)
            await client.flush()


def metric(port: int, name: str) -> float:
    """A metric of the orchestrator's /metrics, summed over its labels."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and (line[len(name)] in " {"))


async def wait_applied(deployment: Deployment, done: Callable[[int], bool], timeout: float) -> None:
    port = deployment.metrics_ports[-1]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if done(port):
                return
        except OSError:
            pass  # the metrics server of a process starting
        if time.monotonic() > deadline:
            raise TimeoutError("the orchestrator did not apply the starts in time")
        await asyncio.sleep(0.5)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def state_topic_bytes(settings: KafkaSettings) -> int | None:
    """The state topic's log segments on the local broker's disk (None: not a local broker's).
    Segments only: Kafka preallocates each partition's index files (10 MiB each)."""
    from infra.local_kafka import default_paths

    data = default_paths().data
    logs = list(data.glob(f"{settings.topics.state}-*/*.log")) if data.exists() else []
    return sum(log.stat().st_size for log in logs) if logs else None


def restart(orchestrator: Service, timeout: float = 600) -> dict[str, float]:
    """SIGTERM, start again, and time it until its partitions are restored."""
    before = orchestrator.log_text().count("restored in")
    orchestrator.stop()
    began = time.perf_counter()
    orchestrator.start()
    deadline = time.monotonic() + timeout
    while orchestrator.log_text().count("restored in") <= before:
        if time.monotonic() > deadline or (orchestrator.process and orchestrator.process.poll() is not None):
            raise RuntimeError("the orchestrator did not restore:\n" + orchestrator.log_text()[-2000:])
        time.sleep(0.05)
    ready = time.perf_counter() - began
    found = re.findall(r"restored in ([0-9.]+)s, (\d+) state records read", orchestrator.log_text())
    restore_seconds, records = found[-1]
    return {"restart_to_ready_s": round(ready, 2), "restore_s": float(restore_seconds),
            "records_read": int(records)}


def sample(deployment: Deployment, kind: str, count: int) -> dict[str, Any]:
    orchestrator = deployment.orchestrator_services[0]
    time.sleep(2.0)  # idle: the orchestrator hands freed memory back (malloc_trim) when it goes quiet
    figures: dict[str, Any] = {"kind": kind, "count": count, "rss_mib": round(orchestrator.rss() / 2**20, 1)}
    topic = state_topic_bytes(deployment.settings)
    figures["state_topic_mib"] = None if topic is None else round(topic / 2**20, 1)
    figures["store_mib"] = round(folder_bytes(deployment.workdir / "orchestrator") / 2**20, 1)
    figures.update(restart(orchestrator))
    time.sleep(1.0)
    figures["rss_after_restart_mib"] = round(orchestrator.rss() / 2**20, 1)
    return figures


async def phase(deployment: Deployment, kind: str, total: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Publish `total` executions of one kind in steps to each checkpoint, sampling at each."""
    definition = ONE_STATE if kind == "finished" else PARKED
    samples, published = [], 0
    for mark in checkpoints(total):
        began = time.perf_counter()
        await publish(deployment.settings, definition, kind, published, mark - published)
        base = published
        published = mark
        if kind == "finished":
            # Counted since the process started, and each checkpoint restarts it (all applied by then).
            await wait_applied(deployment, lambda port: metric(port, "baton_executions_finished_total")
                               >= published - base, 3600)
        else:
            await wait_applied(deployment, lambda port: metric(port, "baton_open_executions") >= published, 3600)
        rate = (mark - base) / (time.perf_counter() - began)
        figures = sample(deployment, kind, mark)
        figures["applied_per_s"] = round(rate)
        samples.append(figures)
        progress(json.dumps(figures))
    return samples


def soak(bootstrap: str, finished: int, parked: int, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run both phases; the report (every sample, and the takeover) as a dict."""
    with Deployment(bootstrap, orchestrators=1, fns=0) as deployment:
        report: dict[str, Any] = {"finished": [], "parked": []}
        if finished:
            report["finished"] = asyncio.run(phase(deployment, "finished", finished, progress))
        if parked:
            report["parked"] = asyncio.run(phase(deployment, "parked", parked, progress))
        orchestrator = deployment.orchestrator_services[0]
        orchestrator.stop()
        shutil.rmtree(deployment.workdir / "orchestrator")
        takeover = restart(orchestrator, timeout=3600)
        takeover["rss_mib"] = round(orchestrator.rss() / 2**20, 1)
        report["takeover"] = takeover
        progress(json.dumps({"takeover": takeover}))
        return report
