"""`baton start | describe | history | stop | list | redrive`: the running system, from a terminal.

Requests go to the start topic, keyed by the execution id, through `orchestrator.client.BatonClient`.
Answers come from the read model (`orchestrator.api.readmodel`), caught up from Kafka before each
read, so executions of every orchestrator instance are visible. `start --wait` follows the events
topic instead, from its end as of just before the start is published, so the answer cannot be
missed. Every failure is one line on stderr and a non-zero exit.

The commands are registered in `orchestrator.cli` (`main.add_command`); they import that module
lazily, so either module can be imported first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import ssl
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from kafka_io import KafkaFailure, KafkaSettings, kafka_errors
from kafka_io.explain import explain, explain_wrapped
from kafka_io.payloads import offloaded_limit
from orchestrator.api.readmodel import (
    DEFAULT_PATH,
    TERMINAL_STATUSES,
    AmbiguousExecution,
    ExecutionView,
    ReadModel,
    ReadModelError,
    default_path,
)
from orchestrator.cli._shared import (
    fail,
    kafka_settings,
    parse_budget_arg,
    parse_json_arg,
    print_json,
    quotas,
    state_machine_name,
)
from orchestrator.cli.printing import event_details, print_execution, print_table
from orchestrator.client import (
    NAME_MAX,
    NAME_SYMBOLS,
    BatonClient,
    DecisionRefused,
    NoOrchestrator,
    StateMachineNotFound,
    WaitTimedOut,
    input_quotas,
    valid_name,
)
from orchestrator.quotas import QuotaExceeded, check_definition, check_payload
from schemas.errors import BatonError
from schemas.executions import ExecutionStatus

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")
_DEFINITION_SUFFIXES = {".json", ".yaml", ".yml", ".asl"}


class CommandError(BatonError):
    """A failure met while talking to Kafka that the user can act on (one line)."""


# ------------------------------------------------------------ options


def kafka_options(command: F) -> F:
    """--bootstrap and --topic-prefix, defaulting to KafkaSettings (BATON_* environment)."""
    command = click.option("--topic-prefix", help="Topic name prefix (default: BATON_TOPIC_PREFIX or baton).")(command)
    command = click.option("--bootstrap", help="Kafka bootstrap servers (default: BATON_KAFKA_BOOTSTRAP or "
                                               "127.0.0.1:9092).")(command)
    return command


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(command)


def read_model_options(command: F) -> F:
    """Where the read model lives and how long to catch it up before answering."""
    command = click.option("--catch-up-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
                           show_default=True, help="Seconds to read Kafka before answering.")(command)
    command = click.option("--db", envvar="BATON_READMODEL_PATH",
                           help=f"The read model's SQLite file (env BATON_READMODEL_PATH; default {DEFAULT_PATH}, "
                                "or .baton/readmodel.PREFIX.sqlite for another topic prefix).")(command)
    return command


def run(work: Coroutine[Any, Any, T], settings: KafkaSettings) -> T:
    """Run the Kafka side of a command; any failure becomes one line and exit 2."""
    # aiokafka logs each failed connection attempt; the one-line error below says it better.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        with kafka_errors(settings):
            return asyncio.run(work)
    except (QuotaExceeded, DecisionRefused) as exc:  # over a quota; a task decision that cannot apply
        fail(str(exc))
    except (ReadModelError, KafkaFailure, CommandError) as exc:
        # A refused login, an untrusted certificate, a port that wants TLS: all "cannot reach" to
        # aiokafka. explain_wrapped finds the connection failure behind it and asks the broker why.
        fail(explain_wrapped(exc, settings))
    except (ssl.SSLError, ConnectionError) as exc:  # raised around aiokafka, not through it
        fail(explain(exc, settings))
    except sqlite3.Error as exc:
        fail(f"read model database: {exc}")


# ------------------------------------------------------------ Kafka


async def _start(settings: KafkaSettings, state_machine: str, definition: dict[str, Any] | None,
                 execution_input: Any, name: str, wait: float | None,
                 announce: Callable[[str], None], budget: Any = None) -> str | ExecutionStatus:
    """Start through the client: the execution id, or with `wait` (seconds) its terminal status."""
    try:
        async with BatonClient(settings, quotas=quotas()) as client:
            if wait is None:
                return await client.start(state_machine, definition=definition, input=execution_input, name=name,
                                          budget=budget)
            return await client.start_and_wait(state_machine, definition=definition, input=execution_input,
                                               name=name, timeout=wait, on_started=announce, budget=budget)
    except StateMachineNotFound as exc:
        raise CommandError(str(exc)) from None
    except WaitTimedOut as exc:
        raise CommandError(f"{exc} (see `baton describe {name}`)") from None
    except NoOrchestrator as exc:
        raise CommandError(str(exc)) from None


async def _send(settings: KafkaSettings, send: Callable[[BatonClient], Awaitable[str]]) -> str:
    async with BatonClient(settings, quotas=quotas()) as client:
        return await send(client)


# ------------------------------------------------------------ the definition and the read model


def _start_target(target: str, state_machine: str | None) -> tuple[str, dict[str, Any] | None]:
    """(state machine, inline definition) for `start FILE|NAME`."""
    path = Path(target)
    if path.is_file():
        return state_machine or state_machine_name(target), _load_definition(target)
    if path.suffix.lower() in _DEFINITION_SUFFIXES or os.sep in target:
        fail(f"no such file: {target}")
    if state_machine:
        fail(f"--state-machine names a definition FILE's state machine; {target!r} is a registered name already")
    return target, None  # a registered state machine, resolved by the orchestrator


def _load_definition(path: str) -> dict[str, Any]:
    """The file's definition, within its quota and validated here so an invalid one never reaches Kafka."""
    from orchestrator.asl.errors import DefinitionError
    from orchestrator.asl.model import load_document, parse_definition
    from orchestrator.cli._shared import read_text
    from orchestrator.cli.errors import document_problem

    text = read_text(path)
    try:
        document = load_document(text)
        check_definition(document, quotas())
        parse_definition(document)
    except QuotaExceeded as exc:
        fail(f"{path}: {exc}; nothing was started")
    except RecursionError:
        fail(f"{path}: the definition nests too deeply; nothing was started")
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(f"{path}: {problem}", err=True)
        fail(f"{path}: invalid definition ({len(exc.problems)} problem(s)); nothing was started")
    except ValueError as exc:
        fail(document_problem(path, text, exc))
    assert isinstance(document, dict)  # parse_definition refuses anything else
    return document


