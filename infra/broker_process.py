"""One Kafka broker JVM's life, shared by the local launchers (``local_kafka``, ``secure_kafka``,
``kafka_cluster``): where its jars and state live, the java command, spawning it with a pid record,
recognising it behind a pid, waiting for it to be ready, and stopping it. Stdlib only."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.processes import LauncherError, command_line, read_json, tail_text

DEFAULT_VERSION = "4.1.1"
HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
LOG4J2_CONFIG = KAFKA_DIR / "log4j2.yaml"
READY_LOG_LINE = "Kafka Server started"
STOP_GRACE_SECONDS = 30.0


class LocalKafkaError(LauncherError):
    """A failure with a one-line message; ``log_tail`` holds the broker's last log lines."""


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


def kafka_version() -> str:
    """The Kafka version to run (BATON_KAFKA_VERSION, default DEFAULT_VERSION)."""
    return os.environ.get("BATON_KAFKA_VERSION", DEFAULT_VERSION)


def default_paths() -> Paths:
    """The jar cache of this Kafka version and this checkout's plain broker's state folder."""
    version = kafka_version()
    cache = os.environ.get("BATON_KAFKA_CACHE") or f"~/.cache/baton/kafka-{version}"
    state_root = os.environ.get("BATON_STATE_DIR") or str(REPO_ROOT / ".baton")
    return Paths(cache=Path(cache).expanduser().resolve(),
                 state=Path(state_root).expanduser().resolve() / "kafka")


def escape_property(value: str) -> str:
    """A value as java.util.Properties reads it back (backslash is its escape; paths may hold one)."""
    return value.replace("\\", "\\\\")


def new_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints (a random UUID, base64url without padding, never
    starting with "-", which would read as an option), without starting a JVM for it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


# --------------------------------------------------------------------------- the java command


