"""A small real OpenAI-compatible server for flow-control tests: it answers `/v1/chat/completions`
after a short delay, counts the requests in flight and per sliding window as a provider does, and
answers 429 with Retry-After above its limits (or once for chosen prompts)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Call:
    at: float  # time.monotonic() on arrival
    prompt: str
    replica: str  # the X-Replica header the calling service sends
    status: int


class ProviderStub:
    """`with ProviderStub(...) as stub:` serves on `stub.base_url` until the block ends."""

    def __init__(self, *, max_concurrency: int, max_per_window: int, window_seconds: float,
                 delay_seconds: float = 0.03, refuse_once: frozenset[str] = frozenset(),
                 retry_after_seconds: float = 0.5) -> None:
        self.max_concurrency, self.max_per_window = max_concurrency, max_per_window
        self.window, self.delay = window_seconds, delay_seconds
        self.refuse_once, self.retry_after = set(refuse_once), retry_after_seconds
        self.lock = threading.Lock()
        self.in_flight = self.peak_in_flight = self.peak_per_window = 0
        self.arrivals: deque[float] = deque()
        self.calls: list[Call] = []
        self.over_limit = 0  # 429s for exceeding a limit (what flow control must prevent)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.answer(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ProviderStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        prompt = str(body["messages"][-1]["content"])
        now = time.monotonic()
        with self.lock:
            while self.arrivals and self.arrivals[0] <= now - self.window:
                self.arrivals.popleft()
            self.arrivals.append(now)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.peak_per_window = max(self.peak_per_window, len(self.arrivals))
            over = self.in_flight > self.max_concurrency or len(self.arrivals) > self.max_per_window
            refused = prompt in self.refuse_once
            self.refuse_once.discard(prompt)
            self.over_limit += over
            status = 429 if over or refused else 200
            self.calls.append(Call(now, prompt, handler.headers.get("X-Replica", ""), status))
        # Out of flight before the answer is sent: the caller may start its next call on receipt.
        if status == 200:
            time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        if status == 429:
            self._send(handler, 429, {"error": {"message": "rate limit exceeded", "type": "rate_limit"}},
                       {"Retry-After": f"{self.retry_after:g}"})
            return
        self._send(handler, 200, {
            "id": "stub", "object": "chat.completion", "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {prompt}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        try:
            handler.wfile.write(data)
        except OSError:
            pass  # the caller was killed mid-call

    def answered(self) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.status == 200]
