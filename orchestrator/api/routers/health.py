"""`GET /healthz`: the API answers, and says which stack it belongs to (`infra.stack`), so
`baton dev` can tell its own API on a port from another stack's. Public, as a load balancer's probe is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from orchestrator.api.limits import GuardedRoute

router = APIRouter(tags=["health"], route_class=GuardedRoute)


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """`{"status": "ok", "stack_id", "topic_prefix", "kafka_bootstrap"}` (stack_id: BATON_STACK_ID, set by `baton dev`)."""
    return {"status": "ok", **request.app.state.stack.model_dump()}
