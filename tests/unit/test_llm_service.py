"""The LLM step handler (steps/llm/handler.py) against fake OpenAI-compatible servers
(`httpx.MockTransport`): routing by model name, templates, JSON mode, streaming, usage, cost,
metrics, Bedrock compatibility, and configuration."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from schemas.steps import StepCommand
from steps.llm.config import ConfigError, LLMSettings, load_settings
from steps.llm.handler import LLMHandler, LLMStepError, parse_json_answer
from steps.llm.metrics import LLMMetrics
from steps.llm.streaming import TokenStream
from steps.llm.task import parse_task
from steps.sdk.handler import StepOutput

SETTINGS: dict[str, Any] = {
    "providers": {"a": {"base_url": "http://a.test/v1"}, "b": {"base_url": "http://b.test/v1", "api_key": "sk-b"}},
    "models": {"small": {"provider": "a"}, "large": {"provider": "b", "model": "large-2024"}},
    "default_provider": "a",
    "prices": {"b/large": {"input_per_million": 1.0, "output_per_million": 2.0}},
}


class FakeServers:
    """OpenAI-compatible servers a.test and b.test; each answers with `answer` split in pieces."""

    def __init__(self, answer: str = "Hello there", status: int = 200) -> None:
        self.answer = answer
        self.status = status
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((request.url.host, body))
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "nope"}})
        words = [self.answer[i:i + 4] for i in range(0, len(self.answer), 4)]
        events: list[dict[str, Any]] = [
            {"model": f"{request.url.host}:{body['model']}", "choices": [{"delta": {"content": w}}]} for w in words]
        events.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
        events.append({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": len(words)}})
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=text.encode())


class Harness:
    def __init__(self, servers: FakeServers | None = None, **overrides: Any) -> None:
        self.servers = servers or FakeServers()
        self.registry = CollectorRegistry()
        self.metrics = LLMMetrics(self.registry)
        self.sent: list[dict[str, Any]] = []
        self.settings = LLMSettings(**{**SETTINGS, **overrides})

    async def send(self, topic: str, value: bytes, key: bytes) -> None:
        await asyncio.sleep(0)
        self.sent.append({"topic": topic, "key": key.decode(), **json.loads(value)})

    def run(self, parameters: Any, resource: str = "baton:llm") -> StepOutput:
        async def go() -> StepOutput:
            handler = LLMHandler(self.settings, metrics=self.metrics, send=self.send, streams_topic="t.streams",
                                 transport=httpx.MockTransport(self.servers))
            try:
                command = StepCommand(execution_id="exec-1", task_id="task-1", service="llm", resource=resource,
                                      parameters=parameters)
                return await handler.run(command)
            finally:
                await handler.aclose()

        return asyncio.run(go())

    def fails(self, parameters: Any, resource: str = "baton:llm") -> LLMStepError:
        with pytest.raises(LLMStepError) as caught:
            self.run(parameters, resource)
        return caught.value

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def test_a_task_is_routed_by_model_name_and_records_usage() -> None:
    h = Harness()
    small = h.run({"Model": "small", "Prompt": "Hi {{ name }}", "Variables": {"name": "Ana"}, "Temperature": 0,
                   "MaxTokens": 8})
    large = h.run({"Model": "large", "System": "Be {{ tone }}.", "Prompt": "Hi", "Variables": {"tone": "kind"}})
    assert [host for host, _ in h.servers.requests] == ["a.test", "b.test"]
    assert h.servers.requests[0][1]["model"] == "small" and h.servers.requests[1][1]["model"] == "large-2024"
    assert h.servers.requests[0][1]["messages"] == [{"role": "user", "content": "Hi Ana"}]
    assert small.value["Text"] == "Hello there"
    assert {k: small.value[k] for k in ("Model", "Provider", "ResponseModel", "FinishReason")} == {
        "Model": "small", "Provider": "a", "ResponseModel": "a.test:small", "FinishReason": "stop"}
    assert small.value["Usage"]["InputTokens"] == 10 and small.value["Usage"]["OutputTokens"] == 3
    meta = large.metadata
    assert (meta["provider"], meta["model"], meta["provider_model"], meta["input_tokens"], meta["output_tokens"]) \
        == ("b", "large", "large-2024", 10, 3)
    assert meta["latency_ms"] >= meta["time_to_first_token_ms"] >= 0
    assert meta["cost_usd"] == pytest.approx((10 * 1.0 + 3 * 2.0) / 1e6)
    assert "cost_usd" not in small.metadata  # no price configured for it
    assert meta["prompt"]["system"] == "Be kind." and meta["prompt"]["messages"] == [{"role": "user", "content": "Hi"}]
    assert len(meta["prompt"]["sha256"]) == 64
    assert "sk-b" not in json.dumps(meta) + json.dumps(large.value)  # secrets never reach the history
    assert h.metric("baton_llm_tokens_total", provider="b", model="large", direction="input") == 10
    assert h.metric("baton_llm_tokens_total", provider="b", model="large", direction="output") == 3
    assert h.metric("baton_llm_requests_total", provider="a", model="small", outcome="ok") == 1
    assert h.metric("baton_llm_time_to_first_token_seconds_count", provider="a", model="small") == 1
    assert h.metric("baton_llm_request_duration_seconds_count", provider="b", model="large", outcome="ok") == 1
    assert h.metric("baton_llm_cost_usd_total", provider="b", model="large") == pytest.approx(16e-6)


def test_an_explicit_provider_wins_and_unknown_names_fail_clearly() -> None:
    h = Harness()
    h.run({"Provider": "b", "Model": "anything", "Prompt": "x"})
    assert h.servers.requests[-1] == ("b.test", {"model": "anything", "messages": [{"role": "user", "content": "x"}],
                                                 "stream": True, "stream_options": {"include_usage": True}})
    h.run({"Model": "unrouted", "Prompt": "x"})
    hosts = [host for host, _ in h.servers.requests]
    assert hosts == ["b.test", "a.test"]  # then the default provider
    exc = h.fails({"Provider": "zzz", "Model": "m", "Prompt": "x"})
    assert exc.error == "Baton.LLM.InvalidParameters" and "unknown Provider 'zzz'" in (exc.cause or "")


@pytest.mark.parametrize(("parameters", "message"), [
    ({"Model": "small"}, "give the prompt"),
    ({"Model": "small", "Prompt": "x", "PromptRef": "a@v1"}, "not both"),
    ({"Model": "small", "Prompt": "x", "Temperature": 3}, "Temperature"),
    ({"Model": "small", "Prompt": "x", "MaxTokens": 0}, "MaxTokens"),
    ({"Model": "small", "Prompt": "x", "Tempreature": 0}, "Tempreature"),
    ({"Model": "small", "Prompt": "x", "ResponseFormat": "xml"}, "ResponseFormat"),
    ({"Model": "small", "Prompt": "x", "JsonSchema": {"type": "nonsense"}}, "not a valid JSON Schema"),
    ("just a string", "must be an object"),
])
def test_bad_parameters_are_invalid_parameters(parameters: Any, message: str) -> None:
    h = Harness()
    exc = h.fails(parameters)
    assert exc.error == "Baton.LLM.InvalidParameters" and message in (exc.cause or "")
    assert h.servers.requests == []  # refused before any call


def test_json_mode_parses_and_validates() -> None:
    h = Harness(FakeServers('```json\n{"city": "Oslo", "n": 3}\n```'))
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["city"]}
    out = h.run({"Model": "small", "Prompt": "x", "JsonSchema": schema})
    assert out.value["Json"] == {"city": "Oslo", "n": 3}
    assert h.servers.requests[0][1]["response_format"]["type"] == "json_schema"

    h = Harness(FakeServers('{"city": 7}'))
    exc = h.fails({"Model": "small", "Prompt": "x", "JsonSchema": schema})
    assert exc.error == "Baton.LLM.InvalidResponse" and "at $.city" in (exc.cause or "")
    assert exc.metadata["output_tokens"] == 3  # the tokens were spent all the same
    assert h.metric("baton_llm_requests_total", provider="a", model="small",
                    outcome="Baton.LLM.InvalidResponse") == 1

    h = Harness(FakeServers('{"city": "Os'))  # cut off at MaxTokens
    exc = h.fails({"Model": "small", "Prompt": "x", "ResponseFormat": "json"})
    assert exc.error == "Baton.LLM.InvalidResponse" and "not JSON" in (exc.cause or "")


def test_parse_json_answer_tolerates_fences_only() -> None:
    assert parse_json_answer(" [1, 2] ", None) == [1, 2]
    assert parse_json_answer("```\n{\"a\": 1}\n```", None) == {"a": 1}
    with pytest.raises(Exception, match="not JSON"):
        parse_json_answer("Sure! {\"a\": 1}", None)


def test_streaming_publishes_ordered_chunks_then_a_final_one() -> None:
    h = Harness(FakeServers("The quick brown fox jumps"))
    out = h.run({"Model": "small", "Prompt": "x", "Stream": True})
    chunks = h.sent
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert [c["final"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c["text"] for c in chunks) == out.value["Text"] == "The quick brown fox jumps"
    assert {(c["topic"], c["key"], c["execution_id"], c["task_id"]) for c in chunks} == {
        ("t.streams", "exec-1", "exec-1", "task-1")}
    assert out.metadata["stream_chunks"] == len(chunks)
    assert h.metric("baton_llm_stream_chunks_total", provider="a", model="small") == len(chunks)


def test_a_failed_streamed_call_still_ends_its_stream() -> None:
    h = Harness(FakeServers(status=429))
    exc = h.fails({"Model": "small", "Prompt": "x", "Stream": True})
    assert exc.error == "Baton.LLM.RateLimited"
    assert [(c["seq"], c["final"]) for c in h.sent] == [(0, True)]
    assert exc.metadata["provider"] == "a" and "latency_ms" in exc.metadata


def test_token_stream_coalesces_while_kafka_is_slow() -> None:
    sent: list[dict[str, Any]] = []
    gate = asyncio.Event()

    async def slow_send(topic: str, value: bytes, key: bytes) -> None:
        await gate.wait()
        sent.append(json.loads(value))

    async def scenario() -> int:
        stream = TokenStream(slow_send, "s", "e", "t")
        for piece in ["a", "b", "c", "d"]:
            stream.feed(piece)
            await asyncio.sleep(0)
        gate.set()
        return await stream.close()

    count = asyncio.run(scenario())
    assert "".join(c["text"] for c in sent) == "abcd"
    assert count == len(sent) < 5 and sent[-1]["final"] and [c["seq"] for c in sent] == list(range(count))


def test_rendered_prompts_are_capped_in_the_record() -> None:
    h = Harness(record_prompt_chars=10)
    out = h.run({"Model": "small", "Prompt": "{{ doc }}", "Variables": {"doc": "x" * 50}})
    assert out.metadata["prompt"]["messages"][0]["content"] == "x" * 10 + "…[40 more characters]"
    assert h.servers.requests[0][1]["messages"][0]["content"] == "x" * 50  # the model got all of it


def test_prompt_refs_and_messages(tmp_path: Path) -> None:
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "v2.j2").write_text("Q: {{ question }}")
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys" / "v1.j2").write_text("You answer about {{ product }}.")
    h = Harness(prompt_stores={"default": {"url": str(tmp_path)}})
    out = h.run({"Model": "small", "SystemRef": "sys@v1", "PromptRef": "qa@v2",
                 "Messages": [{"role": "user", "content": "Earlier: {{ product }}"}, {"Role": "assistant", "Content": "ok"}],
                 "Variables": {"question": "Why?", "product": "Baton"}})
    assert h.servers.requests[0][1]["messages"] == [
        {"role": "system", "content": "You answer about Baton."}, {"role": "user", "content": "Earlier: Baton"},
        {"role": "assistant", "content": "ok"}, {"role": "user", "content": "Q: Why?"}]
    assert out.metadata["prompt"]["prompt_ref"] == "qa@v2" and out.metadata["prompt"]["system_ref"] == "sys@v1"
    assert len(out.metadata["prompt"]["prompt_ref_sha256"]) == 64
    exc = h.fails({"Model": "small", "PromptRef": "qa@v3"})
    assert exc.error == "Baton.LLM.PromptError"


def test_variables_that_are_not_an_object_are_input() -> None:
    h = Harness()
    h.run({"Model": "small", "Prompt": "{{ input | join(', ') }}", "Variables": ["a", "b"]})
    assert h.servers.requests[0][1]["messages"][0]["content"] == "a, b"


def test_bedrock_invoke_model_answers_in_the_families_shape() -> None:
    h = Harness()
    out = h.run({"ModelId": "arn:aws:bedrock:us-east-1::foundation-model/large", "Body": {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "system": "Sys",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}},
        resource="arn:aws:states:::bedrock:invokeModel")
    assert h.servers.requests[0][0] == "b.test"
    assert h.servers.requests[0][1]["messages"] == [{"role": "system", "content": "Sys"},
                                                    {"role": "user", "content": "Hi"}]
    assert out.value["ContentType"] == "application/json"
    body = out.value["Body"]
    assert body["content"] == [{"type": "text", "text": "Hello there"}] and body["role"] == "assistant"
    assert body["usage"] == {"input_tokens": 10, "output_tokens": 3} and body["stop_reason"] == "end_turn"
    llama = h.run({"ModelId": "small", "Body": json.dumps({"prompt": "Hi", "max_gen_len": 4})},
                  resource="arn:aws:states:::bedrock:invokeModel")
    assert llama.value["Body"]["generation"] == "Hello there"
    titan = h.run({"ModelId": "small", "Body": {"inputText": "Hi", "textGenerationConfig": {"maxTokenCount": 4}}},
                  resource="arn:aws:states:::bedrock:invokeModel")
    assert titan.value["Body"]["results"][0]["outputText"] == "Hello there"
    exc = h.fails({"ModelId": "small", "Body": {"foo": 1}}, resource="arn:aws:states:::bedrock:invokeModel")
    assert exc.error == "Baton.LLM.InvalidParameters"


def test_other_resources_and_patterns_are_refused() -> None:
    exc = Harness().fails({"Model": "small", "Prompt": "x"}, resource="baton:llm.waitForTaskToken")
    assert exc.error == "Baton.LLM.InvalidParameters" and "request-response" in (exc.cause or "")


def test_jsonschema_implies_json_and_stop_takes_a_string() -> None:
    task = parse_task({"Prompt": "x", "JsonSchema": {"type": "object"}, "Stop": "END", "ResponseFormat": None})
    assert task.format == "json" and task.stop == ["END"]


def test_settings_from_a_file_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "llm.yaml"
    config.write_text(
        "providers:\n"
        "  remote: {kind: anthropic, base_url: 'https://api.test', api_key_env: TEST_REMOTE_KEY}\n"
        "  local: {base_url: 'http://127.0.0.1:8090/v1'}\n"
        "models:\n  claude: {provider: remote, model: claude-x}\n"
        "default_provider: local\n"
        "prompt_stores:\n  default: {url: prompts}\n")
    monkeypatch.setenv("BATON_LLM_PROVIDERS__LOCAL__TIMEOUT_SECONDS", "9")
    monkeypatch.setenv("TEST_REMOTE_KEY", "secret")
    settings = load_settings(config)
    assert settings.providers["local"].timeout_seconds == 9  # the environment wins over the file
    assert settings.providers["remote"].key() == "secret"
    assert settings.prompt_stores["default"].url == str(tmp_path / "prompts")  # relative to the file
    route = settings.resolve(None, "claude")
    assert (route.provider, route.upstream_model, route.config.kind) == ("remote", "claude-x", "anthropic")
    monkeypatch.setenv("BATON_LLM_CONFIG_FILE", str(config))
    assert LLMSettings().models["claude"].provider == "remote"

    monkeypatch.delenv("BATON_LLM_PROVIDERS__LOCAL__TIMEOUT_SECONDS")
    config.write_text("providers: {a: {base_url: x}}\ndefault_provider: b\n")
    with pytest.raises(ConfigError, match="default_provider 'b'"):
        load_settings(config)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
