"""Publishing an edited prompt (steps/llm/prompts.py `PromptLibrary.publish`): the next free vN,
never over an existing version, in a folder store and an S3-compatible one; read-only stores say so."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from steps.llm.config import LLMSettings, PromptStoreConfig
from steps.llm.errors import PromptError, PromptVersionExists
from steps.llm.prompts import FolderStore, PromptLibrary, PromptRef


def library(transport: httpx.MockTransport | None = None, **stores: dict[str, Any]) -> PromptLibrary:
    settings = LLMSettings(prompt_stores={name: PromptStoreConfig(**config) for name, config in stores.items()})
    return PromptLibrary(settings, transport=transport)


def test_folder_store_publishes_the_next_free_version(tmp_path: Path) -> None:
    (tmp_path / "outline").mkdir()
    (tmp_path / "outline" / "v1.j2").write_text("first {{ topic }}")
    (tmp_path / "outline" / "v2.j2").write_text("second {{ topic }}")
    prompts = library(story={"url": str(tmp_path)})

    ref = asyncio.run(prompts.publish("story", "outline", "third {{ topic }}", after="v1"))
    assert ref == PromptRef("story", "outline", "v3") and str(ref) == "story:outline@v3"
    assert (tmp_path / "outline" / "v3.j2").read_text() == "third {{ topic }}"
    assert (tmp_path / "outline" / "v1.j2").read_text() == "first {{ topic }}"  # the old ones unchanged
    assert (tmp_path / "outline" / "v2.j2").read_text() == "second {{ topic }}"
    assert asyncio.run(prompts.load("story:outline@v3")).source == "third {{ topic }}"
    assert sorted(p.name for p in (tmp_path / "outline").iterdir()) == ["v1.j2", "v2.j2", "v3.j2"]  # no temporaries

    # A new name starts at v1, in a folder created for it.
    assert str(asyncio.run(prompts.publish("story", "brand/new", "hello"))) == "story:brand/new@v1"
    assert (tmp_path / "brand" / "new" / "v1.j2").read_text() == "hello"


def test_a_version_is_never_overwritten(tmp_path: Path) -> None:
    store = FolderStore(tmp_path)
    asyncio.run(store.create("p", "v1", b"kept"))
    with pytest.raises(PromptVersionExists, match="already exists"):
        asyncio.run(store.create("p", "v1", b"lost"))
    assert (tmp_path / "p" / "v1.j2").read_bytes() == b"kept"


def test_a_version_taken_meanwhile_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = library(default={"url": str(tmp_path)})
    store = prompts.stores["default"]
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "v2.j2").write_text("another writer's")

    async def listed_nothing(name: str) -> list[str]:  # as if v2 appeared after the listing
        return []

    monkeypatch.setattr(store, "versions", listed_nothing)
    ref = asyncio.run(prompts.publish("default", "p", "mine", after="v1"))
    assert ref.version == "v3" and (tmp_path / "p" / "v2.j2").read_text() == "another writer's"


def test_a_template_that_does_not_compile_is_not_published(tmp_path: Path) -> None:
    prompts = library(default={"url": str(tmp_path)})
    with pytest.raises(PromptError, match="line 1"):
        asyncio.run(prompts.publish("default", "p", "{% for x in %}"))
    assert not (tmp_path / "p").exists()
    with pytest.raises(PromptError, match="no prompt store named 'nope'; stores: default"):
        asyncio.run(prompts.publish("nope", "p", "text"))


def test_s3_store_puts_only_if_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    objects = {"/prompts/team/triage/v4.j2": b"someone else's"}
    puts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            puts.append(request)
            if request.url.path in objects:
                return httpx.Response(412)
            objects[request.url.path] = request.content
            return httpx.Response(200)
        found = objects.get(request.url.path)
        return httpx.Response(200, content=found) if found is not None else httpx.Response(404)

    prompts = library(transport=httpx.MockTransport(handler),
                      team={"url": "s3://prompts/team", "endpoint_url": "http://127.0.0.1:9000"})
    ref = asyncio.run(prompts.publish("team", "triage", "Triage: {{ ticket }}", after="v3"))
    assert str(ref) == "team:triage@v5"  # v4 was taken: skipped, not overwritten
    assert objects["/prompts/team/triage/v4.j2"] == b"someone else's"
    assert objects["/prompts/team/triage/v5.j2"] == b"Triage: {{ ticket }}"
    assert [p.url.path for p in puts] == ["/prompts/team/triage/v4.j2", "/prompts/team/triage/v5.j2"]
    assert all(p.headers["if-none-match"] == "*" for p in puts)
    assert puts[-1].headers["x-amz-content-sha256"] == hashlib.sha256(b"Triage: {{ ticket }}").hexdigest()
    assert "if-none-match" in puts[-1].headers["authorization"]  # the condition is signed
    assert asyncio.run(prompts.load("team:triage@v5")).source == "Triage: {{ ticket }}"


def test_an_http_store_is_read_only() -> None:
    prompts = library(transport=httpx.MockTransport(lambda request: httpx.Response(500)),
                      web={"url": "https://prompts.example"})
    with pytest.raises(PromptError, match="read-only"):
        asyncio.run(prompts.publish("web", "p", "text"))
