"""`baton stream EXECUTION`: print an execution's streamed LLM tokens as they arrive."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import click
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from kafka_io import KafkaSettings
from kafka_io.explain import explain_wrapped, settings_problem


@click.command()
@click.argument("execution")
@click.option("--bootstrap", help="Kafka bootstrap servers (default: $BATON_KAFKA_BOOTSTRAP).")
@click.option("--topic-prefix", help="Topic name prefix (default: $BATON_TOPIC_PREFIX or 'baton').")
@click.option("--since", "since_seconds", type=click.FloatRange(min=0), default=3600, show_default=True,
              help="Include chunks published up to this many seconds ago (attach late, miss nothing).")
@click.option("--all-tasks", is_flag=True,
              help="Keep following after the first final chunk (several streamed steps); stop after --timeout idle.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None,
              help="Give up after this many seconds without a chunk (default: wait forever).")
@click.option("--json", "as_json", is_flag=True, help="Print each chunk as a JSON line instead of the text.")
def stream(execution: str, bootstrap: str | None, topic_prefix: str | None, since_seconds: float,
           all_tasks: bool, timeout: float | None, as_json: bool) -> None:
    """Print the tokens an execution's streamed LLM step publishes, in order, until its final chunk."""
    from steps.llm.streaming import follow_stream

    overrides: dict[str, Any] = {}
    if bootstrap:
        overrides["kafka_bootstrap"] = bootstrap
    if topic_prefix:
        overrides["topic_prefix"] = topic_prefix
    try:
        settings = KafkaSettings(**overrides)
    except ValidationError as exc:
        click.echo(f"error: {settings_problem(exc)}", err=True)
        sys.exit(2)
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    idle = timeout if timeout is not None else (30.0 if all_tasks else None)

    async def run() -> None:
        task_id = None
        async for chunk in follow_stream(settings, execution, since_seconds=since_seconds, all_tasks=all_tasks,
                                         idle_timeout=idle):
            if as_json:
                click.echo(json.dumps(chunk.model_dump(mode="json", include={"task_id", "seq", "text", "final"})))
                continue
            if task_id is not None and chunk.task_id != task_id and chunk.seq == 0:
                click.echo("")  # the next streamed step starts on a new line
            task_id = chunk.task_id
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        if not as_json:
            click.echo("")

    try:
        asyncio.run(run())
    except TimeoutError as exc:
        if not all_tasks:
            click.echo(f"\nerror: {exc}", err=True)
            sys.exit(1)
    except (KafkaError, OSError, RuntimeError) as exc:
        # A refused login or certificate: say which, and the fix (not "Unable to bootstrap").
        click.echo(f"error: {explain_wrapped(exc, settings)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
