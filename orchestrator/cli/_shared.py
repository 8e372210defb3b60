"""What every `baton` command shares: one failure line (the exit code in one place), the Kafka
settings from the environment and the options, reading a
definition or a JSON argument, printing JSON. Private to the `orchestrator.cli` package: the
commands import it; everything else goes through the client."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from pydantic import ValidationError

from kafka_io import KafkaSettings
from kafka_io.explain import settings_problem
from orchestrator.asl.errors import DefinitionError
from orchestrator.asl.model import StateMachine, load_document, parse_definition

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


def kafka_settings(bootstrap: str | None, topic_prefix: str | None) -> KafkaSettings:
    """The environment's settings (BATON_*) with the command line's --bootstrap/--topic-prefix
    over them; a bad setting is one line that names it, never its value."""
    overrides: dict[str, Any] = {key: value for key, value in
                                 (("kafka_bootstrap", bootstrap), ("topic_prefix", topic_prefix)) if value}
    try:
        return KafkaSettings(**overrides)
    except ValidationError as exc:  # e.g. a username without a password
        fail(settings_problem(exc))


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
    from orchestrator.cli.errors import document_problem

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


def parse_budget_arg(value: str | None) -> Any:
    """--budget: a JSON object {"MaxTokens": N, "MaxCost": USD} (inline or @file), checked here so
    a bad one is one line, not a failed execution; None when not given."""
    if value is None:
        return None
    from orchestrator.asl.budget import BudgetError, parse_budget

    budget = parse_json_arg(value, "--budget")
    try:
        parse_budget(budget)
    except BudgetError as exc:
        fail(f"--budget: {exc}")
    return budget


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


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
