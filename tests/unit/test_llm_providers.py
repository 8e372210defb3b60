"""LLM providers over httpx (steps/llm/providers.py), against `httpx.MockTransport` servers that
answer in each provider's wire format: requests built right, answers and usage read right, and
every failure mapped to its Baton.LLM.* error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from steps.llm.config import ProviderConfig
from steps.llm.errors import LLMError
from steps.llm.providers import ChatRequest, ChatResponse, Message, make_provider

Handler = Callable[[httpx.Request], Any]  # returns an httpx.Response, or a coroutine of one
HELLO = (Message("user", "Say hello"),)


def sse(*events: Any, done: bool = False) -> httpx.Response:
    lines = []
    for event in events:
        if isinstance(event, tuple):  # (event name, data)
            lines.append(f"event: {event[0]}\ndata: {json.dumps(event[1])}\n\n")
        else:
            lines.append(f"data: {json.dumps(event)}\n\n")
    if done:
        lines.append("data: [DONE]\n\n")
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content="".join(lines).encode())


def call(kind: str, handler: Handler, request: ChatRequest | None = None, **config: Any) -> tuple[ChatResponse, list[str]]:
    pieces: list[str] = []

    async def run() -> ChatResponse:
        settings = ProviderConfig.model_validate({"kind": kind, "base_url": "http://llm.test/v1", **config})
        provider = make_provider("p", settings, transport=httpx.MockTransport(handler))
        try:
            return await provider.complete(request or ChatRequest(model="m", messages=HELLO), pieces.append)
        finally:
            await provider.aclose()

    return asyncio.run(run()), pieces


def failure(kind: str, handler: Handler, **config: Any) -> LLMError:
    with pytest.raises(LLMError) as caught:
        call(kind, handler, **config)
    return caught.value


def openai_stream(texts: list[str], finish: str = "stop", usage: bool = True) -> httpx.Response:
    events: list[Any] = [{"model": "served-name", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    events += [{"model": "served-name", "choices": [{"index": 0, "delta": {"content": t}}]} for t in texts]
    events.append({"model": "served-name", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage:
        events.append({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(texts)}})
    return sse(*events, done=True)


# --------------------------------------------------------------------------- OpenAI-compatible


def test_openai_streams_pieces_in_order_and_reads_usage() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"url": str(request.url), "auth": request.headers.get("authorization"),
                     "body": json.loads(request.content)})
        return openai_stream(["Hel", "lo", "!"])

    request = ChatRequest(model="gpt-x", messages=HELLO, system="Be brief.", temperature=0, max_tokens=8,
                          stop=("\n",))
    reply, pieces = call("openai", handler, request, api_key="sk-test")
    assert pieces == ["Hel", "lo", "!"]
    assert (reply.text, reply.model, reply.finish_reason) == ("Hello!", "served-name", "stop")
    assert (reply.input_tokens, reply.output_tokens) == (11, 3)
    sent = seen[0]
    assert sent["url"] == "http://llm.test/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert sent["body"] == {
        "model": "gpt-x", "messages": [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Say hello"}],
        "temperature": 0, "max_tokens": 8, "stop": ["\n"], "stream": True,
        "stream_options": {"include_usage": True}}


def test_openai_json_mode_asks_for_a_schema_or_a_json_object() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return openai_stream(['{"a": 1}'])

    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    call("openai", handler, ChatRequest(model="m", messages=HELLO, response_format="json", json_schema=schema))
    call("openai", handler, ChatRequest(model="m", messages=HELLO, response_format="json"))
    assert bodies[0]["response_format"] == {"type": "json_schema", "json_schema": {"name": "result", "schema": schema}}
    assert bodies[1]["response_format"] == {"type": "json_object"}


def test_openai_without_streaming_reads_the_whole_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "stream" not in json.loads(request.content)
        return httpx.Response(200, json={"model": "m-2024", "choices": [
            {"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1}})

    reply, pieces = call("openai", handler, stream=False)
    assert (reply.text, reply.model, reply.finish_reason, reply.input_tokens, reply.output_tokens) == \
        ("Hi", "m-2024", "length", 5, 1)
    assert pieces == []  # nothing streamed: no time to first token either


@pytest.mark.parametrize(("status", "body", "headers", "error", "in_cause"), [
    (429, {"error": {"message": "slow down", "type": "rate_limit_exceeded"}}, {"retry-after": "7"},
     "Baton.LLM.RateLimited", "retry after 7 s"),
    (500, {"error": {"message": "boom"}}, {}, "Baton.LLM.Unavailable", "HTTP 500"),
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, {},
     "Baton.LLM.Unavailable", "overloaded_error"),
    (504, "gateway timeout", {}, "Baton.LLM.Timeout", "HTTP 504"),
    (400, {"error": {"message": "flagged", "code": "content_filter"}}, {}, "Baton.LLM.ContentFiltered", "flagged"),
    (401, {"error": {"message": "bad key", "type": "invalid_request_error"}}, {}, "Baton.LLM.RequestRejected",
     "bad key"),
    (404, {"error": {"message": "model 'nope' not found"}}, {}, "Baton.LLM.RequestRejected", "not found"),
])
def test_http_errors_map_to_baton_llm_errors(status: int, body: Any, headers: dict[str, str], error: str,
                                             in_cause: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    exc = failure("openai", handler, api_key="sk-secret-value")
    assert exc.error == error
    assert in_cause in exc.cause and "provider 'p' (openai) model 'm'" in exc.cause
    assert "sk-secret-value" not in exc.cause


def test_a_content_filter_finish_reason_is_content_filtered() -> None:
    exc = failure("openai", lambda request: openai_stream(["I can"], finish="content_filter"))
    assert exc.error == "Baton.LLM.ContentFiltered"


def test_an_error_inside_the_stream_is_mapped() -> None:
    exc = failure("openai", lambda request: sse({"error": {"message": "oops", "type": "server_error"}}))
    assert exc.error == "Baton.LLM.Unavailable" and "oops" in exc.cause


def test_an_answer_that_is_not_json_is_an_invalid_response() -> None:
    exc = failure("openai", lambda request: httpx.Response(200, text="<html>proxy</html>"), stream=False)
    assert exc.error == "Baton.LLM.InvalidResponse"
    exc = failure("openai", lambda request: httpx.Response(200, json={"id": 1}), stream=False)
    assert exc.error == "Baton.LLM.InvalidResponse" and "choices" in exc.cause


def test_transport_timeouts_and_refused_connections() -> None:
    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert failure("openai", read_timeout).error == "Baton.LLM.Timeout"
    exc = failure("openai", refused)
    assert exc.error == "Baton.LLM.Unavailable" and "http://llm.test/v1/chat/completions" in exc.cause


def test_the_whole_call_is_bounded_by_timeout_seconds() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return openai_stream(["late"])

    exc = failure("openai", slow, timeout_seconds=0.05)
    assert exc.error == "Baton.LLM.Timeout" and "0.05 s" in exc.cause


# --------------------------------------------------------------------------- Anthropic


def anthropic_stream(texts: list[str], stop_reason: str = "end_turn") -> httpx.Response:
    return sse(
        ("message_start", {"type": "message_start", "message": {"model": "claude-x-2025", "usage": {
            "input_tokens": 21, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        *[("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": t}}) for t in texts],
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason},
                           "usage": {"output_tokens": len(texts)}}),
        ("message_stop", {"type": "message_stop"}))


def test_anthropic_messages_stream() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return anthropic_stream(['{"ok":', ' true}'])

    request = ChatRequest(model="claude", messages=HELLO, system="Be brief.", temperature=0,
                          response_format="json", json_schema={"type": "object"})
    reply, pieces = call("anthropic", handler, request, base_url="https://api.anthropic.test", api_key="ak")
    assert pieces == ['{"ok":', ' true}']
    assert (reply.text, reply.model, reply.input_tokens, reply.output_tokens, reply.finish_reason) == \
        ('{"ok": true}', "claude-x-2025", 21, 2, "end_turn")
    sent = seen[0]
    assert str(sent.url) == "https://api.anthropic.test/v1/messages"
    assert sent.headers["x-api-key"] == "ak" and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = json.loads(sent.content)
    assert body["max_tokens"] == 1024 and body["stream"] is True and body["temperature"] == 0
    assert body["system"].startswith("Be brief.") and "JSON" in body["system"] and '"type": "object"' in body["system"]
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]


def test_anthropic_errors_and_refusals() -> None:
    overloaded = sse(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    assert failure("anthropic", lambda r: overloaded).error == "Baton.LLM.Unavailable"
    limited = sse(("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}))
    assert failure("anthropic", lambda r: limited).error == "Baton.LLM.RateLimited"
    assert failure("anthropic", lambda r: anthropic_stream(["no"], "refusal")).error == "Baton.LLM.ContentFiltered"


def test_anthropic_without_streaming() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"model": "claude-x", "stop_reason": "max_tokens", "content": [
            {"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
            "usage": {"input_tokens": 9, "output_tokens": 2}})

    reply, _ = call("anthropic", handler, stream=False)
    assert (reply.text, reply.finish_reason, reply.input_tokens, reply.output_tokens) == ("Hello", "max_tokens", 9, 2)


# --------------------------------------------------------------------------- Hugging Face


def test_huggingface_text_generation_stream() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse({"token": {"id": 1, "text": "Hi", "special": False}, "generated_text": None, "details": None},
                   {"token": {"id": 2, "text": " there", "special": False}, "generated_text": None, "details": None},
                   {"token": {"id": 0, "text": "</s>", "special": True}, "generated_text": "Hi there",
                    "details": {"finish_reason": "eos_token", "generated_tokens": 3}})

    request = ChatRequest(model="org/model", messages=HELLO, system="Sys", temperature=0, max_tokens=5,
                          response_format="json", json_schema={"type": "object"})
    reply, pieces = call("huggingface", handler, request, base_url="https://hf.test/models/{model}", api_key="hf_x")
    assert pieces == ["Hi", " there"] and reply.text == "Hi there"
    assert (reply.output_tokens, reply.finish_reason, reply.input_tokens) == (3, "eos_token", None)
    assert str(seen[0].url) == "https://hf.test/models/org/model"
    assert seen[0].headers["authorization"] == "Bearer hf_x"
    body = json.loads(seen[0].content)
    assert body["stream"] is True and body["inputs"].startswith("Sys\n\n") and body["inputs"].endswith("Say hello")
    assert body["parameters"]["do_sample"] is False and "temperature" not in body["parameters"]
    assert body["parameters"]["grammar"] == {"type": "json", "value": {"type": "object"}}
    assert body["parameters"]["max_new_tokens"] == 5


def test_huggingface_without_streaming_and_model_loading() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"generated_text": "ok", "details": {
            "finish_reason": "length", "generated_tokens": 1, "prefill": [{"id": 1}, {"id": 2}]}}])

    reply, _ = call("huggingface", handler, stream=False)
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("ok", 2, 1)
    loading = failure("huggingface", lambda r: httpx.Response(503, json={"error": "Model is loading",
                                                                       "estimated_time": 20}))
    assert loading.error == "Baton.LLM.Unavailable" and "Model is loading" in loading.cause


def test_api_key_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "from-env")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return openai_stream(["x"])

    call("openai", handler, api_key_env="TEST_LLM_KEY")
    assert seen == ["Bearer from-env"]


def test_a_connection_the_server_dropped_unanswered_is_retried_once() -> None:
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return openai_stream(["ok"])

    reply, _ = call("openai", flaky)
    assert reply.text == "ok" and len(calls) == 2

    def dropped(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    assert failure("openai", dropped).error == "Baton.LLM.Unavailable"
