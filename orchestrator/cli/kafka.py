"""`baton kafka ...` (a local broker, topic provisioning) and `baton asyncapi` (the topic contracts).

Registered on the `baton` group by orchestrator/cli/main.py. Errors print one line on stderr and exit
non-zero; nothing here shows a traceback for a problem a user can fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from kafka_io import KafkaSettings
from kafka_io.explain import explain_wrapped, settings_problem
from orchestrator.runtime.topics import DEFAULT_SERVICES, TopicProvisioningError, provision_topics, topic_specs


def _fail(message: str, code: int = 1) -> NoReturn:
    from orchestrator.cli._shared import fail

    fail(message, code)  # one line; with `baton -v`, the traceback behind it first


def _settings(**overrides: Any) -> KafkaSettings:
    """Settings from the environment (BATON_*), with the options given on the command line on top."""
    try:
        return KafkaSettings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        _fail(settings_problem(exc), 2)


def _quiet_aiokafka() -> None:
    # Without logging configured, Python prints aiokafka's warnings (e.g. every failed connection
    # attempt) on stderr; the command reports the outcome itself in one line.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())


@click.group()
def kafka() -> None:
    """A local Kafka broker or 3-broker cluster (no Docker) and Baton's topics."""


@kafka.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Client port (default: BATON_KAFKA_PORT or 9092; with --secure BATON_SECURE_KAFKA_PORT or 19094).")
@click.option("--timeout", type=click.FloatRange(min=1), default=90.0, show_default=True,
              help="Seconds to wait for the broker to be ready.")
@click.option("--secure", is_flag=True,
              help="The secured broker instead (SASL/SCRAM over TLS, ACLs per service; port "
                   "BATON_SECURE_KAFKA_PORT or 19094): see `python -m infra.secure_kafka --help`.")
def up(port: int | None, timeout: float, secure: bool) -> None:
    """Start a local broker, or reuse one already answering; print its bootstrap address.

    Only the address goes to stdout, so `export BATON_KAFKA_BOOTSTRAP=$(baton kafka up)` works.
    """
    from infra.local_kafka import LocalKafkaError, default_paths, ensure_up

    if secure:
        _up_secure(port, timeout)
        return
    try:
        broker = ensure_up(port, timeout)
    except LocalKafkaError as exc:
        _fail(f"{exc} (broker logs: {default_paths().logs})")
    except OSError as exc:  # e.g. infra/kafka/pom.xml missing: `up` needs a checkout, not a wheel
        _fail(f"cannot start a local Kafka: {exc}")
    how = f"started, pid {broker.pid}" if broker.started_here else "reused a running broker"
    click.echo(f"Kafka ready ({how})", err=True)
    click.echo(broker.bootstrap)


def _up_secure(port: int | None, timeout: float) -> None:
    from infra.local_kafka import LocalKafkaError
    from infra.secure_kafka import ensure_up

    try:
        broker = ensure_up(port, timeout=timeout)
    except LocalKafkaError as exc:
        _fail(f"{exc}\n{exc.log_tail}".rstrip())
    except OSError as exc:
        _fail(f"cannot start the secured Kafka: {exc}")
    how = f"started, pid {broker.pid}" if broker.started_here else "reused a running broker"
    click.echo(f"secured Kafka ready ({how}); a user's client settings: "
               "eval \"$(python -m infra.secure_kafka env --user baton-cli)\"", err=True)
    click.echo(broker.bootstrap)


@kafka.command()
@click.option("--secure", is_flag=True, help="Stop the secured broker (`up --secure`) instead.")
def down(secure: bool) -> None:
    """Stop the local broker that `baton kafka up` started (never one it did not start)."""
    from infra.local_kafka import LocalKafkaError
    from infra.local_kafka import down as stop_plain
    from infra.secure_kafka import down as stop_secure

    try:
        click.echo(stop_secure() if secure else stop_plain())
    except LocalKafkaError as exc:
        _fail(str(exc))


@kafka.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Client port of the local broker (default: BATON_KAFKA_PORT or 9092).")
def status(port: int | None) -> None:
    """Whether the broker answers; exit 3 when none does. With BATON_KAFKA_BOOTSTRAP set (and no
    --port), the broker every other command uses: that bootstrap, logged in as they do."""
    import os

    from infra.local_kafka import status as broker_status

    if port is None and os.environ.get("BATON_KAFKA_BOOTSTRAP"):
        is_up, line = _bootstrap_status(_settings())
    else:
        is_up, line = broker_status(port)
    click.echo(line)
    sys.exit(0 if is_up else 3)  # LSB's "program is not running", as in infra.local_kafka


def _bootstrap_status(settings: KafkaSettings) -> tuple[bool, str]:
    from aiokafka.errors import KafkaError

    from infra.stack import cluster_id
    from kafka_io.explain import diagnose

    _quiet_aiokafka()
    problem = diagnose(settings)
    if problem:
        return False, f"down: {problem} (BATON_KAFKA_BOOTSTRAP)"
    try:
        cluster = asyncio.run(cluster_id(settings))
    except (KafkaError, OSError) as exc:
        return False, f"down: {settings.kafka_bootstrap}: {exc} (BATON_KAFKA_BOOTSTRAP)"
    return True, f"up: bootstrap {settings.kafka_bootstrap}, cluster {cluster or 'unknown'} (BATON_KAFKA_BOOTSTRAP)"


