"""The `baton` command's failures as one line each: what went wrong and, where known, the fix.

`orchestrator.cli.fail` prints the line; this module only words it, so every front-end module can
use it without importing the command group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

YAML_SUFFIXES = (".yaml", ".yml")


def document_problem(path: str, text: str, error: ValueError) -> str:
    """Why the file is neither JSON nor YAML, in the words of the parser it was written for: a
    .yaml file, or text not opening with { or [, gets the YAML parser's line and column instead of
    the JSON parser's "Expecting value: line 1 column 1"."""
    yaml_written = Path(path).suffix.lower() in YAML_SUFFIXES or text.lstrip()[:1] not in ("{", "[")
    return f"{path}: {(yaml_written and yaml_problem(text)) or error}"


def yaml_problem(text: str) -> str | None:
    """What the YAML parser finds wrong in `text`, on one line with its line and column; None if it parses."""
    import yaml

    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        where = f"{_at(exc.problem_mark)}: " if exc.problem_mark else ""
        context = (f" ({exc.context} that started at {_at(exc.context_mark)})"
                   if exc.context and exc.context_mark else "")
        return f"not valid YAML: {where}{exc.problem}{context}"
    except yaml.YAMLError as exc:
        return f"not valid YAML: {' '.join(str(exc).split())}"
    return None


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"  # the marks count from 0


def failure_line(exc: BaseException) -> str:
    """One line for a failure no command caught: Kafka's with its fix; Baton's own errors say what
    to do; anything else by its type, with the way to see where it came from."""
    from schemas.errors import BatonError

    kafka_line = _kafka_failure_line(exc)
    if kafka_line is not None:
        return kafka_line
    if isinstance(exc, BatonError):
        return " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}{f': {exc.filename}' if exc.filename else ''}"
    return f"{type(exc).__name__}: {exc} (`baton -v ...` shows where)"


def _kafka_failure_line(exc: BaseException) -> str | None:
    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from kafka_io import KafkaSettings
    from kafka_io.explain import connection_failure, explain

    if not isinstance(exc, KafkaError) and connection_failure(exc) is None:
        return None
    try:
        settings = KafkaSettings()
    except ValidationError:
        return f"Kafka failed: {exc}"
    return explain(exc, settings)
