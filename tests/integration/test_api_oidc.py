"""The API with OIDC against the real broker: JWTs from a local identity provider (RSA key made
here, JWKS over HTTP), the deploy route (new immutable versions, alias moves, 400 with the fault's
path), a deployed state machine started through its alias, and the reviewer's JWT subject
recorded in the history as who decided."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from kafka_io import KafkaSettings
from orchestrator.api.auth import TokenAuthorizer
from orchestrator.api.oidc import OidcVerifier
from tests.integration.runtime_support import eventually
from tests.integration.test_api import serving, until_status
from tests.oidc_support import identity_provider

REVIEW = {"StartAt": "Review", "States": {"Review": {
    "Type": "Task", "Resource": "baton:review.waitForTaskToken",
    "Parameters": {"Question": "Ship it?", "Content.$": "$.draft", "Decisions": ["approve", "reject"]},
    "ResultPath": "$.review", "End": True}}}
REVIEW_V2 = {**REVIEW, "Comment": "second version"}
REVIEWER = "ana@example.com"  # the reviewer's `sub`



def test_jwt_roles_deploy_and_the_reviewer_subject_in_the_history(kafka: KafkaSettings, tmp_path: Path) -> None:
    with identity_provider() as idp:
        operator, reviewer, viewer = (idp.token("ops-bot", ["operator"]), idp.token(REVIEWER, ["reviewer"]),
                                      idp.token("watcher", ["viewer"]))
        authorizer = TokenAuthorizer(None, oidc=OidcVerifier(idp.settings()))

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        async def scenario() -> None:
            async with serving(kafka, tmp_path / "rm.sqlite", review=True, authorizer=authorizer) as url, \
                    httpx.AsyncClient(base_url=url, timeout=60) as client:
                deploy = {"name": "approval", "definition": REVIEW, "alias": "live", "description": "v1"}
                assert (await client.post("/api/state-machines", json=deploy)).status_code == 401
                for refused in (viewer, reviewer):
                    answer = await client.post("/api/state-machines", json=deploy, headers=bearer(refused))
                    assert answer.status_code == 403 and set(answer.json()["error"]) == {"code", "message"}
                expired = idp.token("ops-bot", ["operator"], expires_in=-3600)
                assert (await client.post("/api/state-machines", json=deploy, headers=bearer(expired))).status_code == 401

                first = await client.post("/api/state-machines", json=deploy, headers=bearer(operator))
                assert first.status_code == 201, first.text
                assert first.json()["version"] == 1 and first.json()["changed"] is True
                assert first.json()["alias"]["routes"] == [{"version": 1, "weight": 100}]
                again = await client.post("/api/state-machines", json=deploy, headers=bearer(operator))
                assert again.status_code == 200 and again.json()["version"] == 1 and again.json()["changed"] is False
                second = await client.post("/api/state-machines", headers=bearer(operator), json={
                    **deploy, "definition": REVIEW_V2, "description": "v2"})
                assert second.status_code == 201 and second.json()["version"] == 2
                assert second.json()["alias"]["routes"] == [{"version": 2, "weight": 100}]

                broken = {"StartAt": "Missing", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
                invalid = await client.post("/api/state-machines", headers=bearer(operator),
                                            json={"name": "approval", "definition": broken})
                assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "InvalidDefinition"
                paths = {p["path"] for p in invalid.json()["error"]["details"]["problems"]}
                assert {"$.StartAt", "$.States.A.Next"} <= paths, paths
                bad_alias = await client.post("/api/state-machines", headers=bearer(operator),
                                              json={**deploy, "alias": "12"})
                assert bad_alias.status_code == 400 and bad_alias.json()["error"]["code"] == "InvalidName"

                described = await client.get("/api/state-machines/approval", headers=bearer(viewer))
                assert described.status_code == 200, described.text
                record = described.json()
                assert [v["version"] for v in record["versions"]] == [1, 2]  # the refused deploys wrote nothing
                assert record["versions"][0]["definition"] == REVIEW  # version 1 is immutable
                assert record["aliases"]["live"]["routes"] == [{"version": 2, "weight": 100}]
                listed = await client.get("/api/state-machines", headers=bearer(viewer))
                assert [m["name"] for m in listed.json()] == ["approval"]

                started = await client.post("/api/executions", headers=bearer(operator), json={
                    "state_machine": "approval:live", "name": "oidc-review", "input": {"draft": "hello"}})
                assert started.status_code == 201, started.text
                execution_id = started.json()["execution_id"]

                async def pending() -> list[dict[str, Any]] | None:
                    answer = await client.get("/api/reviews", headers=bearer(reviewer))
                    assert answer.status_code == 200
                    return [r for r in answer.json() if r["execution_id"] == execution_id] or None

                review = (await eventually(pending, timeout=60))[0]
                decided = await client.post("/api/reviews/decision", headers=bearer(reviewer), json={
                    "task_token": review["task_token"], "decision": "approve", "reviewer": "somebody-else"})
                assert decided.status_code in (200, 202), decided.text  # applied, or not yet within the wait

                client.headers.update(bearer(viewer))
                done = await until_status(client, execution_id, "SUCCEEDED")
                assert done["output"]["review"]["reviewer"] == REVIEWER  # the JWT's subject, not the body's
                history = (await client.get(f"/api/executions/{execution_id}/history")).json()
                succeeded = [e for e in history if e["type"] == "TaskSucceeded"]
                assert len(succeeded) == 1, history
                details = succeeded[0]["taskSucceededEventDetails"]  # output as JSON text, as AWS has it
                assert json.loads(details["output"])["reviewer"] == REVIEWER, details

        began = time.monotonic()
        asyncio.run(scenario())
        assert time.monotonic() - began < 120
