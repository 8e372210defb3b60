"""What `baton execute` and `baton test-state` share for running integrations in-process: the
options (`--llm-config`, `--connections`, `--stream`, `--cache`, `--no-integrations`), results
given per state (`--result STATE=JSON`), the review asked on the terminal, and the per-state
usage table (model, tokens, cost, latency) printed after a run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from orchestrator.asl.execution import HistoryEvent, RunTask, TaskFailed, TaskSucceeded
from orchestrator.local.runner import Answer
from steps.inprocess import LocalIntegrations, LocalIntegrationsConfig

F = TypeVar("F", bound=Callable[..., Any])

REVIEW_RESOURCES = ("baton:review",)


def integration_options(function: F) -> F:
    """The options that configure the in-process integrations (llm, http, retrieval)."""
    options = [
        click.option("--llm-config", type=click.Path(dir_okay=False),
                     help="LLM providers, models, prices and prompt stores (default: $BATON_LLM_CONFIG_FILE; "
                          "none: the offline model, started on demand)."),
        click.option("--connections", type=click.Path(dir_okay=False),
                     help="HTTP connections file (default: $BATON_HTTP_CONNECTIONS, else connections.yaml "
                          "next to the definition)."),
        click.option("--stream", is_flag=True, help="Print every LLM answer's tokens as they come (to stderr)."),
        click.option("--cache", is_flag=True,
                     help="Reuse LLM answers of identical deterministic calls (temperature 0 or a seed)."),
        click.option("--no-integrations", is_flag=True,
                     help="Do not run llm, http and retrieval Tasks in-process (mocks and steps only)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def make_integrations(file: str, definition: Any, *, llm_config: str | None, connections: str | None,
                      stream: bool, cache: bool, no_integrations: bool) -> LocalIntegrations | None:
    if no_integrations:
        return None
    return LocalIntegrations(LocalIntegrationsConfig(
        llm_config=llm_config, connections=connections, definition=definition,
        definition_dir=Path(file).resolve().parent, stream_every_llm_task=stream,
        on_token=_print_token if stream else None, notice=lambda line: click.echo(f"baton: {line}", err=True),
        llm_overrides={"cache": {"enabled": True}} if cache else {}))


def _print_token(task_id: str, text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def given_results(pairs: Iterable[str], parse: Callable[[str, str], Any]) -> dict[str, Answer]:
    """`--result STATE=JSON` (repeatable): that state's Tasks succeed with the JSON as their result."""
    answers: dict[str, Answer] = {}
    for pair in pairs:
        state, sep, value = pair.partition("=")
        if not sep or not state:
            raise click.UsageError(f"--result {pair!r}: expected STATE=JSON, e.g. --result ReviewPlan='{{\"approved\": true}}'")
        answers[state] = _fixed(parse(value, f"--result {state}"))
    return answers


def _fixed(output: Any) -> Answer:
    async def answer(command: RunTask) -> TaskSucceeded | TaskFailed:
        return TaskSucceeded(task_id=command.task_id, output=output)
    return answer


def review_prompts(definition: Any, answered: Iterable[str]) -> dict[str, Answer]:
    """On a terminal, each human-review state not answered otherwise asks the person running it:
    approve, reject or edit (the result the review service would give)."""
    if not sys.stdin.isatty():
        return {}
    skip = set(answered)
    return {name: _ask for name, resource in review_states(definition) if name not in skip}


def review_states(definition: Any) -> list[tuple[str, str]]:
    """(state name, resource) of every `baton:review` Task, nested ones too."""
    found: list[tuple[str, str]] = []
    if isinstance(definition, dict):
        for name, state in (definition.get("States") or {}).items():
            if isinstance(state, dict):
                resource = str(state.get("Resource", ""))
                if resource.startswith(REVIEW_RESOURCES):
                    found.append((name, resource))
                for branch in state.get("Branches") or []:
                    found.extend(review_states(branch))
                for key in ("ItemProcessor", "Iterator"):
                    found.extend(review_states(state.get(key)))
    return found