def _check_name(name: str) -> None:
    bad = "".join(sorted({c for c in name if c.isspace() or c in NAME_SYMBOLS}))
    if not valid_name(name):
        found = f" (found {bad!r})" if bad else ""
        fail(f"--name must be 1 to {NAME_MAX} characters, without whitespace or any of {NAME_SYMBOLS}{found}")


def caught_up(db: str | None, settings: KafkaSettings, timeout: float) -> ReadModel:
    """The read model, after reading the history and events topics up to their current end."""
    path = db if db is not None else default_path(settings.topic_prefix, settings.kafka_bootstrap)
    try:
        model = ReadModel(path)
    except (sqlite3.Error, OSError) as exc:
        fail(f"cannot open the read model {path}: {exc}")
    run(model.catch_up(settings, timeout), settings)
    return model


def resolve(model: ReadModel, execution: str, settings: KafkaSettings) -> ExecutionView:
    """The execution with this id, or the only one with this name; one-line error otherwise."""
    try:
        view = model.describe(execution)
    except AmbiguousExecution as exc:
        fail(str(exc))
    if view is None:
        fail(f"no execution {execution!r} in {settings.topics.history} at {settings.kafka_bootstrap}")
    return view


# ------------------------------------------------------------ commands


@click.command()
@click.argument("target", metavar="FILE|NAME")
@click.option("--input", "input_", default="{}", show_default=True, help="Execution input: JSON text or @file.")
@click.option("--name", help="The execution name (default: a UUID); the same name starts it once.")
@click.option("--state-machine", "state_machine_option",
              help="With a FILE: the state machine's name (default: the folder of a definition.json, "
                   "else the file name without its extension).")
@click.option("--wait", is_flag=True, help="Wait for the end and print status, output, error and cause.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300.0, show_default=True,
              help="With --wait: seconds to wait for the end.")
@click.option("--budget", "budget_", metavar="JSON",
              help='The execution\'s budget, e.g. \'{"MaxTokens": 20000, "MaxCost": 0.5}\'; it tightens the '
                   "definition's (docs/budgets.md).")
