"""Secrets kept out of step results, causes and logs: `steps.sdk.redact`, the LLM provider's key in
error causes, the HTTP connection's Basic credentials, and the API's access log."""

from __future__ import annotations

import asyncio
import base64
import logging

import httpx
import pytest

from orchestrator.api.app import HideQueryTokens
from steps.http.auth import Credentials
from steps.llm.config import ProviderConfig
from steps.llm.errors import LLMError
from steps.llm.providers import ChatRequest, Message, make_provider
from steps.sdk.redact import REDACTED, Redactor, base64_cores, quiet_http_client_logs

SECRET = "s3cret-Value-0123456789"


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"user:", b"Authorization: Basic user:"])
@pytest.mark.parametrize("suffix", [b"", b"!", b"\n\x00tail"])
def test_base64_of_anything_containing_the_secret_holds_a_core(prefix: bytes, suffix: bytes) -> None:
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(prefix + SECRET.encode() + suffix).decode()
        assert any(core in encoded for core in base64_cores(SECRET)), (prefix, suffix, encoded)


def test_short_secrets_make_no_cores_that_could_match_by_chance() -> None:
    assert base64_cores("abc") == set()
    assert all(len(core) >= 8 for core in base64_cores("abcdefgh"))


def test_the_redactor_removes_plain_and_base64_forms() -> None:
    redactor = Redactor([SECRET, "abc"])
    basic = base64.b64encode(f"baton:{SECRET}".encode()).decode()
    echoed = {"key": SECRET, "b64": base64.b64encode(SECRET.encode()).decode(), "basic": f"Basic {basic}",
              SECRET: ["abc", f"prefix {SECRET} suffix"]}
    cleaned = redactor.value(echoed)
    text = repr(cleaned)
    assert SECRET not in text and not any(core in text for core in base64_cores(SECRET))
    assert cleaned["key"] == REDACTED and REDACTED in cleaned
    assert cleaned[REDACTED] == ["abc", f"prefix {REDACTED} suffix"]  # a too-short "secret" is left alone


def test_basic_credentials_are_secrets_without_their_scheme() -> None:
    header = "Basic " + base64.b64encode(b"user:pw123456").decode()
    assert header.split()[1] in Credentials([("Authorization", header)]).secrets


def test_an_llm_provider_that_quotes_its_key_back_has_it_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-live-0123456789abcdef"
    monkeypatch.setenv("TEST_LLM_KEY", key)

    def gateway(request: httpx.Request) -> httpx.Response:
        sent = request.headers["authorization"].removeprefix("Bearer ")
        return httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {sent}; "
                                                              f"{base64.b64encode(sent.encode()).decode()}",
                                                   "code": "invalid_api_key"}})

    async def run() -> LLMError:
        config = ProviderConfig(base_url="http://llm.test/v1", api_key_env="TEST_LLM_KEY",
                                headers={"X-Gateway-Token": "gw-token-987654321"})
        provider = make_provider("p", config, transport=httpx.MockTransport(gateway))
        try:
            with pytest.raises(LLMError) as caught:
                await provider.complete(ChatRequest(model="m", messages=(Message("user", "hi"),)))
            return caught.value
        finally:
            await provider.aclose()

    error = asyncio.run(run())
    assert error.error == "Baton.LLM.RequestRejected" and "HTTP 401" in error.cause
    assert key not in error.cause and key not in str(error) and REDACTED in error.cause
    assert not any(core in error.cause for core in base64_cores(key))


def test_http_client_logs_are_quieted_unless_set_on_purpose() -> None:
    httpx_logger, httpcore_logger = logging.getLogger("httpx"), logging.getLogger("httpcore")
    saved = httpx_logger.level, httpcore_logger.level
    try:
        httpx_logger.setLevel(logging.NOTSET)
        httpcore_logger.setLevel(logging.DEBUG)  # an operator's choice is kept
        quiet_http_client_logs()
        assert httpx_logger.level == logging.WARNING and httpcore_logger.level == logging.DEBUG
    finally:
        httpx_logger.setLevel(saved[0])
        httpcore_logger.setLevel(saved[1])


def test_the_access_log_hides_a_page_login_token() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/executions/x?a=1&token=baton_abc_SECRET&b=2", "1.1", 200),
                               None)
    assert HideQueryTokens().filter(record)
    message = record.getMessage()
    assert "SECRET" not in message and "?a=1&token=***&b=2" in message
