"""A small real MCP server for the agent example: a city guide over streamable HTTP.

    python examples/genai/agent/mcp_server.py --port 8765        # http://127.0.0.1:8765/mcp

Tools (built with the official `mcp` SDK's MCPServer, formerly FastMCP):
- get_weather(city): today's forecast for a city, from a fixed table (deterministic for tests);
- reserve_table(city, people): books a table (a side effect: the example asks a human first).

With `--token T`, every request must carry `Authorization: Bearer T` (the connection's header).
"""

from __future__ import annotations

import argparse
import itertools

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

FORECASTS = {
    "paris": {"city": "Paris", "sky": "sunny", "celsius": 21},
    "oslo": {"city": "Oslo", "sky": "rain", "celsius": 9},
    "lima": {"city": "Lima", "sky": "cloudy", "celsius": 18},
}
_bookings = itertools.count(1)

guide = MCPServer("city-guide", instructions="Weather and restaurant bookings for a few cities.")


@guide.tool(description="Today's weather forecast for a city: sky and temperature in Celsius.")
def get_weather(city: str) -> dict[str, object]:
    forecast = FORECASTS.get(city.strip().lower())
    if forecast is None:
        raise ToolError(f"no forecast for {city!r}; known cities: {', '.join(f['city'] for f in FORECASTS.values())}")
    return forecast


@guide.tool(description="Reserve a restaurant table in a city for a number of people.")
def reserve_table(city: str, people: int) -> dict[str, object]:
    return {"booking": f"B{next(_bookings):04d}", "city": city, "people": people}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", help="require this bearer token")
    args = parser.parse_args()
    import uvicorn

    app = guide.streamable_http_app(stateless_http=True)
    if args.token:
        app.add_middleware(_BearerToken, token=args.token)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


class _BearerToken:
    """Refuses a request without `Authorization: Bearer <token>` (401), as a hosted server would."""

    def __init__(self, app: object, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != self.expected:
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})  # type: ignore[operator]
            await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})  # type: ignore[operator]
            return
        await self.app(scope, receive, send)  # type: ignore[operator]


if __name__ == "__main__":
    main()
