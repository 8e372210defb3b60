"""The `mcp` step service: call a tool on an MCP server, or list its tools, over streamable HTTP.

    "Lookup": {"Type": "Task", "Resource": "baton:mcp:callTool",
               "Arguments": {"Connection": "tools", "Name": "get_weather", "Arguments": {"city": "Paris"}}}
      -> {"Content": [{"type": "text", "text": "..."}], "StructuredContent": {...} | null,
          "IsError": false, "Text": "..."}     (Text: the text blocks joined, handy for a model)
    "Tools":  {"Type": "Task", "Resource": "baton:mcp:listTools", "Arguments": {"Connection": "tools"}}
      -> {"Tools": [{"Name", "Description", "InputSchema"}]}   (the shape baton:llm's Tools takes)

Each call opens a session with the official `mcp` SDK's client (handshake, call, close) within
the connection's timeout, so a server that restarts between calls is no one's problem and the
service keeps no session state across replicas. Before connecting, the server's address is
checked against the SSRF guard (steps.http.guard). Every failure is a `Baton.MCP.*` error
(errors.py); nothing a server does (hang, disconnect, garbage) escapes as anything else.

Run it with `baton step mcp` or `BATON_MCP_CONNECTIONS=conns.yaml faststream run --factory
steps.mcp.service:app`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx2
from faststream import FastStream
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from prometheus_client import CollectorRegistry, Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kafka_io import KafkaSettings
from schemas.resources import REQUEST_RESPONSE, parse_resource
from schemas.steps import StepCommand
from steps.http.guard import addresses, blocked, networks
from steps.mcp.connections import MCPConnection, MCPSettings, load_connections
from steps.mcp.errors import InvalidParameters, MCPProtocolError, MCPTaskError, MCPTimeout, MCPUnavailable
from steps.sdk.handler import StepHandler, StepOutput
from steps.sdk.redact import Redactor, quiet_http_client_logs
from steps.service import StepService

SERVICE = "mcp"
log = logging.getLogger(__name__)


class CallToolParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str = Field(alias="Connection", min_length=1)
    name: str = Field(alias="Name", min_length=1)
    arguments: dict[str, Any] = Field(default={}, alias="Arguments")


class ListToolsParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str = Field(alias="Connection", min_length=1)


class MCPHandler(StepHandler):
    """Runs `baton:mcp:callTool` and `baton:mcp:listTools` Tasks (see the module docstring)."""

    def __init__(self, settings: MCPSettings | None = None, connections: dict[str, MCPConnection] | None = None, *,
                 registry: CollectorRegistry | None = None) -> None:
        self.settings = settings or MCPSettings()
        self.connections = connections if connections is not None else load_connections(self.settings.connections)
        self.refused = networks(self.settings.blocked_networks)
        self.duration = Histogram("baton_mcp_call_seconds", "MCP calls by connection, method and outcome.",
                                  ["connection", "method", "outcome"], registry=registry or CollectorRegistry())
        quiet_http_client_logs()

    async def run(self, command: StepCommand) -> StepOutput:
        resource = parse_resource(command.resource)
        action = resource.action
        if resource.service != SERVICE or resource.pattern != REQUEST_RESPONSE or action not in ("callTool", "listTools"):
            raise InvalidParameters(f"the mcp service does not run {command.resource!r}: it answers "
                                    "baton:mcp:callTool and baton:mcp:listTools (request-response)")
        model = CallToolParameters if action == "callTool" else ListToolsParameters
        try:
            parameters: Any = model.model_validate(command.parameters)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'Parameters'}: {e['msg']}"
                                 for e in exc.errors(include_url=False))
            raise InvalidParameters(f"invalid baton:mcp:{action} Parameters: {problems}") from None
        connection = self._connection(parameters.connection)
        await self._guard(connection)
        started = time.monotonic()
        outcome = "ok"
        try:
            value = await self._session(connection, action, parameters)
        except MCPTaskError as exc:
            outcome = exc.name.rsplit(".", 1)[-1]
            raise
        finally:
            self.duration.labels(connection.name, action, outcome).observe(time.monotonic() - started)
        metadata = {"connection": connection.name, "latency_ms": round((time.monotonic() - started) * 1000, 3)}
        if action == "callTool":
            metadata["tool"] = parameters.name
        return StepOutput(value, metadata)

    def _connection(self, name: str) -> MCPConnection:
        connection = self.connections.get(name)
        if connection is None:
            known = ", ".join(sorted(self.connections)) or "none are configured (BATON_MCP_CONNECTIONS)"
            raise InvalidParameters(f"no MCP connection named {name!r}; known: {known}")
        return connection

    async def _guard(self, connection: MCPConnection) -> None:
        host = urlsplit(connection.url).hostname or ""
        for address in await addresses(host):
            if blocked(address, self.refused):
                raise InvalidParameters(f"MCP connection {connection.name!r}: {host} ({address}) is a link-local or "
                                        "cloud metadata address, which MCP Tasks may not call "
                                        "(BATON_MCP_BLOCKED_NETWORKS lists them)")

    async def _session(self, connection: MCPConnection, action: str,
                       parameters: Any) -> dict[str, Any]:
        timeout = connection.timeout_seconds or self.settings.timeout_seconds
        where = f"MCP connection {connection.name!r} ({connection.url})"
        redactor = Redactor(list(connection.headers.values()))
        http = httpx2.AsyncClient(headers=connection.headers, timeout=httpx2.Timeout(
            timeout, connect=min(self.settings.connect_timeout_seconds, timeout)))
        try:
            async with asyncio.timeout(timeout), http:
                async with Client(streamable_http_client(connection.url, http_client=http), mode="legacy",
                                  read_timeout_seconds=timeout, cache=None) as client:
                    if action == "listTools":
                        listing = await client.list_tools()
                        return {"Tools": [{"Name": t.name, "Description": t.description or "",
                                           "InputSchema": t.input_schema} for t in listing.tools]}
                    result = await client.call_tool(parameters.name, parameters.arguments)
                    content = [block.model_dump(mode="json", by_alias=True, exclude_none=True)
                               for block in result.content]
                    text = "\n".join(block["text"] for block in content if block.get("type") == "text")
                    return {"Content": content, "StructuredContent": result.structured_content,
                            "IsError": bool(result.is_error), "Text": text}
        except TimeoutError:
            raise MCPTimeout(f"{where}: no answer within {timeout:g} s (timeout_seconds)") from None
        except MCPError as exc:
            raise MCPProtocolError(redactor.text(f"{where}: the server refused the call: {exc}")) from None
        except Exception as exc:  # the SDK's task groups wrap transport failures in exception groups
            raise _failure(where, exc, redactor) from None

    async def aclose(self) -> None:
        return None


def _failure(where: str, exc: BaseException, redactor: Redactor) -> MCPTaskError:
    """The Baton.MCP error a failure inside the SDK means (the innermost cause of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return MCPTimeout(f"{where}: no answer in time ({type(exc).__name__})")
    if isinstance(exc, MCPError):
        return MCPProtocolError(redactor.text(f"{where}: the server refused the call: {exc}"))
    if isinstance(exc, ValidationError):
        return MCPProtocolError(f"{where}: the answer is not MCP ({exc.error_count()} problems)")
    detail = str(exc) or type(exc).__name__
    return MCPUnavailable(redactor.text(f"{where}: {type(exc).__name__}: {detail}"[:500]))


class MCPStepService(StepService):
    """The mcp `StepService`."""


def mcp_service(settings: MCPSettings | None = None, connections: dict[str, MCPConnection] | None = None, *,
                kafka: KafkaSettings | None = None, registry: CollectorRegistry | None = None,
                **options: Any) -> MCPStepService:
    """An mcp step service. Connections default to the file named by BATON_MCP_CONNECTIONS.

    `options` are passed to `StepService` (max_concurrency, remember, drain_seconds, ...).
    """
    registry = registry or CollectorRegistry()
    handler = MCPHandler(settings, connections, registry=registry)
    return MCPStepService(SERVICE, handler, settings=kafka or KafkaSettings(), registry=registry, **options)


def app() -> FastStream:
    """`faststream run --factory steps.mcp.service:app` (config: BATON_MCP_CONNECTIONS, BATON_MCP_*)."""
    return mcp_service().app()
