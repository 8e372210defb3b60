"""The `baton` command group: each command lives in a module of this package and is imported
only when used (so `baton execute` does not load Kafka clients). Thin: parse, call, print."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import click

from orchestrator.cli._shared import VERBOSE, fail
from orchestrator.cli.errors import failure_line


class _LazyGroup(click.Group):
    """Commands of the Kafka side are imported only when used, so `baton execute` starts fast."""

    lazy = {
        **{name: f"orchestrator.cli.local:{name}" for name in ("validate", "execute")},
        "test-state": "orchestrator.cli.local:test_state_command",
        **{name: f"orchestrator.cli.control:{name}" for name in
           ("start", "describe", "history", "stop", "redrive")},
        "list": "orchestrator.cli.control:list_executions",
        "kafka": "orchestrator.cli.kafka:kafka",
        "asyncapi": "orchestrator.cli.kafka:asyncapi",
        "step": "orchestrator.cli.step:step",
        "review": "orchestrator.cli.review:review",
        "kb": "orchestrator.cli.kb:kb",
        "model": "orchestrator.cli.model:model",
        "stream": "orchestrator.cli.stream:stream",
        "llm": "orchestrator.cli.llm:llm",
        "dev": "orchestrator.cli.dev:dev",
        "demo": "orchestrator.cli.demo:demo",
        "graph": "orchestrator.cli.graph:graph",
        "api": "orchestrator.cli.api:api",
        "bench": "orchestrator.cli.bench:bench",
        "eval": "orchestrator.cli.eval:eval_group",
        "tokens": "orchestrator.cli.tokens:tokens",
        **{name: f"orchestrator.cli.registry:{attribute}" for name, attribute in
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
            fail(failure_line(exc))


@click.group(cls=_LazyGroup)
@click.option("-v", "--verbose", is_flag=True, envvar="BATON_VERBOSE",
              help="Show the traceback behind an error (env BATON_VERBOSE=1).")
def main(verbose: bool) -> None:
    """Baton: Amazon States Language workflows for generative AI, on Apache Kafka."""
    from kafka_io.explain import quiet_transient_kafka_errors

    VERBOSE["on"] = verbose
    quiet_transient_kafka_errors()


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

    from kafka_io import KafkaSettings
    from kafka_io.explain import connection_failure, diagnose, explain, settings_problem
    from orchestrator.runtime.main import serve
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


if __name__ == "__main__":
    main()
