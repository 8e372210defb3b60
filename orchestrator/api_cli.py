"""`baton api [--host 127.0.0.1] [--port 8080]`: the HTTP API and pages (`orchestrator.api.app`)."""

from __future__ import annotations

import asyncio
import logging

import click

from orchestrator.api.readmodel import ReadModelError, kafka_errors, topic_partitions
from orchestrator.cli import fail
from orchestrator.control_cli import kafka_options, kafka_settings
from orchestrator.settings import KafkaSettings


async def _check(settings: KafkaSettings) -> None:
    topics = settings.topics
    await topic_partitions(settings, [topics.start, topics.history, topics.events, topics.state,
                                      topics.review_decisions])


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--db", envvar="BATON_READMODEL_PATH", help="The read model's SQLite file (env BATON_READMODEL_PATH).")
@kafka_options
def api(host: str, port: int, db: str | None, bootstrap: str | None, topic_prefix: str | None) -> None:
    """Serve the HTTP API (OpenAPI at /docs and /openapi.json) and the pages until SIGINT/SIGTERM."""
    import uvicorn

    from orchestrator.api.app import create_app

    settings = kafka_settings(bootstrap, topic_prefix)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one-line error below says it better
    try:  # fail fast with one line when Kafka or the topics are missing, before uvicorn logs a traceback
        with kafka_errors(settings):
            asyncio.run(_check(settings))
    except ReadModelError as exc:
        fail(str(exc))
    try:
        uvicorn.run(create_app(settings, db_path=db), host=host, port=port, log_level="info")
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
