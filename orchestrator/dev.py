"""`baton dev`: the whole local stack in one process tree, for development and the demo.

Starts (or reuses what already answers) the Kafka broker, Baton's topics, the two offline model
servers, the offline embeddings server and the insurance knowledge base, the demo's orders API,
the orchestrator, every step service (fn, llm, http, review, retrieval) and, when this checkout
has `baton api`, the API. Each child logs to `.baton/logs/<service>.log`; the terminal shows
those lines prefixed with the service's name. Ctrl-C or SIGTERM stops, in reverse order, only
what this command started (by pid).

    baton dev                              # run until Ctrl-C
    baton dev --run-demo --auto-approve    # start, run the GenAI demos, stop; exit 1 if one failed
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaError

from infra import local_model
from orchestrator.cli import fail
from orchestrator.cli.errors import failure_line
from orchestrator.demo import DEMOS, GENAI_DIR, ORDERS_API_PORT, REPO_ROOT, connections_config, llm_config
from schemas.errors import BatonError

STATE_DIR = Path(os.environ.get("BATON_STATE_DIR", REPO_ROOT / ".baton"))
LOG_DIR = STATE_DIR / "logs"
DEV_DIR = STATE_DIR / "dev"
# service name -> (baton arguments, metrics port)
SERVICES: list[tuple[str, list[str], int]] = [
    ("orchestrator", ["orchestrator", "--instance-id", "dev-1"], 9400),
    ("fn", ["step", "fn", "--module", "examples.steps.text"], 9401),
    ("llm", ["step", "llm"], 9402),
    ("http", ["step", "http"], 9403),
    ("review", ["step", "review"], 9404),
    ("retrieval", ["step", "retrieval"], 9405),
]
API_PORT = 8080
COLOURS = ["cyan", "green", "yellow", "magenta", "blue", "bright_cyan", "bright_green", "bright_magenta"]


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    offset: int = 0  # where this run's lines start in the log


@dataclass
class Stack:
    """What `baton dev` started, in start order; :meth:`stop` ends it in reverse."""

    quiet: bool = False
    children: list[Child] = field(default_factory=list)
    stoppers: list[tuple[str, Any]] = field(default_factory=list)  # (name, callable) for infra helpers
    order: list[str] = field(default_factory=list)  # every started thing, children and helpers
    metrics: dict[str, str] = field(default_factory=dict)
    _tailing: bool = True

    def say(self, message: str) -> None:
        click.echo(click.style("baton dev", bold=True) + f" | {message}")

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"{name}.log"
        log = open(log_path, "ab")
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n".encode())
        log.flush()
        offset = log.tell()
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=REPO_ROOT, start_new_session=True)
        log.close()
        child = Child(name, process, log_path, offset)
        self.children.append(child)
        self.order.append(name)
        threading.Thread(target=self._tail, args=(child, COLOURS[len(self.children) % len(COLOURS)]),
                         daemon=True).start()
        return child

    def _tail(self, child: Child, colour: str) -> None:
        prefix = click.style(f"{child.name:>12}", fg=colour) + " | "
        with open(child.log, "rb") as handle:
            handle.seek(child.offset)
            while self._tailing:
                line = handle.readline()
                if not line:
                    if child.process.poll() is not None:
                        return
                    time.sleep(0.2)
                    continue
                text = line.decode(errors="replace").rstrip()
                if self.quiet and not any(word in text for word in ("ERROR", "Traceback", "error:", "CRITICAL")):
                    continue
                click.echo(prefix + text)

    def stop(self) -> None:
        self._tailing = False
        for child in reversed(self.children):
            if child.process.poll() is None:
                self.say(f"stopping {child.name} (pid {child.process.pid})")
                child.process.send_signal(signal.SIGTERM)
                try:
                    child.process.wait(15)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait(5)
        for name, stopper in reversed(self.stoppers):
            self.say(f"stopping {name}")
            try:
                stopper()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                self.say(f"could not stop {name}: {exc}")


def _api_args(stack: Stack, env: dict[str, str], insecure_local: bool) -> list[str]:
    """`baton api`'s auth: a fresh local admin token (printed, in .baton/dev/api-tokens.json), or none."""
    if insecure_local:
        stack.say("API without authentication (--insecure-local)")
        return ["--insecure-local"]
    from orchestrator.api.auth import TokenStore, TokenStoreError

    store = TokenStore(DEV_DIR / "api-tokens.json")
    with contextlib.suppress(TokenStoreError):
        store.revoke("dev-admin")  # one dev token at a time: the previous run's stops working
    token = store.create("dev-admin", "admin")
    env["BATON_API_TOKENS_FILE"] = str(store.path)
    stack.say(f"API admin token: {token}")
    stack.say(f"pages: http://127.0.0.1:{API_PORT}/?token={token}  API: Authorization: Bearer <token>")
    return ["--tokens", str(store.path)]