def java() -> str:
    """The java binary: $JAVA_HOME/bin/java, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is not None and candidate.is_file():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise LocalKafkaError("java is not on PATH (and JAVA_HOME is unset); Kafka needs Java 17+")
    return found


def java_command(libs: Path, paths: Paths, main_class: str, *args: str,
                 jvm_options: tuple[str, ...] = ()) -> list[str]:
    """The command running ``main_class`` on the Kafka jars, logging under the state's logs folder."""
    # Our log4j2 config writes under kafka.logs.dir; without one Kafka logs to stdout.
    return [java(), *jvm_options, f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={paths.logs}", "-cp", f"{libs}/*", main_class, *args]


def run_storage_tool(cmd: list[str]) -> str:
    """Run a ``kafka.tools.StorageTool`` command; its stdout, or raise with its output's tail."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        subcommand = cmd[cmd.index("kafka.tools.StorageTool") + 1]
        raise LocalKafkaError(f"StorageTool {subcommand} failed (exit {result.returncode})",
                              tail_text(result.stdout + result.stderr))
    return result.stdout


# --------------------------------------------------------------------------- pid records


def read_pid_record(paths: Paths) -> dict[str, int] | None:
    """The pid file's {"pid", "port"}, or None when it is missing or unreadable."""
    record = read_json(paths.pid_file)
    try:
        return None if record is None else {"pid": int(record["pid"]), "port": int(record["port"])}
    except (ValueError, KeyError, TypeError):
        return None


def is_our_broker(pid: int, paths: Paths) -> bool:
    """True if pid is alive and is the kafka.Kafka JVM running our server.properties.

    Guards against a recycled pid: we never signal a process we did not start.
    """
    args = command_line(pid)
    return args is not None and "kafka.Kafka" in args and str(paths.properties) in args


def recorded_broker(paths: Paths) -> dict[str, int] | None:
    """The pid record of a broker this tool started and that still runs; drops a stale one."""
    record = read_pid_record(paths)
    if record is None:
        return None
    if is_our_broker(record["pid"], paths):
        return record
    paths.pid_file.unlink(missing_ok=True)
    return None


# Popen objects of brokers started by this process, so they can be reaped when they exit.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def running_pid(paths: Paths) -> int | None:
    """The pid of the broker of ``paths`` if this tool started it and it still runs."""
    record = read_pid_record(paths)
    child = _CHILDREN.get(record["pid"]) if record is not None else None
    if record is not None and child is not None:
        # Spawned by this process: right after the fork the child is not java yet, so its
        # command line would not identify it; the Popen does.
        return record["pid"] if child.poll() is None else None
    record = recorded_broker(paths)
    return record["pid"] if record is not None else None


def exited(pid: int, paths: Paths) -> bool:
    """True once the broker ``pid`` no longer runs (a child of ours is polled, others looked up)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is not None
    return not is_our_broker(pid, paths)


def forget(pid: int, paths: Paths) -> None:
    """Drop the pid record and the Popen of a broker that exited by itself."""
    paths.pid_file.unlink(missing_ok=True)
    _CHILDREN.pop(pid, None)


# --------------------------------------------------------------------------- start / stop


def spawn_broker(libs: Path, paths: Paths, port: int, heap: str | None = None) -> int:
    """Start ``kafka.Kafka`` on ``paths.properties`` in its own session, record its pid; return it."""
    jvm_options = (
        f"-Xmx{heap or os.environ.get('BATON_KAFKA_HEAP', '512m')}",
        # Kafka's own collector settings (bin/kafka-run-class.sh).
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
    )
    cmd = java_command(libs, paths, "kafka.Kafka", str(paths.properties), jvm_options=jvm_options)
    with open(paths.console_log, "ab") as out:
        # Own session: the broker outlives this process and ignores the terminal's Ctrl-C.
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=paths.state, start_new_session=True)
    _CHILDREN[child.pid] = child
    paths.pid_file.write_text(json.dumps({"pid": child.pid, "port": port,
                                          "started_at": time.time()}) + "\n")
    return child.pid


def terminate(pid: int, paths: Paths, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM (a clean controlled shutdown), then SIGKILL after ``grace`` seconds."""
    if is_our_broker(pid, paths):
        terminate_all([(pid, paths)], grace)


def terminate_all(brokers: Sequence[tuple[int, Paths]], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every given broker at once, SIGKILL those still alive after ``grace``; reap ours.

    Only a pid that is still our broker is signalled (never a recycled pid).
    """
    for pid, paths in brokers:
        if is_our_broker(pid, paths):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(brokers, grace):
        for pid, paths in brokers:
            if not exited(pid, paths) and is_our_broker(pid, paths):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        wait_for_exit(brokers, 10)
    for pid, _ in brokers:
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.wait(timeout=10)


def wait_for_exit(brokers: Sequence[tuple[int, Paths]], timeout: float) -> bool:
    """True once every given broker has exited, False if one still runs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(exited(pid, paths) for pid, paths in brokers):
            return True
        time.sleep(0.2)
    return all(exited(pid, paths) for pid, paths in brokers)


def wait_ready(pid: int, paths: Paths, ready: Callable[[], bool], *, name: str, port: int,
               timeout: float, mark: LogMark | None, poll: float = 0.5) -> None:
    """Poll ``ready`` until it holds; on the broker's death or on timeout raise with its recent log.

    ``mark`` is given when the caller started the broker: its log since then is what counts, and
    on timeout the broker is stopped, since nobody else holds it. ``name`` names it in messages.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited(pid, paths):
            forget(pid, paths)
            raise LocalKafkaError(f"{name} (pid {pid}) exited during startup; logs in {paths.logs}",
                                  mark.excerpt() if mark else "")
        if ready():
            return
        time.sleep(poll)
    excerpt = mark.excerpt() if mark else ""
    if mark is not None:
        terminate(pid, paths)
        paths.pid_file.unlink(missing_ok=True)
    raise LocalKafkaError(f"{name} on port {port} was not ready after {timeout:g} s"
                          f"{' and was stopped' if mark else ''}; logs in {paths.logs}", excerpt)


# --------------------------------------------------------------------------- logs


@dataclass(frozen=True)
class LogMark:
    """Log sizes when a broker was spawned, so only that run's lines are read."""

    paths: Paths
    offsets: dict[Path, int]

    @classmethod
    def now(cls, paths: Paths) -> LogMark:
        """The logs' sizes at this moment."""
        logs = (paths.console_log, paths.server_log)
        return cls(paths, {log: _log_size(log) for log in logs})

    def new_text(self, log: Path) -> str:
        """What ``log`` gained since the mark (all of it if it rolled over)."""
        offset = self.offsets.get(log, 0)
        try:
            with open(log, "rb") as handle:
                handle.seek(offset if offset <= _log_size(log) else 0)  # 0: it rolled over
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def started(self) -> bool:
        """True once the broker logged that it started, since the mark."""
        return READY_LOG_LINE in self.new_text(self.paths.server_log)

    def excerpt(self, lines: int = 15) -> str:
        """JVM output, then the broker's last ERROR and what follows (or its last lines)."""
        parts = []
        console = self.new_text(self.paths.console_log).strip()
        if console:
            parts.append(f"--- {self.paths.console_log}\n{tail_text(console, lines)}")
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
