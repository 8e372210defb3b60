"""`baton demo`: the GenAI demos on a running stack; what they do is `orchestrator.demo`."""

from __future__ import annotations

import sys

import click
from aiokafka.errors import KafkaError

from kafka_io.explain import diagnose, explain_wrapped
from orchestrator.cli._shared import fail, kafka_settings
from orchestrator.demo import DEMOS, run_and_report
from schemas.errors import BatonError


@click.command()
@click.option("--auto-approve/--ask", default=None,
              help="Approve the travel plan review automatically (default: ask on a terminal, else approve).")
@click.option("--only", "only", multiple=True, type=click.Choice(DEMOS), help="Run only this demo (repeatable).")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for the demos.")
@click.option("--bootstrap", help="Kafka bootstrap servers (default: BATON_KAFKA_BOOTSTRAP or 127.0.0.1:9092).")
@click.option("--topic-prefix", help="Topic name prefix (default: BATON_TOPIC_PREFIX or baton).")
def demo(auto_approve: bool | None, only: tuple[str, ...], timeout: float, bootstrap: str | None,
         topic_prefix: str | None) -> None:
    """Run the GenAI demos (examples/genai/) on a running stack (`baton dev` starts one)."""
    settings = kafka_settings(bootstrap, topic_prefix)
    # A broker that is down or refuses this client: one line before anything starts, not the
    # tracebacks of the two topic readers and the client failing at once.
    problem = diagnose(settings)
    if problem:
        fail(f"{problem}; `baton dev --run-demo` starts a local stack and runs the demos on it")
    if auto_approve is None:
        auto_approve = not sys.stdin.isatty()
    try:
        ok = run_and_report(settings, only or DEMOS, auto_approve=auto_approve, timeout=timeout)
    except (KafkaError, OSError, TimeoutError, BatonError) as exc:
        fail(explain_wrapped(exc, settings))
    sys.exit(0 if ok else 1)
