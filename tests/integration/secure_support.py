"""What the tests of a fresh secured broker share: free ports, starting one, its users' settings."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from infra.local_kafka import LocalKafkaError
from infra.secure_kafka import ADMIN_USER, SecureBroker, ensure_up
from kafka_io import KafkaSettings
from orchestrator.runtime.topics import provision_topics

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "baton"  # a fresh secured broker is the module's own: the default prefix its ACLs name


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, so the broker never meets a developer's (or the plain one)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_secure_broker(state: Path) -> SecureBroker:
    """A fresh secured broker in ``state`` on free ports, with Baton's ACLs (fails the test if not)."""
    port, controller_port, mtls_port = free_ports(3)
    try:
        return ensure_up(port, controller_port, state=state, mtls_port=mtls_port, prefix=PREFIX)
    except LocalKafkaError as error:
        pytest.fail(f"secured Kafka did not start: {error}\n{error.log_tail}", pytrace=False)


def provision_as_admin(broker: SecureBroker) -> None:
    """Baton's topics on the broker, created by the admin with the settings `env` prints."""
    env: dict[str, Any] = {key.removeprefix("BATON_").lower(): value
                           for key, value in broker.client_env(ADMIN_USER).items()}
    asyncio.run(provision_topics(KafkaSettings(**env, topic_prefix=PREFIX)))


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any BATON_KAFKA_* / topic prefix of the developer's
    shell, plus ``settings``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BATON_KAFKA_") and key != "BATON_TOPIC_PREFIX"}
    return env | {"BATON_TOPIC_PREFIX": PREFIX} | settings


def baton(args: list[str], env: Mapping[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the `baton` command as a user would (its own process), from the repository root."""
    script = Path(sys.executable).parent / "baton"  # the installed console script, as users run it
    command = [str(script)] if script.is_file() else [sys.executable, "-c", "from orchestrator.cli import main; main()"]
    return subprocess.run([*command, *args], env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
