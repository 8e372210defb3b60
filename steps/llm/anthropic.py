"""The Anthropic Messages API (`POST {base_url}/v1/messages`) as a `Provider` (see providers.py)."""

from __future__ import annotations

import json
from typing import Any

from steps.llm.errors import InvalidResponse
from steps.llm.wire import (
    ANTHROPIC_DEFAULT_MAX_TOKENS,
    JSON_INSTRUCTION,
    ChatRequest,
    ChatResponse,
    OnText,
    Provider,
    _check_finish,
    _excerpt,
    _json,
    _put,
    raise_for_error_payload,
    sse_events,
)

# --------------------------------------------------------------------------- Anthropic Messages


class AnthropicMessages(Provider):
    """`POST {base_url}/v1/messages` (Anthropic's Messages API), streamed as server-sent events."""

    kind = "anthropic"

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if self._key:
            headers["x-api-key"] = self._key
        return headers

    def _url(self, request: ChatRequest) -> str:
        return self.config.base_url.rstrip("/") + "/v1/messages"

    def body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        system = request.system or ""
        if request.response_format == "json":
            schema = (f" It must match this JSON Schema: {json.dumps(request.json_schema)}"
                      if request.json_schema is not None else "")
            system = f"{system}\n\n{JSON_INSTRUCTION}{schema}".strip()
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or ANTHROPIC_DEFAULT_MAX_TOKENS,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if system:
            body["system"] = system
        _put(body, "temperature", request.temperature)
        _put(body, "top_p", request.top_p)
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if stream:
            body["stream"] = True
        return body

    async def _complete(self, request: ChatRequest, on_text: OnText | None) -> ChatResponse:
        if not self.config.stream:
            return self._parse(await self._post_json(request, self.body(request, stream=False)), request)
        reply = ChatResponse(text="", model=request.model)
        parts: list[str] = []
        async with self.client.stream("POST", self._url(request), json=self.body(request, stream=True)) as response:
            await self._checked(response)
            async for _, data in sse_events(response):
                event = _json(data, "a streamed event")
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "error":
                    raise_for_error_payload(event)
                elif kind == "message_start":
                    message = event.get("message") or {}
                    reply.model = message.get("model") or reply.model
                    reply.input_tokens = (message.get("usage") or {}).get("input_tokens")
                elif kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        parts.append(delta["text"])
                        if on_text is not None:
                            on_text(delta["text"])
                elif kind == "message_delta":
                    reply.finish_reason = (event.get("delta") or {}).get("stop_reason") or reply.finish_reason
                    usage = event.get("usage") or {}
                    reply.output_tokens = usage.get("output_tokens", reply.output_tokens)
                    if usage.get("input_tokens") is not None:
                        reply.input_tokens = usage["input_tokens"]
                elif kind == "message_stop":
                    break
        reply.text = "".join(parts)
        _check_finish(reply.finish_reason)
        return reply

    def _parse(self, payload: Any, request: ChatRequest) -> ChatResponse:
        if not isinstance(payload, dict) or not isinstance(payload.get("content"), list):
            raise InvalidResponse(f"no content list in the response: {_excerpt(payload)}")
        text = "".join(block.get("text", "") for block in payload["content"]
                       if isinstance(block, dict) and block.get("type") == "text")
        usage = payload.get("usage") or {}
        reply = ChatResponse(text=text, model=payload.get("model") or request.model,
                             finish_reason=payload.get("stop_reason"), input_tokens=usage.get("input_tokens"),
                             output_tokens=usage.get("output_tokens"))
        _check_finish(reply.finish_reason)
        return reply