async def _ask(command: RunTask) -> TaskSucceeded | TaskFailed:
    parameters = command.parameters if isinstance(command.parameters, dict) else {}
    click.echo(f"\n--- review: {command.state_name} ---", err=True)
    click.echo(str(parameters.get("Question") or "Approve?"), err=True)
    content = parameters.get("Content")
    if content is not None:
        click.echo(content if isinstance(content, str) else repr(content), err=True)
    choice = click.prompt("approve / reject / edit", type=click.Choice(["approve", "reject", "edit"]),
                          default="approve", err=True)
    if choice == "reject":
        cause = click.prompt("reason", default="rejected by the reviewer", err=True)
        return TaskFailed(task_id=command.task_id, error="Review.Rejected", cause=cause)
    if choice == "edit":
        edited = click.edit(content if isinstance(content, str) else None) or content
        return TaskSucceeded(task_id=command.task_id,
                             output={"decision": "edit", "approved": True, "content": edited})
    return TaskSucceeded(task_id=command.task_id, output={"decision": "approve", "approved": True})


def usage_rows(history: list[HistoryEvent]) -> list[dict[str, Any]]:
    """One row per finished Task that reported usage: state, model, tokens, cost, latency."""
    events: dict[int, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for event in history:
        data = event.as_aws()
        events[data["id"]] = data
        for key in ("taskSucceededEventDetails", "taskFailedEventDetails"):
            details = data.get(key)
            if isinstance(details, dict) and isinstance(details.get("metadata"), dict):
                metadata = details["metadata"]
                rows.append({"state": _state_of(data, events), "model": metadata.get("model"),
                             "input_tokens": metadata.get("input_tokens"),
                             "output_tokens": metadata.get("output_tokens"),
                             "cost_usd": metadata.get("cost_usd"), "cache": metadata.get("cache"),
                             "ms": metadata.get("latency_ms", metadata.get("duration_ms")),
                             "failed": key.startswith("taskFailed")})
    return rows


def _state_of(event: dict[str, Any], events: dict[int, dict[str, Any]]) -> str:
    """The state a task event belongs to: up its previousEventId chain to the StateEntered."""
    seen = 0
    while event is not None and seen < 64:
        if str(event.get("type", "")).endswith("StateEntered"):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), None)
            if isinstance(details, dict):
                return str(details.get("name"))
        event = events.get(event.get("previousEventId", -1))  # type: ignore[assignment]
        seen += 1
    return "?"


def print_usage(rows: list[dict[str, Any]]) -> None:
    """The per-state table, then the totals (stderr, so stdout stays the JSON result)."""
    if not rows:
        return
    width = max(len("state"), *(len(r["state"]) for r in rows))
    click.echo(f"{'state':<{width}}  {'model':<12} {'in':>6} {'out':>6} {'cost $':>10} {'ms':>9}", err=True)
    for row in rows:
        cost = row["cost_usd"]
        click.echo(f"{row['state']:<{width}}  {str(row['model'] or '-'):<12} {row['input_tokens'] or 0:>6} "
                   f"{row['output_tokens'] or 0:>6} {cost if cost is not None else '-':>10} "
                   f"{row['ms'] or 0:>9.0f}{'  (cached)' if row['cache'] == 'hit' else ''}"
                   f"{'  FAILED' if row['failed'] else ''}", err=True)
    total_cost = sum(r["cost_usd"] or 0 for r in rows)
    click.echo(f"{'total':<{width}}  {'':<12} {sum(r['input_tokens'] or 0 for r in rows):>6} "
               f"{sum(r['output_tokens'] or 0 for r in rows):>6} {round(total_cost, 6):>10} "
               f"{sum(r['ms'] or 0 for r in rows):>9.0f}", err=True)
