"""Review queues against the real broker: two deployed state machines that need review, a reviewer
token limited to one and a JWT limited (by its queues claim) to the other. Each lists only its
queue's reviews, is refused (403, nothing else in the body, the same answer as for an execution
that does not exist) on the other's, which stays waiting, and decides its own, which proceeds with
the reviewer's name in the history."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from kafka_io import KafkaSettings
from orchestrator.api.auth import TokenAuthorizer, TokenStore
from orchestrator.api.oidc import OidcVerifier
from schemas.executions import execution_id_for
from schemas.tokens import TokenSigner
from tests.integration.runtime_support import eventually
from tests.integration.test_api import serving, until_status
from tests.oidc_support import identity_provider


def review(question: str) -> dict[str, Any]:
    return {"StartAt": "Review", "States": {"Review": {
        "Type": "Task", "Resource": "baton:review.waitForTaskToken",
        "Parameters": {"Question": question, "Content.$": "$.draft", "Decisions": ["approve", "reject"]},
        "ResultPath": "$.review", "End": True}}}



def test_reviewers_limited_to_queues_by_token_and_by_jwt_claim(kafka: KafkaSettings, tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "api-tokens.json")
    operator, everyone = store.create("ops", "operator"), store.create("bo", "reviewer")
    ana = store.create("ana", "reviewer", ["approval"])  # `baton tokens create ... --queue approval`
    with identity_provider() as idp:
        jo = idp.token("jo@example.com", ["reviewer"], baton_queues=["refunds"])
        unqueued = idp.token("cy@example.com", ["reviewer"])  # the claim is configured: no claim, no queue
        authorizer = TokenAuthorizer(store, oidc=OidcVerifier(idp.settings(queues_claim="baton_queues")))

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        async def scenario() -> None:
            async with serving(kafka, tmp_path / "rm.sqlite", review=True, authorizer=authorizer) as url, \
                    httpx.AsyncClient(base_url=url, timeout=60) as client:
                for name, question in (("approval", "Send this answer?"), ("refunds", "Refund this order?")):
                    deployed = await client.post("/api/state-machines", headers=bearer(operator), json={
                        "name": name, "definition": review(question), "alias": "live"})
                    assert deployed.status_code == 201, deployed.text
                # A queue is the registered name, whatever the start named: an alias here, a version there.
                executions = {}
                for machine, reference in (("approval", "approval:live"), ("refunds", "refunds:1")):
                    started = await client.post("/api/executions", headers=bearer(operator), json={
                        "state_machine": reference, "name": f"q-{machine}", "input": {"draft": "hello"}})
                    assert started.status_code == 201, started.text
                    executions[machine] = started.json()["execution_id"]

                async def reviews(token: str) -> dict[str, dict[str, Any]]:
                    """This reviewer's pending reviews of the two executions, by state machine."""
                    answer = await client.get("/api/reviews", headers=bearer(token))
                    assert answer.status_code == 200, answer.text
                    ours = [r for r in answer.json() if r["execution_id"] in executions.values()]
                    return {r["state_machine"]: r for r in ours}

                async def both_pending() -> dict[str, dict[str, Any]] | None:
                    found = await reviews(everyone)
                    return found if set(found) == {"approval", "refunds"} else None

                pending = await eventually(both_pending, timeout=60)
                assert {m: r["execution_id"] for m, r in pending.items()} == executions
                assert set(await reviews(ana)) == {"approval"}
                assert set(await reviews(jo)) == {"refunds"}
                assert await reviews(unqueued) == {}

                # Another queue's task, and a task of an execution that does not exist, answer alike.
                nowhere = TokenSigner(b"not-the-orchestrators-secret").sign(
                    execution_id_for("refunds:1", "no-such-execution"), "Review#0")
                for credential, other in ((ana, pending["refunds"]), (jo, pending["approval"])):
                    for path, body in (("/api/reviews/decision", {"decision": "approve"}),
                                       ("/api/reviews/decision", {"decision": "reject"}),
                                       ("/api/tasks/success", {"output": {"ok": True}}),
                                       ("/api/tasks/failure", {"error": "Nope"}),
                                       ("/api/tasks/heartbeat", {})):
                        refused = await client.post(path, headers=bearer(credential),
                                                    json={"task_token": other["task_token"], **body})
                        assert refused.status_code == 403, (path, refused.text)
                        assert set(refused.json()) == {"error"} and set(refused.json()["error"]) == {"code", "message"}
                        assert other["execution_id"] not in refused.text and "Question" not in refused.text
                        unknown = await client.post(path, headers=bearer(credential),
                                                    json={"task_token": nowhere, **body})
                        assert (unknown.status_code, unknown.json()) == (403, refused.json()), unknown.text

                decided = await client.post("/api/reviews/decision", headers=bearer(ana), json={
                    "task_token": pending["approval"]["task_token"], "decision": "approve", "reviewer": "mallory"})
                assert decided.status_code in (200, 202), decided.text  # applied, or not yet within the wait
                client.headers.update(bearer(everyone))
                done = await until_status(client, executions["approval"], "SUCCEEDED")
                assert done["output"]["review"]["reviewer"] == "ana"
                # The refused attempts published nothing: refunds still waits for its review.
                waiting = (await client.get(f"/api/executions/{executions['refunds']}")).json()
                assert waiting["status"] == "RUNNING"
                assert set(await reviews(everyone)) == {"refunds"}

                decided = await client.post("/api/reviews/decision", headers=bearer(jo), json={
                    "task_token": pending["refunds"]["task_token"], "decision": "approve", "comment": "fine"})
                assert decided.status_code in (200, 202), decided.text  # applied, or not yet within the wait
                await until_status(client, executions["refunds"], "SUCCEEDED")
                for machine, reviewer in (("approval", "ana"), ("refunds", "jo@example.com")):
                    history = (await client.get(f"/api/executions/{executions[machine]}/history")).json()
                    outcomes = [e for e in history if e["type"] in ("TaskSucceeded", "TaskFailed")]
                    assert [e["type"] for e in outcomes] == ["TaskSucceeded"], history
                    output = json.loads(outcomes[0]["taskSucceededEventDetails"]["output"])
                    assert output["reviewer"] == reviewer, output

        began = time.monotonic()
        asyncio.run(scenario())
        assert time.monotonic() - began < 120
