"""`baton api [--host 127.0.0.1] [--port 8080] [--tokens FILE | --insecure-local]`: the HTTP API and pages.

Bearer tokens (`baton tokens create`, or an identity provider's JWTs with BATON_OIDC_*) are required
unless `--insecure-local` is given, which is refused on any address but a loopback one.
"""

from __future__ import annotations

import asyncio
import logging

import click

from kafka_io import KafkaFailure, KafkaSettings, kafka_errors, topic_partitions
from kafka_io.explain import explain_wrapped
from orchestrator.api.readmodel import ReadModelError
from orchestrator.cli._shared import fail, kafka_settings
from orchestrator.cli.control import kafka_options


async def _check(settings: KafkaSettings) -> None:
    topics = settings.topics
    await topic_partitions(settings, [topics.start, topics.history, topics.events, topics.state,
                                      topics.review_decisions])


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, envvar="BATON_API_PORT",
              help="Port to listen on (env BATON_API_PORT).")
@click.option("--db", envvar="BATON_READMODEL_PATH", help="The read model's SQLite file (env BATON_READMODEL_PATH).")
@click.option("--tokens", "tokens_file", envvar="BATON_API_TOKENS_FILE",
              help="The token file of `baton tokens` (env BATON_API_TOKENS_FILE; default .baton/api-tokens.json).")
@click.option("--insecure-local", is_flag=True,
              help="No authentication (every request may do everything); only on a loopback address.")
@kafka_options
def api(host: str, port: int, db: str | None, tokens_file: str | None, insecure_local: bool,
        bootstrap: str | None, topic_prefix: str | None) -> None:
    """Serve the HTTP API (OpenAPI at /docs and /openapi.json) and the pages until SIGINT/SIGTERM.

    Every request needs `Authorization: Bearer <token>` (pages: open one with `?token=<token>` once,
    a cookie keeps it) unless --insecure-local. The token is one of `baton tokens`, or, when
    BATON_OIDC_ISSUER and BATON_OIDC_AUDIENCE are set, a JWT of that identity provider (roles from
    BATON_OIDC_ROLES_CLAIM, default `roles`; see docs/security.md).
    """
    import ipaddress

    import uvicorn
    from pydantic import ValidationError

    from orchestrator.api.app import Authorizer, allow_all, create_app
    from orchestrator.api.auth import TokenAuthorizer, TokenStore
    from orchestrator.api.oidc import OidcSettings, OidcVerifier

    try:
        oidc_settings = OidcSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'BATON_OIDC_*'}: {e['msg']}" for e in exc.errors())
        fail(f"OIDC settings (BATON_OIDC_*): {problems}")
    oidc = OidcVerifier(oidc_settings) if oidc_settings.enabled else None
    _check_port_free(host, port)
    authorizer: Authorizer = allow_all
    if insecure_local:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            fail(f"--insecure-local serves without authentication, so only on a loopback address, not {host}")
        click.echo("baton api: --insecure-local: no authentication", err=True)
    else:
        store = TokenStore(tokens_file)
        if not store.list() and oidc is None:
            fail(f"no API tokens in {store.path}: create one with `baton tokens create --role admin --name me`, "
                 "set BATON_OIDC_ISSUER and BATON_OIDC_AUDIENCE to accept an identity provider's JWTs, "
                 "or run with --insecure-local on 127.0.0.1")
        authorizer = TokenAuthorizer(store, oidc=oidc)
        if oidc is not None:
            click.echo(f"baton api: accepting JWTs of {oidc_settings.issuer} for audience {oidc_settings.audience}",
                       err=True)

    settings = kafka_settings(bootstrap, topic_prefix)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one-line error below says it better
    try:  # fail fast with one line when Kafka or the topics are missing, before uvicorn logs a traceback
        with kafka_errors(settings):
            asyncio.run(_check(settings))
    except (ReadModelError, KafkaFailure) as exc:
        fail(explain_wrapped(exc, settings))  # a refused login or certificate: say which, and the fix
    try:
        uvicorn.run(create_app(settings, db_path=db, authorizer=authorizer), host=host, port=port, log_level="info")
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _check_port_free(host: str, port: int) -> None:
    """One line when the port is taken: uvicorn would log an ERROR after starting up, then exit."""
    import os
    import socket

    try:
        with socket.create_server((host, port), reuse_port=False):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        fail(f"cannot listen on {host}:{port}: {reason}; choose another --port")
