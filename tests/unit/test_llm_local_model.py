"""The offline model launcher's pure parts (infra/local_model.py): names, ports, the LLM config."""

from __future__ import annotations

import pytest

from infra.local_model import ModelServer, configured, gguf_path, llm_config
from steps.llm.config import LLMSettings


def test_each_model_name_gets_its_own_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATON_MODEL_ALIASES", raising=False)
    monkeypatch.delenv("BATON_MODEL_PORT", raising=False)
    assert configured() == [("smollm2", 8090), ("smollm2-b", 8091)]
    monkeypatch.setenv("BATON_MODEL_ALIASES", "a, b ,c")
    monkeypatch.setenv("BATON_MODEL_PORT", "9000")
    assert configured() == [("a", 9000), ("b", 9001), ("c", 9002)]
    assert configured(["x"], 7000) == [("x", 7000)]


def test_the_llm_config_routes_each_name_to_its_server() -> None:
    servers = [ModelServer("smollm2", 8090, None, False), ModelServer("smollm2-b", 8091, None, False)]
    settings = LLMSettings(**llm_config(servers))
    route = settings.resolve(None, "smollm2-b")
    assert (route.provider, route.config.base_url, route.upstream_model) == \
        ("smollm2-b", "http://127.0.0.1:8091/v1", "smollm2-b")
    assert settings.resolve(None, None).config.base_url == "http://127.0.0.1:8090/v1"  # default_model


def test_the_model_file_ships_in_the_package() -> None:
    path = gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
