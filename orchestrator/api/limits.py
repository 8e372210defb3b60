"""Request bodies within bounds before FastAPI parses them: the size cap (413) and the JSON depth (400).

Every route of the API is a `GuardedRoute`. It reads the body itself, at most
`Quotas.max_request_bytes` of it (AWS's 1 MB per request), refusing a larger one by its
Content-Length or as soon as the bytes read pass the cap, and refuses JSON nested deeper than
`Quotas.max_json_depth` after a linear scan, so no recursive parser ever sees such a body (a
300-deep input used to end in a plain-text 500). Both raise `QuotaExceeded`, which
`orchestrator.api.errors` answers in the API's JSON error shape. The body read here is the
one FastAPI then parses (Starlette keeps it on the request), so it is read once.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from orchestrator.quotas import QuotaExceeded, check_json_depth
from orchestrator.settings import Quotas

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def _too_large(size: str, quotas: Quotas) -> QuotaExceeded:
    return QuotaExceeded("RequestTooLarge", f"the request body is {size} bytes, over the request quota of "
                                            f"{quotas.max_request_bytes:,} bytes (BATON_MAX_REQUEST_BYTES; "
                                            "AWS: 1 MB per request)", limit=quotas.max_request_bytes)


async def read_body(request: Request, quotas: Quotas) -> bytes:
    """The request's body, at most `quotas.max_request_bytes` of it (QuotaExceeded beyond)."""
    limit = quotas.max_request_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(f"{int(declared):,}", quotas)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body declares no length: stop reading at the cap
            raise _too_large(f"more than {limit:,}", quotas)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # what request.body() returns from now on: FastAPI parses this copy
    return body


class GuardedRoute(APIRoute):
    """An API route whose request body is bounded in size and depth before it is parsed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if request.method in _WITH_BODY:
                quotas: Quotas = request.app.state.quotas
                check_json_depth(await read_body(request, quotas), quotas, "the request body")
            return await handler(request)

        return guarded
