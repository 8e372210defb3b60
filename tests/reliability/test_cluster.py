"""A 3-broker KRaft cluster on loopback, in the configuration docs/reliability.md recommends for
production (replication factor 3, min.insync.replicas 2, internal topics replicated alike).

W1-style chains run against the three bootstrap addresses; mid-run the broker that coordinates
the orchestrator's transactions is SIGKILLed, and later started again on its data. Every
execution must complete exactly once (support.check_exactly_once), the Baton processes must
survive on their own, and the restarted broker must rejoin every partition's in-sync replicas.
The full form (BATON_RELIABILITY=full) runs more executions and, once the cluster is whole again,
kills the broker that took over the transactions too, and restarts it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient, CoordinationType

from bench.harness import Client, Deployment
from infra.kafka_cluster import (
    MIN_INSYNC_REPLICAS,
    REPLICATION_FACTOR,
    Cluster,
    configured,
    down,
    ensure_up,
    kill_node,
    start_node,
    wait_ready,
)
from infra.local_kafka import LocalKafkaError
from kafka_io import KafkaSettings
from orchestrator.runtime.topics import topic_specs
from tests.reliability.conftest import FULL
from tests.reliability.support import check_exactly_once, drive_with_faults

EXECUTIONS = 500 if FULL else 60
IN_FLIGHT = 50 if FULL else 20
KILL_AT, RESTART_AT = 0.25, 0.6  # fractions of the executions started
DRIVE_TIMEOUT = 300 if FULL else 90
INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes of its own (fresh state, ports 19292-19297 by default), stopped afterwards."""
    base_port = int(os.environ.get("BATON_RELIABILITY_CLUSTER_PORT", "19292"))
    wanted = configured(state=tmp_path_factory.mktemp("kafka-cluster"), base_port=base_port)
    try:
        running, _ = ensure_up(wanted, timeout=120)
    except LocalKafkaError as error:
        pytest.fail(f"the 3-node cluster did not start: {error}\n{error.log_tail}", pytrace=False)
    try:
        yield running
    finally:
        down(running)


class DurableClient(Client):
    """The bench client with the producer settings of Baton's API and CLI (idempotent, hence
    acks=all): a start acknowledged by its partition leader alone could die with that broker."""

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(settings, idempotent=True, producer_options={"linger_ms": 2})


