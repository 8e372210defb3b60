"""`baton dev`: the whole local stack in one process tree, for development and the demo (the click
command is `orchestrator.cli.dev`).

Starts (or reuses what already answers) the Kafka broker, Baton's topics, the two offline model
servers, the offline embeddings server and the insurance knowledge base, the demo's orders API,
the orchestrator, every step service (fn, llm, http, review, retrieval, mcp) and, when this checkout
has `baton api`, the API. Each child logs to `.baton/logs/<service>.log`; the terminal shows
those lines prefixed with the service's name. Ctrl-C or SIGTERM stops, in reverse order, only
what this command started (by pid).

    baton dev                              # run until Ctrl-C
    baton dev --run-demo --auto-approve    # start, run the GenAI demos, stop; exit 1 if one failed
    baton dev --topic-prefix b --state-dir .baton-b --api-port 8180 --metrics-port 9500 \
        --orders-api-port 8197             # a second stack beside the first (same broker)

Every port and the state folder is an option and an environment variable, all printed at start;
a port where another stack's service answers is refused (`orchestrator.dev_config`). The children
get BATON_KAFKA_BOOTSTRAP and BATON_TOPIC_PREFIX, and every `baton` command follows those two.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from infra import local_embeddings, local_model
from infra.stack import StackIdentity
from orchestrator.demo import GENAI_DIR, REPO_ROOT, connections_config, llm_config
from orchestrator.dev_config import DevConfig, answers, check_prefix_free, claim

COLOURS = ["cyan", "green", "yellow", "magenta", "blue", "bright_cyan", "bright_green", "bright_magenta"]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    offset: int = 0  # where this run's lines start in the log


@dataclass
class Stack:
    """What `baton dev` started, in start order; :meth:`stop` ends it in reverse."""

    log_dir: Path
    quiet: bool = False
    children: list[Child] = field(default_factory=list)
    stoppers: list[tuple[str, Any]] = field(default_factory=list)  # (name, callable) for infra helpers
    order: list[str] = field(default_factory=list)  # every started thing, children and helpers
    metrics: dict[str, str] = field(default_factory=dict)
    _tailing: bool = True

    def say(self, message: str) -> None:
        click.echo(click.style("baton dev", bold=True) + f" | {message}")

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
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


def _api_args(stack: Stack, config: DevConfig, env: dict[str, str], insecure_local: bool) -> list[str]:
    """`baton api`'s auth: a fresh local admin token (printed, in STATE_DIR/dev/api-tokens.json), or none."""
    if insecure_local:
        stack.say("API without authentication (--insecure-local)")
        return ["--insecure-local"]
    from orchestrator.api.auth import TokenStore, TokenStoreError

    store = TokenStore(config.dev_dir / "api-tokens.json")
    with contextlib.suppress(TokenStoreError):
        store.revoke("dev-admin")  # one dev token at a time: the previous run's stops working
    token = store.create("dev-admin", "admin")
    env["BATON_API_TOKENS_FILE"] = str(store.path)
    stack.say(f"API admin token: {token}")
    stack.say(f"pages: http://127.0.0.1:{config.api_port}/?token={token}  API: Authorization: Bearer <token>")
    return ["--tokens", str(store.path)]


def _kafka(stack: Stack, config: DevConfig) -> str:
    """The stack's bootstrap: BATON_KAFKA_BOOTSTRAP as given, else a local broker (started or reused)."""
    from infra import local_kafka
    from infra.stack import cluster_id
    from kafka_io import KafkaSettings

    bootstrap = config.bootstrap
    how = "given"
    if not bootstrap:
        broker = local_kafka.ensure_up(config.kafka_port)
        bootstrap = broker.bootstrap
        if broker.started_here:
            stack.stoppers.append(("kafka broker", lambda: local_kafka.stop(broker)))
        how = "started" if broker.started_here else "reused"
    cluster = asyncio.run(cluster_id(KafkaSettings(kafka_bootstrap=bootstrap, topic_prefix=config.topic_prefix)))
    stack.say(f"kafka {bootstrap} ({how}; cluster {cluster or 'unknown'})")
    return bootstrap


def _claim_ports(config: DevConfig, ours: StackIdentity, with_api: bool) -> set[int]:
    """The ports where a service of this stack already answers (reused); DevError for a port that
    another stack or something else holds, or a topic prefix another stack consumes."""
    from kafka_io import KafkaSettings
    from orchestrator.client.client import group_members

    wanted = [(f"{name} metrics", "--metrics-port", port) for name, _, port in config.services()]
    wanted.append(("orders API", "--orders-api-port", config.orders_api_port))
    if with_api:
        wanted.append(("API", "--api-port", config.api_port))
    reused = {port for what, option, port in wanted if claim(port, what, option, ours)}
    if config.metrics_port not in reused:  # none of our orchestrators runs: nobody may use the prefix
        group = f"{config.topic_prefix}-orchestrator"
        kafka = KafkaSettings(kafka_bootstrap=ours.kafka_bootstrap, topic_prefix=config.topic_prefix)
        check_prefix_free(asyncio.run(group_members(kafka, group)), ours, group)
    return reused


