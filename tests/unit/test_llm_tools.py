"""Tool calling in the LLM step: the request and answer shapes of the three provider shapes
(OpenAI-compatible chat completions, Anthropic Messages, Bedrock Converse), streamed and not, the
constrained-decoding path for small models, and Baton.LLM.InvalidToolArguments, against
`httpx.MockTransport` servers that answer in each provider's wire format."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from schemas.steps import StepCommand
from steps.llm.config import LLMSettings
from steps.llm.converse import converse_output, parse_converse
from steps.llm.errors import InvalidToolArguments
from steps.llm.handler import LLMHandler, LLMStepError
from steps.llm.shapes import ChatRequest, ChatResponse, Message, ToolCall, ToolSpec
from steps.llm.tools import check_tool_calls, constrained_schema
from tests.unit.test_llm_providers import call, sse

WEATHER = ToolSpec("get_weather", "The forecast for a city",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
HISTORY = (Message("user", "Weather in Paris?"),
           Message("assistant", "", tool_calls=(ToolCall("c1", "get_weather", {"city": "Paris"}),)),
           Message("tool", '{"forecast": "sunny"}', tool_call_id="c1"))
REQUEST = ChatRequest(model="m", messages=HISTORY, tools=(WEATHER,), tool_choice="required")


def recorded(response: httpx.Response, sent: list[dict[str, Any]]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return response
    return handler


def test_openai_request_carries_tools_choice_calls_and_results() -> None:
    sent: list[dict[str, Any]] = []
    answer = {"choices": [{"message": {"content": None, "tool_calls": [
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    reply, _ = call("openai", recorded(httpx.Response(200, json=answer), sent), REQUEST, stream=False)
    body = sent[0]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The forecast for a city", "parameters": WEATHER.input_schema}}]
    assert body["tool_choice"] == "required"
    assert body["messages"][1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": '{"forecast": "sunny"}'}
    assert reply.tool_calls == [ToolCall("c2", "get_weather", {"city": "Oslo"})]
    assert reply.stop_reason == "tool_use"


def test_openai_streamed_tool_call_pieces_are_joined() -> None:
    def piece(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": {"tool_calls": [delta]}, "finish_reason": finish}]}

    stream = sse(piece({"index": 0, "id": "c9", "function": {"name": "get_weather", "arguments": '{"ci'}}),
                 piece({"index": 0, "function": {"arguments": 'ty": "Rome"}'}}, "tool_calls"), done=True)
    reply, _ = call("openai", lambda request: stream, ChatRequest(model="m", messages=HISTORY[:1], tools=(WEATHER,)))
    assert reply.tool_calls == [ToolCall("c9", "get_weather", {"city": "Rome"})]


def test_openai_named_tool_choice() -> None:
    sent: list[dict[str, Any]] = []
    answer = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}
    request = ChatRequest(model="m", messages=HISTORY[:1], tools=(WEATHER,), forced_tool="get_weather")
    reply, _ = call("openai", recorded(httpx.Response(200, json=answer), sent), request, stream=False)
    assert sent[0]["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert reply.stop_reason == "end_turn"


def test_anthropic_request_and_streamed_tool_use() -> None:
    sent: list[dict[str, Any]] = []
    stream = sse(("message_start", {"type": "message_start", "message": {"model": "claude", "usage": {"input_tokens": 9}}}),
                 ("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "tool_use", "id": "tu1", "name": "get_weather",
                                                            "input": {}}}),
                 ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "input_json_delta", "partial_json": '{"city": '}}),
                 ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "input_json_delta", "partial_json": '"Lima"}'}}),
                 ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                    "usage": {"output_tokens": 4}}),
                 ("message_stop", {"type": "message_stop"}))
    reply, _ = call("anthropic", recorded(stream, sent), REQUEST)
    body = sent[0]
    assert body["tools"] == [{"name": "get_weather", "description": "The forecast for a city",
                              "input_schema": WEATHER.input_schema}]
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "c1", "name": "get_weather",
                                               "input": {"city": "Paris"}}]
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "c1", "content": '{"forecast": "sunny"}'}]}
    assert reply.tool_calls == [ToolCall("tu1", "get_weather", {"city": "Lima"})]
    assert reply.stop_reason == "tool_use"


def test_anthropic_non_streamed_tool_use() -> None:
    answer = {"model": "claude", "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2},
              "content": [{"type": "text", "text": "Let me look."},
                          {"type": "tool_use", "id": "tu2", "name": "get_weather", "input": {"city": "Kyiv"}}]}
    reply, _ = call("anthropic", lambda request: httpx.Response(200, json=answer), REQUEST, stream=False)
    assert (reply.text, reply.tool_calls) == ("Let me look.", [ToolCall("tu2", "get_weather", {"city": "Kyiv"})])


def test_converse_parameters_and_result_use_aws_field_names() -> None:
    converse = parse_converse({
        "ModelId": "arn:aws:bedrock:us-east-1::foundation-model/smollm2", "System": [{"Text": "Be brief."}],
        "Messages": [{"Role": "user", "Content": [{"Text": "Weather in Paris?"}]},
                     {"Role": "assistant", "Content": [{"ToolUse": {"ToolUseId": "c1", "Name": "get_weather",
                                                                    "Input": {"city": "Paris"}}}]},
                     {"Role": "user", "Content": [{"ToolResult": {"ToolUseId": "c1", "Content": [
                         {"Json": {"forecast": "sunny"}}], "Status": "success"}}]}],
        "InferenceConfig": {"MaxTokens": 50, "Temperature": 0},
        "ToolConfig": {"Tools": [{"ToolSpec": {"Name": "get_weather", "Description": "The forecast for a city",
                                               "InputSchema": {"Json": WEATHER.input_schema}}}],
                       "ToolChoice": {"Any": {}}}})
    assert converse.model == "smollm2"
    assert converse.request.messages == HISTORY
    assert (converse.request.system, converse.request.max_tokens, converse.request.tools) == ("Be brief.", 50, (WEATHER,))
    assert converse.request.tool_choice == "required"
    reply = ChatResponse(text="", model="m", input_tokens=3, output_tokens=4,
                         tool_calls=[ToolCall("c2", "get_weather", {"city": "Oslo"})])
    assert converse_output(reply, {"latency_ms": 12.5}) == {
        "Output": {"Message": {"Role": "assistant", "Content": [
            {"ToolUse": {"ToolUseId": "c2", "Name": "get_weather", "Input": {"city": "Oslo"}}}]}},
        "StopReason": "tool_use", "Usage": {"InputTokens": 3, "OutputTokens": 4, "TotalTokens": 7},
        "Metrics": {"LatencyMs": 12}}


def test_constrained_schema_offers_each_tool_once_unless_required() -> None:
    other = ToolSpec("get_time", "", {"type": "object", "properties": {}})
    auto = ChatRequest(model="m", messages=HISTORY, tools=(WEATHER, other))
    schema = constrained_schema(auto)
    assert [b["properties"].get("tool", {}).get("const") for b in schema["anyOf"]] == [None, "get_time"]
    required = constrained_schema(ChatRequest(model="m", messages=HISTORY, tools=(WEATHER,), tool_choice="required"))
    assert required["properties"]["tool"] == {"const": "get_weather"}


def test_arguments_failing_the_schema_are_a_clear_error() -> None:
    with pytest.raises(InvalidToolArguments, match=r"'get_weather' .* at \$: 'city' is a required property"):
        check_tool_calls((WEATHER,), [ToolCall("c1", "get_weather", {"town": "Paris"})])
    with pytest.raises(InvalidToolArguments, match="not one of the Tools"):
        check_tool_calls((WEATHER,), [ToolCall("c1", "launch", {})])


def test_llm_task_with_tools_answers_tool_calls_and_fails_bad_arguments() -> None:
    answers = iter([{"city": "Paris"}, {"city": 42}])

    def handler(request: httpx.Request) -> httpx.Response:
        arguments = json.dumps(next(answers))
        return httpx.Response(200, json={"choices": [{"finish_reason": "tool_calls", "message": {"tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]}}]})

    settings = LLMSettings.model_validate({"providers": {"p": {"base_url": "http://llm.test/v1", "stream": False}},
                                           "default_provider": "p"})
    command = StepCommand(execution_id="e1", task_id="t1", service="llm", resource="baton:llm", parameters={
        "Model": "m", "Prompt": "Weather in Paris?", "ToolChoice": "auto",
        "Tools": [{"Name": "get_weather", "Description": "forecast", "InputSchema": WEATHER.input_schema}]})

    async def run() -> tuple[Any, LLMStepError]:
        llm = LLMHandler(settings, transport=httpx.MockTransport(handler))
        try:
            good = await llm.run(command)
            with pytest.raises(LLMStepError) as bad:
                await llm.run(command)
            return good, bad.value
        finally:
            await llm.aclose()

    good, bad = asyncio.run(run())
    assert good.value["StopReason"] == "tool_use"
    assert good.value["ToolCalls"] == [{"Id": "c1", "Name": "get_weather", "Arguments": {"city": "Paris"}}]
    assert good.value["Message"] == {"Role": "assistant", "Content": "", "ToolCalls": good.value["ToolCalls"]}
    assert bad.error == "Baton.LLM.InvalidToolArguments"
    assert "$.city: 42 is not of type 'string'" in (bad.cause or "")
