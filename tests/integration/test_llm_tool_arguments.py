"""A model that calls a tool with bad arguments, on the real broker: the llm service answers
Baton.LLM.InvalidToolArguments (arguments that fail the tool's InputSchema, arguments that are not
JSON, a tool not offered), a Catch routes it with the reason in its cause, and the service goes on
answering: a good tool call after them comes back as ToolCalls with StopReason tool_use."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kafka_io import KafkaSettings
from tests.integration.runtime_support import RuntimeClient, running_orchestrator

# What the model "answers" per prompt: the tool it calls and the raw arguments string.
CALLS = {
    "wrong type": ("get_weather", json.dumps({"city": 42})),
    "not json": ("get_weather", "{city: Paris"),
    "unknown tool": ("launch_rockets", json.dumps({"count": 3})),
    "good": ("get_weather", json.dumps({"city": "Paris"})),
}
WEATHER = {"Name": "get_weather", "Description": "The forecast for a city",
           "InputSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
AGENT_TURN = {"StartAt": "Model", "States": {
    "Model": {"Type": "Task", "Resource": "baton:llm", "End": True,
              "Parameters": {"Model": "stub", "Prompt.$": "$.prompt", "Tools": [WEATHER], "ToolChoice": "auto"},
              "Catch": [{"ErrorEquals": ["Baton.LLM.InvalidToolArguments"], "ResultPath": "$.caught",
                         "Next": "Caught"}]},
    "Caught": {"Type": "Pass", "End": True}}}


@pytest.fixture
def tool_calling_model() -> Iterator[str]:
    """An OpenAI-compatible server whose every answer is the tool call CALLS names for its prompt."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][-1]["content"]
            name, arguments = CALLS[prompt]
            answer = {"id": "r1", "object": "chat.completion", "model": "stub",
                      "usage": {"prompt_tokens": 5, "completion_tokens": 3},
                      "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                          "role": "assistant", "content": None, "tool_calls": [
                              {"id": "call-1", "type": "function", "function": {"name": name, "arguments": arguments}}]}}]}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_bad_tool_arguments_are_caught_and_the_service_goes_on(kafka: KafkaSettings, tool_calling_model: str) -> None:
    from steps.llm.config import LLMSettings
    from steps.llm.service import llm_service

    settings = LLMSettings.model_validate({
        "providers": {"stub": {"kind": "openai", "base_url": tool_calling_model, "stream": False}},
        "models": {"stub": {"provider": "stub"}}})

    async def scenario() -> dict[str, Any]:
        async with llm_service(settings, kafka=kafka), RuntimeClient(kafka) as client, \
                running_orchestrator(kafka, "tools-o1"):
            bad = {prompt: await client.start(AGENT_TURN, {"prompt": prompt}) for prompt in CALLS if prompt != "good"}
            outcomes = await client.wait(list(bad.values()), timeout=60)
            # Started only once the bad ones ended: the same service instance must still answer.
            good = await client.start(AGENT_TURN, {"prompt": "good"})
            outcomes.update(await client.wait([good], timeout=60))
        return {prompt: outcomes[execution_id] for prompt, execution_id in [*bad.items(), ("good", good)]}

    outcomes = asyncio.run(scenario())
    causes = {}
    for prompt in ("wrong type", "not json", "unknown tool"):
        outcome = outcomes[prompt]
        assert outcome.status == "SUCCEEDED", (prompt, outcome.error, outcome.cause)
        assert outcome.output["caught"]["Error"] == "Baton.LLM.InvalidToolArguments", prompt
        causes[prompt] = outcome.output["caught"]["Cause"]
    assert "'get_weather'" in causes["wrong type"] and "42 is not of type 'string'" in causes["wrong type"]
    assert "'get_weather'" in causes["not json"]
    assert "launch_rockets" in causes["unknown tool"] and "not one of the Tools" in causes["unknown tool"]
    good = outcomes["good"]
    assert good.status == "SUCCEEDED" and "caught" not in good.output
    assert good.output["StopReason"] == "tool_use"
    assert good.output["ToolCalls"] == [{"Id": "call-1", "Name": "get_weather", "Arguments": {"city": "Paris"}}]
