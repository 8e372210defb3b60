"""The pages' login: a browser refused on a page gets a sign-in page, `?token=` on a page becomes
the `baton_token` cookie, and the token is kept out of the access log."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from orchestrator.api.auth import COOKIE, identity_of

_QUERY_TOKEN = re.compile(r"([?&]token=)[^&#\s\"]*", re.IGNORECASE)


class HideQueryTokens(logging.Filter):
    """Blanks `?token=` in uvicorn's access log: a page login puts the bearer token in the URL, and
    the access log (often a file, `baton dev`'s .baton/logs/api.log) would otherwise keep it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "token=" in a.lower() for a in record.args):
            record.args = tuple(_QUERY_TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def hide_query_tokens() -> None:
    """Install `HideQueryTokens` on uvicorn's access logger (once; logging config keeps it)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideQueryTokens) for f in access.filters):
        access.addFilter(HideQueryTokens())


def install_login_cookie(app: FastAPI) -> None:
    """`?token=` on a GET that was let through becomes the `baton_token` cookie (the pages' login).

    Plain ASGI (not `@app.middleware`) so streamed answers and disconnect checks are untouched.
    """
    inner = app.build_middleware_stack

    def build() -> Any:
        downstream = inner()

        async def remember_token(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope.get("method") != "GET" or b"token=" not in scope.get("query_string", b""):
                await downstream(scope, receive, send)
                return
            request = Request(scope)
            token = request.query_params.get("token")

            async def send_with_cookie(message: Any) -> None:
                if (message["type"] == "http.response.start" and token and message["status"] < 400
                        and identity_of(request) is not None):
                    cookie = Response()
                    cookie.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                                      secure=scope.get("scheme") == "https")
                    message = {**message, "headers": [*message.get("headers", []),
                                                      *[(k, v) for k, v in cookie.raw_headers if k == b"set-cookie"]]}
                await send(message)

            await downstream(scope, receive, send_with_cookie)

        return remember_token

    app.build_middleware_stack = build  # type: ignore[method-assign]


def _wants_page(scope: Any) -> bool:
    """A browser asking for a page (not the API, not a static file): it gets HTML, not JSON."""
    if scope["type"] != "http" or scope.get("method") != "GET":
        return False
    path: str = scope.get("path", "")
    if path.startswith(("/api/", "/static/", "/openapi.json")):
        return False
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    return b"text/html" in accept


def install_sign_in_page(app: FastAPI, render: Callable[[int, str, bool], str]) -> None:
    """A 401 or 403 answered to a browser's page request becomes `render(status, path, had_token)`,
    HTML with the same status: how to sign in instead of the API's JSON. API clients (no
    `text/html` in Accept) keep the JSON error. Plain ASGI, as `install_login_cookie`."""
    inner = app.build_middleware_stack

    def build() -> Any:
        downstream = inner()

        async def sign_in(scope: Any, receive: Any, send: Any) -> None:
            if not _wants_page(scope):
                await downstream(scope, receive, send)
                return
            replaced = False

            async def send_page_if_refused(message: Any) -> None:
                nonlocal replaced
                if message["type"] == "http.response.start" and message["status"] in (401, 403):
                    replaced = True
                    request = Request(scope)
                    had_token = bool(request.query_params.get("token") or request.cookies.get(COOKIE)
                                     or request.headers.get("authorization"))
                    body = render(message["status"], scope.get("path", "/"), had_token).encode()
                    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
                    headers += [(k, v) for k, v in message.get("headers", []) if k.lower() == b"www-authenticate"]
                    await send({"type": "http.response.start", "status": message["status"], "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                elif not replaced:  # the JSON body of a replaced answer is dropped
                    await send(message)

            await downstream(scope, receive, send_page_if_refused)

        return sign_in

    app.build_middleware_stack = build  # type: ignore[method-assign]