@kafka.command()
@click.option("--bootstrap", help="Kafka bootstrap servers (default: BATON_KAFKA_BOOTSTRAP or 127.0.0.1:9092).")
@click.option("--prefix", help="Topic name prefix (default: BATON_TOPIC_PREFIX or baton).")
@click.option("--partitions", type=click.IntRange(min=1), default=None,
              help="Partitions per topic (default: BATON_PARTITIONS or 3).")
@click.option("--replication-factor", type=click.IntRange(min=1), default=None,
              help="Replicas per partition (default: BATON_REPLICATION_FACTOR or 1).")
@click.option("--min-insync-replicas", type=click.IntRange(min=1), default=None,
              help="min.insync.replicas of the topics created (default: BATON_MIN_INSYNC_REPLICAS, "
                   "else the broker's default).")
@click.option("--service", "services", multiple=True,
              help="A step service to create a command topic for (repeatable; default: "
                   f"{', '.join(DEFAULT_SERVICES)}).")
def topics(bootstrap: str | None, prefix: str | None, partitions: int | None,
           replication_factor: int | None, min_insync_replicas: int | None,
           services: tuple[str, ...]) -> None:
    """Create Baton's topics that do not exist yet; check the ones that do."""
    settings = _settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, partitions=partitions,
                         replication_factor=replication_factor, min_insync_replicas=min_insync_replicas)
    _quiet_aiokafka()
    wanted = services or DEFAULT_SERVICES
    try:
        specs = {spec.name: spec for spec in topic_specs(settings, wanted)}
        report = asyncio.run(provision_topics(settings, wanted))
    except TopicProvisioningError as exc:
        _fail(explain_wrapped(exc, settings))  # "cannot reach" may be a refused login: say which
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    for name, spec in specs.items():
        shape = f"{spec.partitions} partitions" + (", compacted" if spec.compacted else "")
        click.echo(f"created  {name} ({shape})" if name in report.created else f"exists   {name}")
    click.echo(f"{len(report.created)} created, {len(report.existing)} already existed "
               f"on {settings.kafka_bootstrap}")


@kafka.group()
def cluster() -> None:
    """A local 3-broker KRaft cluster (replication factor 3, min.insync.replicas 2)."""


@cluster.command("up")
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Seconds to wait until all three brokers are registered.")
def cluster_up(timeout: float) -> None:
    """Start the 3 nodes (or reuse them); print the bootstrap addresses on stdout."""
    from infra.kafka_cluster import configured, ensure_up
    from infra.local_kafka import LocalKafkaError

    _quiet_aiokafka()
    try:
        nodes, started = ensure_up(configured(), timeout)
    except LocalKafkaError as exc:
        _fail(f"{exc} (logs: {configured().state}/node-*/logs)")
    how = f"started nodes {', '.join(map(str, started))}" if started else "reused the running nodes"
    click.echo(f"Kafka cluster ready ({how})", err=True)
    click.echo(nodes.bootstrap)


@cluster.command("down")
def cluster_down() -> None:
    """Stop the nodes that `baton kafka cluster up` started."""
    from infra.kafka_cluster import down as stop_cluster

    click.echo(stop_cluster())


@cluster.command("status")
def cluster_status() -> None:
    """Each node's state; exit 3 unless all three brokers are registered."""
    from infra.kafka_cluster import status as cluster_state

    _quiet_aiokafka()
    ready, lines = cluster_state()
    click.echo("\n".join(lines))
    sys.exit(0 if ready else 3)


@cluster.command("kill")
@click.argument("node", type=click.IntRange(1, 3))
def cluster_kill(node: int) -> None:
    """SIGKILL one node (1-3), as a crash would."""
    from infra.kafka_cluster import configured, kill_node
    from infra.local_kafka import LocalKafkaError

    try:
        click.echo(f"killed node {node} (pid {kill_node(configured(), node)})")
    except LocalKafkaError as exc:
        _fail(str(exc))


@cluster.command("start")
@click.argument("node", type=click.IntRange(1, 3))
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True)
def cluster_start(node: int, timeout: float) -> None:
    """Start one node again on its data and wait until all three brokers are registered."""
    from infra.kafka_cluster import configured, start_node
    from infra.local_kafka import LocalKafkaError

    _quiet_aiokafka()
    try:
        click.echo(f"node {node} running (pid {start_node(configured(), node, timeout)})")
    except LocalKafkaError as exc:
        _fail(str(exc))


@click.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the document to FILE instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json", show_default=True)
@click.option("--prefix", help="Topic name prefix (default: BATON_TOPIC_PREFIX or baton).")
@click.option("--bootstrap", help="The server address shown in the document (default: BATON_KAFKA_BOOTSTRAP).")
@click.option("--service", "services", multiple=True,
              help="A step service whose command topic to include (repeatable; default: "
                   f"{', '.join(DEFAULT_SERVICES)}).")
def asyncapi(output: str | None, fmt: str, prefix: str | None, bootstrap: str | None,
             services: tuple[str, ...]) -> None:
    """Print the AsyncAPI 3.0 document of Baton's topics and events."""
    from schemas.asyncapi import asyncapi_document

    settings = _settings(topic_prefix=prefix, kafka_bootstrap=bootstrap)
    document = asyncapi_document(settings.topics, services=services or DEFAULT_SERVICES,
                                 bootstrap=settings.kafka_bootstrap)
    if fmt == "yaml":
        import yaml

        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"wrote {output} ({len(document['channels'])} topics)", err=True)
