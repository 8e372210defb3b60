"""Hostile input: template injection refused by the prompt sandbox; HTTP Tasks refuse other
schemes and link-local / cloud metadata destinations unless configured otherwise."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from steps.http.errors import HttpTaskError
from steps.http.guard import blocked, networks
from steps.http.service import HttpHandler
from steps.http.settings import HttpSettings
from steps.llm.config import LLMSettings
from steps.llm.errors import PromptError
from steps.llm.prompts import PromptLibrary

INJECTIONS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__['__builtins__'] }}",
    "{{ lipsum.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ {}.update(a=1) }}",
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_template_injection_is_refused(template: str) -> None:
    library = PromptLibrary(LLMSettings())
    with pytest.raises(PromptError) as refused:
        library.render(template, {}, what="prompt")
    for leak in ("<class", "<built-in", "uid=", "<module", "<function"):
        assert leak not in str(refused.value).replace(template, "")


def test_a_variable_is_data_never_a_template() -> None:
    library = PromptLibrary(LLMSettings())
    hostile = "{{ cycler.__init__.__globals__ }} {{ 7*7 }}"
    assert library.render("Q: {{ question }}", {"question": hostile}, what="prompt") == f"Q: {hostile}"


def _handler(calls: list[str], **settings: Any) -> HttpHandler:
    def server(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    return HttpHandler(settings=HttpSettings(**settings), transport=httpx.MockTransport(server))


def _call(handler: HttpHandler, url: str) -> Any:
    async def go() -> Any:
        try:
            return await handler.invoke({"ApiEndpoint": url, "Method": "GET"})
        finally:
            await handler.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                                 "http://169.254.170.2/v2/credentials", "http://[fd00:ec2::254]/latest/",
                                 "http://[::ffff:169.254.169.254]/", "http://[fe80::1]/"])
def test_metadata_and_link_local_are_refused_by_default(url: str) -> None:
    calls: list[str] = []
    with pytest.raises(HttpTaskError) as refused:
        _call(_handler(calls), url)
    assert "link-local or cloud metadata" in str(refused.value) and calls == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/x",
                                 "javascript:alert(1)", "dict://127.0.0.1:11211/stats"])
def test_only_http_and_https(url: str) -> None:
    calls: list[str] = []
    with pytest.raises(HttpTaskError):
        _call(_handler(calls), url)
    assert calls == []


def test_loopback_is_allowed_and_the_guard_can_be_turned_off_or_widened() -> None:
    calls: list[str] = []
    assert _call(_handler(calls), "http://127.0.0.1:9/x").value["StatusCode"] == 200
    assert _call(_handler(calls, blocked_networks=[]), "http://169.254.169.254/").value["StatusCode"] == 200
    with pytest.raises(HttpTaskError, match="link-local"):
        _call(_handler(calls, blocked_networks=["127.0.0.0/8"]), "http://127.0.0.1:9/x")
    assert len(calls) == 2


def test_a_redirect_to_metadata_is_refused_when_redirects_are_followed() -> None:
    calls: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    handler = HttpHandler(settings=HttpSettings(follow_redirects=True), transport=httpx.MockTransport(server))
    with pytest.raises(HttpTaskError, match="link-local"):
        _call(handler, "http://127.0.0.1:9/start")
    assert calls == ["http://127.0.0.1:9/start"]


def test_blocked_env_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_HTTP_BLOCKED_NETWORKS", '["10.0.0.0/8"]')
    refused = networks(HttpSettings().blocked_networks)
    assert blocked("10.1.2.3", refused) and not blocked("169.254.169.254", refused)
