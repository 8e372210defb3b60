"""A tiny local orders API for the intent -> request -> API call demo (stdlib only, 127.0.0.1).

    python examples/genai/intent-api/server.py --port 8097

POST /orders/lookup  {"order_id": "1042"}  ->  {"found": true, "order_id": "1042", "status": "delayed", ...}
GET  /calls                                ->  the requests received so far (what the demo test checks)
GET  /health
GET  /healthz                              ->  the Baton stack it serves (`baton dev` sets BATON_STACK_ID, ...)

Every request except /health must carry `X-Api-Key: demo-key` (the connection config
`connections.yaml` beside this file adds it, so the workflow definition holds no secret).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "demo-key"
ORDERS = {
    "1042": {"status": "delayed", "item": "rain jacket", "eta": "in 5 days", "reason": "a storm closed the depot"},
    "2077": {"status": "shipped", "item": "hiking boots", "eta": "tomorrow"},
}


class OrdersAPI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    calls: list[dict[str, Any]] = []
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:  # one short line per request
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            return self._send(200, {"ok": True})
        if self.path == "/healthz":  # which stack started it: `baton dev` refuses another stack's (infra/stack.py)
            return self._send(200, {"status": "ok", "stack_id": os.environ.get("BATON_STACK_ID", ""),
                                    "topic_prefix": os.environ.get("BATON_TOPIC_PREFIX", "baton"),
                                    "kafka_bootstrap": os.environ.get("BATON_KAFKA_BOOTSTRAP", "127.0.0.1:9092")})
        if self.headers.get("X-Api-Key") != API_KEY:
            return self._send(401, {"error": "missing or wrong X-Api-Key"})
        if self.path == "/calls":
            with self.lock:
                return self._send(200, {"calls": list(self.calls)})
        return self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("X-Api-Key") != API_KEY:
            return self._send(401, {"error": "missing or wrong X-Api-Key"})
        if self.path != "/orders/lookup":
            return self._send(404, {"error": "not found"})
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self._send(400, {"error": "body is not JSON"})
        order_id = "".join(ch for ch in str(body.get("order_id", "")) if ch.isdigit())
        with self.lock:
            self.calls.append({"path": self.path, "body": body})
        order = ORDERS.get(order_id)
        if order is None:
            return self._send(200, {"found": False, "order_id": order_id})
        return self._send(200, {"found": True, "order_id": order_id, **order})


def serve(port: int) -> ThreadingHTTPServer:
    """Start the API on 127.0.0.1:port in a daemon thread (tests); returns the server."""
    server = ThreadingHTTPServer(("127.0.0.1", port), OrdersAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), OrdersAPI)
    print(f"orders API on http://127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
