"""A real single-node Apache Kafka (KRaft) on 127.0.0.1, without Docker.

Usage (from the repository root)::

    python -m infra.local_kafka fetch    # resolve the Kafka jars into the cache (once)
    python -m infra.local_kafka up       # start a broker, or reuse one already on the port
    python -m infra.local_kafka status   # up or down, pid, bootstrap address
    python -m infra.local_kafka down     # stop the broker this tool started

Python callers use :func:`ensure_up` and :func:`stop`.

Environment:
    BATON_KAFKA_PORT             client port (default 9092)
    BATON_KAFKA_CONTROLLER_PORT  KRaft controller port (default: client port + 1)
    BATON_KAFKA_VERSION          Kafka version to resolve from Maven Central (default 4.1.1)
    BATON_KAFKA_CACHE            jar cache folder (default ~/.cache/baton/kafka-<version>)
    BATON_KAFKA_HEAP             JVM heap, -Xmx (default 512m)
    BATON_STATE_DIR              state root; the broker's lives in <root>/kafka (default <repo>/.baton)

Stdlib only: aiokafka is used for a stronger readiness probe when it is importable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from infra.broker_process import (
    DEFAULT_VERSION,
    HOST,
    KAFKA_DIR,
    LOG4J2_CONFIG,
    READY_LOG_LINE,
    REPO_ROOT,
    STOP_GRACE_SECONDS,
    LocalKafkaError,
    LogMark,
    Paths,
    default_paths,
    escape_property,
    exited,
    is_our_broker,
    java_command,
    kafka_version,
    read_pid_record,
    recorded_broker,
    run_storage_tool,
    spawn_broker,
    terminate,
    wait_ready,
)
from infra.kafka_jars import MAVEN_TIMEOUT_SECONDS, POM, fetch, fetch_is_complete
from infra.kafka_probes import answers_kafka, listed_brokers, port_accepts
from infra.processes import rss_mib, run_command, state_lock

DEFAULT_PORT = 9092

# The public face: what callers import from here, though several live in the modules above.
__all__ = [
    "DEFAULT_PORT", "DEFAULT_VERSION", "HOST", "KAFKA_DIR", "LOG4J2_CONFIG", "MAVEN_TIMEOUT_SECONDS", "POM",
    "READY_LOG_LINE", "REPO_ROOT", "STOP_GRACE_SECONDS", "Broker", "LocalKafkaError", "Paths", "answers_kafka",
    "configured_port", "controller_port", "default_paths", "down", "ensure_up", "fetch", "kafka_version",
    "main", "port_accepts", "render_properties", "status", "stop",
]


@dataclass(frozen=True)
class Broker:
    """A broker that answers on ``bootstrap``; ``started_here`` if this call started it."""

    bootstrap: str
    started_here: bool
    pid: int | None


# --------------------------------------------------------------------------- configuration


def configured_port(port: int | None = None) -> int:
    return port if port is not None else int(os.environ.get("BATON_KAFKA_PORT", DEFAULT_PORT))


def controller_port(port: int) -> int:
    return int(os.environ.get("BATON_KAFKA_CONTROLLER_PORT", port + 1))


def render_properties(port: int, cport: int, data_dir: Path) -> str:
    """The server.properties of one combined broker+controller node on loopback."""
    settings: list[tuple[str, object]] = [
        ("process.roles", "broker,controller"),
        ("node.id", 1),
        ("controller.quorum.voters", f"1@{HOST}:{cport}"),
        ("listeners", f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}"),
        ("advertised.listeners", f"PLAINTEXT://{HOST}:{port}"),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
        ("log.dirs", str(data_dir)),
        # One node: every internal topic can only have one replica.
        ("offsets.topic.replication.factor", 1),
        ("transaction.state.log.replication.factor", 1),
        ("transaction.state.log.min.isr", 1),
        ("share.coordinator.state.topic.replication.factor", 1),
        ("share.coordinator.state.topic.min.isr", 1),
        # The defaults (50 each) make the first group join / first transaction create 50
        # partitions; 5 is plenty for one machine and makes a fresh broker usable sooner.
        ("offsets.topic.num.partitions", 5),
        ("transaction.state.log.num.partitions", 5),
        # Tests join groups one after another; the 3 s default delay only slows them down.
        ("group.initial.rebalance.delay.ms", 0),
        # Baton provisions its topics explicitly (partitions, compaction). Auto-creation would
        # hide a misspelt topic or a missing provisioning step that a production cluster
        # (where it is normally off) would reveal, so it is off here too.
        ("auto.create.topics.enable", "false"),
        # Used when a topic is created without a count: more than one partition so ordering
        # and consumer-group behaviour are exercised, few enough for 2 cores.
        ("num.partitions", 3),
        # The cleaner (needed for compacted topics) otherwise takes a 128 MiB heap buffer.
        ("log.cleaner.dedupe.buffer.size", 16 * 1024 * 1024),
        # Defaults (3 network, 8 I/O threads) are sized for servers; 2 cores need fewer.
        ("num.network.threads", 2),
        ("num.io.threads", 4),
        # A dev broker keeps a day of data, not a week, so the state folder stays small.
        ("log.retention.hours", 24),
    ]
    lines = ["# Written by infra/local_kafka.py on every `up`; edits are overwritten."]
    lines += [f"{key}={escape_property(str(value))}" for key, value in settings]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- up / down


def _format_storage(libs: Path, paths: Paths) -> None:
    """Format the KRaft log dir once; a formatted dir has a meta.properties."""
    if (paths.data / "meta.properties").is_file():
        return
    tool = "kafka.tools.StorageTool"
    cluster_id = run_storage_tool(java_command(libs, paths, tool, "random-uuid")).split()[-1]
    # With controller.quorum.voters set, format must not be given --standalone.
    run_storage_tool(java_command(libs, paths, tool, "format", "-t", cluster_id, "-c", str(paths.properties)))


def ensure_up(port: int | None = None, timeout: float = 90) -> Broker:
    """Return a ready broker on 127.0.0.1, starting one only if none answers on the port.

    ``started_here`` is True only when this call started the broker; pass the result to
    :func:`stop` to stop it again. Raises :class:`LocalKafkaError` on failure.
    """
    port = configured_port(port)
    paths = default_paths()
    with state_lock(paths.state):
        record = recorded_broker(paths)
        if record is not None and record["port"] == port:
            # Ours from an earlier `up`, possibly still booting: wait, never start a second.
            _wait_ready(record["pid"], port, paths, timeout)
            return Broker(f"{HOST}:{port}", started_here=False, pid=record["pid"])
        if port_accepts(port):
            if not answers_kafka(port):
                raise LocalKafkaError(f"port {port} is in use by something that does not answer "
                                      "as Kafka; set BATON_KAFKA_PORT to another port")
            return Broker(f"{HOST}:{port}", started_here=False, pid=None)
        if record is not None:
            raise LocalKafkaError(f"this checkout's broker (pid {record['pid']}) runs on port "
                                  f"{record['port']}, not {port}; run `down` first")
        return _start(port, paths, timeout)


def _start(port: int, paths: Paths, timeout: float) -> Broker:
    cport = controller_port(port)
    if port_accepts(cport):
        raise LocalKafkaError(f"controller port {cport} is in use; set BATON_KAFKA_CONTROLLER_PORT")
    libs = fetch(paths)
    for folder in (paths.data, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    paths.properties.write_text(render_properties(port, cport, paths.data))
    _format_storage(libs, paths)
    mark = LogMark.now(paths)
    pid = spawn_broker(libs, paths, port)
    _wait_ready(pid, port, paths, timeout, mark)
    return Broker(f"{HOST}:{port}", started_here=True, pid=pid)


def _wait_ready(pid: int, port: int, paths: Paths, timeout: float, mark: LogMark | None = None) -> None:
    """Poll until the broker is ready; on death or timeout raise with its recent log.

    ``mark`` is given when this call started the broker: its log since then is what
    counts, and on timeout the broker is stopped, since nobody else holds it.
    """
    wait_ready(pid, paths, lambda: port_accepts(port, timeout=0.5) and _ready(port, mark),
               name="Kafka", port=port, timeout=timeout, mark=mark)


def _ready(port: int, mark: LogMark | None) -> bool:
    if not answers_kafka(port):
        return False
    seen = listed_brokers(f"{HOST}:{port}")
    if seen is not None:
        return bool(seen)
    return mark is None or mark.started()


def stop(broker: Broker) -> None:
    """Stop ``broker`` if :func:`ensure_up` started it; otherwise do nothing."""
    if not broker.started_here or broker.pid is None:
        return
    paths = default_paths()
    with state_lock(paths.state):
        terminate(broker.pid, paths)
        record = read_pid_record(paths)
        if record is not None and record["pid"] == broker.pid:
            paths.pid_file.unlink(missing_ok=True)


def down() -> str:
    """Stop the broker this tool started (per the pid file); return what was done."""
    paths = default_paths()
    with state_lock(paths.state):
        record = read_pid_record(paths)
        if record is None:
            return "no broker started by this tool is recorded; nothing to stop"
        pid = record["pid"]
        if not is_our_broker(pid, paths):
            paths.pid_file.unlink(missing_ok=True)
            return f"pid {pid} is no longer our broker; removed the stale pid file"
        started = time.monotonic()
        terminate(pid, paths)
        if not exited(pid, paths):
            raise LocalKafkaError(f"Kafka (pid {pid}) did not exit after SIGKILL")
        paths.pid_file.unlink(missing_ok=True)
        return f"stopped Kafka (pid {pid}) in {time.monotonic() - started:.1f} s"


def status(port: int | None = None) -> tuple[bool, str]:
    """(is up, a one-line description) for `port`; without one, this checkout's broker's port, else
    the configured one. A broker this tool started on another port is not the one asked about."""
    paths = default_paths()
    record = recorded_broker(paths)
    if port is not None and record is not None and record["port"] != port:
        record = None
    port = record["port"] if record else configured_port(port)
    bootstrap = f"{HOST}:{port}"
    up = answers_kafka(port)
    if record is not None:
        rss = rss_mib(record["pid"])
        state = "up" if up else "starting or unhealthy (process alive, not answering)"
        return up, f"{state}: bootstrap {bootstrap}, pid {record['pid']}, RSS {rss} MiB (started by this tool)"
    if up:
        return True, f"up: bootstrap {bootstrap} (not started by this tool)"
    return False, f"down: nothing answers Kafka on {bootstrap}"


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.local_kafka", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up_cmd = commands.add_parser("up", help="start a broker, or reuse one on the port")
    up_cmd.add_argument("--port", type=int, default=None)
    up_cmd.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for ready")
    commands.add_parser("down", help="stop the broker this tool started")
    status_cmd = commands.add_parser("status", help="up or down, pid, bootstrap (exit 3 if down)")
    status_cmd.add_argument("--port", type=int, default=None)
    commands.add_parser("fetch", help="resolve the Kafka jars into the cache")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "fetch":
        started = time.monotonic()
        paths = default_paths()
        was_complete = fetch_is_complete(paths)
        libs = fetch(paths)
        how = "already cached" if was_complete else f"fetched in {time.monotonic() - started:.1f} s"
        print(f"Kafka {kafka_version()} jars {how}: {libs} ({len(list(libs.glob('*.jar')))} jars)")
        return 0
    if args.command == "up":
        started = time.monotonic()
        broker = ensure_up(args.port, args.timeout)
        if broker.started_here:
            print(f"Kafka {kafka_version()} ready at {broker.bootstrap} (pid {broker.pid}, "
                  f"{time.monotonic() - started:.1f} s); logs in {default_paths().logs}")
        else:
            owner = f"pid {broker.pid}, started earlier by this tool" if broker.pid else \
                "not started by this tool; `down` will not stop it"
            print(f"reusing Kafka already running at {broker.bootstrap} ({owner})")
        return 0
    if args.command == "down":
        print(down())
        return 0
    up, line = status(args.port)
    print(line)
    return 0 if up else 3  # LSB: 3 = "program is not running"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m infra.local_kafka``; returns the exit code."""
    args = _parser().parse_args(argv)
    return run_command("local_kafka", lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
