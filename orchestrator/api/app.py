"""The HTTP API and its pages (`baton api`): `create_app` assembles them, nothing more.

One router per resource (`orchestrator/api/routers/`): executions (start, stop, redrive and the
reads), streams (server-sent events), reviews (the inbox and `/api/tasks/*` callbacks), state
machines (the registry), definitions (validate, TestState) and the pages. The routes use the app's
`Backend` (`orchestrator.api.backend`: the read model following the history and events topics, a
follower of the compacted state topic, and `orchestrator.client.BatonClient` for every write).

Every error is one JSON shape, `{"error": {"code", "message", "details"?}}`, mapped to HTTP in
`orchestrator.api.errors`. Quotas (`orchestrator.settings.Quotas`, docs/limits.md): every route's
body is bounded in size and depth before it is parsed (`orchestrator.api.limits`); inputs, task
outputs and definitions are measured as the decider measures them (`orchestrator.quotas`) and
refused with 413 before anything is published.

Auth: every route declares the role it needs (viewer, operator, reviewer) through
`orchestrator.api.roles.requires(role)`, which calls the app's `Authorizer`. `create_app`'s default
allows all (tests, `baton api --insecure-local`); `baton api` passes
`orchestrator.api.auth.TokenAuthorizer` (Baton's tokens, and an identity provider's JWTs when
BATON_OIDC_ISSUER is set: `orchestrator.api.oidc`), which answers 401 / 403 in the same error
shape and keeps the caller's identity for the review routes. A page visited with `?token=<token>`
sets the `baton_token` cookie, so the pages' own calls carry it (`orchestrator.api.login`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from infra.stack import StackIdentity
from kafka_io import KafkaSettings
from orchestrator.api.backend import Backend
from orchestrator.api.errors import install_error_handlers
from orchestrator.api.limits import GuardedRoute
from orchestrator.api.login import HideQueryTokens, hide_query_tokens, install_login_cookie, install_sign_in_page
from orchestrator.api.readmodel import default_path
from orchestrator.api.roles import Authorizer, Role, allow_all, requires
from orchestrator.api.routers import (
    definitions,
    docs,
    executions,
    health,
    pages,
    payloads,
    reviews,
    state_machines,
    streams,
    studio,
)
from orchestrator.settings import DecisionSettings, OrchestratorSettings, Quotas
from steps.inprocess import LocalIntegrations, LocalIntegrationsConfig

__all__ = ["Authorizer", "HideQueryTokens", "Role", "allow_all", "create_app", "requires"]


def create_app(settings: KafkaSettings, *, db_path: str | Path | None = None,
               authorizer: Authorizer = allow_all, quotas: Quotas | None = None,
               token_secret: SecretStr | None = None, decision_wait: float | None = None,
               integrations: LocalIntegrations | None = None) -> FastAPI:
    """The API and pages for the topics of `settings`; `db_path` is the read model's file.
    `quotas`, the orchestrators' `token_secret` and the `decision_wait` (seconds) default to the
    environment's (BATON_MAX_*, BATON_TOKEN_SECRET, BATON_DECISION_WAIT_SECONDS). `integrations`
    run TestState's llm/http/retrieval Tasks in-process; by default configured as the step
    services are (BATON_LLM_CONFIG_FILE, BATON_HTTP_CONNECTIONS, ...), never starting a model."""
    path = db_path if db_path is not None else default_path(settings.topic_prefix, settings.kafka_bootstrap)
    quotas = quotas if quotas is not None else Quotas()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = Backend(settings, path, quotas)
        try:
            await backend.start()
        except BaseException:
            await backend.stop()
            raise
        app.state.backend = backend
        try:
            yield
        finally:
            await backend.stop()
            await app.state.integrations.aclose()

    app = FastAPI(title="Baton", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,  # routers.docs
                  description="Amazon States Language workflows on Apache Kafka: executions, human review, "
                              "TestState and validation. Errors: {\"error\": {\"code\", \"message\", \"details\"}}.")
    app.state.authorizer = authorizer
    app.state.stack = StackIdentity.of(settings)  # GET /healthz says it (routers.health)
    app.state.quotas = quotas
    app.state.integrations = integrations if integrations is not None else LocalIntegrations(
        LocalIntegrationsConfig(start_offline_servers=False))
    app.state.token_secret = token_secret if token_secret is not None else OrchestratorSettings().token_secret
    app.state.decision_wait = (decision_wait if decision_wait is not None
                               else DecisionSettings().decision_wait_seconds)
    app.router.route_class = GuardedRoute  # every route: bodies bounded before they are parsed
    hide_query_tokens()
    install_error_handlers(app)
    install_login_cookie(app)
    install_sign_in_page(app, pages.sign_in_page)
    for router in (executions.router, payloads.router, streams.router, reviews.router, definitions.router,
                   state_machines.router, pages.router, docs.router, studio.router, health.router):
        # The routers' routes join the app's own list (not include_router, which this FastAPI
        # keeps as a lazy branch): `app.routes` lists every route, as the auth matrix test reads it.
        app.router.routes.extend(router.routes)
    app.mount("/static", pages.static_files(), name="static")
    return app
