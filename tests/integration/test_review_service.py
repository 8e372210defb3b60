"""Human review on the real broker, through the real orchestrator and the review step service:
reviewers act with the `baton review` commands (run in a worker thread, as a person would)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from click.testing import CliRunner

from kafka_io import KafkaSettings
from orchestrator.cli import main
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings
from schemas.tokens import TokenSigner
from steps.review.decisions import approve
from orchestrator.client.reviews import PendingReview, pending_reviews, post_decision
from steps.review.service import review_service
from tests.integration.runtime_support import RuntimeClient, eventually



@contextlib.asynccontextmanager
async def running(kafka: KafkaSettings) -> AsyncIterator[Orchestrator]:
    """An orchestrator and the review step service on the real broker, for the block's duration."""
    stop = asyncio.Event()
    orchestrator = Orchestrator(kafka, OrchestratorSettings(instance_id="o1", metrics_port=None))
    task = asyncio.create_task(orchestrator.run(stop))
    try:
        async with review_service(settings=kafka):
            await asyncio.wait_for(orchestrator.ready.wait(), 30)
            yield orchestrator
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def baton(kafka: KafkaSettings, *args: str) -> tuple[int, str]:
    """Run `baton review ARGS` against the test's topics; (exit code, output)."""
    where = ["--bootstrap", kafka.kafka_bootstrap, "--topic-prefix", kafka.topic_prefix]
    result = await asyncio.to_thread(CliRunner().invoke, main, ["review", *args, *where])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


async def pending_for(kafka: KafkaSettings, execution_id: str) -> PendingReview:
    async def find() -> PendingReview | None:
        return next((r for r in await pending_reviews(kafka) if r.execution_id == execution_id), None)

    found: PendingReview = await eventually(find, timeout=30)
    return found


def review(decisions: list[str], **fields: Any) -> dict[str, Any]:
    return {"StartAt": "Review", "States": {"Review": {
        "Type": "Task", "Resource": "baton:review.waitForTaskToken",
        "Parameters": {"Question": "Send this answer to the customer?", "Content.$": "$.draft",
                       "Context": {"customer.$": "$.customer"}, "Decisions": decisions,
                       "Instructions": "Check the facts and the tone."},
        "ResultPath": "$.review", "End": True, **fields}}}


def test_a_review_approved_with_the_cli(kafka: KafkaSettings) -> None:
    """The request shows in `baton review list` with its question, content and deadline; `approve`
    and `edit` resume the executions with the decision as the Task's result."""

    async def scenario() -> None:
        async with running(kafka), RuntimeClient(kafka) as client:
            draft = {"draft": "Your pipe burst: you are covered.", "customer": "ana"}
            approved = await client.start(review(["approve", "reject"], TimeoutSeconds=300), draft)
            edited = await client.start(review(["approve", "edit"]), draft)
            first = await pending_for(kafka, approved)
            second = await pending_for(kafka, edited)
            assert first.details.question == "Send this answer to the customer?"
            assert first.details.content == draft["draft"] and first.details.context == {"customer": "ana"}
            assert first.details.decisions == ["approve", "reject"] and first.request.state_name == "Review"
            assert first.details.deadline is not None and second.details.deadline is None

            code, output = await baton(kafka, "list", "--json")
            assert code == 0 and {r["execution_id"] for r in json.loads(output)} >= {approved, edited}
            code, output = await baton(kafka, "list")
            assert code == 0 and first.token in output and "Send this answer" in output

            code, output = await baton(kafka, "edit", first.token, "--output", '"nope"')
            assert code == 2 and "this review allows approve, reject; not edit" in output
            code, output = await baton(kafka, "approve", first.token, "--output", '{"score": 5}',
                                       "--reviewer", "ana", "--comment", "accurate")
            assert code == 0 and output.startswith("approved: state 'Review' of"), output
            code, output = await baton(kafka, "edit", second.token, "--output", '"Your burst pipe is covered."',
                                       "--reviewer", "bo")
            assert code == 0, output

            outcomes = await client.wait([approved, edited], timeout=30)
            assert outcomes[approved].status == "SUCCEEDED"
            assert outcomes[approved].output["review"] == {
                "decision": "approve", "approved": True, "reviewer": "ana", "comment": "accurate", "score": 5}
            assert outcomes[edited].output["review"] == {
                "decision": "edit", "approved": True, "content": "Your burst pipe is covered.", "reviewer": "bo"}
            assert not [r for r in await pending_reviews(kafka) if r.execution_id in (approved, edited)]
            code, output = await baton(kafka, "approve", first.token)  # decided: no longer pending
            assert code == 2 and "no pending review has this token" in output

    asyncio.run(scenario())


