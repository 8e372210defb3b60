"""LLM providers behind one small interface, over httpx.

    provider = make_provider("local", ProviderConfig(base_url="http://127.0.0.1:8090/v1"))
    reply = await provider.complete(ChatRequest(model="smollm2", messages=(Message("user", "Hi"),)),
                                    on_text=print)   # on_text gets each piece as it is generated
    await provider.aclose()

Three wire protocols cover the providers Baton targets:

- `openai`: OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): OpenAI, vLLM,
  Ollama, llama.cpp server, LM Studio, OpenRouter, Hugging Face's router
  (`https://router.huggingface.co/v1`). JSON mode uses `response_format` (a `json_schema` when the
  Task gives JsonSchema, which llama.cpp and vLLM turn into a grammar, else `json_object`).
- `anthropic`: the Anthropic Messages API (`POST {base_url}/v1/messages`). It has no JSON mode, so
  JSON is asked for in the system prompt and validated like any other.
- `huggingface`: Hugging Face text generation (TGI servers, Inference Endpoints, the serverless
  Inference API): `POST {base_url}` (with `{model}` replaced) with `inputs` and `parameters`.
  JsonSchema becomes TGI's `grammar`.

Each provider owns one pooled `httpx.AsyncClient` (keep-alive connections, connect/read timeouts)
and bounds the whole call by `timeout_seconds`. Streaming is used for every call when the provider
config allows it (`stream: true`, the default), so time to first token is always measured. Every
failure is raised as an `LLMError` (see `errors.py`); nothing else escapes `complete`.
`transport` is the seam for tests (`httpx.MockTransport`).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from steps.llm.anthropic import AnthropicMessages
from steps.llm.config import ProviderConfig
from steps.llm.errors import ContentFiltered, InvalidResponse
from steps.llm.huggingface import HuggingFaceInference
from steps.llm.tools import parse_arguments
from steps.llm.wire import (
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

# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAICompatible(Provider):
    """`POST {base_url}/chat/completions`, streamed with `stream_options.include_usage`."""

    kind = "openai"

    def _url(self, request: ChatRequest) -> str:
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [openai_message(m) for m in request.messages]
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        body.update(openai_tools(request))
        _put(body, "temperature", request.temperature)
        _put(body, "max_tokens", request.max_tokens)
        _put(body, "top_p", request.top_p)
        _put(body, "seed", request.seed)
        if request.stop:
            body["stop"] = list(request.stop)
        if request.response_format == "json":
            body["response_format"] = (
                {"type": "json_schema", "json_schema": {"name": "result", "schema": request.json_schema}}
                if request.json_schema is not None else {"type": "json_object"})
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _complete(self, request: ChatRequest, on_text: OnText | None) -> ChatResponse:
        if not self.config.stream:
            return self._parse(await self._post_json(request, self.body(request, stream=False)), request)
        reply = ChatResponse(text="", model=request.model)
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}  # streamed tool calls by index: id, name, argument text
        async with self.client.stream("POST", self._url(request), json=self.body(request, stream=True)) as response:
            await self._checked(response)
            async for _, data in sse_events(response):
                if data.strip() == "[DONE]":
                    break
                event = _json(data, "a streamed event")
                if not isinstance(event, dict):
                    raise InvalidResponse(f"a streamed event is not an object: {data[:200]}")
                if "error" in event:  # some servers report a failure inside the stream
                    raise_for_error_payload(event)
                reply.model = event.get("model") or reply.model
                for choice in event.get("choices") or []:
                    _gather_tool_calls(calls, (choice.get("delta") or {}).get("tool_calls"))
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        if on_text is not None:
                            on_text(text)
                    reply.finish_reason = choice.get("finish_reason") or reply.finish_reason
                usage = event.get("usage")
                if isinstance(usage, dict):
                    reply.input_tokens = usage.get("prompt_tokens")
                    reply.output_tokens = usage.get("completion_tokens")
                if isinstance(event.get("timings"), dict):
                    reply.raw["timings"] = event["timings"]
        reply.text = "".join(parts)
        reply.tool_calls = [ToolCall(c["id"] or f"call_{i}", c["name"], parse_arguments(c["arguments"], c["name"], c["id"]))
                            for i, c in sorted(calls.items())]
        _check_finish(reply.finish_reason)
        return reply

    def _parse(self, payload: Any, request: ChatRequest) -> ChatResponse:
        try:
            choice = payload["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise InvalidResponse(f"no choices[0].message in the response: {_excerpt(payload)}") from None
        if message.get("refusal"):
            raise ContentFiltered(f"the model refused: {message['refusal'][:300]}")
        usage = payload.get("usage") or {}
        reply = ChatResponse(text=message.get("content") or "", model=payload.get("model") or request.model,
                             finish_reason=choice.get("finish_reason"), input_tokens=usage.get("prompt_tokens"),
                             output_tokens=usage.get("completion_tokens"))
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            name, call_id = str(function.get("name") or ""), str(call.get("id") or f"call_{i}")
            arguments = function.get("arguments")
            reply.tool_calls.append(ToolCall(call_id, name, arguments if isinstance(arguments, dict)
                                             else parse_arguments(str(arguments or ""), name, call_id)))
        _check_finish(reply.finish_reason)
        return reply


# --------------------------------------------------------------------------- OpenAI tool shapes


def openai_message(message: Message) -> dict[str, Any]:
    """A message in chat-completions form: tool calls with JSON-string arguments, `tool` results."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        return {"role": "assistant", "content": message.content or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in message.tool_calls]}
    return {"role": message.role, "content": message.content}


def openai_tools(request: ChatRequest) -> dict[str, Any]:
    """`tools` and `tool_choice` of a chat-completions body (nothing when no tools are offered)."""
    if not request.tools:
        return {}
    fields: dict[str, Any] = {"tools": [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}
        for t in request.tools]}
    if request.forced_tool is not None:
        fields["tool_choice"] = {"type": "function", "function": {"name": request.forced_tool}}
    elif request.tool_choice is not None:
        fields["tool_choice"] = request.tool_choice
    return fields


def _gather_tool_calls(calls: dict[int, dict[str, str]], deltas: Any) -> None:
    """Add streamed tool-call pieces (id and name once, the arguments' JSON text in pieces) by index."""
    for delta in deltas or []:
        call = calls.setdefault(int(delta.get("index", len(calls))), {"id": "", "name": "", "arguments": ""})
        call["id"] = delta.get("id") or call["id"]
        function = delta.get("function") or {}
        call["name"] = function.get("name") or call["name"]
        call["arguments"] += function.get("arguments") or ""


PROVIDER_KINDS: dict[str, type[Provider]] = {
    "openai": OpenAICompatible, "anthropic": AnthropicMessages, "huggingface": HuggingFaceInference}

__all__ = ["PROVIDER_KINDS", "AnthropicMessages", "ChatRequest", "ChatResponse", "HuggingFaceInference", "Message",
           "OnText", "OpenAICompatible", "Provider", "make_provider"]


def make_provider(name: str, config: ProviderConfig, *,
                  transport: httpx.AsyncBaseTransport | None = None) -> Provider:
    """The provider for a configuration (`config.kind` picks the wire protocol)."""
    return PROVIDER_KINDS[config.kind](name, config, transport=transport)
