"""Prompt templates (steps/llm/prompts.py): the Jinja2 sandbox, pinned references, and the three
stores (folder, HTTP, S3-compatible with SigV4)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from steps.llm.config import LLMSettings, PromptStoreConfig
from steps.llm.errors import PromptError
from steps.llm.prompts import PromptLibrary, PromptRef, sigv4_headers


def library(tmp_path: Path | None = None, transport: httpx.MockTransport | None = None,
            **stores: dict[str, Any]) -> PromptLibrary:
    settings = LLMSettings(prompt_stores={name: PromptStoreConfig(**config) for name, config in stores.items()},
                           max_prompt_chars=200)
    return PromptLibrary(settings, transport=transport)


def render(template: str, **variables: Any) -> str:
    return library().render(template, variables, what="Prompt")


def test_variables_loops_and_filters() -> None:
    text = render("Topic: {{ topic | upper }}\n{% for d in docs %}- {{ d.title }}\n{% endfor %}{{ meta | tojson }}",
                  topic="kafka", docs=[{"title": "Logs"}, {"title": "Streams"}], meta={"q": "<a & b>"})
    assert text == 'Topic: KAFKA\n- Logs\n- Streams\n{"q": "<a & b>"}'  # tojson not HTML-escaped


@pytest.mark.parametrize(("template", "variables", "message"), [
    ("Hello {{ name }}", {}, "'name' is undefined (give it in Variables)"),
    ("{{ ''.__class__.__mro__ }}", {}, "not allowed in the template sandbox"),
    ("{{ items.append(4) }}", {"items": [1]}, "not allowed in the template sandbox"),  # input is immutable
    ("{% for x in range(1000) %}{{ x }}{% endfor %}", {}, "more than 200 characters"),
    ("{% if %}", {}, "Prompt line 1"),
    ("{{ 1 / 0 }}", {}, "ZeroDivisionError"),
])
def test_template_faults_are_prompt_errors(template: str, variables: dict[str, Any], message: str) -> None:
    with pytest.raises(PromptError) as caught:
        render(template, **variables)
    assert caught.value.error == "Baton.LLM.PromptError"
    assert message in caught.value.cause


def test_references_pin_a_version() -> None:
    assert PromptRef.parse("answer@v3") == PromptRef("default", "answer", "v3")
    ref = PromptRef.parse("team:support/triage@2024-06#sha256=" + "A" * 64)
    assert (ref.store, ref.name, ref.version, ref.sha256) == ("team", "support/triage", "2024-06", "a" * 64)
    assert str(ref) == "team:support/triage@2024-06"
    for bad in ("answer", "answer@", "../etc/passwd@v1", "a/../b@v1", "a@v1/x", "a@..", "/abs@v1"):
        with pytest.raises(PromptError, match="expected"):
            PromptRef.parse(bad)


def test_folder_store_loads_pinned_versions(tmp_path: Path) -> None:
    (tmp_path / "answer").mkdir()
    (tmp_path / "answer" / "v1.j2").write_text("Answer about {{ topic }}.")
    (tmp_path / "answer" / "v2.j2").write_text("Answer briefly about {{ topic }}.")
    digest = hashlib.sha256(b"Answer about {{ topic }}.").hexdigest()
    prompts = library(default={"url": str(tmp_path)})

    async def scenario() -> None:
        one = await prompts.load("answer@v1")
        assert prompts.render(one.source, {"topic": "Kafka"}, what="p") == "Answer about Kafka."
        assert (await prompts.load("answer@v2")).source.startswith("Answer briefly")
        assert (await prompts.load(f"answer@v1#sha256={digest}")).sha256 == digest
        with pytest.raises(PromptError, match="changed in place"):
            await prompts.load("answer@v1#sha256=" + "0" * 64)
        with pytest.raises(PromptError, match="not found: no file"):
            await prompts.load("answer@v9")
        with pytest.raises(PromptError, match="names the store 'other'"):
            await prompts.load("other:answer@v1")
        # Pinned versions are cached: an in-place edit is not picked up (nor should it be).
        (tmp_path / "answer" / "v1.j2").write_text("changed")
        assert (await prompts.load("answer@v1")).source == "Answer about {{ topic }}."

    asyncio.run(scenario())


def test_http_store_sends_the_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/v1.j2"):
            return httpx.Response(200, text="Hi {{ who }}")
        return httpx.Response(404)

    prompts = library(transport=httpx.MockTransport(handler),
                      default={"url": "https://prompts.test/base/", "bearer_token": "tok"})

    async def scenario() -> None:
        loaded = await prompts.load("greet/short@v1")
        assert loaded.source == "Hi {{ who }}"
        with pytest.raises(PromptError, match="HTTP 404"):
            await prompts.load("greet/short@v2")
        await prompts.aclose()

    asyncio.run(scenario())
    assert str(seen[0].url) == "https://prompts.test/base/greet/short/v1.j2"
    assert seen[0].headers["authorization"] == "Bearer tok"


def test_sigv4_matches_the_aws_documentation_example() -> None:
    # AWS S3 API reference, "Signature Calculations for the Authorization Header: Transferring
    # Payload in a Single Chunk", example "GET Object".
    headers = sigv4_headers(
        "GET", "https://examplebucket.s3.amazonaws.com/test.txt", region="us-east-1", service="s3",
        access_key="AKIAIOSFODNN7EXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        headers={"Range": "bytes=0-9"}, now=datetime(2013, 5, 24, tzinfo=timezone.utc))
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert headers["x-amz-date"] == "20130524T000000Z"


def test_s3_store_gets_a_signed_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="From S3: {{ x }}")

    prompts = library(transport=httpx.MockTransport(handler),
                      team={"url": "s3://prompts/teams/a", "endpoint_url": "http://127.0.0.1:9000",
                            "region": "eu-west-1"})
    loaded = asyncio.run(prompts.load("team:triage@v2"))
    assert loaded.source == "From S3: {{ x }}"
    request = seen[0]
    assert str(request.url) == "http://127.0.0.1:9000/prompts/teams/a/triage/v2.j2"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    assert "/eu-west-1/s3/aws4_request" in request.headers["authorization"]
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(b"").hexdigest()
    assert "secret" not in request.headers["authorization"]


def test_s3_store_without_credentials_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    prompts = library(default={"url": "s3://bucket"})
    with pytest.raises(PromptError, match="AWS_ACCESS_KEY_ID"):
        asyncio.run(prompts.load("x@v1"))
