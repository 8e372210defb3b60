"""From an HTTP response to the task's result, in the shape Step Functions gives it:

    {"ResponseBody": ..., "Headers": {"content-type": ["application/json"], ...},
     "StatusCode": 200, "StatusText": "OK"}

ResponseBody is the parsed JSON when the content type is JSON (`application/json`, `*+json`) and
the body parses, else the body as text. A binary content type (`application/octet-stream`,
`image/*`, `video/*`, `audio/*`) or a body that is not text fails the task with States.Runtime
([https] "Unsupported HTTP Task responses"). Header names are lower-case; each maps to the list of
its values, in the order received.

`Redactor` (`steps.sdk.redact`, re-exported here) keeps a connection's secrets out of what the task
returns: a value the API echoes back (a token, a key, or either in base64) is replaced by "***" in
the result and in a failure's cause.
"""

from __future__ import annotations

import codecs
import json
from http import HTTPStatus
from typing import Any, Final

import httpx

from steps.http.errors import ResponseTooLarge, UnsupportedResponse
from steps.sdk.redact import REDACTED, Redactor

__all__ = ["REDACTED", "Redactor", "check_content_type", "media_type", "read_body", "task_result"]

BINARY_TYPES: Final = ("application/octet-stream",)
BINARY_PREFIXES: Final = ("image/", "video/", "audio/")


def media_type(content_type: str | None) -> tuple[str, str | None]:
    """(type/subtype in lower case, charset or None) of a Content-Type header."""
    if not content_type:
        return "", None
    kind, *params = content_type.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return kind.strip().lower(), charset


def check_content_type(headers: httpx.Headers) -> None:
    """Fail before reading the body when the content type says it is binary."""
    kind, _ = media_type(headers.get("content-type"))
    if kind in BINARY_TYPES or kind.startswith(BINARY_PREFIXES):
        raise UnsupportedResponse(
            f"the response's content type {kind} is binary; an HTTP Task returns text or JSON only")


async def read_body(response: httpx.Response, limit: int) -> bytes:
    """The body, refusing (States.DataLimitExceeded) one longer than `limit` bytes without reading it all."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(
                f"the response body is larger than {limit} bytes, the payload limit of an HTTP Task "
                "(BATON_HTTP_MAX_RESPONSE_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


def task_result(status_code: int, reason: str, headers: httpx.Headers, body: bytes) -> dict[str, Any]:
    """The task's result (or, for a non-2xx status, the cause of its failure)."""
    kind, charset = media_type(headers.get("content-type"))
    try:
        text = body.decode(_codec(charset))
    except UnicodeDecodeError:
        raise UnsupportedResponse(
            f"the response body (HTTP {status_code}, {kind or 'no content type'}) is not valid "
            f"{_codec(charset)} text; an HTTP Task returns text or JSON only") from None
    response_body: Any = text
    if (kind == "application/json" or kind.endswith("+json")) and text.strip():
        try:
            response_body = json.loads(text)
        except ValueError:
            pass  # announced as JSON but is not: the text, as it came
    grouped: dict[str, list[str]] = {}
    for name, value in headers.multi_items():
        grouped.setdefault(name.lower(), []).append(value)
    return {
        "ResponseBody": response_body,
        "Headers": grouped,
        "StatusCode": status_code,
        "StatusText": reason or _phrase(status_code),
    }


def _codec(charset: str | None) -> str:
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""
