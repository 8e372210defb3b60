"""`baton validate`, `baton execute` and `baton test-state`: a definition run in-process. Here too
what execute and test-state share for running integrations in-process: the
options (`--llm-config`, `--connections`, `--stream`, `--cache`, `--no-integrations`), results
given per state (`--result STATE=JSON`), the review asked on the terminal, and the per-state
usage table (model, tokens, cost, latency) printed after a run."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from orchestrator.asl.execution import RunTask, TaskFailed, TaskSucceeded
from orchestrator.asl.model import StateMachine, load_document
from orchestrator.cli._shared import (
    fail,
    load_machine,
    load_mocks,
    load_step_modules,
    parse_budget_arg,
    parse_json_arg,
    print_json,
    read_text,
    state_machine_name,
)
from orchestrator.local.runner import Answer
from orchestrator.local.usage import usage_rows
from steps.inprocess import IntegrationUnavailable, LocalIntegrations, LocalIntegrationsConfig

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


@click.command()
@click.argument("file")
def validate(file: str) -> None:
    """Check a state machine definition (JSON or YAML); list every problem with its JSON path."""
    machine = load_machine(file)
    counts: dict[str, int] = {}

    def count(m: StateMachine) -> None:
        for state in m.states.values():
            counts[state.type] = counts.get(state.type, 0) + 1
            for branch in state.branches:
                count(branch)
            if state.processor is not None:
                count(state.processor)

    count(machine)
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
    click.echo(f"{file}: valid ({machine.query_language}); StartAt {machine.start_at!r}; states: {summary}")


@click.command()
@click.argument("file")
@click.option("--input", "input_", default="{}", help="Execution input: JSON text or @file.")
@click.option("--mock-config", help="A Step Functions Local MockConfigFile (JSON or YAML).")
@click.option("--test-case", help="The test case of the mock config to use.")
@click.option("--state-machine", help="The state machine's name in the mock config (default: the only one).")
@click.option("--steps", "steps_modules", multiple=True, help="A Python module of @step functions (repeatable).")
@click.option("--name", help="The execution name (default: a UUID).")
@click.option("--real-time", is_flag=True, help="Wait and back off in real time instead of a virtual clock.")
@click.option("--history", "with_history", is_flag=True, help="Include the execution history.")
@click.option("--result", "results", multiple=True, metavar="STATE=JSON",
              help="Answer every Task of STATE with this result (repeatable), e.g. a human review.")
@click.option("--local", is_flag=True, default=True, hidden=True, help="Run in-process (the default).")
@click.option("--budget", "budget_", metavar="JSON",
              help='The execution\'s budget, e.g. \'{"MaxTokens": 20000, "MaxCost": 0.5}\' (docs/budgets.md).')
@integration_options
def execute(
    file: str, input_: str, mock_config: str | None, test_case: str | None, state_machine: str | None,
    steps_modules: tuple[str, ...], name: str | None, real_time: bool, with_history: bool,
    results: tuple[str, ...], local: bool, budget_: str | None, **integration: Any,
) -> None:
    """Run a whole state machine locally; print {"status", "output", "error", "cause"}.

    LLM, HTTP and retrieval Tasks run in-process with the step services' own code (the offline
    model if no provider is configured); a human review is answered by --result, a mock config,
    or, on a terminal, by you. The per-state model, tokens and cost go to stderr."""
    from orchestrator.local.runner import LocalRunError, TaskResolver, run_execution
    from orchestrator.settings import Quotas

    machine = load_machine(file)
    execution_input = parse_json_arg(input_, "--input")
    budget = parse_budget_arg(budget_)
    definition = load_document(read_text(file))
    answers = given_results(results, parse_json_arg)
    answers.update(review_prompts(definition, answers))  # a mock config's answer still comes first
    integrations = make_integrations(file, definition, **integration)
    resolver = TaskResolver(steps=load_step_modules(steps_modules), integrations=integrations, answers=answers,
                            mocks=load_mocks(mock_config, test_case, state_machine))

    async def run() -> Any:
        try:
            return await run_execution(machine, execution_input, resolver=resolver,
                                       state_machine_name=state_machine_name(file),
                                       execution_name=name, real_time=real_time, limits=Quotas().decider_limits(),
                                       budget=budget)
        finally:
            if integrations is not None:
                await integrations.aclose()

    try:
        result = asyncio.run(run())
    except (LocalRunError, IntegrationUnavailable) as exc:
        fail(str(exc))
    print_usage(usage_rows(result.history))
    print_json(result.as_dict(with_history))
    sys.exit(0 if result.status == "SUCCEEDED" else 1)


@click.command("test-state")
@click.argument("file")
@click.option("--state", "state_name", required=True, help="The state to run.")
@click.option("--input", "input_", default="{}", help="The state's input: JSON text or @file.")
@click.option("--result", help="The task's result (JSON text or @file), for a Task state.")
@click.option("--error", help="Make the task fail with this error name.")
@click.option("--cause", help="The cause that goes with --error.")
@click.option("--variables", help="Workflow variables the state sees (a JSON object, or @file).")
@click.option("--mock-config", help="A MockConfigFile answering tasks not given by --result/--error.")
@click.option("--test-case", help="The test case of the mock config to use.")
@click.option("--state-machine", help="The state machine's name in the mock config.")
@click.option("--steps", "steps_modules", multiple=True, help="A Python module of @step functions.")
@integration_options
def test_state_command(
    file: str, state_name: str, input_: str, result: str | None, error: str | None, cause: str | None,
    mock_config: str | None, test_case: str | None, state_machine: str | None, steps_modules: tuple[str, ...],
    variables: str | None = None, **integration: Any,
) -> None:
    """Run one state with a given input; show the data after each processing stage.

    An LLM, HTTP or retrieval Task calls the real integration in-process (the step services'
    code); inspectionData adds the rendered prompt, model, tokens, latency and cost, or the
    HTTP request sent and its status."""
    from orchestrator.local.runner import LocalRunError, TaskResolver
    from orchestrator.local.test_state import GivenOutcome, run_test_state

    if result is not None and error is not None:
        fail("give either --result or --error, not both")
    machine = load_machine(file)
    given = GivenOutcome(
        result=parse_json_arg(result, "--result") if result is not None else None,
        has_result=result is not None, error=error, cause=cause,
    )
    integrations = make_integrations(file, load_document(read_text(file)), **integration)
    resolver = TaskResolver(steps=load_step_modules(steps_modules), integrations=integrations,
                            mocks=load_mocks(mock_config, test_case, state_machine))
    initial = parse_json_arg(variables, "--variables") if variables is not None else None
    if initial is not None and not isinstance(initial, dict):
        fail("--variables must be a JSON object")

    async def run() -> Any:
        try:
            return await run_test_state(machine, state_name, parse_json_arg(input_, "--input"),
                                        given=given, resolver=resolver, variables=initial)
        finally:
            if integrations is not None:
                await integrations.aclose()

    try:
        report = asyncio.run(run())
    except (LocalRunError, IntegrationUnavailable) as exc:
        fail(str(exc))
    if integration.get("stream"):
        click.echo("", err=True)
    print_json(report)
    sys.exit(0 if report["status"] in ("SUCCEEDED", "CAUGHT_ERROR") else 1)
