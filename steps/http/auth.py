"""Authentication headers for a connection, and the OAuth 2.0 client-credentials token cache.

API_KEY adds `NAME: VALUE`, BASIC `Authorization: Basic ...`, BEARER `Authorization: Bearer ...`;
OAUTH_CLIENT_CREDENTIALS fetches an access token from the token endpoint (RFC 6749 section 4.4),
caches it per connection until shortly before it expires, and shares one fetch among the tasks
that need it at the same moment. `TokenCache.invalidate` drops a token the API refused (401), so
the next request fetches a fresh one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx

from steps.http.connections import ApiKeyAuth, BasicAuth, BearerAuth, Connection, OAuthClientCredentials
from steps.http.errors import ConnectionFailure, SocketFailure

log = logging.getLogger(__name__)

MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Credentials:
    """The headers that authenticate one request, and the OAuth token among them (if any)."""

    headers: list[tuple[str, str]]
    token: str | None = None

    @property
    def secrets(self) -> list[str]:
        """Values to keep out of results: the header values, their credentials without the scheme
        (`Basic <credentials>`: an API may echo just those) and the bare token."""
        values = [value for _, value in self.headers]
        values += [value.partition(" ")[2] for value in values if " " in value]
        return values + ([self.token] if self.token else [])


@dataclass
class _Token:
    value: str
    expires_at: float | None  # monotonic clock; None: until the API refuses it


class TokenCache:
    """OAuth access tokens by connection name."""

    def __init__(self, client: httpx.AsyncClient, *, timeout_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_fetch: Callable[[str, str], None] | None = None) -> None:
        self._client = client
        self._timeout = timeout_seconds
        self._clock = clock
        self._on_fetch = on_fetch  # (connection, outcome) for metrics
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, connection: Connection, auth: OAuthClientCredentials) -> str:
        """A valid access token for the connection: the cached one, or a fresh one."""
        cached = self._valid(connection.name)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(connection.name, asyncio.Lock())
        async with lock:  # one fetch at a time per connection; the others reuse its token
            cached = self._valid(connection.name)
            if cached is not None:
                return cached
            token = await self._fetch(connection.name, auth)
            self._tokens[connection.name] = token
            return token.value

    def invalidate(self, connection: str, token: str) -> None:
        """Forget `token` if it is still the cached one (a concurrent refresh may have replaced it)."""
        cached = self._tokens.get(connection)
        if cached is not None and cached.value == token:
            del self._tokens[connection]

    def _valid(self, connection: str) -> str | None:
        cached = self._tokens.get(connection)
        if cached is None:
            return None
        if cached.expires_at is not None and self._clock() >= cached.expires_at:
            del self._tokens[connection]
            return None
        return cached.value

    async def _fetch(self, name: str, auth: OAuthClientCredentials) -> _Token:
        form = {"grant_type": "client_credentials"}
        if auth.scope:
            form["scope"] = auth.scope
        form.update(auth.parameters.plain("body"))
        headers = {"Accept": "application/json", **auth.parameters.plain("headers")}
        secret = auth.client_secret.get_secret_value()
        if auth.client_authentication == "basic":
            # RFC 6749 section 2.3.1: id and secret are form-encoded before the Basic encoding.
            headers["Authorization"] = _basic(quote(auth.client_id, safe=""), quote(secret, safe=""))
        else:
            form.update({"client_id": auth.client_id, "client_secret": secret})
        query = auth.parameters.plain("query")
        where = _where(auth.token_url)
        started = self._clock()
        try:
            async with asyncio.timeout(self._timeout):
                if auth.method == "GET":
                    response = await self._client.request(
                        "GET", auth.token_url, params={**query, **form}, headers=headers, follow_redirects=False)
                else:
                    response = await self._client.request(
                        auth.method, auth.token_url, params=query or None, data=form, headers=headers,
                        follow_redirects=False)
        except (httpx.RequestError, TimeoutError) as exc:
            self._count(name, "socket")
            reason = "timed out" if isinstance(exc, (TimeoutError, httpx.TimeoutException)) else type(exc).__name__
            raise SocketFailure(
                f"the OAuth token request of connection {name!r} to {where} failed: {reason}") from None
        if response.status_code // 100 != 2:
            self._count(name, "refused" if _refusal(response.status_code) else "failed")
            detail = _oauth_error(response)
            message = (f"the token endpoint {where} of connection {name!r} answered HTTP "
                       f"{response.status_code}{detail}")
            if _refusal(response.status_code):
                raise ConnectionFailure("InvalidConnectionState",
                                        message + "; check the connection's client id and secret")
            raise ConnectionFailure("InternalError", message)
        token = _parse_token(response, name, where)
        expires_in = token[1]
        now = self._clock()
        if expires_in is not None:
            # Refreshed a margin before it expires (but a short-lived token is still used a while).
            expires_at: float | None = now + max(expires_in - auth.expiry_margin_seconds, expires_in / 2)
        elif auth.default_lifetime_seconds is not None:
            expires_at = now + auth.default_lifetime_seconds
        else:
            expires_at = None
        self._count(name, "fetched")
        log.info("connection %r: OAuth token fetched from %s in %.0f ms (expires in %s s)", name, where,
                 (now - started) * 1000, "?" if expires_in is None else round(expires_in))
        return _Token(token[0], expires_at)

    def _count(self, connection: str, outcome: str) -> None:
        if self._on_fetch is not None:
            self._on_fetch(connection, outcome)


async def credentials(connection: Connection | None, tokens: TokenCache) -> Credentials:
    """The authentication headers of a request made through `connection`."""
    auth = connection.auth if connection is not None else None
    if isinstance(auth, ApiKeyAuth):
        return Credentials([(auth.name, auth.value.get_secret_value())])
    if isinstance(auth, BasicAuth):
        return Credentials([("Authorization", _basic(auth.username, auth.password.get_secret_value()))])
    if isinstance(auth, BearerAuth):
        token = auth.token.get_secret_value()
        return Credentials([("Authorization", f"Bearer {token}")], token)
    if isinstance(auth, OAuthClientCredentials):
        assert connection is not None
        token = await tokens.token(connection, auth)
        return Credentials([("Authorization", f"Bearer {token}")], token)
    return Credentials([])


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _refusal(status: int) -> bool:
    return 400 <= status < 500 and status != 429


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _oauth_error(response: httpx.Response) -> str:
    """RFC 6749 section 5.2's `error` code (never the description: it may echo the request)."""
    try:
        code = json.loads(response.content[:4096]).get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({code})" if isinstance(code, str) and code.isascii() and len(code) <= 64 else ""


def _parse_token(response: httpx.Response, name: str, where: str) -> tuple[str, float | None]:
    if len(response.content) > MAX_TOKEN_RESPONSE_BYTES:
        raise ConnectionFailure("InternalError", f"the token endpoint {where} of connection {name!r} "
                                                 "answered with more than 1 MiB")
    try:
        document = json.loads(response.content)
    except ValueError:
        document = None
    token = document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        raise ConnectionFailure("InvalidConnectionState",
                                f"the token endpoint {where} of connection {name!r} answered without an "
                                "access_token (RFC 6749 section 5.1)")
    assert isinstance(document, dict)
    expires_in = document.get("expires_in")
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        return token, float(expires_in)
    return token, None
