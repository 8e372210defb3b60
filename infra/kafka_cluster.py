"""A 3-node Apache Kafka (KRaft) cluster on 127.0.0.1, without Docker: the production shape.

Each node is a combined broker+controller and the three are the controller quorum's voters, so
the cluster keeps serving (metadata and data) with any one node down. Topics default to
replication factor 3 and ``min.insync.replicas=2``, as docs/reliability.md recommends for
production; the internal topics (consumer offsets, transaction state) are replicated the same way.

Usage (from the repository root)::

    python -m infra.kafka_cluster up        # start the 3 nodes (or reuse them); print the bootstrap
    python -m infra.kafka_cluster status    # per node: up or down, pid, ports
    python -m infra.kafka_cluster kill 2    # SIGKILL node 2 (a crashed broker)
    python -m infra.kafka_cluster start 2   # start node 2 again on its data
    python -m infra.kafka_cluster down      # stop the nodes this tool started

Python callers use :func:`configured`, :func:`ensure_up`, :func:`kill_node`, :func:`start_node`
and :func:`down`.

Environment:
    BATON_KAFKA_CLUSTER_PORT  client port of node 1 (default 19192); node n listens on
                              port + 2(n-1) and its controller on the port after that
    BATON_KAFKA_CLUSTER_HEAP  JVM heap of each node, -Xmx (default 384m)
    BATON_STATE_DIR           state root; the cluster's lives in <root>/kafka-cluster
The jars are the ones ``infra.local_kafka fetch`` resolves (same cache, same version).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.broker_process import (
    HOST,
    STOP_GRACE_SECONDS,
    LocalKafkaError,
    LogMark,
    Paths,
    default_paths,
    escape_property,
    java_command,
    kafka_version,
    new_cluster_id,
    run_storage_tool,
    running_pid,
    spawn_broker,
    terminate_all,
    wait_for_exit,
)
from infra.kafka_jars import fetch
from infra.kafka_probes import answers_kafka, listed_brokers, port_accepts
from infra.processes import rss_mib, run_command, state_lock

NODES = 3
DEFAULT_BASE_PORT = 19192
DEFAULT_HEAP = "384m"
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


@dataclass(frozen=True)
class Node:
    """One combined broker+controller; ``paths.state`` is its own folder under the cluster's."""

    node_id: int
    port: int
    controller_port: int
    paths: Paths

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class Cluster:
    """Where the cluster lives and listens; it may or may not be running."""

    state: Path
    heap: str
    nodes: tuple[Node, ...]

    @property
    def bootstrap(self) -> str:
        """All three client addresses: a client that finds one node down tries the next."""
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> Node:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise LocalKafkaError(f"no node {node_id}: nodes are 1-{len(self.nodes)}")


def configured(state: Path | None = None, base_port: int | None = None,
               heap: str | None = None) -> Cluster:
    """The cluster of this checkout (or of ``state``), on ``base_port`` and the 5 ports after it."""
    base = base_port if base_port is not None else int(
        os.environ.get("BATON_KAFKA_CLUSTER_PORT", DEFAULT_BASE_PORT))
    root = state if state is not None else default_paths().state.parent / "kafka-cluster"
    cache = default_paths().cache
    nodes = tuple(Node(node_id=n, port=base + 2 * (n - 1), controller_port=base + 2 * (n - 1) + 1,
                       paths=Paths(cache=cache, state=root / f"node-{n}"))
                  for n in range(1, NODES + 1))
    return Cluster(state=root, heap=heap or os.environ.get("BATON_KAFKA_CLUSTER_HEAP", DEFAULT_HEAP),
                   nodes=nodes)


# --------------------------------------------------------------------------- configuration


