"""The agent example's MCP server (examples/genai/agent/mcp_server.py), started as its own process
on a free port for a test, and MCP endpoints that misbehave (hang, disconnect) on raw sockets."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "examples" / "genai" / "agent" / "mcp_server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mcp_server(token: str | None = None) -> Iterator[str]:
    """Run the example MCP server; yield its endpoint URL; stop it (by its own pid) after."""
    port = free_port()
    command = [sys.executable, str(SERVER), "--port", str(port), *(["--token", token] if token else [])]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the MCP server did not start: {process.stderr.read().decode()[-500:]}"
                                       if process.stderr else "the MCP server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def misbehaving_endpoint(behaviour: str) -> tuple[asyncio.Server, str]:
    """An HTTP endpoint that accepts and never answers ("hang") or reads the request and closes
    the connection without a response ("disconnect"). Close the server when done."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "disconnect":
            await reader.read(65536)
            writer.close()
            return
        try:
            await reader.read()  # until the client gives up and closes
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/mcp"
