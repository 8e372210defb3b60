"""The LLM step's response cache (steps/llm/cache.py): the key, what is cacheable, the TTL, the
SQLite store, and the handler answering from it (against the fake servers of test_llm_service)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from steps.llm.cache import CachedAnswer, ResponseCache, cache_key, cacheable
from orchestrator.cli.llm import llm as llm_command
from steps.llm.config import ProviderConfig, load_settings
from steps.llm.providers import ChatRequest, Message, OpenAICompatible
from tests.unit.test_llm_service import FakeServers, Harness

LOCAL = ProviderConfig(base_url="http://127.0.0.1:8090/v1")
REQUEST = ChatRequest(model="smollm2", messages=(Message("user", "Hi"), Message("assistant", "Hello"),
                                                 Message("user", "Name a city")),
                      system="Be brief.", temperature=0.0, max_tokens=16, top_p=0.9, stop=("END",))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- the key


def test_the_same_call_has_the_same_key() -> None:
    key = cache_key("local", LOCAL, REQUEST)
    assert len(key) == 64 and key == cache_key("local", LOCAL, replace(REQUEST))
    # A Bedrock body's integer 0 is the same temperature as a Task's 0.0.
    assert cache_key("local", LOCAL, replace(REQUEST, temperature=0)) == key
    assert cache_key("local", LOCAL.model_copy(update={"base_url": "http://127.0.0.1:8090/v1/"}), REQUEST) == key


@pytest.mark.parametrize("change", [
    {"temperature": 0.5}, {"temperature": None}, {"top_p": 1.0}, {"top_p": None}, {"max_tokens": 17},
    {"max_tokens": None}, {"stop": ()}, {"stop": ("END", "STOP")}, {"response_format": "json"},
    {"response_format": "json", "json_schema": {"type": "object"}}, {"seed": 7},
    {"model": "smollm2-b"}, {"system": None}, {"system": "Be brief!"},
    {"messages": (Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Name a town"))},
    {"messages": (Message("user", "Hi"), Message("user", "Hello"), Message("user", "Name a city"))},
])
def test_any_change_that_shapes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert cache_key("local", LOCAL, replace(REQUEST, **change)) != cache_key("local", LOCAL, REQUEST)


def test_the_provider_is_part_of_the_key() -> None:
    key = cache_key("local", LOCAL, REQUEST)
    assert cache_key("other", LOCAL, REQUEST) != key
    assert cache_key("local", LOCAL.model_copy(update={"base_url": "http://127.0.0.1:8091/v1"}), REQUEST) != key
    assert cache_key("local", LOCAL.model_copy(update={"kind": "huggingface"}), REQUEST) != key
    # Neither a credential nor a timeout shapes the answer.
    assert cache_key("local", LOCAL.model_copy(update={"read_timeout_seconds": 1.0}), REQUEST) == key


def test_only_deterministic_calls_are_cacheable() -> None:
    assert cacheable(REQUEST, "openai")
    assert not cacheable(replace(REQUEST, temperature=None), "openai")  # the provider's default: sampled
    assert not cacheable(replace(REQUEST, temperature=0.7), "openai")
    assert cacheable(replace(REQUEST, temperature=0.7, seed=1), "openai")
    assert cacheable(replace(REQUEST, temperature=None, seed=1), "huggingface")
    assert not cacheable(replace(REQUEST, temperature=0.7, seed=1), "anthropic")  # its API takes no seed


def test_a_seed_is_sent_to_the_provider() -> None:
    provider = OpenAICompatible("local", LOCAL)
    assert provider.body(replace(REQUEST, seed=42), stream=False)["seed"] == 42
    assert "seed" not in provider.body(REQUEST, stream=False)


# --------------------------------------------------------------------------- the store and its TTL


ANSWER = CachedAnswer(text="Oslo", model="smollm2", finish_reason="stop", input_tokens=12, output_tokens=2,
                      latency_ms=80.0)


def test_an_entry_lives_ttl_seconds_then_is_a_miss_and_purged(tmp_path: Path) -> None:
    clock = Clock()
    store = ResponseCache(tmp_path / "cache", ttl_seconds=60, clock=clock)
    assert store.get("k") is None
    store.put("k", ANSWER)
    clock.now += 59
    hit = store.get("k")
    assert hit is not None and (hit.text, hit.input_tokens, hit.stored_at) == ("Oslo", 12, 1_000_000.0)
    assert store.stats().hits == 1
    clock.now += 1
    assert store.get("k") is None  # expired: a miss
    assert store.stats().entries == 0  # and gone
    store.close()


def test_expired_entries_are_purged_on_write_and_by_clear(tmp_path: Path) -> None:
    clock = Clock()
    store = ResponseCache(tmp_path, ttl_seconds=10, clock=clock)
    store.put("old-1", ANSWER)
    store.put("old-2", ANSWER)
    clock.now += 10
    stats = store.stats()
    assert (stats.entries, stats.expired) == (2, 2)
    store.put("new", ANSWER)  # a write purges what expired
    assert (store.stats().entries, store.stats().expired) == (1, 0)
    store.put("old-3", ANSWER)
    clock.now += 5
    store.put("newer", ANSWER)
    clock.now += 6
    assert store.clear(expired_only=True) == 2  # "new" and "old-3"
    assert store.get("newer") is not None
    assert store.clear() == 1 and store.stats().entries == 0
    store.close()


def test_processes_share_the_file(tmp_path: Path) -> None:
    """Two instances (as two processes would open it) see each other's entries."""
    first, second = ResponseCache(tmp_path, 60), ResponseCache(tmp_path, 60)
    first.put("k", ANSWER)
    assert second.get("k") == replace(ANSWER, stored_at=second.get("k").stored_at)  # type: ignore[union-attr]
    second.clear()
    assert first.get("k") is None
    first.close()
    second.close()


