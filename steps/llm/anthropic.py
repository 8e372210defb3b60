"""The Anthropic Messages API (`POST {base_url}/v1/messages`) as a `Provider` (see providers.py)."""

from __future__ import annotations

import json
from typing import Any

from steps.llm.errors import InvalidResponse
from steps.llm.tools import parse_arguments
from steps.llm.wire import (
    ANTHROPIC_DEFAULT_MAX_TOKENS,
    JSON_INSTRUCTION,
    ChatRequest,
    ChatResponse,
    Message,
    OnText,
    Provider,
    ToolCall,
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
            "messages": anthropic_messages(request.messages),
        }
        body.update(anthropic_tools(request))
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
        calls: dict[int, dict[str, str]] = {}  # tool_use blocks by index: id, name, input JSON text
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
                elif kind == "content_block_start":
                    block = event.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        calls[int(event.get("index", len(calls)))] = {
                            "id": str(block.get("id") or ""), "name": str(block.get("name") or ""), "input": ""}
                elif kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "input_json_delta" and int(event.get("index", -1)) in calls:
                        calls[int(event["index"])]["input"] += delta.get("partial_json") or ""
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
        reply.tool_calls = [ToolCall(c["id"], c["name"], parse_arguments(c["input"], c["name"], c["id"]))
                            for _, c in sorted(calls.items())]
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
        reply.tool_calls = [ToolCall(str(block.get("id") or ""), str(block.get("name") or ""),
                                     block["input"] if isinstance(block.get("input"), dict) else {})
                            for block in payload["content"] if isinstance(block, dict) and block.get("type") == "tool_use"]
        _check_finish(reply.finish_reason)
        return reply


# --------------------------------------------------------------------------- Anthropic tool shapes


def anthropic_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages API turns: an assistant's tool calls are `tool_use` blocks; tool results are
    `tool_result` blocks of one user turn (consecutive results share it: roles must alternate)."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id,
                                     "content": message.content}
            if message.is_error:
                block["is_error"] = True
            previous = turns[-1] if turns else None
            if previous is not None and previous["role"] == "user" and isinstance(previous["content"], list):
                previous["content"].append(block)
            else:
                turns.append({"role": "user", "content": [block]})
        elif message.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in message.tool_calls]
            turns.append({"role": "assistant", "content": blocks})
        else:
            turns.append({"role": message.role, "content": message.content})
    return turns


def anthropic_tools(request: ChatRequest) -> dict[str, Any]:
    """`tools` and `tool_choice` of a Messages API body (auto, any, tool NAME, none)."""
    if not request.tools:
        return {}
    fields: dict[str, Any] = {"tools": [{"name": t.name, "description": t.description, "input_schema": t.input_schema}
                                        for t in request.tools]}
    if request.forced_tool is not None:
        fields["tool_choice"] = {"type": "tool", "name": request.forced_tool}
    elif request.tool_choice is not None:
        fields["tool_choice"] = {"type": {"required": "any"}.get(request.tool_choice, request.tool_choice)}
    return fields
