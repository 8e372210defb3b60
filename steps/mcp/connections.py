"""The MCP step service's configuration: named MCP servers (connections) and the service settings.

Configured once per deployment, like the HTTP step's connections, so a definition names a server
and never holds its URL's credentials. The file (YAML or JSON) is named by
`BATON_MCP_CONNECTIONS` (or is the document itself); `${VAR}` in any string is replaced by the
environment variable VAR when it is loaded, so the file holds no secret:

    connections:
      tools:
        url: http://127.0.0.1:8765/mcp        # the server's streamable HTTP endpoint
        headers: {Authorization: "Bearer ${TOOLS_TOKEN}"}
        timeout_seconds: 20                   # the whole call (connect, handshake, tool); default 30

Only streamable HTTP is supported: a step service runs apart from the workflows it serves and
scales by replicas, so a tool server is a service it reaches over the network, like an HTTP API.
stdio servers (a command the service would spawn per call) are not: a Task must not be able to
start processes on the step service's host.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from steps.mcp.errors import ConnectionConfigError

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MCPConnection(BaseModel):
    """One MCP server: where it is, the headers that authenticate to it, how long a call may take."""

    model_config = ConfigDict(extra="forbid")

    name: str
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = {}  # values are secrets: never in a result, cause or log
    timeout_seconds: float | None = Field(default=None, gt=0)  # default: MCPSettings.timeout_seconds


class MCPSettings(BaseSettings):
    """Env: BATON_MCP_CONNECTIONS (a YAML/JSON file path, or the JSON itself), BATON_MCP_TIMEOUT_SECONDS, ..."""

    model_config = SettingsConfigDict(env_prefix="BATON_MCP_", extra="ignore")

    connections: str | None = None
    # A call that has not finished by then (a server that hangs) fails with Baton.MCP.Timeout.
    timeout_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # SSRF guard, as the HTTP step's (steps.http.guard): MCP servers at these addresses are refused.
    blocked_networks: list[str] = Field(default_factory=lambda: ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"])


def load_connections(source: str | None, environ: Mapping[str, str] | None = None) -> dict[str, MCPConnection]:
    """Connections from a file path or the document itself ("{" or several lines); none if empty.

    Raises ConnectionConfigError naming the file, connection and field; never repeats a value.
    """
    if not source or not source.strip():
        return {}
    where, text = "BATON_MCP_CONNECTIONS", source
    if not (source.lstrip().startswith("{") or "\n" in source.strip()):
        where = str(Path(source).expanduser())
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConnectionConfigError(f"cannot read the MCP connections file {where}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise ConnectionConfigError(f"{where} is not valid YAML or JSON") from None
    entries = document.get("connections", document) if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise ConnectionConfigError(f"{where}: expected 'connections', a mapping of names to MCP servers")
    environ = os.environ if environ is None else environ
    connections: dict[str, MCPConnection] = {}
    for name, body in entries.items():
        if not isinstance(body, dict):
            raise ConnectionConfigError(f"{where}: connection {name!r} must be a mapping")
        try:
            connections[str(name)] = MCPConnection.model_validate(
                {**_expand(body, environ, f"connections.{name}", where), "name": str(name)})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                 for e in exc.errors(include_input=False, include_url=False))
            raise ConnectionConfigError(f"{where}: connection {name!r}: {problems}") from None
    return connections


def _expand(value: Any, environ: Mapping[str, str], path: str, where: str) -> Any:
    if isinstance(value, str):
        def variable(match: re.Match[str]) -> str:
            if match.group(1) not in environ:
                raise ConnectionConfigError(f"{where}: {path} refers to the environment variable "
                                            f"{match.group(1)}, which is not set")
            return environ[match.group(1)]

        return _VARIABLE.sub(variable, value)
    if isinstance(value, dict):
        return {key: _expand(item, environ, f"{path}.{key}", where) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, environ, f"{path}[{i}]", where) for i, item in enumerate(value)]
    return value