def render_properties(cluster: Cluster, node: Node) -> str:
    """server.properties of one node: the single-node settings of infra/local_kafka.py, with
    everything replicated 3 ways and acknowledged by 2."""
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in cluster.nodes)
    settings: list[tuple[str, object]] = [
        ("process.roles", "broker,controller"),
        ("node.id", node.node_id),
        ("controller.quorum.voters", voters),
        ("listeners", f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}"),
        ("advertised.listeners", f"PLAINTEXT://{HOST}:{node.port}"),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
        ("log.dirs", str(node.paths.data)),
        # Production durability: a write acknowledged with acks=all is on 2 of 3 replicas, so
        # losing any one node loses nothing, and a replica that missed writes never leads.
        ("default.replication.factor", REPLICATION_FACTOR),
        ("min.insync.replicas", MIN_INSYNC_REPLICAS),
        ("unclean.leader.election.enable", "false"),
        # Transactions and group offsets live in internal topics: replicate them the same way,
        # or the orchestrator's commits would depend on the one node holding them.
        ("offsets.topic.replication.factor", REPLICATION_FACTOR),
        ("transaction.state.log.replication.factor", REPLICATION_FACTOR),
        ("transaction.state.log.min.isr", MIN_INSYNC_REPLICAS),
        ("share.coordinator.state.topic.replication.factor", REPLICATION_FACTOR),
        ("share.coordinator.state.topic.min.isr", MIN_INSYNC_REPLICAS),
        # Fewer internal partitions than the default 50 make the first group join and the first
        # transaction fast on 2 cores; 6 still spreads coordinators over the 3 nodes.
        ("offsets.topic.num.partitions", 6),
        ("transaction.state.log.num.partitions", 6),
        ("group.initial.rebalance.delay.ms", 0),
        # As on the single node: Baton provisions its topics explicitly.
        ("auto.create.topics.enable", "false"),
        ("num.partitions", 3),
        # Sized for 3 JVMs sharing a small machine (see infra/local_kafka.py).
        ("log.cleaner.dedupe.buffer.size", 16 * 1024 * 1024),
        ("num.network.threads", 2),
        ("num.io.threads", 2),
        ("num.replica.fetchers", 1),
        ("log.retention.hours", 24),
    ]
    lines = ["# Written by infra/kafka_cluster.py on every `up`; edits are overwritten."]
    lines += [f"{key}={escape_property(str(value))}" for key, value in settings]
    return "\n".join(lines) + "\n"


def _cluster_id(cluster: Cluster) -> str:
    """The id all three nodes are formatted with; kept so a node formatted later matches."""
    record = cluster.state / "cluster-id"
    with contextlib.suppress(OSError):
        existing = record.read_text().strip()
        if existing:
            return existing
    value = new_cluster_id()  # as Kafka's Uuid.randomUuid() prints it, without a JVM start
    record.write_text(value + "\n")
    return value


def _prepare(cluster: Cluster, libs: Path) -> None:
    """Write every node's properties and format the nodes not formatted yet."""
    cluster.state.mkdir(parents=True, exist_ok=True)
    cluster_id = _cluster_id(cluster)
    formats = []
    for node in cluster.nodes:
        for folder in (node.paths.data, node.paths.logs):
            folder.mkdir(parents=True, exist_ok=True)
        node.paths.properties.write_text(render_properties(cluster, node))
        if not (node.paths.data / "meta.properties").is_file():
            formats.append(java_command(libs, node.paths, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                     "-c", str(node.paths.properties)))
    # One JVM start each: side by side, they overlap their start-up time.
    with concurrent.futures.ThreadPoolExecutor(max_workers=NODES) as pool:
        list(pool.map(run_storage_tool, formats))


# --------------------------------------------------------------------------- probes


def registered_brokers(bootstrap: str, timeout_ms: int = 5000) -> set[int]:
    """Node ids of the brokers the cluster's metadata lists; empty if no node answers. A crashed
    broker stays listed until the controller fences it (broker.session.timeout.ms, 9 s by
    default). Safe to call from inside a running event loop."""
    return listed_brokers(bootstrap, timeout_ms) or set()