@json_option
@kafka_options
def start(target: str, input_: str, name: str | None, state_machine_option: str | None, wait: bool, timeout: float,
          budget_: str | None, as_json: bool, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Start an execution of a definition FILE (validated here and sent inline) or of a
    registered state machine NAME; print its execution id."""
    state_machine, definition = _start_target(target, state_machine_option)
    execution_input = parse_json_arg(input_, "--input")
    budget = parse_budget_arg(budget_)
    try:
        # With BATON_PAYLOAD_STORE the client puts the input's large parts in the store.
        check_payload(execution_input, input_quotas(quotas(), offloaded_limit()), "the execution input (--input)")
    except QuotaExceeded as exc:
        fail(f"{exc}; nothing was started")
    name = name if name is not None else str(uuid.uuid4())
    _check_name(name)
    settings = kafka_settings(bootstrap, topic_prefix)
    if not wait:
        execution_id = run(_start(settings, state_machine, definition, execution_input, name, None, lambda _: None,
                                  budget), settings)
        if as_json:
            print_json({"execution_id": execution_id, "state_machine": state_machine, "name": name})
        else:
            click.echo(execution_id)
        return

    def announce(execution_id: str) -> None:
        if not as_json:
            click.echo(f"started {execution_id}; waiting for it to end", err=True)

    status = run(_start(settings, state_machine, definition, execution_input, name, timeout, announce, budget),
                 settings)
    assert isinstance(status, ExecutionStatus)
    result = {"status": status.status, "output": status.output, "error": status.error, "cause": status.cause}
    print_json({"execution_id": status.execution_id, **result} if as_json else result)
    raise SystemExit(0 if status.status == "SUCCEEDED" else 1)


@click.command()
@click.argument("execution")
@json_option
@read_model_options
@kafka_options
def describe(execution: str, as_json: bool, db: str | None, catch_up_timeout: float, bootstrap: str | None,
             topic_prefix: str | None) -> None:
    """Show an execution (by id, or by name when unique): status, input, output, error, times."""
    settings = kafka_settings(bootstrap, topic_prefix)
    view = resolve(caught_up(db, settings, catch_up_timeout), execution, settings)
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        print_execution(view)


@click.command()
@click.argument("execution")
@json_option
@read_model_options
@kafka_options
def history(execution: str, as_json: bool, db: str | None, catch_up_timeout: float, bootstrap: str | None,
            topic_prefix: str | None) -> None:
    """List an execution's history events (by id, or by name when unique), oldest first."""
    settings = kafka_settings(bootstrap, topic_prefix)
    model = caught_up(db, settings, catch_up_timeout)
    events = model.history(resolve(model, execution, settings).execution_id)
    if as_json:
        print_json(events)
        return
    print_table(["ID", "TIMESTAMP", "TYPE", "DETAILS"],
                [[str(e.get("id")), str(e.get("timestamp", "")), str(e.get("type")), event_details(e)]
                 for e in events])


@click.command("list")
@click.option("--status", type=click.Choice(["RUNNING", *sorted(TERMINAL_STATUSES)], case_sensitive=False),
              help="Only executions with this status.")
@click.option("--state-machine", help="Only executions of this state machine.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@read_model_options
@kafka_options
def list_executions(status: str | None, state_machine: str | None, limit: int, as_json: bool, db: str | None,
                    catch_up_timeout: float, bootstrap: str | None, topic_prefix: str | None) -> None:
    """List executions, most recently started first."""
    settings = kafka_settings(bootstrap, topic_prefix)
    model = caught_up(db, settings, catch_up_timeout)
    views = model.list(status=status.upper() if status else None, state_machine=state_machine, limit=limit)
    if as_json:
        print_json([view.model_dump(mode="json") for view in views])
        return
    print_table(["STATUS", "STARTED", "STOPPED", "STATE MACHINE", "NAME"],
                [[v.status, v.start_time or "-", v.stop_time or "-", v.state_machine, v.name] for v in views])


@click.command()
@click.argument("execution")
@click.option("--error", help="The error name to record (Step Functions' StopExecution error).")
@click.option("--cause", help="A longer explanation to record.")
@json_option
@read_model_options
@kafka_options
def stop(execution: str, error: str | None, cause: str | None, as_json: bool, db: str | None, catch_up_timeout: float,
         bootstrap: str | None, topic_prefix: str | None) -> None:
    """Ask the orchestrator to abort a running execution (by id, or by name when unique)."""
    settings = kafka_settings(bootstrap, topic_prefix)
    view = resolve(caught_up(db, settings, catch_up_timeout), execution, settings)
    if view.status in TERMINAL_STATUSES:
        fail(f"{view.execution_id} has already ended ({view.status}); nothing to stop")
    _request("stop", settings, as_json, lambda client: client.stop(view.execution_id, error=error, cause=cause))


@click.command()
@click.argument("execution")
@json_option
@read_model_options
@kafka_options
def redrive(execution: str, as_json: bool, db: str | None, catch_up_timeout: float, bootstrap: str | None,
            topic_prefix: str | None) -> None:
    """Restart a FAILED, TIMED_OUT or ABORTED execution from the states that did not succeed."""
    settings = kafka_settings(bootstrap, topic_prefix)
    view = resolve(caught_up(db, settings, catch_up_timeout), execution, settings)
    if view.status not in REDRIVABLE:
        fail(f"only {', '.join(REDRIVABLE)} executions can be redriven; {view.execution_id} is {view.status}")
    _request("redrive", settings, as_json, lambda client: client.redrive(view.execution_id))


def _request(kind: str, settings: KafkaSettings, as_json: bool,
             send: Callable[[BatonClient], Awaitable[str]]) -> None:
    execution_id = run(_send(settings, send), settings)
    if as_json:
        print_json({"execution_id": execution_id, "requested": kind})
    else:
        click.echo(f"{kind} requested for {execution_id}")


COMMANDS: tuple[click.Command, ...] = (start, describe, history, stop, list_executions, redrive)
"""Everything to register on the `baton` group: `for c in COMMANDS: main.add_command(c)`."""
