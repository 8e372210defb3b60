"""The decisions a reviewer posts, and the task result each becomes (pure: no I/O).

    approve    outcome success; the Task's result is {"decision": "approve", "approved": true}
               plus "reviewer" and "comment" when given; `output` (a JSON object) is merged in,
               so a reviewer can add fields (a score, a note for the next state)
    edit       outcome success; {"decision": "edit", "approved": true, "content": <the edited
               content>} (+ reviewer, comment): the next state uses `content` instead of the draft
    reject     outcome failure with `error` (default "Review.Rejected") and `cause`: the Task
               fails, so a Catch on "Review.Rejected" (or States.TaskFailed / States.ALL) routes it
    heartbeat  outcome heartbeat: "still deciding", which restarts the HeartbeatSeconds clock

A decision is keyed by the execution its token names (read from the token, not verified here: the
orchestrator verifies the signature and that the task is still awaited).
"""

from __future__ import annotations

from typing import Any

from schemas.review import ReviewDecision
from schemas.tokens import InvalidToken, execution_of
from steps.review.task import Decision

REJECTED = "Review.Rejected"


def check_token(token: str) -> str:
    """The execution id a well-formed token names; InvalidToken (one line) for anything else."""
    token = token.strip()
    payload, dot, signature = token.partition(".")
    if not payload or not dot or not signature:
        raise InvalidToken("the task token is malformed: expected the PAYLOAD.SIGNATURE text that "
                           "`baton review list` shows")
    execution_id = execution_of(token)
    if not execution_id:
        raise InvalidToken("the task token is malformed: it names no execution")
    return execution_id


def _signed_off(result: dict[str, Any], reviewer: str | None, comment: str | None) -> dict[str, Any]:
    if reviewer:
        result["reviewer"] = reviewer
    if comment:
        result["comment"] = comment
    return result


def approve(token: str, output: Any = None, *, reviewer: str | None = None,
            comment: str | None = None) -> ReviewDecision:
    if output is not None and not isinstance(output, dict):
        raise ValueError("an approval's output must be a JSON object (it is merged into "
                         "{\"decision\": \"approve\", \"approved\": true}); to replace the content, use edit")
    result = _signed_off({"decision": "approve", "approved": True}, reviewer, comment)
    return ReviewDecision(execution_id=check_token(token), task_token=token.strip(), outcome="success",
                          output={**result, **(output or {})}, reviewer=reviewer)


def edit(token: str, content: Any, *, reviewer: str | None = None, comment: str | None = None) -> ReviewDecision:
    result = _signed_off({"decision": "edit", "approved": True, "content": content}, reviewer, comment)
    return ReviewDecision(execution_id=check_token(token), task_token=token.strip(), outcome="success",
                          output=result, reviewer=reviewer)


def reject(token: str, *, error: str = REJECTED, cause: str | None = None,
           reviewer: str | None = None) -> ReviewDecision:
    if not error.strip():
        raise ValueError("a rejection needs an error name, e.g. Review.Rejected")
    cause = cause or (f"rejected by {reviewer}" if reviewer else "rejected by the reviewer")
    return ReviewDecision(execution_id=check_token(token), task_token=token.strip(), outcome="failure",
                          error=error.strip(), cause=cause, reviewer=reviewer)


def heartbeat(token: str, *, reviewer: str | None = None) -> ReviewDecision:
    return ReviewDecision(execution_id=check_token(token), task_token=token.strip(), outcome="heartbeat",
                          reviewer=reviewer)


def decision_name(decision: ReviewDecision) -> Decision | None:
    """Which of the request's `Decisions` a posted decision uses (None for a heartbeat)."""
    if decision.outcome == "failure":
        return "reject"
    if decision.outcome == "success":
        output = decision.output if isinstance(decision.output, dict) else {}
        return "edit" if output.get("decision") == "edit" else "approve"
    return None