def test_a_review_rejected_with_the_cli_and_a_forged_token_refused(kafka: KafkaSettings) -> None:
    """A decision with a forged token goes to the DLQ and changes nothing; `reject` fails the Task
    with Review.Rejected, which the definition catches; a replayed decision changes nothing."""
    definition = review(["approve", "reject"], Catch=[
        {"ErrorEquals": ["Review.Rejected"], "ResultPath": "$.rejection", "Next": "Redraft"}])
    definition["States"]["Redraft"] = {"Type": "Pass", "Result": "redraft", "ResultPath": "$.next", "End": True}

    async def scenario() -> None:
        async with running(kafka), RuntimeClient(kafka) as client:
            execution_id = await client.start(definition, {"draft": "Floods are always covered.", "customer": "cy"})
            pending = await pending_for(kafka, execution_id)
            task_id = pending.details.task_id
            forged = TokenSigner(b"not-the-orchestrators-secret!").sign(execution_id, task_id)
            await post_decision(kafka, approve(forged, reviewer="mallory"))

            code, output = await baton(kafka, "reject", pending.token, "--error", "Review.Rejected",
                                       "--cause", "Floods need the Flood Extension.", "--reviewer", "dee")
            assert code == 0 and output.startswith("rejected (Review.Rejected): state 'Review'"), output
            outcome = (await client.wait([execution_id], timeout=30))[execution_id]
            assert outcome.status == "SUCCEEDED", outcome
            assert outcome.output["rejection"] == {"Error": "Review.Rejected",
                                                   "Cause": "Floods need the Flood Extension."}
            assert outcome.output["next"] == "redraft" and "review" not in outcome.output

            code, output = await baton(kafka, "approve", pending.token, "--no-check")  # a replay, posted anyway
            assert code == 2 and "no longer waiting" in output, output  # the orchestrator refused it
            async def replay_refused() -> bool:  # a reused token goes to the DLQ too, with its reason
                return len(await client.dead_letters()) >= 2

            await eventually(replay_refused, timeout=15)
            letters = await client.dead_letters()
            assert sorted(d.reason.split(":")[0] for d in letters) == ["invalid_task_token", "stale_task_token"]
            assert letters[0].reason.startswith("invalid_task_token")
            assert letters[0].source_topic == kafka.topics.review_decisions
            history = [e["type"] for e in (await client.history())[execution_id]]
            assert history.count("TaskFailed") == 1 and "TaskSucceeded" not in history

    asyncio.run(scenario())


def test_heartbeat_timeout_is_catchable_and_heartbeats_keep_a_review_alive(kafka: KafkaSettings) -> None:
    """HeartbeatSeconds elapses with no heartbeat: States.HeartbeatTimeout, caught. A reviewer who
    sends `baton review heartbeat` keeps the review open past HeartbeatSeconds, then approves."""
    silent = review(["approve"], HeartbeatSeconds=2, Catch=[
        {"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.timeout", "Next": "Escalate"}])
    silent["States"]["Escalate"] = {"Type": "Pass", "Result": "escalated", "ResultPath": "$.next", "End": True}
    attended = review(["approve"], HeartbeatSeconds=4)

    async def scenario() -> None:
        async with running(kafka), RuntimeClient(kafka) as client:
            quiet = await client.start(silent, {"draft": "d", "customer": "ed"})
            busy = await client.start(attended, {"draft": "d", "customer": "flo"})
            busy_review = await pending_for(kafka, busy)
            for _ in range(4):  # ~1.4 s apart: over 5 s in all, past HeartbeatSeconds, each well within it
                code, output = await baton(kafka, "heartbeat", busy_review.token, "--no-check")
                assert code == 0, output
                await asyncio.sleep(1.0)
            outcome = (await client.wait([quiet], timeout=30))[quiet]
            assert outcome.status == "SUCCEEDED" and outcome.output["next"] == "escalated"
            assert outcome.output["timeout"]["Error"] == "States.HeartbeatTimeout"
            assert busy not in client.outcomes
            code, output = await baton(kafka, "approve", busy_review.token)  # still pending: the check passes
            assert code == 0, output
            assert (await client.wait([busy], timeout=30))[busy].status == "SUCCEEDED"
            history = [e["type"] for e in (await client.history())[quiet]]
            assert "TaskTimedOut" in history

    asyncio.run(scenario())