def wait_ready(cluster: Cluster, timeout: float = 120.0,
               marks: dict[int, LogMark] | None = None) -> None:
    """Until the metadata of every node lists all three brokers. Raises with the log of a node
    that died meanwhile (``marks``: log positions of the nodes just started)."""
    deadline = time.monotonic() + timeout
    wanted = {node.node_id for node in cluster.nodes}
    while True:
        for node in cluster.nodes:
            if running_pid(node.paths) is None and not answers_kafka(node.port, timeout=0.5):
                mark = (marks or {}).get(node.node_id)
                raise LocalKafkaError(f"node {node.node_id} is not running; logs in {node.paths.logs}",
                                      mark.excerpt() if mark else "")
        # Asking each node shows that every one has caught up with the metadata, not just one.
        if all(registered_brokers(node.bootstrap) == wanted for node in cluster.nodes):
            return
        if time.monotonic() > deadline:
            seen = registered_brokers(cluster.bootstrap)
            raise LocalKafkaError(f"the cluster was not ready after {timeout:g} s: brokers "
                                  f"{sorted(seen) or 'none'} of {sorted(wanted)} registered; "
                                  f"logs in {cluster.state}/node-*/logs")
        time.sleep(0.5)


# --------------------------------------------------------------------------- up / down


def _spawn(cluster: Cluster, node: Node, libs: Path) -> tuple[int, LogMark]:
    if port_accepts(node.port) or port_accepts(node.controller_port):
        raise LocalKafkaError(f"port {node.port} or {node.controller_port} of node {node.node_id} is in "
                              "use by a process this tool did not start; set BATON_KAFKA_CLUSTER_PORT")
    mark = LogMark.now(node.paths)
    return spawn_broker(libs, node.paths, node.port, heap=cluster.heap), mark


def ensure_up(cluster: Cluster | None = None, timeout: float = 120.0) -> tuple[Cluster, list[int]]:
    """Start the nodes of ``cluster`` that do not run yet and wait until all three brokers are
    registered. Returns the cluster and the node ids started by this call (empty: reused).
    On failure the nodes this call started are stopped again."""
    cluster = cluster or configured()
    started: dict[int, LogMark] = {}
    with state_lock(cluster.state):
        to_start = [node for node in cluster.nodes if running_pid(node.paths) is None]
        if to_start:
            libs = fetch(to_start[0].paths)
            _prepare(cluster, libs)
            # All at once: a node cannot finish starting before a quorum of controllers runs.
            for node in to_start:
                _, started[node.node_id] = _spawn(cluster, node, libs)
        try:
            wait_ready(cluster, timeout, started)
        except (LocalKafkaError, KeyboardInterrupt):
            _stop_nodes([cluster.node(n) for n in started], grace=5.0)
            raise
    return cluster, sorted(started)


def start_node(cluster: Cluster, node_id: int, timeout: float | None = 120.0) -> int:
    """Start one node again on its data (after :func:`kill_node`); return its pid. With a
    ``timeout``, wait until all three brokers are registered; with None, return at once."""
    node = cluster.node(node_id)
    with state_lock(cluster.state):
        pid = running_pid(node.paths)
        mark: LogMark | None = None
        if pid is None:
            libs = fetch(node.paths)
            _prepare(cluster, libs)
            pid, mark = _spawn(cluster, node, libs)
    if timeout is not None:
        wait_ready(cluster, timeout, {node_id: mark} if mark else None)
    return pid


def kill_node(cluster: Cluster, node_id: int) -> int:
    """SIGKILL one node (a crash: no controlled shutdown, no flush); return the pid killed."""
    node = cluster.node(node_id)
    with state_lock(cluster.state):
        pid = running_pid(node.paths)
        if pid is None:
            raise LocalKafkaError(f"node {node_id} is not running (or was not started by this tool)")
        os.kill(pid, signal.SIGKILL)
        if not wait_for_exit([(pid, node.paths)], 10):
            raise LocalKafkaError(f"node {node_id} (pid {pid}) did not exit after SIGKILL")
        node.paths.pid_file.unlink(missing_ok=True)
    return pid