def _models(stack: Stack, config: DevConfig, env: dict[str, str]) -> None:
    """The model servers, the embeddings server and the insurance knowledge base, for the GenAI demos."""
    servers = local_model.ensure_up(None, config.model_port)
    if any(s.started_here for s in servers):
        stack.stoppers.append(("model servers", lambda: local_model.stop(servers)))
    stack.say("models " + ", ".join(f"{s.alias} {s.base_url} ({'started' if s.started_here else 'reused'})"
                                    for s in servers))
    embeddings = local_embeddings.ensure_up(config.embeddings_port)
    if embeddings.started_here:
        stack.stoppers.append(("embeddings server", lambda: local_embeddings.stop(embeddings)))
    stack.say(f"embeddings {embeddings.base_url} ({'started' if embeddings.started_here else 'reused'})")
    llm_file = config.dev_dir / "llm.yaml"
    llm_file.write_text(json.dumps(llm_config(servers), indent=2), encoding="utf-8")
    env.update(BATON_LLM_CONFIG_FILE=str(llm_file), BATON_EMBEDDINGS_BASE_URL=embeddings.base_url,
               BATON_KB_DIR=str(config.state_dir / "kb"))
    kb = subprocess.run([*_baton(), "kb", "add", str(REPO_ROOT / "examples" / "insurance" / "kb"), "--name",
                         "insurance"], env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if kb.returncode != 0:
        raise click.ClickException(f"baton kb add failed: {kb.stderr.strip() or kb.stdout.strip()}")
    stack.say(f"knowledge base: {kb.stdout.strip().splitlines()[-1] if kb.stdout.strip() else 'insurance'}")


def start_stack(stack: Stack, config: DevConfig, *, insecure_local: bool = False) -> dict[str, str]:
    """Start everything; return the environment the children share."""
    from kafka_io import KafkaSettings
    from orchestrator.runtime.topics import ensure_topics

    began = time.monotonic()
    for line in config.port_lines():
        stack.say(line)
    bootstrap = _kafka(stack, config)
    ours = StackIdentity(stack_id=config.stack_id, topic_prefix=config.topic_prefix, kafka_bootstrap=bootstrap)
    with_api = _has_api()
    reused = _claim_ports(config, ours, with_api)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **config.child_env(bootstrap)}
    created = asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap=bootstrap, topic_prefix=config.topic_prefix)))
    stack.say(f"topics {config.topic_prefix}.* ready ({len(created)} created)")

    config.dev_dir.mkdir(parents=True, exist_ok=True)
    connections_file = config.dev_dir / "connections.yaml"
    connections_file.write_text(json.dumps(connections_config(config.orders_api_port), indent=2), encoding="utf-8")
    env["BATON_HTTP_CONNECTIONS"] = str(connections_file)
    if config.models:
        _models(stack, config, env)

    def start(name: str, args: list[str], port: int, label: str, path: str) -> None:
        if port in reused:
            stack.say(f"{name}: this stack's service already answers on :{port}, reusing it")
        else:
            stack.spawn(name, args, env)
        stack.metrics[label] = f"http://127.0.0.1:{port}{path}"

    orders = config.orders_api_port
    start("orders-api", [sys.executable, str(GENAI_DIR / "intent-api" / "server.py"), "--port", str(orders)], orders,
          "orders API", "/orders/")
    for name, args, port in config.services():
        start(name, [*_baton(), *args, "--metrics-port", str(port)], port, f"{name} metrics", "/metrics")
    ports = [port for _, _, port in config.services()]
    if with_api:
        api_args = [] if config.api_port in reused else _api_args(stack, config, env, insecure_local)
        start("api", [*_baton(), "api", "--port", str(config.api_port), *api_args], config.api_port,
              "API + graph", "/")
        ports.append(config.api_port)
    _wait_for_ports(stack, ports, timeout=60)
    stack.say(f"stack up in {time.monotonic() - began:.1f} s; logs in {config.log_dir}")
    stack.say(f"in another shell: export BATON_KAFKA_BOOTSTRAP={bootstrap} BATON_TOPIC_PREFIX={config.topic_prefix}")
    return env


def _baton() -> list[str]:
    script = _baton_script()
    return [script] if script else [sys.executable, "-m", "orchestrator.cli"]


def _baton_script() -> str | None:
    candidate = Path(sys.executable).parent / "baton"
    return str(candidate) if candidate.exists() else None


def _has_api() -> bool:
    from orchestrator.cli import main

    return "api" in main.list_commands(click.Context(main))


def _wait_for_ports(stack: Stack, ports: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [c for c in stack.children if c.process.poll() is not None]
        if dead:
            raise click.ClickException(f"{dead[0].name} exited with {dead[0].process.returncode}: "
                                       f"{_last_error(dead[0])} (log: {dead[0].log})")
        if all(answers(port) for port in ports):
            return
        time.sleep(0.3)
    raise click.ClickException(f"the services did not come up within {timeout:g} s (see {stack.log_dir})")


def _last_error(child: Child) -> str:
    """The child's own last words: its last `error:` line (Baton's commands end with one), else its last line."""
    with open(child.log, "rb") as handle:
        handle.seek(child.offset)
        lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1].removeprefix("error: ")


def serve(stack: Stack, stopping: threading.Event, config: DevConfig) -> bool:
    """Until Ctrl-C or SIGTERM (True), or until a child exits (False)."""
    for name, url in stack.metrics.items():
        stack.say(f"{name}: {url}")
    example = "examples/genai/diet" if config.models else "examples/sequence"
    what = "definition.json --input @examples/genai/diet/input.json" if config.models else \
        "summarise.json --input @examples/sequence/input.json"
    stack.say(f"try: baton start {example}/{what} --wait")
    stack.say("Ctrl-C stops everything this command started")
    while not stopping.is_set():
        dead = [c for c in stack.children if c.process.poll() is not None]
        if dead:
            stack.say(f"{dead[0].name} exited with {dead[0].process.returncode}; stopping")
            return False
        time.sleep(0.5)
    return True
