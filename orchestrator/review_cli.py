"""`baton review list | approve | edit | reject | heartbeat`: act on human-review requests.

    baton review list                                   # pending reviews, each with its TOKEN
    baton review approve TOKEN [--output '{"score": 5}'] [--comment C]
    baton review edit TOKEN --output '"the corrected text"'
    baton review reject TOKEN [--error Review.Rejected] [--cause "tone is off"]
    baton review heartbeat TOKEN                        # still deciding: restart HeartbeatSeconds

What each decision makes of the Task's result is in `steps/review/decisions.py` (approve:
`{"decision": "approve", "approved": true, ...output}`; edit: `{..., "content": OUTPUT}`; reject:
the Task fails with the error and cause). Before posting, the command checks that the review is
still pending and allows that decision (`--no-check` skips this: the orchestrator is the judge
either way, and ignores a decision for a task it no longer awaits). `--output` takes JSON text
or @file. Every failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from orchestrator.api.readmodel import ReadModelError, kafka_errors
from orchestrator.cli import fail, parse_json_arg, print_json
from orchestrator.control_cli import json_option, kafka_options, kafka_settings
from orchestrator.kafka_errors import explain_wrapped
from orchestrator.runtime.tokens import InvalidToken
from orchestrator.settings import KafkaSettings
from schemas.review import ReviewDecision
from steps.review import decisions
from steps.review.inbox import PendingReview, ReviewInboxError, find_pending, pending_reviews, post_decision

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
_CONTENT_WIDTH = 300


def _run(work: Coroutine[Any, Any, T], settings: KafkaSettings) -> T:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one-line error below says it better
    try:
        with kafka_errors(settings):
            return asyncio.run(work)
    except (ReadModelError, ReviewInboxError) as exc:
        fail(explain_wrapped(exc, settings))  # a refused login or certificate: say which, and the fix


def _default_reviewer() -> str | None:
    try:
        return os.environ.get("BATON_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return None


def _decision_options(command: F) -> F:
    command = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
                           help="Seconds to read Kafka for the pending-review check.")(command)
    command = click.option("--no-check", is_flag=True,
                           help="Post without checking that the review is pending and allows this decision.")(command)
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


def _post(decision: ReviewDecision, *, check: bool, timeout: float, bootstrap: str | None,
          topic_prefix: str | None) -> PendingReview | None:
    settings = kafka_settings(bootstrap, topic_prefix)
    name = decisions.decision_name(decision)

    async def work() -> PendingReview | None:
        review = None
        if check:
            review = await find_pending(settings, decision.task_token, timeout)
            if review is None:
                raise ReviewInboxError(
                    "no pending review has this token: it was decided, timed out or its execution ended "
                    "(`baton review list` shows what is pending; --no-check posts anyway)")
            if name is not None and name not in review.details.decisions:
                raise ReviewInboxError(f"this review allows {', '.join(review.details.decisions)}; not {name}")
        await post_decision(settings, decision)
        return review

    return _run(work(), settings)


def _done(what: str, decision: ReviewDecision, review: PendingReview | None) -> None:
    where = f"state {review.request.state_name!r} of " if review is not None else ""
    click.echo(f"{what}: {where}{decision.execution_id}")


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
            timeout: float, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Approve: the review task succeeds."""
    extra = parse_json_arg(output, "--output") if output is not None else None
    decision = _build(lambda: decisions.approve(token, extra, reviewer=reviewer, comment=comment))
    review_ = _post(decision, check=not no_check, timeout=timeout, bootstrap=bootstrap, topic_prefix=topic_prefix)
    _done("approved", decision, review_)


@review.command()
@click.argument("token")
@click.option("--output", "content", required=True,
              help="The edited content, any JSON (JSON text or @file); the result's `content`.")
@click.option("--comment", help="A note recorded in the result.")
@_decision_options
def edit(token: str, content: str, comment: str | None, reviewer: str | None, no_check: bool, timeout: float,
         bootstrap: str | None, topic_prefix: str | None) -> None:
    """Approve with changes: the review task succeeds with the edited content."""
    value = parse_json_arg(content, "--output")
    decision = _build(lambda: decisions.edit(token, value, reviewer=reviewer, comment=comment))
    review_ = _post(decision, check=not no_check, timeout=timeout, bootstrap=bootstrap, topic_prefix=topic_prefix)
    _done("edited", decision, review_)


@review.command()
@click.argument("token")
@click.option("--error", default=decisions.REJECTED, show_default=True,
              help="The error the task fails with (what a Catch matches).")
@click.option("--cause", help="Why (default: \"rejected by REVIEWER\").")
@_decision_options
def reject(token: str, error: str, cause: str | None, reviewer: str | None, no_check: bool, timeout: float,
           bootstrap: str | None, topic_prefix: str | None) -> None:
    """Reject: the review task fails with ERROR and CAUSE."""
    decision = _build(lambda: decisions.reject(token, error=error, cause=cause, reviewer=reviewer))
    review_ = _post(decision, check=not no_check, timeout=timeout, bootstrap=bootstrap, topic_prefix=topic_prefix)
    _done(f"rejected ({decision.error})", decision, review_)


@review.command()
@click.argument("token")
@_decision_options
def heartbeat(token: str, reviewer: str | None, no_check: bool, timeout: float, bootstrap: str | None,
              topic_prefix: str | None) -> None:
    """Still deciding: restart the task's HeartbeatSeconds clock."""
    decision = _build(lambda: decisions.heartbeat(token, reviewer=reviewer))
    review_ = _post(decision, check=not no_check, timeout=timeout, bootstrap=bootstrap, topic_prefix=topic_prefix)
    _done("heartbeat sent", decision, review_)
