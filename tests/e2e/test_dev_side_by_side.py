"""Two `baton dev` stacks side by side on one broker (issue 20): each on its own ports, topic
prefix and state folder (options and environment variables), each runs a workflow of the
examples, and nothing crosses: each stack's list, API and services know their own executions
only. A third `baton dev` on a port the first one holds is refused in one line.

`--no-models` keeps it light (no model or embeddings servers, no llm or retrieval service): the
workflow is examples/sequence (fn steps), so the whole test takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kafka_io import KafkaSettings
from orchestrator import dev_config
from orchestrator.runtime.topics import delete_topics

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("baton")
BATON = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "orchestrator.cli"]
SERVICES = len(dev_config.SERVICES)  # the orchestrator's metrics port and one per step service


def free_ports(count: int, taken: set[int]) -> int:
    """The first of `count` consecutive free loopback ports, none in `taken`."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        span = set(range(first, first + count))
        if first + count < 65535 and not span & taken and all(_free(port) for port in span):
            taken |= span
            return first
    raise RuntimeError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class DevStack:
    prefix: str
    state_dir: Path
    api_port: int
    metrics_port: int
    orders_port: int
    process: subprocess.Popen[str] | None = None

    @property
    def options(self) -> list[str]:
        return ["--no-models", "--insecure-local", "--topic-prefix", self.prefix, "--api-port", str(self.api_port),
                "--metrics-port", str(self.metrics_port), "--orders-api-port", str(self.orders_port)]

    @property
    def log(self) -> Path:
        return self.state_dir.with_suffix(".out")

    def start(self, bootstrap: str) -> None:
        self.state_dir.mkdir(parents=True)
        # The state folder through its environment variable, the rest as options: both are read.
        env = {**os.environ, "BATON_KAFKA_BOOTSTRAP": bootstrap, "BATON_STATE_DIR": str(self.state_dir)}
        with self.log.open("w") as out:
            self.process = subprocess.Popen([*BATON, "dev", *self.options], cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)

    def wait_up(self, timeout: float = 120) -> str:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if "in another shell: export" in text:
                return text
            assert self.process.poll() is None, text
            time.sleep(0.3)
        raise AssertionError(f"baton dev did not come up:\n{self.log.read_text()}")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)  # the stack stops only what it started
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def baton(self, *args: str, bootstrap: str) -> subprocess.Popen[str]:
        env = {**os.environ, "BATON_KAFKA_BOOTSTRAP": bootstrap, "BATON_TOPIC_PREFIX": self.prefix}
        return subprocess.Popen([*BATON, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)


@pytest.fixture
def stacks(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[DevStack, DevStack]]:
    taken: set[int] = set()
    pair = tuple(DevStack(prefix=f"t{uuid.uuid4().hex[:8]}", state_dir=tmp_path / name,
                          api_port=free_ports(1, taken), metrics_port=free_ports(SERVICES, taken),
                          orders_port=free_ports(1, taken)) for name in ("a", "b"))
    try:
        yield pair  # type: ignore[misc]
    finally:
        for stack in pair:
            stack.stop()
            asyncio.run(delete_topics(KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=stack.prefix)))


def test_two_dev_stacks_side_by_side(stacks: tuple[DevStack, DevStack], kafka_bootstrap: str,
                                     tmp_path: Path) -> None:
    a, b = stacks
    for stack in (a, b):  # at once
        stack.start(kafka_bootstrap)
    shown = {stack.prefix: stack.wait_up() for stack in (a, b)}
    for stack in (a, b):  # every port, the prefix and the state folder are printed
        text = shown[stack.prefix]
        assert f"topic prefix '{stack.prefix}', state dir {stack.state_dir}" in text, text
        assert f"ports: API {stack.api_port} (--api-port), metrics orchestrator {stack.metrics_port}, " \
               f"fn {stack.metrics_port + 1}" in text and f"orders API {stack.orders_port}" in text, text
        assert f"export BATON_KAFKA_BOOTSTRAP={kafka_bootstrap} BATON_TOPIC_PREFIX={stack.prefix}" in text

    # The same workflow on both stacks at once, each following its own BATON_TOPIC_PREFIX.
    runs = {stack.prefix: stack.baton("start", "examples/sequence/summarise.json", "--input",
                                      "@examples/sequence/input.json", "--name", f"on-{stack.prefix}", "--wait",
                                      "--json", bootstrap=kafka_bootstrap) for stack in (a, b)}
    for prefix, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert json.loads(out)["status"] == "SUCCEEDED"

    for stack, other in ((a, b), (b, a)):
        listing = stack.baton("list", "--json", "--db", str(tmp_path / f"{stack.prefix}.sqlite"),
                              bootstrap=kafka_bootstrap)
        out, err = listing.communicate(timeout=120)
        assert listing.returncode == 0, err
        assert [row["name"] for row in json.loads(out)] == [f"on-{stack.prefix}"]  # nothing of the other's
        api = f"http://127.0.0.1:{stack.api_port}"
        health = httpx.get(f"{api}/healthz", timeout=10).json()
        assert (health["topic_prefix"], health["kafka_bootstrap"]) == (stack.prefix, kafka_bootstrap)
        assert health["stack_id"] and health["stack_id"] != httpx.get(
            f"http://127.0.0.1:{other.api_port}/healthz", timeout=10).json()["stack_id"]
        deadline = time.monotonic() + 30
        while not (names := [e["name"] for e in httpx.get(f"{api}/api/executions", timeout=10).json()]):
            assert time.monotonic() < deadline, "the API never listed the execution"
            time.sleep(0.3)
        assert names == [f"on-{stack.prefix}"]
        metrics = httpx.get(f"http://127.0.0.1:{stack.metrics_port + 1}/metrics", timeout=10).text
        assert f'topic_prefix="{stack.prefix}"' in metrics  # the fn service says whose it is

    # A third stack asking for a port of the first: one line naming that stack, nothing started.
    third = DevStack(prefix=f"t{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "c", api_port=free_ports(1, set()),
                     metrics_port=a.metrics_port, orders_port=free_ports(1, set()))
    refused = subprocess.run([*BATON, "dev", *third.options], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "BATON_KAFKA_BOOTSTRAP": kafka_bootstrap,
                                  "BATON_STATE_DIR": str(third.state_dir)}, stdin=subprocess.DEVNULL)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith(f"error: port {a.metrics_port} (orchestrator metrics) is taken by another "
                                     f"stack (stack ") and f"topic prefix '{a.prefix}'" in refused.stderr
    assert not (third.state_dir / "logs").exists()
    asyncio.run(delete_topics(KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=third.prefix)))

    for stack in (a, b):
        assert stack.stop() == 0, stack.log.read_text()[-2000:]
