"""The client's side of the claim check: an execution's output (or any value read from its
records) with its payload references resolved from the payload store (docs/payloads.md).

`BatonClient.wait` and the read model return what the records carry: a value over the offload
threshold is a reference there. A caller that wants the value asks for it here; the API's
`GET /api/executions/{execution}/payloads/{digest}` does the same for a browser.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kafka_io.payloads import PayloadSettings, PayloadStore, open_payload_store
from schemas.payloads import PAYLOAD_MISSING, PayloadError, hydrate, scope_of


async def resolve_payloads(value: Any, execution_id: str, *, store: PayloadStore | None = None,
                           settings: PayloadSettings | None = None) -> Any:
    """`value` with its references resolved (PayloadError: missing, corrupt, or no store set).
    `store`: an open store to reuse; otherwise one is opened from `settings` (the environment's
    BATON_PAYLOAD_STORE by default) and closed again."""
    opened = store if store is not None else open_payload_store(settings)
    if opened is None:
        def missing(key: str) -> bytes | None:
            raise PayloadError(PAYLOAD_MISSING, f"the value references payload {key}, but no payload store is "
                               "configured here: set BATON_PAYLOAD_STORE as the orchestrators have it")
        return hydrate(value, scope=scope_of(execution_id), get=missing, limit=0)
    try:
        return await asyncio.to_thread(opened.hydrate, value, execution_id)
    finally:
        if store is None:
            opened.close()