def _stop_nodes(nodes: Sequence[Node], grace: float = STOP_GRACE_SECONDS) -> list[int]:
    """SIGTERM every given node at once, SIGKILL those still alive after ``grace``.

    At once, not one by one: the last node's controlled shutdown needs a controller quorum,
    which stopping the others first would have taken away.
    """
    running = [(pid, node) for node in nodes if (pid := running_pid(node.paths)) is not None]
    terminate_all([(pid, node.paths) for pid, node in running], grace)
    for _, node in running:
        node.paths.pid_file.unlink(missing_ok=True)
    return [pid for pid, _ in running]


def down(cluster: Cluster | None = None) -> str:
    """Stop every node this tool started (per the pid files); return what was done."""
    cluster = cluster or configured()
    with state_lock(cluster.state):
        began = time.monotonic()
        stopped = _stop_nodes(cluster.nodes)
    if not stopped:
        return "no node started by this tool is running; nothing to stop"
    return f"stopped {len(stopped)} node(s) (pids {', '.join(map(str, stopped))}) in " \
           f"{time.monotonic() - began:.1f} s"


def status(cluster: Cluster | None = None) -> tuple[bool, list[str]]:
    """(all three brokers registered, one line per node)."""
    cluster = cluster or configured()
    seen = registered_brokers(cluster.bootstrap)
    lines = []
    for node in cluster.nodes:
        pid = running_pid(node.paths)
        state = "up" if answers_kafka(node.port) else "down"
        owner = f"pid {pid}, RSS {rss_mib(pid)} MiB" if pid else "not started by this tool"
        registered = "registered" if node.node_id in seen else "not registered"
        lines.append(f"node {node.node_id}: {state}, {registered}, {node.bootstrap} "
                     f"(controller {node.controller_port}), {owner}")
    return seen == {node.node_id for node in cluster.nodes}, lines


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.kafka_cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up_cmd = commands.add_parser("up", help="start the 3 nodes (or reuse them)")
    up_cmd.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for ready")
    commands.add_parser("down", help="stop the nodes this tool started")
    commands.add_parser("status", help="per node: up or down (exit 3 unless all 3 are registered)")
    kill_cmd = commands.add_parser("kill", help="SIGKILL one node")
    kill_cmd.add_argument("node", type=int, choices=range(1, NODES + 1))
    start_cmd = commands.add_parser("start", help="start one node again and wait for all 3")
    start_cmd.add_argument("node", type=int, choices=range(1, NODES + 1))
    start_cmd.add_argument("--timeout", type=float, default=120.0)
    return parser


def _run(args: argparse.Namespace) -> int:
    cluster = configured()
    if args.command == "up":
        began = time.monotonic()
        _, started = ensure_up(cluster, args.timeout)
        how = (f"started node(s) {', '.join(map(str, started))} in {time.monotonic() - began:.1f} s"
               if started else "reused the running nodes")
        print(f"Kafka {kafka_version()} cluster ready, {how}; logs in {cluster.state}/node-*/logs",
              file=sys.stderr)
        print(cluster.bootstrap)  # alone on stdout: export BATON_KAFKA_BOOTSTRAP=$(... up)
        return 0
    if args.command == "down":
        print(down(cluster))
        return 0
    if args.command == "kill":
        print(f"killed node {args.node} (pid {kill_node(cluster, args.node)})")
        return 0
    if args.command == "start":
        pid = start_node(cluster, args.node, args.timeout)
        print(f"node {args.node} running (pid {pid}); all {NODES} brokers registered")
        return 0
    ready, lines = status(cluster)
    print("\n".join(lines))
    print(f"bootstrap {cluster.bootstrap}: {'ready' if ready else 'not all brokers registered'}")
    return 0 if ready else 3


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m infra.kafka_cluster``; returns the exit code."""
    args = _parser().parse_args(argv)
    # Probing a node that is down makes aiokafka log every refused connection; the command
    # reports the outcome itself.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    return run_command("kafka_cluster", lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