# --------------------------------------------------------------------------- the handler


def cached_harness(tmp_path: Path, servers: FakeServers | None = None, **cache: Any) -> Harness:
    return Harness(servers, cache={"enabled": True, "path": tmp_path / "llm-cache", **cache})


def test_a_hit_makes_no_call_costs_nothing_and_says_so(tmp_path: Path) -> None:
    h = cached_harness(tmp_path)
    task = {"Model": "large", "Prompt": "Hi", "Temperature": 0, "MaxTokens": 8}
    first = h.run(task)
    second = h.run(task)
    assert len(h.servers.requests) == 1
    assert first.metadata["cache"] == "miss" and first.metadata["input_tokens"] == 10
    assert first.metadata["cache_key"] == second.metadata["cache_key"]
    assert second.value["Text"] == first.value["Text"] == "Hello there"
    assert second.value["ResponseModel"] == first.value["ResponseModel"]
    meta = second.metadata
    assert meta["cache"] == "hit"
    assert (meta["input_tokens"], meta["output_tokens"], meta["cost_usd"]) == (0, 0, 0.0)
    assert (meta["cached_input_tokens"], meta["cached_output_tokens"]) == (10, 3)
    assert meta["cached_cost_usd"] == pytest.approx(16e-6) == first.metadata["cost_usd"]
    assert meta["cached_latency_ms"] == first.metadata["latency_ms"] and "cached_at" in meta
    assert "time_to_first_token_ms" not in meta
    assert second.value["Usage"] == {"InputTokens": 0, "OutputTokens": 0, "LatencyMs": meta["latency_ms"],
                                     "TimeToFirstTokenMs": None, "CostUsd": 0.0, "Cache": "hit"}
    labels = {"provider": "b", "model": "large"}
    assert h.metric("baton_llm_cache_total", **labels, outcome="miss") == 1
    assert h.metric("baton_llm_cache_total", **labels, outcome="hit") == 1
    assert h.metric("baton_llm_requests_total", **labels, outcome="ok") == 1  # a hit is not a provider call
    assert h.metric("baton_llm_tokens_total", **labels, direction="input") == 10
    assert h.metric("baton_llm_cost_usd_total", **labels) == pytest.approx(16e-6)


def test_a_changed_prompt_or_sampling_is_a_miss(tmp_path: Path) -> None:
    h = cached_harness(tmp_path)
    h.run({"Model": "small", "Prompt": "Hi {{ n }}", "Variables": {"n": 1}, "Temperature": 0})
    h.run({"Model": "small", "Prompt": "Hi {{ n }}", "Variables": {"n": 2}, "Temperature": 0})
    h.run({"Model": "small", "Prompt": "Hi {{ n }}", "Variables": {"n": 2}, "Temperature": 0, "MaxTokens": 5})
    h.run({"Model": "small", "Prompt": "Hi {{ n }}", "Variables": {"n": 2}, "Temperature": 0, "MaxTokens": 5})
    assert len(h.servers.requests) == 3


def test_non_deterministic_calls_are_skipped(tmp_path: Path) -> None:
    h = cached_harness(tmp_path)
    for _ in range(2):
        out = h.run({"Model": "small", "Prompt": "Hi", "Temperature": 0.8})
        assert out.metadata["cache"] == "skip" and "cache_key" not in out.metadata
    seeded = [h.run({"Model": "small", "Prompt": "Hi", "Temperature": 0.8, "Seed": 3}) for _ in range(2)]
    assert [s.metadata["cache"] for s in seeded] == ["miss", "hit"]
    assert len(h.servers.requests) == 3 and h.servers.requests[-1][1]["seed"] == 3
    assert h.metric("baton_llm_cache_total", provider="a", model="small", outcome="skip") == 2


