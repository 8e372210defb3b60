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
import asyncio
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import BatonError

DEFAULT_VERSION = "4.1.1"
DEFAULT_PORT = 9092
HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J2_CONFIG = KAFKA_DIR / "log4j2.yaml"
READY_LOG_LINE = "Kafka Server started"
STOP_GRACE_SECONDS = 30.0
MAVEN_TIMEOUT_SECONDS = 900
_DOWNLOADED = re.compile(r"Downloaded from [^:]+: (\S+) \(([^)]*)\)")


class LocalKafkaError(BatonError, RuntimeError):
    """A failure with a one-line message; ``log_tail`` holds the broker's last log lines."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


@dataclass(frozen=True)
class Broker:
    """A broker that answers on ``bootstrap``; ``started_here`` if this call started it."""

    bootstrap: str
    started_here: bool
    pid: int | None


@dataclass(frozen=True)
class Paths:
    """Where the jars (shared cache) and the broker's state (per checkout) live."""

    cache: Path
    state: Path

    @property
    def libs(self) -> Path:
        return self.cache / "libs"

    @property
    def marker(self) -> Path:
        return self.cache / "fetch-complete.json"

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def properties(self) -> Path:
        return self.state / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.state / "kafka.pid"

    @property
    def console_log(self) -> Path:
        return self.logs / "kafka.out"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"


# --------------------------------------------------------------------------- configuration


def kafka_version() -> str:
    return os.environ.get("BATON_KAFKA_VERSION", DEFAULT_VERSION)


def configured_port(port: int | None = None) -> int:
    return port if port is not None else int(os.environ.get("BATON_KAFKA_PORT", DEFAULT_PORT))


def controller_port(port: int) -> int:
    return int(os.environ.get("BATON_KAFKA_CONTROLLER_PORT", port + 1))


def default_paths() -> Paths:
    version = kafka_version()
    cache = os.environ.get("BATON_KAFKA_CACHE") or f"~/.cache/baton/kafka-{version}"
    state_root = os.environ.get("BATON_STATE_DIR") or str(REPO_ROOT / ".baton")
    return Paths(cache=Path(cache).expanduser().resolve(),
                 state=Path(state_root).expanduser().resolve() / "kafka")


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
    lines += [f"{key}={_escape_property(str(value))}" for key, value in settings]
    return "\n".join(lines) + "\n"


def _escape_property(value: str) -> str:
    # java.util.Properties treats backslash as an escape; paths may contain one.
    return value.replace("\\", "\\\\")


# --------------------------------------------------------------------------- fetch


def fetch(paths: Paths | None = None, quiet: bool = False) -> Path:
    """Resolve Kafka and its runtime jars into the cache; return the libs folder.

    Does no network work when an earlier fetch of the same version and pom completed.
    """
    paths = paths or default_paths()
    if _fetch_is_complete(paths):
        return paths.libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("Maven (mvn) is not on PATH; it is needed once to fetch the Kafka jars")
    paths.cache.mkdir(parents=True, exist_ok=True)
    # Fetch into a fresh folder and swap it in, so a failed run never leaves a mixed libs/.
    staging = paths.cache / f"libs.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    if not quiet:
        print(f"fetching Kafka {kafka_version()} jars with Maven into {paths.libs} ...",
              file=sys.stderr, flush=True)
    cmd = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={staging}", f"-Dkafka.version={kafka_version()}"]
    returncode, output = _run_maven(cmd, show_progress=not quiet)
    jars = sorted(p.name for p in staging.glob("*.jar")) if staging.is_dir() else []
    if returncode != 0 or not jars:
        shutil.rmtree(staging, ignore_errors=True)
        if returncode is None:
            raise LocalKafkaError(f"mvn did not finish in {MAVEN_TIMEOUT_SECONDS} s (is Maven Central reachable?)",
                                  _tail_text(output))
        raise LocalKafkaError(f"mvn dependency:copy-dependencies failed (exit {returncode})", _tail_text(output))
    shutil.rmtree(paths.libs, ignore_errors=True)
    staging.rename(paths.libs)
    marker = {"version": kafka_version(), "pom_sha256": _pom_digest(), "jars": jars}
    paths.marker.write_text(json.dumps(marker, indent=1) + "\n")
    return paths.libs


