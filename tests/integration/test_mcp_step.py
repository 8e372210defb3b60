"""The mcp step's handler against a real MCP server (the agent example's, over streamable HTTP,
with a bearer token from the environment) and against endpoints that hang or disconnect: results
in the shapes the LLM's Tools and an agent's messages take, and every failure a Baton.MCP.* error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.steps import StepCommand
from steps.mcp import MCPHandler, MCPSettings, load_connections
from steps.mcp.errors import MCPTaskError
from tests.integration.mcp_support import mcp_server, misbehaving_endpoint

TOKEN = "guide-token-123"


@pytest.fixture(scope="module")
def guide() -> Iterator[str]:
    with mcp_server(token=TOKEN) as url:
        yield url


def command(action: str, **parameters: Any) -> StepCommand:
    return StepCommand(execution_id="e1", task_id=f"t-{action}", service="mcp", resource=f"baton:mcp:{action}",
                       parameters=parameters)


def handler(connections: dict[str, Any], timeout: float = 10) -> MCPHandler:
    return MCPHandler(MCPSettings(timeout_seconds=timeout),
                      load_connections(json.dumps({"connections": connections}), {"GUIDE_TOKEN": TOKEN}))


def run(mcp: MCPHandler, step: StepCommand) -> Any:
    return asyncio.run(mcp.run(step)).value


def failure(mcp: MCPHandler, step: StepCommand) -> MCPTaskError:
    with pytest.raises(MCPTaskError) as caught:
        run(mcp, step)
    return caught.value


def test_lists_tools_as_llm_tools_and_calls_one(guide: str) -> None:
    mcp = handler({"guide": {"url": guide, "headers": {"Authorization": "Bearer ${GUIDE_TOKEN}"}}})
    tools = run(mcp, command("listTools", Connection="guide"))["Tools"]
    assert [t["Name"] for t in tools] == ["get_weather", "reserve_table"]
    assert tools[0]["InputSchema"]["required"] == ["city"]
    result = run(mcp, command("callTool", Connection="guide", Name="get_weather", Arguments={"city": "Oslo"}))
    assert result["StructuredContent"] == {"city": "Oslo", "sky": "rain", "celsius": 9}
    assert result["IsError"] is False and "rain" in result["Text"]


def test_a_tool_that_fails_is_a_result_the_model_can_read(guide: str) -> None:
    mcp = handler({"guide": {"url": guide, "headers": {"Authorization": "Bearer ${GUIDE_TOKEN}"}}})
    result = run(mcp, command("callTool", Connection="guide", Name="get_weather", Arguments={"city": "Atlantis"}))
    assert result["IsError"] is True and "no forecast for 'Atlantis'" in result["Text"]


def test_a_server_refusing_the_token_is_a_clear_error_without_the_token(guide: str) -> None:
    mcp = handler({"guide": {"url": guide, "headers": {"Authorization": "Bearer wrong-token-456"}}})
    error = failure(mcp, command("callTool", Connection="guide", Name="get_weather", Arguments={"city": "Oslo"}))
    assert error.error.startswith("Baton.MCP.") and "guide" in (error.cause or "")
    assert "wrong-token-456" not in (error.cause or "")


@pytest.mark.parametrize(("behaviour", "expected"), [("hang", "Baton.MCP.Timeout"),
                                                      ("disconnect", "Baton.MCP.Unavailable")])
def test_a_server_that_hangs_or_disconnects(behaviour: str, expected: str) -> None:
    async def scenario() -> MCPTaskError:
        server, url = await misbehaving_endpoint(behaviour)
        try:
            with pytest.raises(MCPTaskError) as caught:
                await handler({"bad": {"url": url, "timeout_seconds": 1}}).run(
                    command("callTool", Connection="bad", Name="get_weather", Arguments={"city": "Oslo"}))
            return caught.value
        finally:
            server.close()

    error = asyncio.run(scenario())
    assert error.error == expected
    assert "'bad'" in (error.cause or "")


def test_parameters_connections_and_the_ssrf_guard() -> None:
    mcp = handler({"metadata": {"url": "http://169.254.169.254/mcp"}})
    assert "cloud metadata" in (failure(mcp, command("listTools", Connection="metadata")).cause or "")
    unknown = failure(mcp, command("listTools", Connection="nope"))
    assert unknown.error == "Baton.MCP.InvalidParameters" and "known: metadata" in (unknown.cause or "")
    assert "Name" in (failure(mcp, command("callTool", Connection="metadata")).cause or "")
    wrong = failure(mcp, StepCommand(execution_id="e1", task_id="t", service="mcp", resource="baton:mcp:ping",
                                     parameters={}))
    assert "callTool and baton:mcp:listTools" in (wrong.cause or "")


def test_connections_file_problems_name_the_field_never_the_value() -> None:
    from steps.mcp import ConnectionConfigError

    with pytest.raises(ConnectionConfigError, match="MISSING_TOKEN, which is not set"):
        load_connections('{"connections": {"g": {"url": "http://x/mcp", "headers": {"A": "${MISSING_TOKEN}"}}}}', {})
    with pytest.raises(ConnectionConfigError, match="connection 'g': url"):
        load_connections('{"connections": {"g": {"url": "ftp://secret-host/mcp"}}}', {})
