"""`baton stream EXECUTION`: print an execution's streamed LLM tokens as they arrive.
`baton llm cache stats|clear`: look into and empty the LLM step's response cache.

The `baton` command group runs `orchestrator.cli.stream.stream`, which first checks on the read
side that the execution exists (an unknown one fails at once) and then calls
:func:`follow_and_print`; :func:`stream` here follows without that check (the step layer does
not read the orchestrator's read model).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click
from aiokafka.errors import KafkaError

from kafka_io import KafkaSettings
from kafka_io.explain import explain_wrapped
from orchestrator.cli._shared import fail, kafka_settings

if TYPE_CHECKING:
    from steps.llm.cache import ResponseCache

ENDED_POLL_SECONDS = 3.0  # how often a follower asks whether the execution has ended


async def print_stream(settings: KafkaSettings, execution_id: str, *, since_seconds: float, all_tasks: bool,
                       idle_timeout: float | None, as_json: bool) -> None:
    """Print the execution's chunks (text, or JSON lines) until its final one."""
    from steps.llm.streaming import follow_stream

    task_id = None
    async for chunk in follow_stream(settings, execution_id, since_seconds=since_seconds, all_tasks=all_tasks,
                                     idle_timeout=idle_timeout):
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


async def _follow(settings: KafkaSettings, execution_id: str, ended: Callable[[], Awaitable[bool]] | None,
                  ended_idle: float, **printing: Any) -> None:
    """:func:`print_stream`; with `ended`, asked every few seconds, stop once the execution has ended
    and `ended_idle` seconds passed without its final chunk (TimeoutError): it publishes no more."""
    printer = asyncio.ensure_future(print_stream(settings, execution_id, **printing))
    try:
        while ended is not None and not printer.done():
            await asyncio.wait({printer}, timeout=ENDED_POLL_SECONDS)
            if not printer.done() and await ended():
                finished, _ = await asyncio.wait({printer}, timeout=ended_idle)
                if not finished:
                    raise TimeoutError(f"{execution_id} ended")
        await printer
    finally:
        printer.cancel()
        await asyncio.gather(printer, return_exceptions=True)


def follow_and_print(settings: KafkaSettings, execution_id: str, *, since_seconds: float, all_tasks: bool,
                     idle_timeout: float | None, as_json: bool, silent_end: str | None = None,
                     ended: Callable[[], Awaitable[bool]] | None = None, ended_idle: float = 5.0) -> None:
    """Run :func:`print_stream`; every failure is one line and an exit status. `silent_end`: what
    to say when no final chunk came within `idle_timeout`, or `ended_idle` after `ended()` said so."""
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        asyncio.run(_follow(settings, execution_id, ended, ended_idle, since_seconds=since_seconds,
                            all_tasks=all_tasks, idle_timeout=idle_timeout, as_json=as_json))
    except TimeoutError as exc:
        if not all_tasks:
            click.echo(f"error: {silent_end}" if silent_end else f"\nerror: {exc}", err=True)
            sys.exit(1)
    except BrokenPipeError:  # `baton stream X | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second failure at exit
        sys.exit(141)  # as a shell reports SIGPIPE
    except (KafkaError, OSError, RuntimeError) as exc:
        # A refused login or certificate: say which, and the fix (not "Unable to bootstrap").
        fail(explain_wrapped(exc, settings))
    except KeyboardInterrupt:
        sys.exit(130)


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
    settings = kafka_settings(bootstrap, topic_prefix)
    idle = timeout if timeout is not None else (30.0 if all_tasks else None)
    follow_and_print(settings, execution, since_seconds=since_seconds, all_tasks=all_tasks, idle_timeout=idle,
                     as_json=as_json)


@click.group()
def llm() -> None:
    """The LLM step's local state."""


@llm.group()
def cache() -> None:
    """The response cache (steps/llm/cache.py): enable with `cache: {enabled: true}` in the LLM
    config or BATON_LLM_CACHE__ENABLED=true."""


def _cache_options(function: Any) -> Any:
    function = click.option("--path", "folder", type=click.Path(file_okay=False), default=None,
                            help="The cache folder (default: the LLM config's cache.path).")(function)
    return click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                        help="The LLM config file (default: $BATON_LLM_CONFIG_FILE).")(function)


def _open_cache(config_file: str | None, folder: str | None) -> ResponseCache:
    from pathlib import Path

    from steps.llm.cache import ResponseCache
    from steps.llm.config import ConfigError, load_settings

    try:
        settings = load_settings(config_file).cache
    except ConfigError as exc:
        fail(str(exc))
    return ResponseCache(Path(folder) if folder else settings.path, settings.ttl_seconds)


@cache.command("stats")
@_cache_options
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as one JSON object.")
def cache_stats(config_file: str | None, folder: str | None, as_json: bool) -> None:
    """Entries, expired entries, hits served and size on disk."""
    import sqlite3
    from datetime import UTC, datetime

    store = _open_cache(config_file, folder)
    if not store.path.exists():
        click.echo(f"no cache at {store.path}")
        return
    try:
        stats = store.stats()
    except sqlite3.Error as exc:
        fail(f"cannot read the cache {store.path}: {exc}", 1)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(stats.as_dict()))
        return

    def when(moment: float | None) -> str:
        return "-" if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")

    click.echo(f"{stats.path}: {stats.entries} entries ({stats.expired} expired), {stats.hits} hits, "
               f"{stats.size_bytes} bytes; stored from {when(stats.oldest)} to {when(stats.newest)}")


@cache.command("clear")
@_cache_options
@click.option("--expired", is_flag=True, help="Delete only the expired entries.")
def cache_clear(config_file: str | None, folder: str | None, expired: bool) -> None:
    """Delete the cached answers (all, or only the expired ones)."""
    import sqlite3

    store = _open_cache(config_file, folder)
    if not store.path.exists():
        click.echo(f"no cache at {store.path}")
        return
    try:
        deleted = store.clear(expired_only=expired)
    except sqlite3.Error as exc:
        fail(f"cannot clear the cache {store.path}: {exc}", 1)
    finally:
        store.close()
    click.echo(f"deleted {deleted} {'expired ' if expired else ''}entries from {store.path}")