def _run_maven(cmd: list[str], *, show_progress: bool) -> tuple[int | None, str]:
    """(exit status, None if it ran out of time; its output). Each artifact Maven reports as
    downloaded moves a progress bar by its size (on a terminal: infra.progress)."""
    from infra.progress import bar, size_in_bytes

    lines: list[str] = []
    deadline = time.monotonic() + MAVEN_TIMEOUT_SECONDS
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          text=True) as process, \
            bar("Kafka jars", unit="B", enabled=show_progress) as progress:
        assert process.stdout is not None
        # A watchdog, since reading the pipe blocks: Maven stuck on the network is killed on time.
        timer = threading.Timer(MAVEN_TIMEOUT_SECONDS, process.kill)
        timer.start()
        try:
            for line in process.stdout:
                lines.append(line)
                downloaded = _DOWNLOADED.search(line)  # "Downloaded from central: URL (58 kB at 1 MB/s)"
                if downloaded:
                    progress.update(size_in_bytes(downloaded.group(2)))
                    progress.set_postfix_str(downloaded.group(1).rsplit("/", 1)[-1][:40], refresh=False)
        finally:
            timer.cancel()
        returncode = process.wait()
    return (returncode if time.monotonic() < deadline else None), "".join(lines[-200:])


def _fetch_is_complete(paths: Paths) -> bool:
    try:
        marker = json.loads(paths.marker.read_text())
    except (OSError, ValueError):
        return False
    return (marker.get("version") == kafka_version()
            and marker.get("pom_sha256") == _pom_digest()
            and all((paths.libs / jar).is_file() for jar in marker.get("jars", ["?"])))


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- probes


