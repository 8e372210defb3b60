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

from typing import Any

import httpx

from steps.llm.anthropic import AnthropicMessages
from steps.llm.config import ProviderConfig
from steps.llm.errors import ContentFiltered, InvalidResponse
from steps.llm.huggingface import HuggingFaceInference
from steps.llm.wire import (
    ChatRequest,
    ChatResponse,
    Message,
    OnText,
    Provider,
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
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {"model": request.model, "messages": messages}
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
        _check_finish(reply.finish_reason)
        return reply


PROVIDER_KINDS: dict[str, type[Provider]] = {
    "openai": OpenAICompatible, "anthropic": AnthropicMessages, "huggingface": HuggingFaceInference}

__all__ = ["PROVIDER_KINDS", "AnthropicMessages", "ChatRequest", "ChatResponse", "HuggingFaceInference", "Message",
           "OnText", "OpenAICompatible", "Provider", "make_provider"]


def make_provider(name: str, config: ProviderConfig, *,
                  transport: httpx.AsyncBaseTransport | None = None) -> Provider:
    """The provider for a configuration (`config.kind` picks the wire protocol)."""
    return PROVIDER_KINDS[config.kind](name, config, transport=transport)
