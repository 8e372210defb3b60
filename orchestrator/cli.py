"""The `baton` command. Thin: parse arguments, call the module that does the work, print."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.model import StateMachine, load_document, parse_definition
from orchestrator.local_cli import (
    given_results,
    integration_options,
    make_integrations,
    print_usage,
    review_prompts,
    usage_rows,
)
from steps.inprocess import IntegrationUnavailable

if TYPE_CHECKING:
    from orchestrator.settings import Quotas

VERBOSE = {"on": False}  # `baton -v`: a failure's line comes after its traceback


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr and a non-zero exit: never a traceback for a user's mistake
    (with `baton -v`, the traceback of the exception being handled comes first)."""
    if VERBOSE["on"] and sys.exc_info()[1] is not None:
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def state_machine_name(path: str) -> str:
    """The name a definition file's state machine gets: its folder's for a `definition.json` (or
    .yaml), so examples/genai/travel/definition.json is "travel", not "definition"; else the file's."""
    file = Path(path).resolve()
    return file.parent.name if file.stem.lower() == "definition" and file.parent.name else file.stem


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")


def load_machine(path: str) -> StateMachine:
    from orchestrator.cli_errors import document_problem

    text = read_text(path)
    try:
        return parse_definition(load_document(text))
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(f"{path}: {problem}", err=True)
        fail(f"{path}: invalid definition ({len(exc.problems)} problem(s))")
    except RecursionError:
        fail(f"{path}: the definition nests too deeply")
    except ValueError as exc:
        fail(document_problem(path, text, exc))


def quotas() -> Quotas:
    """The environment's quotas (BATON_MAX_*), or one line naming the bad variable."""
    from pydantic import ValidationError

    from orchestrator.settings import Quotas

    try:
        return Quotas()
    except ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        fail(f"invalid BATON_{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}")


def parse_json_arg(value: str, what: str) -> Any:
    """A JSON value given inline or as @file (nested at most Quotas.max_json_depth deep: deeper
    text is refused before a recursive parser sees it)."""
    from orchestrator.quotas import QuotaExceeded, check_json_depth

    text = read_text(value[1:]) if value.startswith("@") else value
    try:
        check_json_depth(text, quotas(), what)
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc}")
    except QuotaExceeded as exc:
        fail(str(exc))


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


class _LazyGroup(click.Group):
    """Commands of the Kafka side are imported only when used, so `baton execute` starts fast."""

    lazy = {
        **{name: f"orchestrator.control_cli:{name}" for name in
           ("start", "describe", "history", "stop", "redrive")},
        "list": "orchestrator.control_cli:list_executions",
        "kafka": "orchestrator.kafka_cli:kafka",
        "asyncapi": "orchestrator.kafka_cli:asyncapi",
        "step": "steps.cli:step",
        "review": "orchestrator.review_cli:review",
        "kb": "orchestrator.kb_cli:kb",
        "model": "orchestrator.model_cli:model",
        "stream": "orchestrator.stream_cli:stream",
        "llm": "steps.llm.cli:llm",
        "dev": "orchestrator.dev:dev",
        "demo": "orchestrator.demo:demo",
        "graph": "orchestrator.graph_cli:graph",
        "api": "orchestrator.api_cli:api",
        "bench": "bench.cli:bench",
        "eval": "orchestrator.eval_cli:eval_group",
        "tokens": "orchestrator.tokens_cli:tokens",
        **{name: f"orchestrator.registry_cli:{attribute}" for name, attribute in
           (("deploy", "deploy"), ("versions", "versions"), ("alias", "alias"), ("state-machines", "state_machines"),
            ("state-machine", "state_machine"), ("delete-version", "delete_version"))},
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a failure it did not report itself is still one line (its traceback with -v)."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last place a failure can become one line
            from orchestrator.cli_errors import failure_line

            fail(failure_line(exc))


@click.group(cls=_LazyGroup)
@click.option("-v", "--verbose", is_flag=True, envvar="BATON_VERBOSE",
              help="Show the traceback behind an error (env BATON_VERBOSE=1).")
def main(verbose: bool) -> None:
    """Baton: Amazon States Language workflows for generative AI, on Apache Kafka."""
    from kafka_io.explain import quiet_transient_kafka_errors

    VERBOSE["on"] = verbose
    quiet_transient_kafka_errors()


@main.command()
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


@main.command()
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
@integration_options
def execute(
    file: str, input_: str, mock_config: str | None, test_case: str | None, state_machine: str | None,
    steps_modules: tuple[str, ...], name: str | None, real_time: bool, with_history: bool,
    results: tuple[str, ...], local: bool, **integration: Any,
) -> None:
    """Run a whole state machine locally; print {"status", "output", "error", "cause"}.

    LLM, HTTP and retrieval Tasks run in-process with the step services' own code (the offline
    model if no provider is configured); a human review is answered by --result, a mock config,
    or, on a terminal, by you. The per-state model, tokens and cost go to stderr."""
    from orchestrator.local.runner import LocalRunError, TaskResolver, run_execution
    from orchestrator.settings import Quotas

    machine = load_machine(file)
    execution_input = parse_json_arg(input_, "--input")
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
                                       execution_name=name, real_time=real_time, limits=Quotas().decider_limits())
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


