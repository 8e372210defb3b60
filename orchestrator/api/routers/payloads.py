"""Payloads on demand: the value a history event or an execution's output holds as a reference
(the claim check, docs/payloads.md), fetched from the payload store when a reader asks for it.

The history and the execution page show the reference ({"$baton.payload": 1, "key", "sha256",
"bytes"}); `GET /api/executions/{execution}/payloads/{digest}` answers its JSON. Viewers may read
it, as they may read the history it is part of; only the execution's own objects are reachable
(the key is the execution's scope and the digest), and the bytes are checked against the digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kafka_io.payloads import PayloadStore, PayloadStoreError, open_payload_store
from orchestrator.api.backend import backend_of
from orchestrator.api.errors import ApiError
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.roles import requires
from schemas.payloads import scope_of

router = APIRouter(prefix="/api/executions", tags=["executions"], route_class=GuardedRoute)
viewer = requires("viewer")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _store(request: Request) -> PayloadStore:
    state = request.app.state
    if not hasattr(state, "payload_store"):
        state.payload_store = open_payload_store()  # BATON_PAYLOAD_STORE, as the orchestrators have it
    store: PayloadStore | None = state.payload_store
    if store is None:
        raise ApiError(404, "PayloadStoreNotConfigured", "this API has no payload store: set BATON_PAYLOAD_STORE "
                       "as the orchestrators and step services have it")
    return store


@router.get("/{execution}/payloads/{digest}", dependencies=[viewer],
            responses={200: {"content": {"application/json": {}}}})
async def execution_payload(execution: str, digest: str, request: Request) -> Response:
    """The JSON of a value the execution's records hold as a reference (its `sha256`)."""
    if not _DIGEST.fullmatch(digest):
        raise ApiError(400, "InvalidDigest", "the digest is a payload reference's sha256: 64 lowercase hex digits")
    execution_id = backend_of(request).describe(execution).execution_id
    store = _store(request)
    key = f"{scope_of(execution_id)}/{digest}"
    try:
        data = await asyncio.to_thread(store.get, key)
    except PayloadStoreError as exc:
        raise ApiError(502, "PayloadStoreUnavailable", str(exc)) from None
    if data is None:
        raise ApiError(404, "PayloadNotFound", f"execution {execution_id} has no payload {digest} (removed by "
                       "retention, or never stored)")
    if hashlib.sha256(data).hexdigest() != digest:
        raise ApiError(502, "PayloadCorrupt", f"payload {digest} of {execution_id} does not match its sha256")
    return Response(data, media_type="application/json")
