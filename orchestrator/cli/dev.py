"""`baton dev`: the click command; the stack it starts and stops is `orchestrator.dev`."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaError

from infra import local_embeddings, local_model
from orchestrator.cli._shared import fail
from orchestrator.cli.errors import failure_line
from orchestrator.demo import DEMOS, ORDERS_API_PORT, REPO_ROOT
from orchestrator.dev import Stack, serve, start_stack
from orchestrator.dev_config import DevConfig
from schemas.errors import BatonError


def _port(name: str, env: str, default: int, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(name, type=click.IntRange(1, 65535), envvar=env, default=default, show_default=True,
                        help=f"{what} (env {env}).")


@click.command()
@click.option("--run-demo", is_flag=True, help="Run the GenAI demos (examples/genai/), then stop.")
@click.option("--auto-approve", is_flag=True, help="With --run-demo: approve the human review without asking.")
@click.option("--quiet", is_flag=True, help="Show only errors of the services (always with --run-demo).")
@click.option("--insecure-local", is_flag=True, help="Run the API without tokens (default: a printed admin token).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="BATON_STATE_DIR",
              default=REPO_ROOT / ".baton", show_default=".baton",
              help="Logs, the dev token, the configs and the knowledge base (env BATON_STATE_DIR).")
@_port("--api-port", "BATON_API_PORT", 8080, "The API and pages")
@_port("--metrics-port", "BATON_METRICS_PORT", 9400,
       "The orchestrator's /metrics; fn, llm, http, review, retrieval and mcp take the next six ports")
@_port("--orders-api-port", "BATON_ORDERS_API_PORT", ORDERS_API_PORT, "The intent-api demo's orders API")
@_port("--model-port", "BATON_MODEL_PORT", local_model.DEFAULT_PORT, "The first offline model server; the second follows")
@_port("--embeddings-port", "BATON_EMBEDDINGS_PORT", local_embeddings.DEFAULT_PORT, "The offline embeddings server")
@click.option("--bootstrap", envvar="BATON_KAFKA_BOOTSTRAP",
              help="Kafka bootstrap servers (env BATON_KAFKA_BOOTSTRAP; default: a local broker, started or reused).")
@click.option("--kafka-port", type=click.IntRange(1, 65535), envvar="BATON_KAFKA_PORT",
              help="Without --bootstrap: the local broker's port (env BATON_KAFKA_PORT; default 9092).")
@click.option("--topic-prefix", envvar="BATON_TOPIC_PREFIX", default="baton", show_default=True,
              help="Topic name prefix of this stack (env BATON_TOPIC_PREFIX).")
@click.option("--no-models", "no_models", is_flag=True,
              help="Without the model and embeddings servers, the llm and retrieval services (no GenAI demo).")
def dev(run_demo: bool, auto_approve: bool, quiet: bool, insecure_local: bool, state_dir: Path, api_port: int,
        metrics_port: int, orders_api_port: int, model_port: int, embeddings_port: int, bootstrap: str | None,
        kafka_port: int | None, topic_prefix: str, no_models: bool) -> None:
    """Run the local stack (broker, models, orchestrator, every step service, the API) until Ctrl-C.

    Two stacks side by side: give the second other ports, another --topic-prefix and --state-dir.
    """
    if run_demo and no_models:
        fail("--run-demo needs the models: leave out --no-models", 2)
    config = DevConfig(state_dir=state_dir.resolve(), api_port=api_port, metrics_port=metrics_port,
                       orders_api_port=orders_api_port, model_port=model_port, embeddings_port=embeddings_port,
                       bootstrap=bootstrap or None, kafka_port=kafka_port, topic_prefix=topic_prefix,
                       models=not no_models)
    stack = Stack(log_dir=config.log_dir, quiet=quiet or run_demo)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    ok = True
    problem: str | None = None
    try:
        if config.models:
            local_model.check_installed()  # before anything starts: one line with the fix, nothing to stop
        env = start_stack(stack, config, insecure_local=insecure_local)
        if run_demo:
            from kafka_io import KafkaSettings
            from orchestrator.demo import run_and_report

            ask = not auto_approve and sys.stdin.isatty()
            kafka = KafkaSettings(kafka_bootstrap=env["BATON_KAFKA_BOOTSTRAP"], topic_prefix=config.topic_prefix)
            ok = run_and_report(kafka, DEMOS, auto_approve=not ask, metrics=stack.metrics)
        else:
            ok = serve(stack, stopping, config)
    except KeyboardInterrupt:
        stack.say("interrupted")
    except (BatonError, KafkaError, OSError, click.ClickException) as exc:
        problem = exc.format_message() if isinstance(exc, click.ClickException) else failure_line(exc)
    finally:
        stack.stop()
    if problem is not None:
        fail(problem, 1)
    sys.exit(0 if ok else 1)