@main.command("test-state")
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


@main.command("orchestrator")
@click.option("--instance-id", help="Stable id of this instance (names its transactional producer).")
@click.option("--metrics-port", type=int, help="Serve /metrics on this port (default 9400; 0 = off).")
@click.option("--bootstrap", help="Kafka bootstrap servers (default: BATON_KAFKA_BOOTSTRAP or 127.0.0.1:9092).")
@click.option("--topic-prefix", help="Topic name prefix (default: BATON_TOPIC_PREFIX or baton).")
def orchestrator_command(instance_id: str | None, metrics_port: int | None, bootstrap: str | None,
                         topic_prefix: str | None) -> None:
    """Run the orchestrator service until SIGINT/SIGTERM."""
    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from kafka_io.explain import connection_failure, diagnose, explain, settings_problem
    from orchestrator.runtime.main import serve
    from kafka_io import KafkaSettings
    from orchestrator.settings import OrchestratorSettings

    try:
        kafka = KafkaSettings()
    except ValidationError as exc:
        fail(settings_problem(exc))
    if bootstrap:
        kafka = kafka.model_copy(update={"kafka_bootstrap": bootstrap})
    if topic_prefix:
        kafka = kafka.model_copy(update={"topic_prefix": topic_prefix})
    settings = OrchestratorSettings()
    if instance_id:
        settings = settings.model_copy(update={"instance_id": instance_id})
    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port or None})
    # Before the service starts: a refused login, an untrusted certificate or a port that wants
    # TLS is one line with its fix here, instead of aiokafka's "Unable to bootstrap" and a traceback.
    problem = diagnose(kafka)
    if problem:
        fail(problem)
    try:
        asyncio.run(serve(kafka, settings))
    except KafkaError as exc:
        fail(explain(exc, kafka))
    except OSError as exc:  # ssl errors too; or the metrics port is taken
        fail(explain(exc, kafka) if connection_failure(exc) else f"orchestrator: {exc}")


def load_step_modules(names: tuple[str, ...]) -> Any:
    from steps.sdk import load_steps

    sys.path.insert(0, str(Path.cwd()))
    try:
        return load_steps(list(names))
    except ImportError as exc:
        fail(f"cannot import steps module: {exc}")
    except Exception as exc:  # user code failing at import time
        fail(f"steps module failed to import: {type(exc).__name__}: {exc}")


def load_mocks(path: str | None, test_case: str | None, state_machine: str | None) -> Any:
    if path is None:
        if test_case:
            fail("--test-case needs --mock-config")
        return None
    from orchestrator.local.mock_config import parse_mock_config

    if not test_case:
        fail("--mock-config needs --test-case")
    try:
        config = parse_mock_config(load_document(read_text(path)))
        return config.test_case(state_machine, test_case)
    except KeyError as exc:
        fail(f"{path}: {exc.args[0]}")
    except ValueError as exc:
        fail(f"{path}: {exc}")


if __name__ == "__main__":
    main()
