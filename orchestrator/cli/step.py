"""`baton step ...`: run a step service until SIGINT/SIGTERM. Thin: options in, service out."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from kafka_io.explain import connection_failure, diagnose, explain
from orchestrator.cli._shared import fail, kafka_settings
from steps.service import StepService, StepServiceError, serve


def setting_problems(prefix: str, exc: ValidationError) -> str:
    """A service's settings of the wrong type, as their environment variables (values not repeated)."""
    return "; ".join(f"{prefix}{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                     for e in exc.errors(include_input=False, include_url=False))


async def _run(service: StepService, metrics_port: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(service, stop, metrics_port)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run_service(service: StepService, metrics_port: int | None) -> None:
    """Run a step service in the foreground; exit with a one-line error if it cannot start."""
    # Before the service starts: a refused login, an untrusted certificate or a port that wants
    # TLS is one line with its fix here, instead of aiokafka's "Unable to bootstrap".
    problem = diagnose(service.settings)
    if problem:
        fail(f"step service {service.service!r}: {problem}")
    try:
        asyncio.run(_run(service, metrics_port))
    except StepServiceError as exc:
        fail(str(exc))
    except (OSError, KafkaError) as exc:  # the metrics port is taken, Kafka refused us, ...
        reason = explain(exc, service.settings) if connection_failure(exc) else str(exc)
        fail(f"step service {service.service!r}: {reason}")


def _common(function: Any) -> Any:
    for option in reversed([
        click.option("--bootstrap", help="Kafka bootstrap servers (default: $BATON_KAFKA_BOOTSTRAP)."),
        click.option("--topic-prefix", help="Topic name prefix (default: $BATON_TOPIC_PREFIX or 'baton')."),
        click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics on this port."),
        click.option("--concurrency", type=click.IntRange(min=1), default=32, show_default=True,
                     help="Tasks run at once by this instance."),
    ]):
        function = option(function)
    return function


@click.group()
def step() -> None:
    """Run a step service (each is deployed and scaled on its own)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@step.command()
@click.option("--module", "modules", multiple=True, required=True,
              help="A Python module of @step functions (repeatable).")
@_common
def fn(modules: tuple[str, ...], bootstrap: str | None, topic_prefix: str | None,
       metrics_port: int | None, concurrency: int) -> None:
    """The fn service: answer baton:fn:NAME and Lambda resources with the modules' @step functions."""
    from steps.fn.service import fn_service

    sys.path.insert(0, str(Path.cwd()))  # modules of the project the command runs in
    try:
        service = fn_service(list(modules), settings=kafka_settings(bootstrap, topic_prefix),
                             max_concurrency=concurrency)
    except ImportError as exc:
        fail(f"cannot import steps module: {exc}")
    except StepServiceError as exc:
        fail(str(exc))
    except Exception as exc:  # user code failing at import time
        fail(f"steps module failed to import: {type(exc).__name__}: {exc}")
    run_service(service, metrics_port)


@step.command()
@click.option("--connections", "connections", default=None, metavar="PATH",
              help="YAML/JSON file of named connections (default: $BATON_HTTP_CONNECTIONS).")
@_common
def http(connections: str | None, bootstrap: str | None, topic_prefix: str | None,
         metrics_port: int | None, concurrency: int) -> None:
    """The http service: answer baton:http and arn:aws:states:::http:invoke Tasks (HTTP Task)."""

    from steps.http import ConnectionConfigError, HttpSettings, http_service

    try:
        http_settings = HttpSettings()
        if connections:
            http_settings = http_settings.model_copy(update={"connections": connections})
        service = http_service(http_settings=http_settings, settings=kafka_settings(bootstrap, topic_prefix),
                               max_concurrency=concurrency)
    except ConnectionConfigError as exc:
        fail(str(exc))
    except ValidationError as exc:  # a BATON_HTTP_* setting of the wrong type (values not repeated)
        fail(setting_problems("BATON_HTTP_", exc))
    run_service(service, metrics_port)


@step.command()
@click.option("--connections", "connections", default=None, metavar="PATH",
              help="YAML/JSON file of named MCP servers (default: $BATON_MCP_CONNECTIONS).")
@_common
def mcp(connections: str | None, bootstrap: str | None, topic_prefix: str | None,
        metrics_port: int | None, concurrency: int) -> None:
    """The mcp service: answer baton:mcp:callTool and baton:mcp:listTools with MCP servers (streamable HTTP)."""

    from steps.mcp import ConnectionConfigError, MCPSettings, mcp_service

    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = MCPSettings()
        if connections:
            settings = settings.model_copy(update={"connections": connections})
        service = mcp_service(settings, kafka=kafka_settings(bootstrap, topic_prefix), max_concurrency=concurrency)
    except ConnectionConfigError as exc:
        fail(str(exc))
    except ValidationError as exc:  # a BATON_MCP_* setting of the wrong type (values not repeated)
        fail(setting_problems("BATON_MCP_", exc))
    run_service(service, metrics_port)


@step.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="The LLM config file: providers, model routes, prices, prompt stores "
                   "(default: $BATON_LLM_CONFIG_FILE; `baton model up` writes .baton/model/llm.yaml).")
@_common
def llm(config_file: str | None, bootstrap: str | None, topic_prefix: str | None,
        metrics_port: int | None, concurrency: int) -> None:
    """The llm service: answer baton:llm and bedrock:invokeModel Tasks with the configured providers."""
    from steps.llm.config import ConfigError, load_settings
    from steps.llm.service import llm_service

    # One INFO line per provider request is noise at LLM volumes (and a URL may carry a key).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        service = llm_service(load_settings(config_file), kafka=kafka_settings(bootstrap, topic_prefix),
                              max_concurrency=concurrency)
    except (ConfigError, StepServiceError) as exc:
        fail(str(exc))
    run_service(service, metrics_port)


@step.command()
@_common
def review(bootstrap: str | None, topic_prefix: str | None, metrics_port: int | None, concurrency: int) -> None:
    """The review service: publish baton:review.waitForTaskToken requests for reviewers (`baton review`)."""
    from steps.review.service import review_service

    run_service(review_service(settings=kafka_settings(bootstrap, topic_prefix), max_concurrency=concurrency),
                metrics_port)


@step.command()
@click.option("--kb-dir", default=None, help="Where knowledge bases live (default: $BATON_KB_DIR or .baton/kb).")
@click.option("--embeddings-url", default=None,
              help="OpenAI-compatible embeddings API root (default: $BATON_EMBEDDINGS_BASE_URL).")
@_common
def retrieval(kb_dir: str | None, embeddings_url: str | None, bootstrap: str | None, topic_prefix: str | None,
              metrics_port: int | None, concurrency: int) -> None:
    """The retrieval service: answer baton:retrieve with passages of a knowledge base (`baton kb add`)."""

    from steps.retrieval.service import retrieval_service
    from steps.retrieval.settings import EmbeddingsSettings, KnowledgeBaseSettings

    try:
        embeddings, knowledge = EmbeddingsSettings(), KnowledgeBaseSettings()
    except ValidationError as exc:
        fail(f"invalid BATON_EMBEDDINGS_* / BATON_KB_* environment: {str(exc).splitlines()[0]}")
    if embeddings_url:
        embeddings = embeddings.model_copy(update={"base_url": embeddings_url})
    if kb_dir:
        knowledge = knowledge.model_copy(update={"dir": Path(kb_dir)})
    run_service(retrieval_service(embeddings, knowledge, settings=kafka_settings(bootstrap, topic_prefix),
                                  max_concurrency=concurrency), metrics_port)