def test_the_cache_is_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_STATE_DIR", str(tmp_path))
    h = Harness()
    assert not h.settings.cache.enabled and h.settings.cache.path == tmp_path / "llm-cache"
    outs = [h.run({"Model": "small", "Prompt": "Hi", "Temperature": 0}) for _ in range(2)]
    assert len(h.servers.requests) == 2
    assert all("cache" not in out.metadata and "Cache" not in out.value["Usage"] for out in outs)
    assert not (tmp_path / "llm-cache").exists()
    assert h.metric("baton_llm_cache_total", provider="a", model="small", outcome="miss") is None


def test_a_streamed_hit_still_streams_its_text(tmp_path: Path) -> None:
    h = cached_harness(tmp_path, FakeServers("The quick brown fox"))
    task = {"Model": "small", "Prompt": "x", "Temperature": 0, "Stream": True}
    h.run(task)
    h.sent.clear()
    out = h.run(task)
    assert out.metadata["cache"] == "hit" and len(h.servers.requests) == 1
    assert "".join(c["text"] for c in h.sent) == "The quick brown fox"
    assert [c["seq"] for c in h.sent] == list(range(len(h.sent))) and h.sent[-1]["final"]
    assert out.metadata["stream_chunks"] == len(h.sent)


def test_a_failed_task_is_not_stored(tmp_path: Path) -> None:
    h = cached_harness(tmp_path, FakeServers('{"city": 7}'))
    task = {"Model": "small", "Prompt": "x", "Temperature": 0, "JsonSchema": {"type": "object", "properties": {
        "city": {"type": "string"}}}}
    for _ in range(2):
        assert h.fails(task).error == "Baton.LLM.InvalidResponse"
    assert len(h.servers.requests) == 2  # a Retry gets a fresh call, not the bad answer again


def test_bedrock_calls_are_cached_too(tmp_path: Path) -> None:
    h = cached_harness(tmp_path)
    params = {"ModelId": "small", "Body": {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
                                           "temperature": 0}}
    first = h.run(params, "arn:aws:states:::bedrock:invokeModel")
    second = h.run(params, "arn:aws:states:::bedrock:invokeModel")
    assert len(h.servers.requests) == 1 and second.metadata["cache"] == "hit"
    assert second.value["Body"]["content"] == first.value["Body"]["content"]


def test_a_broken_cache_never_fails_a_task(tmp_path: Path) -> None:
    (tmp_path / "llm-cache").write_text("a file where the folder should be")
    h = cached_harness(tmp_path)
    outs = [h.run({"Model": "small", "Prompt": "Hi", "Temperature": 0}) for _ in range(2)]
    assert [out.metadata["cache"] for out in outs] == ["skip", "skip"] and len(h.servers.requests) == 2


def test_cache_settings_from_the_environment_and_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "llm.yaml"
    config.write_text("providers: {local: {base_url: 'http://127.0.0.1:8090/v1'}}\n"
                      "cache: {ttl_seconds: 60, path: somewhere}\n")
    settings = load_settings(config)
    assert (settings.cache.enabled, settings.cache.ttl_seconds, settings.cache.path) == (False, 60, Path("somewhere"))
    monkeypatch.setenv("BATON_LLM_CACHE__ENABLED", "true")
    monkeypatch.setenv("BATON_LLM_CACHE__TTL_SECONDS", "5")
    settings = load_settings(config)
    assert (settings.cache.enabled, settings.cache.ttl_seconds) == (True, 5)


def test_baton_llm_cache_stats_and_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    folder = str(tmp_path / "c")
    assert "no cache at" in runner.invoke(llm_command, ["cache", "stats", "--path", folder]).output
    store = ResponseCache(tmp_path / "c", 60)
    store.put("a", ANSWER)
    store.put("b", ANSWER)
    store.get("a")
    store.close()
    result = runner.invoke(llm_command, ["cache", "stats", "--path", folder, "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert (stats["entries"], stats["expired"], stats["hits"]) == (2, 0, 1) and stats["size_bytes"] > 0
    assert "2 entries (0 expired), 1 hits" in runner.invoke(llm_command, ["cache", "stats", "--path", folder]).output
    result = runner.invoke(llm_command, ["cache", "clear", "--path", folder, "--expired"])
    assert "deleted 0 expired entries" in result.output
    result = runner.invoke(llm_command, ["cache", "clear", "--path", folder])
    assert result.exit_code == 0 and "deleted 2 entries" in result.output
