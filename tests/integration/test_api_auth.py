"""The API with tokens against the real broker: roles end to end, the reviewer recorded from the
token (not from the body), and a revocation seen by the running server without a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from kafka_io import KafkaSettings
from orchestrator.api.auth import TokenAuthorizer, TokenStore
from tests.integration.runtime_support import eventually
from tests.integration.test_api import serving, until_status

REVIEW = {"StartAt": "Review", "States": {"Review": {
    "Type": "Task", "Resource": "baton:review.waitForTaskToken",
    "Parameters": {"Question": "Ship it?", "Content.$": "$.draft", "Decisions": ["approve", "reject"]},
    "ResultPath": "$.review", "End": True}}}



def test_roles_reviewer_identity_and_revocation(kafka: KafkaSettings, tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "api-tokens.json")
    operator, reviewer, viewer = (store.create("ops", "operator"), store.create("ana", "reviewer"),
                                  store.create("watcher", "viewer"))

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def scenario() -> None:
        async with serving(kafka, tmp_path / "rm.sqlite", review=True,
                           authorizer=TokenAuthorizer(store)) as url, httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/api/executions")).status_code == 401
            refused = await client.post("/api/executions", json={"definition": REVIEW}, headers=bearer(viewer))
            assert refused.status_code == 403 and set(refused.json()["error"]) == {"code", "message"}
            started = await client.post("/api/executions", headers=bearer(operator), json={
                "definition": REVIEW, "name": "auth-review", "input": {"draft": "hello"}})
            assert started.status_code == 201, started.text
            execution_id = started.json()["execution_id"]

            async def pending() -> list[dict[str, Any]] | None:
                answer = await client.get("/api/reviews", headers=bearer(reviewer))
                assert answer.status_code == 200
                mine = [r for r in answer.json() if r["execution_id"] == execution_id]
                return mine or None

            assert (await client.get("/api/reviews", headers=bearer(viewer))).status_code == 403
            review = (await eventually(pending, timeout=60))[0]
            decided = await client.post("/api/reviews/decision", headers=bearer(reviewer), json={
                "task_token": review["task_token"], "decision": "approve", "reviewer": "somebody-else"})
            assert decided.status_code in (200, 202), decided.text  # applied, or not yet within the wait
            client.headers.update(bearer(viewer))
            done = await until_status(client, execution_id, "SUCCEEDED")
            assert done["output"]["review"]["reviewer"] == "ana"  # from the token, not the body

            assert (await client.get(f"/api/executions/{execution_id}")).status_code == 200
            TokenStore(store.path).revoke("watcher")  # `baton tokens revoke` from another process
            assert (await client.get(f"/api/executions/{execution_id}")).status_code == 401

    began = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - began < 120
