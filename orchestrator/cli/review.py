"""`baton review list | approve | edit | reject | heartbeat`: act on human-review requests.

    baton review list                                   # pending reviews, each with its TOKEN
    baton review approve TOKEN [--output '{"score": 5}'] [--comment C]
    baton review edit TOKEN --output '"the corrected text"'
    baton review reject TOKEN [--error Review.Rejected] [--cause "tone is off"]
    baton review heartbeat TOKEN                        # still deciding: restart HeartbeatSeconds

What each decision makes of the Task's result is in `steps/review/decisions.py` (approve:
`{"decision": "approve", "approved": true, ...output}`; edit: `{..., "content": OUTPUT}`; reject:
the Task fails with the error and cause). Before posting, the command checks the token's signature
(with BATON_TOKEN_SECRET, the orchestrators' secret), that its execution exists, that the task
still waits and that the review allows that decision (`--no-check` skips these: the orchestrator
is the judge either way, and refuses a decision for a task it no longer awaits). After posting it
waits up to `--wait` seconds (BATON_DECISION_WAIT_SECONDS) for the orchestrator: "(applied)", or
"(accepted, not yet applied ...)"; a decision the orchestrator refuses is an error
(`orchestrator.client.callbacks`). `--output` takes JSON text or @file. Every failure is one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from pydantic import SecretStr, ValidationError

from kafka_io import KafkaSettings
from kafka_io.explain import explain_wrapped
from orchestrator.cli._shared import fail, kafka_settings, parse_json_arg, print_json, quotas
from orchestrator.cli.control import json_option, kafka_options, run
from orchestrator.client.callbacks import (
    Outcome,
    OutcomeWatch,
    awaited_tasks,
    describe_outcome,
    not_waiting,
    unknown_execution,
    verify_token,
)
from orchestrator.client.reviews import PendingReview, ReviewInboxError, find_pending, pending_reviews, post_decision
from orchestrator.quotas import check_payload
from orchestrator.settings import DecisionSettings, OrchestratorSettings
from schemas.review import ReviewDecision
from schemas.tokens import InvalidToken
from steps.review import decisions

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
_CONTENT_WIDTH = 300


def _run(work: Coroutine[Any, Any, T], settings: KafkaSettings) -> T:
    try:
        return run(work, settings)  # Kafka, quota and token failures: one line there
    except ReviewInboxError as exc:
        fail(explain_wrapped(exc, settings))  # a refused login or certificate: say which, and the fix


def _token_secret() -> SecretStr:
    try:
        return OrchestratorSettings().token_secret
    except ValidationError as exc:
        fail(f"invalid BATON_* environment: {exc.errors()[0]['msg']}")


def _default_wait() -> float:
    try:
        return DecisionSettings().decision_wait_seconds
    except ValidationError as exc:
        fail(f"invalid BATON_DECISION_WAIT_SECONDS: {exc.errors()[0]['msg']}")


def _default_reviewer() -> str | None:
    try:
        return os.environ.get("BATON_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return None


def _decision_options(command: F) -> F:
    command = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
                           help="Seconds to read Kafka for the pending-review check.")(command)
    command = click.option("--no-check", is_flag=True,
                           help="Post without checking the token, that the review is pending and that it allows "
                                "this decision.")(command)
    command = click.option("--wait", type=click.FloatRange(min=0), default=_default_wait, show_default="5",
                           help="Seconds to wait for the orchestrator to apply the decision "
                                "(default: BATON_DECISION_WAIT_SECONDS or 5).")(command)
    command = click.option("--reviewer", default=_default_reviewer,
                           help="Who decides (default: $BATON_REVIEWER or the user name).")(command)
    return kafka_options(command)


def _build(make: Callable[[], ReviewDecision]) -> ReviewDecision:
    try:
        return make()
    except InvalidToken as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))


@dataclass(frozen=True)
class _Posted:
    review: PendingReview | None  # None with --no-check, or for a callback task that is no review
    outcome: Outcome
    wait: float


async def _check(settings: KafkaSettings, decision: ReviewDecision, timeout: float) -> PendingReview | None:
    """What the orchestrator will check, checked first: the signature, the execution, that the task
    still waits (from the state topic), and that the review allows this decision."""
    execution_id, task_id = verify_token(decision.task_token, _token_secret())
    try:
        awaited = await awaited_tasks(settings, execution_id, timeout)
    except TimeoutError as exc:
        raise ReviewInboxError(f"{exc}; try a longer --timeout") from None
    if awaited is None:
        raise unknown_execution(execution_id)
    if task_id not in awaited:
        refused = not_waiting(execution_id)
        raise ReviewInboxError(f"no pending review has this token: {refused} (`baton review list` shows what "
                               "is pending)")
    review = await find_pending(settings, decision.task_token, timeout)
    name = decisions.decision_name(decision)
    if review is not None and name is not None and name not in review.details.decisions:
        raise ReviewInboxError(f"this review allows {', '.join(review.details.decisions)}; not {name}")
    return review


def _post(decision: ReviewDecision, *, check: bool, timeout: float, wait: float, bootstrap: str | None,
          topic_prefix: str | None) -> _Posted:
    settings = kafka_settings(bootstrap, topic_prefix)
    limits = quotas()

    async def work() -> _Posted:
        if decision.outcome == "success":
            check_payload(decision.output, limits, "the decision's output")
        review = await _check(settings, decision, timeout) if check else None
        async with OutcomeWatch(settings) as watch:
            posted = await post_decision(settings, decision)
            return _Posted(review, await watch.outcome(posted.partition, posted.offset, wait), wait)

    return _run(work(), settings)


def _done(what: str, decision: ReviewDecision, posted: _Posted) -> None:
    review = posted.review
    where = f"state {review.request.state_name!r} of " if review is not None else ""
    click.echo(f"{what}: {where}{decision.execution_id} ({describe_outcome(posted.outcome, posted.wait)})")


@click.group()
def review() -> None:
    """Human review: list pending requests and post decisions with their task token."""


@review.command(name="list")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds to read Kafka before giving up.")
@json_option
@kafka_options
def list_(timeout: float, as_json: bool, bootstrap: str | None, topic_prefix: str | None) -> None:
    """The reviews waiting for a decision, oldest first, each with the TOKEN to decide it."""
    settings = kafka_settings(bootstrap, topic_prefix)
    pending = _run(pending_reviews(settings, timeout), settings)
    if as_json:
        print_json([review.as_json() for review in pending])
        return
    if not pending:
        click.echo("no pending reviews")
        return
    for review_ in pending:
        details = review_.details
        when = f"requested {review_.request.timestamp.isoformat(timespec='seconds')}"
        if details.deadline is not None:
            when += f", deadline {details.deadline.isoformat(timespec='seconds')}"
        if details.heartbeat_seconds:
            when += f", heartbeat every {details.heartbeat_seconds:g} s"
        click.echo(f"- {review_.request.state_name} of {review_.execution_id} ({when})")
        fields: list[tuple[str, Any]] = [("question", details.question), ("instructions", review_.request.instructions),
                                          ("content", details.content), ("context", details.context),
                                          ("decisions", ", ".join(details.decisions))]
        for label, value in fields:
            if value is not None:
                text = " ".join((value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)).split())
                click.echo(f"  {label + ':':<13} {text[:_CONTENT_WIDTH]}{'...' if len(text) > _CONTENT_WIDTH else ''}")
        click.echo(f"  {'token:':<13} {review_.token}")


@review.command()
@click.argument("token")
@click.option("--output", help="A JSON object merged into the result {\"decision\": \"approve\", \"approved\": true} "
                               "(JSON text or @file).")
@click.option("--comment", help="A note recorded in the result.")
@_decision_options
def approve(token: str, output: str | None, comment: str | None, reviewer: str | None, no_check: bool,
            timeout: float, wait: float, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Approve: the review task succeeds."""
    extra = parse_json_arg(output, "--output") if output is not None else None
    decision = _build(lambda: decisions.approve(token, extra, reviewer=reviewer, comment=comment))
    posted = _post(decision, check=not no_check, timeout=timeout, wait=wait, bootstrap=bootstrap,
                   topic_prefix=topic_prefix)
    _done("approved", decision, posted)