async def _layout(bootstrap: str, topics: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per topic, its partitions' metadata (leader, replicas, isr)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    assert all(t["error_code"] == 0 for t in described), [(t["topic"], t["error_code"]) for t in described]
    return {t["topic"]: t["partitions"] for t in described}


async def _min_insync(bootstrap: str, topics: list[str]) -> dict[str, tuple[str, int]]:
    """Per topic, min.insync.replicas and its config source (1: set on the topic itself)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"min.insync.replicas": None}) for name in topics])
    finally:
        await admin.close()
    found: dict[str, tuple[str, int]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == "min.insync.replicas":
                    found[resource["resource_name"]] = (entry["config_value"], entry["config_source"])
    return found


async def _transaction_coordinator(bootstrap: str, transactional_id: str) -> int:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node_id: int = await client.coordinator_lookup(CoordinationType.TRANSACTION, transactional_id)
        return node_id
    finally:
        await client.close()


async def _until_fully_replicated(bootstrap: str, topics: list[str], timeout: float) -> float:
    """Seconds until every partition of ``topics`` has all its replicas in sync again."""
    began = time.monotonic()
    while True:
        layout = await _layout(bootstrap, topics)
        short = [f"{t}/{p['partition']}" for t, parts in layout.items() for p in parts
                 if len(p["isr"]) < REPLICATION_FACTOR]
        if not short:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"partitions still under-replicated after {timeout:g} s: {short[:10]}")
        await asyncio.sleep(0.5)


def _stall(completions: list[float], kill: float, window: float = 60.0) -> float:
    """Longest time without an execution finishing in the minute after a kill: the pause a user
    of the workflows sees. (Completions before the kill are excluded: a fault callback may have
    blocked the driver's polling just before it.)"""
    points = [kill, *(t for t in completions if kill < t < kill + window)]
    return max((b - a for a, b in zip(points, points[1:])), default=window)


def _in_thread(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from a fault callback, which runs inside the driver's loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def test_broker_killed_in_a_3_node_cluster(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # Read by the Deployment's settings (topic provisioning), as a user would set them.
    monkeypatch.setenv("BATON_REPLICATION_FACTOR", str(REPLICATION_FACTOR))
    monkeypatch.setenv("BATON_MIN_INSYNC_REPLICAS", str(MIN_INSYNC_REPLICAS))
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        # Topics kept after the services stop: the last check reads their replicas.
        deployment = Deployment(cluster.bootstrap, keep_topics=True)
        # Registered before entering: if the services start but never settle, they still stop.
        stack.callback(deployment.__exit__)
        deployment.__enter__()
        settings = deployment.settings
        baton_topics = [spec.name for spec in topic_specs(settings)]
        every_topic = [*baton_topics, *INTERNAL_TOPICS]

        # The topics are provisioned as the production configuration says, and so are the
        # internal ones the orchestrator's transactions and offsets depend on (both exist by now).
        layout = asyncio.run(_layout(cluster.bootstrap, every_topic))
        for topic, partitions in layout.items():
            assert partitions, topic
            for partition in partitions:
                assert len(partition["replicas"]) == REPLICATION_FACTOR, (topic, partition)
                assert len(partition["isr"]) == REPLICATION_FACTOR, (topic, partition)
        # Set on each topic by provisioning (source 1), not merely the brokers' default.
        min_isr = asyncio.run(_min_insync(cluster.bootstrap, [*baton_topics, "__transaction_state"]))
        assert min_isr == dict.fromkeys([*baton_topics, "__transaction_state"], (str(MIN_INSYNC_REPLICAS), 1))

        # The victim: the broker coordinating the orchestrator's transactions (its transactional
        # id is "<group>-<instance id>"), the hardest one to lose mid-commit.
        transactional_id = f"{settings.topic_prefix}-orchestrator-bench-o0"
        victims = [asyncio.run(_transaction_coordinator(cluster.bootstrap, transactional_id))]
        led = sum(1 for t in baton_topics for p in layout[t] if p["leader"] == victims[0])
        kills: list[float] = []
        restarts: list[float] = []

        def kill() -> None:
            kill_node(cluster, victims[-1])
            kills.append(time.perf_counter())

        def restart() -> None:
            start_node(cluster, victims[-1], timeout=None)  # returns at once; the run goes on
            restarts.append(time.perf_counter())

        def kill_the_new_coordinator() -> None:
            # Full strength first (so this is one broker down again, not two), then kill
            # whichever broker took over the transactions: the restarted one must now carry data.
            wait_ready(cluster, timeout=60)
            _in_thread(_until_fully_replicated(cluster.bootstrap, every_topic, 60))
            victims.append(_in_thread(_transaction_coordinator(cluster.bootstrap, transactional_id)))
            kill()

        faults: list[tuple[float, Callable[[], None]]] = [(KILL_AT, kill), (RESTART_AT, restart)]
        if FULL:
            faults += [(0.7, kill_the_new_coordinator), (0.85, restart)]
        clients: list[Client] = []

        def durable_client(kafka: KafkaSettings) -> Client:
            clients.append(DurableClient(kafka))
            return clients[-1]

        try:
            ids = asyncio.run(drive_with_faults(deployment, EXECUTIONS, IN_FLIGHT, faults, "cluster",
                                                timeout=DRIVE_TIMEOUT, client_type=durable_client))
        except (TimeoutError, RuntimeError) as error:
            logs = "\n".join(f"--- {s.log.name}\n{_tail(s.log)}" for s in deployment.services)
            pytest.fail(f"{error} (brokers killed: {victims})\n{logs}", pytrace=False)
        driven = time.monotonic() - began
        counts = asyncio.run(check_exactly_once(deployment, ids))
        # Nothing was restarted on the Baton side: the clients rode out the failover themselves.
        assert all(s.process is not None and s.process.poll() is None for s in deployment.services), \
            [(s.log.name, s.process and s.process.poll()) for s in deployment.services]
        assert len(kills) == len(restarts) == (2 if FULL else 1)

    # Back to full strength: the restarted broker registered and caught up on every partition.
    wait_ready(cluster, timeout=60)
    caught_up = asyncio.run(_until_fully_replicated(cluster.bootstrap, every_topic, 60))
    completions = sorted(clients[0].done.values())
    stalls = ", ".join(f"{_stall(completions, k):.1f}" for k in kills)
    downtimes = ", ".join(f"{r - k:.1f}" for k, r in zip(kills, restarts))
    print(f"\nkilled brokers {victims} (each the transaction coordinator; the first led {led} of "
          f"{len(baton_topics) * settings.partitions} Baton partitions), each down {downtimes} s; "
          f"longest pause without a completion after each kill {stalls} s; {counts}; "
          f"run {driven:.1f} s; all ISRs full {caught_up:.1f} s after the run")
