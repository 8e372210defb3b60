"""What one `baton dev` stack is: its ports, state folder, broker and topic prefix, and its id; and
the checks that keep two stacks side by side apart.

Every port and the state folder is an option of `baton dev` and an environment variable (the
same names the services read), so a second stack is `baton dev` with other values. Before
anything starts, each port is claimed (:func:`claim`): a free port is ours to start on; a port
where a Baton service of the same broker and topic prefix answers (`infra.stack`) is reused;
anything else (another stack's service, or something that is not Baton) is refused with one line
naming the option that moves it. A topic prefix whose orchestrators' consumer group already has
members, while no orchestrator of ours answers, belongs to another stack: refused too, or both
stacks' orchestrators would share its executions.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from pydantic import BaseModel, Field

from infra.stack import STACK_ID_ENV, StackIdentity, identity_at
from schemas.errors import BatonError

# Step services in start order (the orchestrator first); each one's metrics port is the
# orchestrator's + its index.
SERVICES: list[tuple[str, list[str]]] = [
    ("orchestrator", ["orchestrator", "--instance-id", "dev-1"]),
    ("fn", ["step", "fn", "--module", "examples.steps.text"]),
    ("llm", ["step", "llm"]),
    ("http", ["step", "http"]),
    ("review", ["step", "review"]),
    ("retrieval", ["step", "retrieval"]),
    # baton:mcp Tasks: MCP servers named in BATON_MCP_CONNECTIONS (none by default: a Task naming
    # one fails with the list of configured connections instead of waiting for ever).
    ("mcp", ["step", "mcp"]),
]
MODEL_SERVICES = frozenset({"llm", "retrieval"})  # left out with --no-models


class DevError(BatonError):
    """The stack cannot start as asked (one line, with the option that fixes it)."""


class DevConfig(BaseModel):
    """One stack's settings (the options of `baton dev`, each also an environment variable)."""

    state_dir: Path
    api_port: int = Field(ge=1, le=65535)  # BATON_API_PORT
    metrics_port: int = Field(ge=1, le=65535 - len(SERVICES))  # BATON_METRICS_PORT: the orchestrator's
    orders_api_port: int = Field(ge=1, le=65535)  # BATON_ORDERS_API_PORT
    model_port: int = Field(ge=1, le=65535)  # BATON_MODEL_PORT: the first model server's
    embeddings_port: int = Field(ge=1, le=65535)  # BATON_EMBEDDINGS_PORT
    bootstrap: str | None = None  # BATON_KAFKA_BOOTSTRAP; None: a local broker on kafka_port
    kafka_port: int | None = None  # BATON_KAFKA_PORT
    topic_prefix: str = "baton"  # BATON_TOPIC_PREFIX
    models: bool = True  # False: no model or embeddings servers, no llm or retrieval service
    stack_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def dev_dir(self) -> Path:
        return self.state_dir / "dev"

    def services(self) -> list[tuple[str, list[str], int]]:
        """(name, baton arguments, metrics port) of each service this stack runs."""
        return [(name, args, self.metrics_port + index) for index, (name, args) in enumerate(SERVICES)
                if self.models or name not in MODEL_SERVICES]

    def child_env(self, bootstrap: str) -> dict[str, str]:
        """What every child reads: the stack's broker, prefix, id and ports."""
        return {"BATON_KAFKA_BOOTSTRAP": bootstrap, "BATON_TOPIC_PREFIX": self.topic_prefix,
                STACK_ID_ENV: self.stack_id, "BATON_STATE_DIR": str(self.state_dir),
                "BATON_API_PORT": str(self.api_port), "BATON_ORDERS_API_PORT": str(self.orders_api_port),
                "BATON_MODEL_PORT": str(self.model_port), "BATON_EMBEDDINGS_PORT": str(self.embeddings_port),
                # Large payloads go to a folder of the stack's unless one is configured (docs/payloads.md).
                "BATON_PAYLOAD_STORE": os.environ.get("BATON_PAYLOAD_STORE") or str(self.state_dir / "payloads")}

    def port_lines(self) -> list[str]:
        """The ports, as `baton dev` prints them at start (with the option moving each)."""
        metrics = ", ".join(f"{name} {port}" for name, _, port in self.services())
        lines = [f"stack {self.stack_id}: topic prefix {self.topic_prefix!r}, state dir {self.state_dir}",
                 f"ports: API {self.api_port} (--api-port), metrics {metrics} (--metrics-port), "
                 f"orders API {self.orders_api_port} (--orders-api-port)"]
        if self.models:
            lines.append(f"ports: model servers from {self.model_port} (--model-port), embeddings "
                         f"{self.embeddings_port} (--embeddings-port)")
        return lines


def answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on the port."""
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def claim(port: int, what: str, option: str, ours: StackIdentity) -> bool:
    """Whether a service of ours already answers on `port` (True: reuse it); False when the port
    is free. DevError when another stack's service, or something that is not Baton, answers."""
    if not answers(port):
        return False
    found = identity_at(port)
    if found is None:
        raise DevError(f"port {port} ({what}) is taken by something that is not a Baton service: "
                       f"choose another {option}, or stop what listens there")
    if not found.serves_the_same_topics(ours):
        raise DevError(f"port {port} ({what}) is taken by another stack ({found}); this one is {ours}: "
                       f"choose another {option} (and --topic-prefix), or stop that stack")
    return True


def check_prefix_free(orchestrators: int | None, ours: StackIdentity, group_id: str) -> None:
    """Refuse a topic prefix whose orchestrators' group has members when no orchestrator of this
    stack answers: another stack consumes those topics (`orchestrators` None: unknown, allowed)."""
    if orchestrators:
        raise DevError(f"topic prefix {ours.topic_prefix!r} on {ours.kafka_bootstrap} is in use by another stack "
                       f"({orchestrators} orchestrator(s) in consumer group {group_id}): choose another "
                       "--topic-prefix, or stop that stack")