@review.command()
@click.argument("token")
@click.option("--output", "content", required=True,
              help="The edited content, any JSON (JSON text or @file); the result's `content`.")
@click.option("--comment", help="A note recorded in the result.")
@_decision_options
def edit(token: str, content: str, comment: str | None, reviewer: str | None, no_check: bool, timeout: float,
         wait: float, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Approve with changes: the review task succeeds with the edited content."""
    value = parse_json_arg(content, "--output")
    decision = _build(lambda: decisions.edit(token, value, reviewer=reviewer, comment=comment))
    posted = _post(decision, check=not no_check, timeout=timeout, wait=wait, bootstrap=bootstrap,
                   topic_prefix=topic_prefix)
    _done("edited", decision, posted)


@review.command()
@click.argument("token")
@click.option("--error", default=decisions.REJECTED, show_default=True,
              help="The error the task fails with (what a Catch matches).")
@click.option("--cause", help="Why (default: \"rejected by REVIEWER\").")
@_decision_options
def reject(token: str, error: str, cause: str | None, reviewer: str | None, no_check: bool, timeout: float,
           wait: float, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Reject: the review task fails with ERROR and CAUSE."""
    decision = _build(lambda: decisions.reject(token, error=error, cause=cause, reviewer=reviewer))
    posted = _post(decision, check=not no_check, timeout=timeout, wait=wait, bootstrap=bootstrap,
                   topic_prefix=topic_prefix)
    _done(f"rejected ({decision.error})", decision, posted)


@review.command()
@click.argument("token")
@_decision_options
def heartbeat(token: str, reviewer: str | None, no_check: bool, timeout: float, wait: float,
              bootstrap: str | None, topic_prefix: str | None) -> None:
    """Still deciding: restart the task's HeartbeatSeconds clock."""
    decision = _build(lambda: decisions.heartbeat(token, reviewer=reviewer))
    posted = _post(decision, check=not no_check, timeout=timeout, wait=wait, bootstrap=bootstrap,
                   topic_prefix=topic_prefix)
    _done("heartbeat sent", decision, posted)