def start_stack(stack: Stack, *, insecure_local: bool = False) -> dict[str, str]:
    """Start everything; return the environment the children share."""
    from infra import local_embeddings, local_kafka
    from kafka_io import KafkaSettings
    from orchestrator.runtime.topics import ensure_topics

    began = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bootstrap = os.environ.get("BATON_KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = local_kafka.ensure_up()
        bootstrap = broker.bootstrap
        if broker.started_here:
            stack.stoppers.append(("kafka broker", lambda: local_kafka.stop(broker)))
        stack.say(f"kafka {bootstrap} ({'started' if broker.started_here else 'reused'})")
    env["BATON_KAFKA_BOOTSTRAP"] = bootstrap
    kafka = KafkaSettings(kafka_bootstrap=bootstrap)
    created = asyncio.run(ensure_topics(kafka))
    stack.say(f"topics ready ({len(created)} created)")

    servers = local_model.ensure_up()
    if any(s.started_here for s in servers):
        stack.stoppers.append(("model servers", lambda: local_model.stop(servers)))
    stack.say("models " + ", ".join(f"{s.alias} {s.base_url} ({'started' if s.started_here else 'reused'})"
                                    for s in servers))
    embeddings = local_embeddings.ensure_up()
    if embeddings.started_here:
        stack.stoppers.append(("embeddings server", lambda: local_embeddings.stop(embeddings)))
    stack.say(f"embeddings {embeddings.base_url} ({'started' if embeddings.started_here else 'reused'})")

    DEV_DIR.mkdir(parents=True, exist_ok=True)
    llm_file = DEV_DIR / "llm.yaml"
    llm_file.write_text(json.dumps(llm_config(servers), indent=2), encoding="utf-8")
    connections_file = DEV_DIR / "connections.yaml"
    connections_file.write_text(json.dumps(connections_config(ORDERS_API_PORT), indent=2), encoding="utf-8")
    env.update(BATON_LLM_CONFIG_FILE=str(llm_file), BATON_HTTP_CONNECTIONS=str(connections_file),
               BATON_EMBEDDINGS_BASE_URL=embeddings.base_url, BATON_KB_DIR=str(STATE_DIR / "kb"))

    baton = [sys.executable, "-m", "orchestrator.cli"] if not _baton_script() else [_baton_script()]
    kb = subprocess.run([*baton, "kb", "add", str(REPO_ROOT / "examples" / "insurance" / "kb"), "--name", "insurance"],
                        env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if kb.returncode != 0:
        raise click.ClickException(f"baton kb add failed: {kb.stderr.strip() or kb.stdout.strip()}")
    stack.say(f"knowledge base: {kb.stdout.strip().splitlines()[-1] if kb.stdout.strip() else 'insurance'}")

    if _answers(ORDERS_API_PORT):
        stack.say(f"orders API http://127.0.0.1:{ORDERS_API_PORT} (reused)")
    else:
        stack.spawn("orders-api", [sys.executable, str(GENAI_DIR / "intent-api" / "server.py"),
                                   "--port", str(ORDERS_API_PORT)], env)
    for name, args, port in SERVICES:
        if _answers(port):
            stack.say(f"{name}: something already serves :{port}, reusing it")
            continue
        stack.spawn(name, [*baton, *args, "--metrics-port", str(port)], env)
        stack.metrics[f"{name} metrics"] = f"http://127.0.0.1:{port}/metrics"
    if _has_api() and not _answers(API_PORT):
        stack.spawn("api", [*baton, "api", "--port", str(API_PORT), *_api_args(stack, env, insecure_local)], env)
        stack.metrics["API + graph"] = f"http://127.0.0.1:{API_PORT}/"
    _wait_for_metrics(stack, [port for _, _, port in SERVICES], timeout=60)
    stack.say(f"stack up in {time.monotonic() - began:.1f} s; logs in {LOG_DIR}")
    return env


def _baton_script() -> str | None:
    candidate = Path(sys.executable).parent / "baton"
    return str(candidate) if candidate.exists() else None


def _has_api() -> bool:
    from orchestrator.cli import main

    return "api" in main.list_commands(click.Context(main))


def _wait_for_metrics(stack: Stack, ports: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [c for c in stack.children if c.process.poll() is not None and c.name != "api"]
        if dead:
            raise click.ClickException(f"{dead[0].name} exited with {dead[0].process.returncode}: "
                                       f"{_last_error(dead[0])} (log: {dead[0].log})")
        if all(_answers(port) for port in ports):
            return
        time.sleep(0.3)
    raise click.ClickException("the services did not come up within 60 s (see .baton/logs/)")


def _last_error(child: Child) -> str:
    """The child's own last words: its last `error:` line (Baton's commands end with one), else its last line."""
    with open(child.log, "rb") as handle:
        handle.seek(child.offset)
        lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1].removeprefix("error: ")


@click.command()
@click.option("--run-demo", is_flag=True, help="Run the GenAI demos (examples/genai/), then stop.")
@click.option("--auto-approve", is_flag=True, help="With --run-demo: approve the human review without asking.")
@click.option("--quiet", is_flag=True, help="Show only errors of the services (always with --run-demo).")
@click.option("--insecure-local", is_flag=True, help="Run the API without tokens (default: a printed admin token).")
def dev(run_demo: bool, auto_approve: bool, quiet: bool, insecure_local: bool) -> None:
    """Run the local stack (broker, models, orchestrator, every step service) until Ctrl-C."""
    stack = Stack(quiet=quiet or run_demo)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    ok = True
    problem: str | None = None
    try:
        local_model.check_installed()  # before anything starts: one line with the fix, nothing to stop
        env = start_stack(stack, insecure_local=insecure_local)
        if run_demo:
            from kafka_io import KafkaSettings
            from orchestrator.demo import run_and_report

            ask = not auto_approve and sys.stdin.isatty()
            ok = run_and_report(KafkaSettings(kafka_bootstrap=env["BATON_KAFKA_BOOTSTRAP"]), DEMOS,
                                auto_approve=not ask, metrics=stack.metrics)
        else:
            for name, url in stack.metrics.items():
                stack.say(f"{name}: {url}")
            stack.say("try: baton start examples/genai/diet/definition.json --input @examples/genai/diet/input.json --wait")
            stack.say("Ctrl-C stops everything this command started")
            while not stopping.is_set():
                dead = [c for c in stack.children if c.process.poll() is not None]
                if dead:
                    stack.say(f"{dead[0].name} exited with {dead[0].process.returncode}; stopping")
                    ok = False
                    break
                time.sleep(0.5)
    except KeyboardInterrupt:
        stack.say("interrupted")
    except (BatonError, KafkaError, OSError, click.ClickException) as exc:
        problem = exc.format_message() if isinstance(exc, click.ClickException) else failure_line(exc)
    finally:
        stack.stop()
    if problem is not None:
        fail(problem, 1)
    sys.exit(0 if ok else 1)
