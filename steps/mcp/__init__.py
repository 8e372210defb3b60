"""The MCP step service: tools on Model Context Protocol servers as workflow Tasks.

`baton:mcp:callTool` calls one tool (Connection, Name, Arguments); `baton:mcp:listTools` lists a
server's tools in the shape `baton:llm`'s Tools takes, so an agent offers them to a model as is.
Servers are named connections (connections.py), reached over streamable HTTP with the official
`mcp` SDK's client; every failure is a `Baton.MCP.*` error (errors.py).
"""

from steps.mcp.connections import MCPConnection, MCPSettings, load_connections
from steps.mcp.errors import ConnectionConfigError, MCPTaskError
from steps.mcp.service import MCPHandler, app, mcp_service

__all__ = ["ConnectionConfigError", "MCPConnection", "MCPHandler", "MCPSettings", "MCPTaskError", "app",
           "load_connections", "mcp_service"]
