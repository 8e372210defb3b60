"""Every error an MCP Task can fail with, as ASL error names a definition can Retry and Catch.

    Baton.MCP.Timeout            the server did not answer within the connection's timeout (it hangs)
    Baton.MCP.Unavailable        no connection, or the server closed it or failed (HTTP 5xx) mid-call
    Baton.MCP.ProtocolError      the server answered with a JSON-RPC error (unknown tool, arguments it
                                 refuses) or something that is not MCP
    Baton.MCP.InvalidParameters  the Task's Parameters are wrong, the connection is unknown, or the
                                 server's address is refused (the SSRF guard)

A tool that runs and fails is not a task failure: MCP reports it in the result (`IsError: true`),
so an agent can show the model what went wrong. Causes never contain a connection's headers.
"""

from __future__ import annotations

from typing import ClassVar

from schemas.errors import BatonError
from steps.sdk.step import StepError


class ConnectionConfigError(BatonError, ValueError):
    """The MCP connections file cannot be used; the message names the file, connection and field."""


class MCPTaskError(StepError):
    """Base of the MCP Task's failures: `error` is the ASL name, `cause` one line for a person."""

    name: ClassVar[str] = "Baton.MCP.Error"

    def __init__(self, cause: str) -> None:
        super().__init__(self.name, cause)


class MCPTimeout(MCPTaskError):
    name = "Baton.MCP.Timeout"


class MCPUnavailable(MCPTaskError):
    name = "Baton.MCP.Unavailable"


class MCPProtocolError(MCPTaskError):
    name = "Baton.MCP.ProtocolError"


class InvalidParameters(MCPTaskError):
    name = "Baton.MCP.InvalidParameters"
