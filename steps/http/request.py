"""From a Task's Parameters to the HTTP request to send (pure: no I/O, no credentials).

Parameters ([https] "HTTP Task fields"):

    ApiEndpoint (required)       http(s) URL; may carry a query string of its own
    Method (required)            GET, POST, PUT, DELETE, PATCH, OPTIONS or HEAD
    InvocationConfig.ConnectionArn / Authentication.ConnectionArn
                                 the named connection (see `connections`); Baton allows none
    Headers                      an object (a value may be an array: the header repeats), an array
                                 of {"Key", "Value"} objects or "Name: value" strings, or a string
                                 of "Name: value" lines; the headers AWS forbids fail the task
    QueryParameters              an object (arrays repeat the key, objects nest as key[sub]), an
                                 array of {"Key", "Value"} objects, or a query string
    RequestBody                  JSON (sent as JSON) or a string (sent as it is)
    Transform.RequestBodyEncoding  NONE (default) or URL_ENCODED
    Transform.RequestEncodingOptions.ArrayFormat  INDICES (default), REPEAT, COMMAS, BRACKETS

The connection's own headers, query parameters and body fields are merged in with its values
winning over the Task's, and a string RequestBody cannot be merged with body fields ([https]
"Merging EventBridge connection and HTTP Task definition data"). Every problem is an
`InvalidParameters` (States.Runtime), as on AWS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from steps.http.connections import InvocationParameters
from steps.http.encoding import ARRAY_FORMATS, ArrayFormat, encode_pairs, flatten, scalar_text, url_encode
from steps.http.errors import InvalidParameters

METHODS: Final = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")

# "You can't use the following headers in your HTTP Task definition" ([https] "Headers").
FORBIDDEN_HEADERS: Final = frozenset(name.lower() for name in (
    "A-IM", "Accept-Charset", "Accept-Datetime", "Accept-Encoding", "Authorization", "Cache-Control",
    "Connection", "Content-Encoding", "Content-MD5", "Date", "Expect", "Forwarded", "From", "Host",
    "HTTP2-Settings", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
    "If-Unmodified-Since", "Max-Forwards", "Origin", "Pragma", "Proxy-Authorization", "Referer",
    "Server", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Via", "Warning"))
FORBIDDEN_HEADER_PREFIXES: Final = ("x-forwarded-", "x-amz-", "x-amzn-")
# Computed from the body by the client: a stated one could only be wrong.
_COMPUTED_HEADERS: Final = frozenset({"content-length"})

JSON_CONTENT_TYPE: Final = "application/json; charset=UTF-8"  # what Step Functions sends
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name


@dataclass(frozen=True)
class HttpCall:
    """A Task's request, validated; no connection applied yet."""

    method: str
    endpoint: str  # scheme://host/path, without query or fragment
    headers: list[tuple[str, str]]
    query: list[tuple[str, str]]  # the endpoint's own query, then QueryParameters
    body: Any  # None, a string, or JSON
    url_encoded: bool
    array_format: ArrayFormat
    connection: str | None  # the ConnectionArn as given

    @property
    def where(self) -> str:
        """The endpoint as logs and causes show it: never its query or user info (may be secret)."""
        parts = urlsplit(self.endpoint)
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


@dataclass(frozen=True)
class PreparedRequest:
    """What goes on the wire, less the authentication headers (added per attempt)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    content: bytes | None
    where: str


def parse_call(parameters: Any) -> HttpCall:
    """Validate a Task's Parameters; `InvalidParameters` says which field is wrong and how."""
    if not isinstance(parameters, dict):
        raise InvalidParameters("Parameters must be an object with ApiEndpoint and Method")
    endpoint, endpoint_query = _endpoint(parameters.get("ApiEndpoint"))
    method = parameters.get("Method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidParameters(f"Method must be one of {', '.join(METHODS)}, not {_show(method)}")
    url_encoded, array_format = _transform(parameters.get("Transform"))
    return HttpCall(
        method=method.upper(),
        endpoint=endpoint,
        headers=_headers(parameters.get("Headers")),
        query=endpoint_query + _query(parameters.get("QueryParameters")),
        body=parameters.get("RequestBody"),
        url_encoded=url_encoded,
        array_format=array_format,
        connection=_connection_arn(parameters),
    )


def prepare(call: HttpCall, invocation: InvocationParameters | None = None, *,
            user_agent: str = "Baton|HttpInvoke") -> PreparedRequest:
    """Merge the connection's invocation parameters into the call (its values win) and serialise
    the body: JSON by default, form data with URL_ENCODED, a string as it is."""
    headers, query, body = list(call.headers), list(call.query), call.body
    if invocation is not None:
        extra_headers = invocation.plain("headers")
        names = {name.lower() for name in extra_headers}
        headers = [(name, value) for name, value in headers if name.lower() not in names]
        headers += list(extra_headers.items())
        extra_query = invocation.plain("query")
        query = [(key, value) for key, value in query if key not in extra_query] + list(extra_query.items())
        body = _merge_body(call, invocation.plain("body"))
    content = _serialise(body, call)
    present = {name.lower() for name, _ in headers}
    if content is not None and "content-type" not in present:
        headers.append(("Content-Type", FORM_CONTENT_TYPE if call.url_encoded else JSON_CONTENT_TYPE))
    if "user-agent" not in present:
        headers.append(("User-Agent", user_agent))
    url = call.endpoint
    if query:
        parts = urlsplit(call.endpoint)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, encode_pairs(query), ""))
    return PreparedRequest(call.method, url, headers, content, call.where)


