"""What every LLM provider shares: the request and answer shapes (`ChatRequest`, `ChatResponse`,
`Message`), the `Provider` base (one pooled httpx client, the call bounded, every failure an
`LLMError`), and the wire helpers (server-sent events, HTTP status and error payloads to
`LLMError`s). The three wire protocols live in `providers.py` (OpenAI-compatible, and the
factory), `anthropic.py` and `huggingface.py`; see `providers.py` for the overview."""

from __future__ import annotations

import asyncio
import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import httpx

from steps.llm.config import ProviderConfig
from steps.llm.errors import (
    ContentFiltered,
    InvalidResponse,
    LLMError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from steps.llm.shapes import ChatRequest, ChatResponse, Message, ToolCall, ToolChoice, ToolSpec
from steps.llm.tools import constrained_request, read_constrained
from steps.sdk.redact import Redactor, quiet_http_client_logs

__all__ = ["ChatRequest", "ChatResponse", "Message", "OnText", "Provider", "ToolCall", "ToolChoice", "ToolSpec",
           "raise_for_error_payload", "raise_for_status", "sse_events"]

OnText = Callable[[str], None]  # called with each piece of generated text, in order; must not block

# Extra headers whose values are credentials (an API key header of a gateway, a proxy token).
_SECRET_HEADER = re.compile(r"auth|key|token|secret|password|cookie", re.IGNORECASE)
ANTHROPIC_DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens; used when the Task gives none
JSON_INSTRUCTION = ("Answer with one JSON value only: no prose, no Markdown fences.")


class Provider(ABC):
    """A configured provider endpoint. `complete` is the whole interface."""

    kind: ClassVar[str]

    def __init__(self, name: str, config: ProviderConfig, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.config = config
        self._key = config.key()  # read once: a missing variable fails at startup, not mid-run
        self._redactor = Redactor([self._key or "", *(value for name, value in config.headers.items()
                                                      if _SECRET_HEADER.search(name))])
        quiet_http_client_logs()  # httpcore logs response headers at DEBUG: a gateway may echo the key
        self.client = httpx.AsyncClient(
            headers={**self._auth_headers(), **config.headers},
            timeout=httpx.Timeout(config.read_timeout_seconds, connect=config.connect_timeout_seconds,
                                  pool=config.timeout_seconds),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_keepalive_connections),
            transport=transport,
        )

    async def complete(self, request: ChatRequest, on_text: OnText | None = None) -> ChatResponse:
        """Run one chat call; raise an `LLMError` on any failure (mapped to Baton.LLM.*)."""
        try:
            if request.tools and request.tool_choice != "none" and self.config.tool_calling == "constrained":
                turn = sum(1 for message in request.messages if message.role == "assistant")
                return read_constrained(await self._bounded(constrained_request(request), on_text), turn)
            return await self._bounded(request, on_text)
        except LLMError as exc:
            # A provider may echo the key it was sent ("Incorrect API key provided: sk-..."), and
            # the cause goes to the history and the events topic: never the key.
            exc.cause = self._redactor.text(exc.cause)
            exc.args = (exc.cause,)
            raise

    async def _bounded(self, request: ChatRequest, on_text: OnText | None) -> ChatResponse:
        where = f"provider {self.name!r} ({self.kind}) model {request.model!r}"
        produced = False

        def forward(text: str) -> None:
            nonlocal produced
            produced = True
            if on_text is not None:
                on_text(text)

        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                try:
                    return await self._complete(request, forward)
                except httpx.RemoteProtocolError:
                    if produced:
                        raise
                    # A pooled keep-alive connection the server had just closed: nothing was
                    # answered, so send the request once more on a new connection.
                    return await self._complete(request, forward)
        except LLMError as exc:
            exc.cause = f"{where}: {exc.cause}"
            raise
        except TimeoutError:
            raise ProviderTimeout(f"{where}: no complete answer within {self.config.timeout_seconds:g} s "
                                  "(timeout_seconds)") from None
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"{where}: {_describe(exc)} at {self._url_for_errors(request)}") from None
        except httpx.DecodingError as exc:
            raise InvalidResponse(f"{where}: the response body cannot be decoded: {exc}") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            raise ProviderUnavailable(f"{where}: {_describe(exc)} at {self._url_for_errors(request)}") from None
        except httpx.HTTPError as exc:  # e.g. an invalid URL in the configuration
            raise RequestRejected(f"{where}: {_describe(exc)}") from None

    async def aclose(self) -> None:
        await self.client.aclose()

    @abstractmethod
    async def _complete(self, request: ChatRequest, on_text: OnText | None) -> ChatResponse: ...

    @abstractmethod
    def _url(self, request: ChatRequest) -> str: ...

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    def _url_for_errors(self, request: ChatRequest) -> str:
        return self._url(request).split("?", 1)[0]  # a query string may carry a key

    async def _post_json(self, request: ChatRequest, body: dict[str, Any]) -> Any:
        response = await self.client.post(self._url(request), json=body)
        if response.status_code >= 400:
            raise_for_status(response.status_code, response.headers, response.content)
        return _json(response.content, "the response body")

    @staticmethod
    async def _checked(response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise_for_status(response.status_code, response.headers, await response.aread())


# --------------------------------------------------------------------------- shared helpers


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
    """(event, data) pairs of a server-sent event stream (the WHATWG rules Baton's providers use)."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue  # a comment / keep-alive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)


_CONTENT_FILTER_CODES = {"content_filter", "content_policy_violation", "content_filtered"}


def raise_for_status(status: int, headers: httpx.Headers, body: bytes) -> None:
    """Raise the LLMError an HTTP error status means (the provider's message in the cause)."""
    message, code = _error_details(body)
    detail = f"HTTP {status}" + (f" ({code})" if code else "") + (f": {message}" if message else "")
    if code in _CONTENT_FILTER_CODES or "content management policy" in message.lower():
        raise ContentFiltered(detail)
    if status == 429:
        retry_after = _retry_after(headers)
        hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        raise RateLimited(detail + hint, retry_after_seconds=retry_after)
    if status in (408, 504):
        raise ProviderTimeout(detail)
    if status >= 500:  # includes Anthropic's 529 overloaded and HF's 503 "model is loading"
        raise ProviderUnavailable(detail)
    raise RequestRejected(detail)


def raise_for_error_payload(event: dict[str, Any]) -> None:
    """An error reported inside a stream (OpenAI-style, Anthropic's `error` event, TGI's `error`)."""
    error = event.get("error")
    if isinstance(error, dict):
        kind = str(error.get("type") or error.get("code") or "")
        message = str(error.get("message") or "")
    else:
        kind, message = str(event.get("error_type") or ""), str(error or "")
    detail = f"error in the stream ({kind}): {message}" if kind else f"error in the stream: {message}"
    if kind in ("rate_limit_error", "rate_limit_exceeded", "429"):
        raise RateLimited(detail)
    if kind in ("overloaded_error", "api_error", "server_error", "overloaded", "500", "503"):
        raise ProviderUnavailable(detail)
    if kind in _CONTENT_FILTER_CODES:
        raise ContentFiltered(detail)
    if kind in ("invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                "validation", "400", "401", "403", "404"):
        raise RequestRejected(detail)
    raise InvalidResponse(detail)


def _check_finish(reason: str | None) -> None:
    if reason in ("content_filter", "refusal"):
        raise ContentFiltered(f"the provider stopped the answer (finish reason {reason!r})")


def _error_details(body: bytes) -> tuple[str, str]:
    """(message, code) of an error body in any of the providers' shapes; the text if not JSON."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip()[:300], ""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            code = error.get("code") or error.get("type") or ""
            return str(error.get("message") or "")[:300], str(code)
        return str(error)[:300], str(payload.get("error_type") or "")
    return str(payload)[:300], ""


def _retry_after(headers: httpx.Headers) -> float | None:
    for name in ("retry-after", "x-ratelimit-reset-requests"):
        value = headers.get(name)
        if value:
            try:
                return float(value.rstrip("s"))
            except ValueError:
                continue  # an HTTP date or "1m30s": not worth parsing for a hint
    return None


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        shown = text.decode(errors="replace") if isinstance(text, bytes) else text
        raise InvalidResponse(f"{what} is not JSON: {shown[:200]!r}") from None


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _excerpt(payload: Any) -> str:
    return json.dumps(payload)[:200] if payload is not None else "null"


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