def port_accepts(port: int, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers_kafka(port: int, timeout: float = 3.0) -> bool:
    """True if 127.0.0.1:port answers a Kafka ApiVersions (v0) request.

    A broker only processes requests once it has caught up with the metadata quorum,
    so an answer means more than an open port.
    """
    client_id = b"baton-local-kafka"
    correlation_id = 0x5EED
    request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            response = _recv_exact(sock, min(size, 8))
    except (OSError, struct.error):
        return False
    # Any error code still proves it is Kafka; only the correlation id matters.
    return len(response) >= 4 and struct.unpack(">i", response[:4])[0] == correlation_id


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def _aiokafka_sees_broker(bootstrap: str) -> bool | None:
    """True if a metadata request lists a live broker; None when aiokafka is not installed."""
    try:
        from aiokafka.client import AIOKafkaClient
    except ImportError:
        return None

    async def probe() -> bool:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await client.bootstrap()
            return bool(client.cluster.brokers())
        except Exception:  # any failure just means "not ready yet"
            return False
        finally:
            await client.close()

    # A worker thread has no event loop, so this works even when the caller runs one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe()).result()


# --------------------------------------------------------------------------- processes


def _read_pid_record(paths: Paths) -> dict[str, int] | None:
    try:
        record = json.loads(paths.pid_file.read_text())
        return {"pid": int(record["pid"]), "port": int(record["port"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_our_broker(pid: int, paths: Paths) -> bool:
    """True if pid is alive and is the kafka.Kafka JVM running our server.properties.

    Guards against a recycled pid: we never signal a process we did not start.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    args = raw.decode(errors="replace").split("\0")
    return state != "Z" and "kafka.Kafka" in args and str(paths.properties) in args


def _recorded_broker(paths: Paths) -> dict[str, int] | None:
    """The pid record of a broker this tool started and that still runs; drops a stale one."""
    record = _read_pid_record(paths)
    if record is None:
        return None
    if _is_our_broker(record["pid"], paths):
        return record
    paths.pid_file.unlink(missing_ok=True)
    return None


# Popen objects of brokers started by this process, so they can be reaped when they exit.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _exited(pid: int, paths: Paths) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is not None
    return not _is_our_broker(pid, paths)


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is not None and candidate.is_file():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise LocalKafkaError("java is not on PATH (and JAVA_HOME is unset); Kafka needs Java 17+")
    return found


def _java_cmd(libs: Path, paths: Paths, main_class: str, *args: str,
              jvm_options: tuple[str, ...] = ()) -> list[str]:
    # Our log4j2 config writes under kafka.logs.dir; without one Kafka logs to stdout.
    return [_java(), *jvm_options, f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={paths.logs}", "-cp", f"{libs}/*", main_class, *args]


def _format_storage(libs: Path, paths: Paths) -> None:
    """Format the KRaft log dir once; a formatted dir has a meta.properties."""
    if (paths.data / "meta.properties").is_file():
        return
    tool = "kafka.tools.StorageTool"
    cluster_id = _run_tool(_java_cmd(libs, paths, tool, "random-uuid")).split()[-1]
    # With controller.quorum.voters set, format must not be given --standalone.
    _run_tool(_java_cmd(libs, paths, tool, "format", "-t", cluster_id, "-c", str(paths.properties)))


def _run_tool(cmd: list[str]) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        subcommand = cmd[cmd.index("kafka.tools.StorageTool") + 1]
        raise LocalKafkaError(f"StorageTool {subcommand} failed (exit {result.returncode})",
                              _tail_text(result.stdout + result.stderr))
    return result.stdout


def _spawn_broker(libs: Path, paths: Paths, port: int, heap: str | None = None) -> int:
    jvm_options = (
        f"-Xmx{heap or os.environ.get('BATON_KAFKA_HEAP', '512m')}",
        # Kafka's own collector settings (bin/kafka-run-class.sh).
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
    )
    cmd = _java_cmd(libs, paths, "kafka.Kafka", str(paths.properties), jvm_options=jvm_options)
    with open(paths.console_log, "ab") as out:
        # Own session: the broker outlives this process and ignores the terminal's Ctrl-C.
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=paths.state, start_new_session=True)
    _CHILDREN[child.pid] = child
    paths.pid_file.write_text(json.dumps({"pid": child.pid, "port": port,
                                          "started_at": time.time()}) + "\n")
    return child.pid


def _terminate(pid: int, paths: Paths, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM (a clean controlled shutdown), then SIGKILL after ``grace`` seconds."""
    if not _is_our_broker(pid, paths):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_for_exit(pid, paths, grace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_for_exit(pid, paths, 10)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)


def _wait_for_exit(pid: int, paths: Paths, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid, paths):
            return True
        time.sleep(0.2)
    return _exited(pid, paths)


# --------------------------------------------------------------------------- up / down


@contextlib.contextmanager
def _state_lock(paths: Paths) -> Iterator[None]:
    """Serialise up/down across processes (e.g. two pytest sessions starting at once)."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with open(paths.state / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_up(port: int | None = None, timeout: float = 90) -> Broker:
    """Return a ready broker on 127.0.0.1, starting one only if none answers on the port.

    ``started_here`` is True only when this call started the broker; pass the result to
    :func:`stop` to stop it again. Raises :class:`LocalKafkaError` on failure.
    """
    port = configured_port(port)
    paths = default_paths()
    with _state_lock(paths):
        record = _recorded_broker(paths)
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
    mark = _LogMark.now(paths)
    pid = _spawn_broker(libs, paths, port)
    _wait_ready(pid, port, paths, timeout, mark)
    return Broker(f"{HOST}:{port}", started_here=True, pid=pid)


def _wait_ready(pid: int, port: int, paths: Paths, timeout: float,
                mark: _LogMark | None = None) -> None:
    """Poll until the broker is ready; on death or timeout raise with its recent log.

    ``mark`` is given when this call started the broker: its log since then is what
    counts, and on timeout the broker is stopped, since nobody else holds it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid, paths):
            paths.pid_file.unlink(missing_ok=True)
            _CHILDREN.pop(pid, None)
            raise LocalKafkaError(f"Kafka (pid {pid}) exited during startup; logs in {paths.logs}",
                                  mark.excerpt() if mark else "")
        if port_accepts(port, timeout=0.5) and _ready(port, mark):
            return
        time.sleep(0.5)
    excerpt = mark.excerpt() if mark else ""
    if mark is not None:
        _terminate(pid, paths)
        paths.pid_file.unlink(missing_ok=True)
    raise LocalKafkaError(f"Kafka on port {port} was not ready after {timeout:g} s"
                          f"{' and was stopped' if mark else ''}; logs in {paths.logs}", excerpt)


def _ready(port: int, mark: _LogMark | None) -> bool:
    if not answers_kafka(port):
        return False
    seen = _aiokafka_sees_broker(f"{HOST}:{port}")
    if seen is not None:
        return seen
    return mark is None or READY_LOG_LINE in mark.new_text(mark.paths.server_log)


@dataclass(frozen=True)
class _LogMark:
    """Log sizes when a broker was spawned, so only that run's lines are read."""

    paths: Paths
    offsets: dict[Path, int]

    @classmethod
    def now(cls, paths: Paths) -> _LogMark:
        logs = (paths.console_log, paths.server_log)
        return cls(paths, {log: _log_size(log) for log in logs})

    def new_text(self, log: Path) -> str:
        offset = self.offsets.get(log, 0)
        try:
            with open(log, "rb") as handle:
                handle.seek(offset if offset <= _log_size(log) else 0)  # 0: it rolled over
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def excerpt(self, lines: int = 15) -> str:
        """JVM output, then the broker's last ERROR and what follows (or its last lines)."""
        parts = []
        console = self.new_text(self.paths.console_log).strip()
        if console:
            parts.append(f"--- {self.paths.console_log}\n{_tail_text(console, lines)}")
        server = self.new_text(self.paths.server_log).splitlines()
        errors = [i for i, line in enumerate(server) if " ERROR " in line or " FATAL " in line]
        # The last error with the exception lines under it says more than the shutdown chatter.
        start = errors[-1] if errors else max(0, len(server) - lines)
        shown = "\n".join(server[start:start + lines]).strip()
        if shown:
            parts.append(f"--- {self.paths.server_log}\n{shown}")
        return "\n".join(parts)


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail_text(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def stop(broker: Broker) -> None:
    """Stop ``broker`` if :func:`ensure_up` started it; otherwise do nothing."""
    if not broker.started_here or broker.pid is None:
        return
    paths = default_paths()
    with _state_lock(paths):
        _terminate(broker.pid, paths)
        record = _read_pid_record(paths)
        if record is not None and record["pid"] == broker.pid:
            paths.pid_file.unlink(missing_ok=True)


def down() -> str:
    """Stop the broker this tool started (per the pid file); return what was done."""
    paths = default_paths()
    with _state_lock(paths):
        record = _read_pid_record(paths)
        if record is None:
            return "no broker started by this tool is recorded; nothing to stop"
        pid = record["pid"]
        if not _is_our_broker(pid, paths):
            paths.pid_file.unlink(missing_ok=True)
            return f"pid {pid} is no longer our broker; removed the stale pid file"
        started = time.monotonic()
        _terminate(pid, paths)
        if not _exited(pid, paths):
            raise LocalKafkaError(f"Kafka (pid {pid}) did not exit after SIGKILL")
        paths.pid_file.unlink(missing_ok=True)
        return f"stopped Kafka (pid {pid}) in {time.monotonic() - started:.1f} s"


def status(port: int | None = None) -> tuple[bool, str]:
    """(is up, a one-line description) for `port`; without one, this checkout's broker's port, else
    the configured one. A broker this tool started on another port is not the one asked about."""
    paths = default_paths()
    record = _recorded_broker(paths)
    if port is not None and record is not None and record["port"] != port:
        record = None
    port = record["port"] if record else configured_port(port)
    bootstrap = f"{HOST}:{port}"
    up = answers_kafka(port)
    if record is not None:
        rss = _rss_mib(record["pid"])
        state = "up" if up else "starting or unhealthy (process alive, not answering)"
        return up, f"{state}: bootstrap {bootstrap}, pid {record['pid']}, RSS {rss} MiB (started by this tool)"
    if up:
        return True, f"up: bootstrap {bootstrap} (not started by this tool)"
    return False, f"down: nothing answers Kafka on {bootstrap}"


def _rss_mib(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return str(int(line.split()[1]) // 1024)
    except (OSError, ValueError, IndexError):
        pass
    return "?"


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
        was_complete = _fetch_is_complete(paths)
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
    try:
        return _run(args)
    except LocalKafkaError as error:
        print(f"local_kafka: error: {error}", file=sys.stderr)
        if error.log_tail:
            print(error.log_tail, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("local_kafka: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