def _endpoint(value: Any) -> tuple[str, list[tuple[str, str]]]:
    if not isinstance(value, str) or not value:
        raise InvalidParameters(f"ApiEndpoint must be an http(s) URL, not {_show(value)}")
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        raise InvalidParameters(f"ApiEndpoint is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidParameters("ApiEndpoint must be an absolute http:// or https:// URL with a host")
    endpoint = urlunsplit((parts.scheme.lower(), parts.netloc, parts.path or "/", "", ""))
    return endpoint, parse_qsl(parts.query, keep_blank_values=True)


def _connection_arn(parameters: dict[str, Any]) -> str | None:
    # [https]: "use either the Authentication or InvocationConfig field"; InvocationConfig is
    # the recommended one, Authentication is kept for existing definitions.
    found: dict[str, str] = {}
    for field in ("InvocationConfig", "Authentication"):
        section = parameters.get(field)
        if section is None:
            continue
        arn = section.get("ConnectionArn") if isinstance(section, dict) else None
        if not isinstance(arn, str) or not arn:
            raise InvalidParameters(f"{field} must be an object with a ConnectionArn string")
        found[field] = arn
    if len(set(found.values())) > 1:
        raise InvalidParameters("InvocationConfig and Authentication name different connections; give one")
    return next(iter(found.values()), None)


def _entries(value: Any, field: str, separator: str) -> list[tuple[str, Any]]:
    """Name/value entries from an object, an array of {Key, Value} or "name<sep>value" strings,
    or one string of such entries (lines for headers, `&`-joined for query parameters)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [(str(key), item) for key, item in value.items()]
    if isinstance(value, str):
        return _split_text(value, field, separator)
    if isinstance(value, list):
        entries: list[tuple[str, Any]] = []
        for index, item in enumerate(value):
            if isinstance(item, dict) and set(item) == {"Key", "Value"}:
                entries.append((str(item["Key"]), item["Value"]))
            elif isinstance(item, str):
                entries += _split_text(item, field, separator)
            else:
                raise InvalidParameters(
                    f"{field}[{index}] must be a {{\"Key\": ..., \"Value\": ...}} object or a string")
        return entries
    raise InvalidParameters(f"{field} must be an object, an array or a string, not {_show(value)}")


def _split_text(text: str, field: str, separator: str) -> list[tuple[str, Any]]:
    if separator == "=":
        return list(parse_qsl(text.lstrip("?"), keep_blank_values=True))
    entries: list[tuple[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, colon, item = line.partition(":")
        if not colon:
            raise InvalidParameters(f"{field}: {line.strip()[:80]!r} is not a 'Name: value' header")
        entries.append((name.strip(), item.strip()))
    return entries


def _headers(value: Any) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for name, item in _entries(value, "Headers", ":"):
        lowered = name.lower()
        if not _TOKEN.match(name):
            raise InvalidParameters(f"Headers: {name[:80]!r} is not a valid header name")
        if lowered in FORBIDDEN_HEADERS or lowered.startswith(FORBIDDEN_HEADER_PREFIXES):
            raise InvalidParameters(
                f"Headers: the header {name!r} is not allowed in an HTTP Task (authentication "
                "belongs in the connection named by InvocationConfig.ConnectionArn)")
        if lowered in _COMPUTED_HEADERS:
            continue
        for text in _header_values(name, item):
            if "\r" in text or "\n" in text:
                raise InvalidParameters(f"Headers: the value of {name!r} has a line break")
            headers.append((name, text))
    return headers


def _header_values(name: str, item: Any) -> list[str]:
    items = item if isinstance(item, list) else [item]
    if any(isinstance(one, (dict, list)) for one in items):
        raise InvalidParameters(f"Headers: the value of {name!r} must be text, a number or an array of them")
    return [scalar_text(one) for one in items]


def _query(value: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, item in _entries(value, "QueryParameters", "="):
        # Arrays repeat the key (key=a&key=b); nested objects are written key[sub]=v.
        pairs += flatten({key: item}, "REPEAT")
    return pairs


def _transform(value: Any) -> tuple[bool, ArrayFormat]:
    if value is None:
        return False, "INDICES"
    if not isinstance(value, dict):
        raise InvalidParameters("Transform must be an object with RequestBodyEncoding")
    encoding = value.get("RequestBodyEncoding", "NONE")
    if encoding not in ("NONE", "URL_ENCODED"):
        raise InvalidParameters(f"Transform.RequestBodyEncoding must be NONE or URL_ENCODED, not {_show(encoding)}")
    options = value.get("RequestEncodingOptions") or {}
    if not isinstance(options, dict):
        raise InvalidParameters("Transform.RequestEncodingOptions must be an object with ArrayFormat")
    array_format = options.get("ArrayFormat", "INDICES")
    if array_format not in ARRAY_FORMATS:
        raise InvalidParameters(
            f"Transform.RequestEncodingOptions.ArrayFormat must be one of {', '.join(ARRAY_FORMATS)}, "
            f"not {_show(array_format)}")
    return encoding == "URL_ENCODED", cast(ArrayFormat, array_format)


def _merge_body(call: HttpCall, extra: dict[str, str]) -> Any:
    if not extra:
        return call.body
    if call.body is None:
        # No RequestBody: the connection's fields are the body, unless the method carries none.
        return None if call.method in ("GET", "HEAD", "OPTIONS", "DELETE") else dict(extra)
    if isinstance(call.body, dict):
        return {**call.body, **extra}
    kind = "a string" if isinstance(call.body, str) else "not a JSON object"
    raise InvalidParameters(
        f"RequestBody is {kind}, so the body parameters of the connection cannot be merged into it")


def _serialise(body: Any, call: HttpCall) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    if call.url_encoded:
        if not isinstance(body, dict):
            raise InvalidParameters("RequestBody must be a JSON object (or a string) to be URL_ENCODED")
        return url_encode(body, call.array_format).encode()
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
