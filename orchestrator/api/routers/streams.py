"""Server-sent events of an execution: its progress at each change, and its streamed LLM tokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from kafka_io import KafkaFailure, KafkaSettings, kafka_errors
from orchestrator.api.backend import Backend, backend_of
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.progress import progress
from orchestrator.api.readmodel import TERMINAL_STATUSES, ReadModelError
from orchestrator.api.roles import requires

_SSE_POLL = 0.5

router = APIRouter(prefix="/api/executions", tags=["streams"], route_class=GuardedRoute)
viewer = requires("viewer")


def _sse(events: AsyncIterator[tuple[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        async for kind, data in events:
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _status_events(backend: Backend, execution_id: str, request: Request) -> AsyncIterator[tuple[str, Any]]:
    """A `status` event whenever the execution or its history changes; `end` once it has ended."""
    last: tuple[str, int] | None = None
    while not await request.is_disconnected():
        view = backend.model.describe(execution_id)
        if view is None:
            return
        history = backend.model.history(execution_id)
        if (view.status, len(history)) != last:
            last = (view.status, len(history))
            yield "status", progress(view, history)
        if view.status in TERMINAL_STATUSES:
            yield "end", {"status": view.status}
            return
        await asyncio.sleep(_SSE_POLL)


async def _token_events(settings: KafkaSettings, execution_id: str, all_tasks: bool,
                        idle_timeout: float) -> AsyncIterator[tuple[str, Any]]:
    from steps.llm.streaming import follow_stream

    try:
        with kafka_errors(settings):
            async for chunk in follow_stream(settings, execution_id, all_tasks=all_tasks, idle_timeout=idle_timeout):
                yield "token", chunk.model_dump(mode="json", include={"task_id", "seq", "text", "final"})
    except TimeoutError:
        pass
    except (ReadModelError, KafkaFailure) as exc:
        yield "error", {"error": {"code": "KafkaUnavailable", "message": str(exc)}}
    yield "end", {}


@router.get("/{execution}/events", dependencies=[viewer], response_class=StreamingResponse)
async def execution_events(execution: str, request: Request) -> StreamingResponse:
    """Server-sent events: `status` (the execution and its states) at each change, until it ends."""
    backend = backend_of(request)
    execution_id = backend.describe(execution).execution_id
    return _sse(_status_events(backend, execution_id, request))


@router.get("/{execution}/stream", dependencies=[viewer], response_class=StreamingResponse)
async def execution_tokens(execution: str, request: Request, all_tasks: bool = False,
                           idle_timeout: float = Query(300.0, gt=0)) -> StreamingResponse:
    """Server-sent events: `token` per streamed LLM chunk, then `end` (from baton.streams)."""
    backend = backend_of(request)
    execution_id = backend.describe(execution).execution_id
    return _sse(_token_events(backend.settings, execution_id, all_tasks, idle_timeout))
