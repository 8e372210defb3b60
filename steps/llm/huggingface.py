"""Hugging Face text generation (TGI, Inference Endpoints, the serverless API) as a `Provider`
(see providers.py)."""

from __future__ import annotations

from typing import Any

from steps.llm.errors import InvalidResponse
from steps.llm.wire import (
    JSON_INSTRUCTION,
    ChatRequest,
    ChatResponse,
    OnText,
    Provider,
    _excerpt,
    _json,
    _put,
    raise_for_error_payload,
    sse_events,
)

# --------------------------------------------------------------------------- Hugging Face


class HuggingFaceInference(Provider):
    """Hugging Face text generation: `POST {base_url}` with `inputs` and `parameters`.

    Serves TGI (whose `POST /` takes `stream`), Inference Endpoints and the serverless Inference
    API (`https://api-inference.huggingface.co/models/{model}`). The messages are joined into one
    prompt, since these endpoints take raw text; for chat templates use the `openai` kind against
    Hugging Face's OpenAI-compatible router instead.
    """

    kind = "huggingface"

    def _url(self, request: ChatRequest) -> str:
        return self.config.base_url.replace("{model}", request.model)

    def body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        parameters: dict[str, Any] = {"return_full_text": False, "details": True}
        _put(parameters, "max_new_tokens", request.max_tokens)
        if request.temperature is not None:
            if request.temperature <= 0:
                parameters["do_sample"] = False  # TGI refuses temperature 0: greedy decoding instead
            else:
                parameters["temperature"] = request.temperature
        _put(parameters, "top_p", request.top_p)
        _put(parameters, "seed", request.seed)
        if request.stop:
            parameters["stop"] = list(request.stop)
        if request.response_format == "json" and request.json_schema is not None:
            parameters["grammar"] = {"type": "json", "value": request.json_schema}
        return {"inputs": self.prompt(request), "parameters": parameters, "stream": stream}

    @staticmethod
    def prompt(request: ChatRequest) -> str:
        parts = [request.system] if request.system else []
        if request.response_format == "json":
            parts.append(JSON_INSTRUCTION)
        if len(request.messages) == 1:
            parts.append(request.messages[0].content)
        else:
            parts += [f"{m.role}: {m.content}" for m in request.messages]
            parts.append("assistant:")
        return "\n\n".join(parts)

    async def _complete(self, request: ChatRequest, on_text: OnText | None) -> ChatResponse:
        if not self.config.stream:
            return self._parse(await self._post_json(request, self.body(request, stream=False)), request)
        reply = ChatResponse(text="", model=request.model)
        parts: list[str] = []
        async with self.client.stream("POST", self._url(request), json=self.body(request, stream=True)) as response:
            await self._checked(response)
            async for _, data in sse_events(response):
                event = _json(data, "a streamed event")
                if not isinstance(event, dict):
                    raise InvalidResponse(f"a streamed event is not an object: {data[:200]}")
                if "error" in event:
                    raise_for_error_payload(event)
                token = event.get("token") or {}
                if token.get("text") and not token.get("special"):
                    parts.append(token["text"])
                    if on_text is not None:
                        on_text(token["text"])
                details = event.get("details")
                if isinstance(details, dict):
                    reply.finish_reason = details.get("finish_reason")
                    reply.output_tokens = details.get("generated_tokens")
        reply.text = "".join(parts)
        return reply

    def _parse(self, payload: Any, request: ChatRequest) -> ChatResponse:
        item = payload[0] if isinstance(payload, list) and payload else payload
        if not isinstance(item, dict) or not isinstance(item.get("generated_text"), str):
            raise InvalidResponse(f"no generated_text in the response: {_excerpt(payload)}")
        details = item.get("details") or {}
        prefill = details.get("prefill")
        return ChatResponse(text=item["generated_text"], model=request.model,
                            finish_reason=details.get("finish_reason"),
                            input_tokens=len(prefill) if isinstance(prefill, list) and prefill else None,
                            output_tokens=details.get("generated_tokens"))
