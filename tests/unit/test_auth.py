"""API auth without Kafka: the token store, and every route refused or let through per role,
with Baton's tokens and with an identity provider's JWTs (a real local JWKS server).

The app is used without its lifespan (no Kafka), so a route that passes auth then fails for want
of a backend (500); what is asserted is only whether auth let it through (not 401/403).
`test_the_matrix_lists_every_route` keeps ROUTES complete: a new route must be added to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.api.auth import COOKIE, Identity, TokenAuthorizer, TokenStore, TokenStoreError
from orchestrator.api.oidc import OidcVerifier
from orchestrator.settings import KafkaSettings
from tests.oidc_support import IdentityProvider, identity_provider

DEFINITION = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
# (method, path, body, the role it needs)
ROUTES: list[tuple[str, str, object, str]] = [
    ("POST", "/api/executions", {"definition": DEFINITION}, "operator"),
    ("GET", "/api/executions", None, "viewer"),
    ("GET", "/api/executions/x", None, "viewer"),
    ("GET", "/api/executions/x/history", None, "viewer"),
    ("GET", "/api/executions/x/states", None, "viewer"),
    ("GET", "/api/executions/x/graph", None, "viewer"),
    ("POST", "/api/executions/x/stop", {}, "operator"),
    ("POST", "/api/executions/x/redrive", None, "operator"),
    ("GET", "/api/executions/x/events", None, "viewer"),
    ("GET", "/api/executions/x/stream", None, "viewer"),
    ("POST", "/api/tasks/success", {"task_token": "t"}, "reviewer"),
    ("POST", "/api/tasks/failure", {"task_token": "t"}, "reviewer"),
    ("POST", "/api/tasks/heartbeat", {"task_token": "t"}, "reviewer"),
    ("GET", "/api/reviews", None, "reviewer"),
    ("POST", "/api/reviews/decision", {"task_token": "t", "decision": "approve"}, "reviewer"),
    ("POST", "/api/state-machines", {"name": "m", "definition": DEFINITION}, "operator"),
    ("GET", "/api/state-machines", None, "viewer"),
    ("GET", "/api/state-machines/m", None, "viewer"),
    ("POST", "/api/validate", {"definition": DEFINITION}, "viewer"),
    ("POST", "/api/test-state", {"definition": DEFINITION, "state": "P"}, "viewer"),
    ("GET", "/", None, "viewer"),
    ("GET", "/executions/x", None, "viewer"),
    ("GET", "/reviews", None, "reviewer"),
]
ALLOWED = {"viewer": {"viewer"}, "operator": {"operator", "viewer"}, "reviewer": {"reviewer", "viewer"},
           "admin": {"viewer", "operator", "reviewer", "admin"}}
PUBLIC = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
          ("GET", "/static")}


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with identity_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def jwts(idp: IdentityProvider) -> dict[str, str]:
    return {role: idp.token(f"{role}-user", [role]) for role in ALLOWED}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TokenStore:
    return TokenStore(tmp_path_factory.mktemp("auth") / "api-tokens.json")


@pytest.fixture(scope="module")
def tokens(store: TokenStore) -> dict[str, str]:
    return {role: store.create(f"{role}-1", role) for role in ALLOWED}


@pytest.fixture(scope="module")
def client(store: TokenStore, idp: IdentityProvider) -> TestClient:
    authorizer = TokenAuthorizer(store, oidc=OidcVerifier(idp.settings()))
    app = create_app(KafkaSettings(), db_path=":memory:", authorizer=authorizer)
    return TestClient(app, raise_server_exceptions=False)  # no `with`: no lifespan, no Kafka


def _call(client: TestClient, method: str, path: str, body: object, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, object] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    if response.status_code in (401, 403):
        error = response.json()["error"]
        assert set(error) == {"code", "message"}  # no data, no details
    status: int = response.status_code
    return status


def test_the_file_holds_no_token(store: TokenStore, tokens: dict[str, str]) -> None:
    text = store.path.read_text()
    for token in tokens.values():
        assert token not in text and token.rpartition("_")[2] not in text
    assert {e["name"]: e["role"] for e in store.list()} == {f"{r}-1": r for r in ALLOWED}
    assert (store.path.stat().st_mode & 0o777) == 0o600


def test_verify(store: TokenStore, tokens: dict[str, str]) -> None:
    assert store.verify(tokens["reviewer"]) == Identity("reviewer-1", "reviewer")
    assert store.verify(tokens["reviewer"] + "x") is None
    assert store.verify("baton_nope_nope") is None and store.verify("") is None


def test_bad_names_roles_and_duplicates(store: TokenStore, tokens: dict[str, str]) -> None:
    with pytest.raises(TokenStoreError, match="unknown role"):
        store.create("x", "root")
    with pytest.raises(TokenStoreError, match="exists"):
        store.create("admin-1", "admin")
    with pytest.raises(TokenStoreError, match="1 to 64"):
        store.create("a b", "viewer")
    with pytest.raises(TokenStoreError, match="no token named"):
        store.revoke("nobody")


def test_the_matrix_lists_every_route(client: TestClient) -> None:
    """Each route of the app (API and pages) is in ROUTES, or is one of the public documents."""
    from fastapi.routing import APIRoute
    from starlette.routing import Mount, Route

    placeholders = {"x": "{execution}", "m": "{name}"}  # the sample values ROUTES uses in paths
    listed = {(method, "/".join(placeholders.get(part, part) for part in path.split("/")))
              for method, path, _, _ in ROUTES}
    found: set[tuple[str, str]] = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            found.add(("GET", route.path))
        elif isinstance(route, (APIRoute, Route)):
            found |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    assert found - PUBLIC == listed, (sorted(found - PUBLIC - listed), sorted(listed - found))
    for method, path in PUBLIC - {("GET", "/static")}:
        assert _call(client, method, path, None, None) == 200, path


@pytest.mark.parametrize("method,path,body,needs", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_each_role_against_each_route(client: TestClient, tokens: dict[str, str], jwts: dict[str, str],
                                      idp: IdentityProvider, method: str, path: str, body: object,
                                      needs: str) -> None:
    assert _call(client, method, path, body, None) == 401
    assert _call(client, method, path, body, "baton_unknown_token") == 401
    assert _call(client, method, path, body, idp.token("late", ["admin"], expires_in=-3600)) == 401
    assert _call(client, method, path, body, idp.token("lost", ["admin"], audience="another-app")) == 401
    assert _call(client, method, path, body, idp.token("nobody", ["unrelated"])) == 403
    for kind, credentials in (("token", tokens), ("jwt", jwts)):
        for role, token in credentials.items():
            status = _call(client, method, path, body, token)
            if needs in ALLOWED[role]:
                assert status not in (401, 403), (kind, role, status)
            else:
                assert status == 403, (kind, role, status)


def test_validate_answers_for_a_viewer(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.post("/api/validate", json={"definition": DEFINITION},
                           headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert response.status_code == 200 and response.json()["valid"] is True


def test_revocation_takes_effect_without_restart(store: TokenStore, client: TestClient) -> None:
    token = store.create("short-lived", "viewer")
    body = {"definition": DEFINITION}
    assert _call(client, "POST", "/api/validate", body, token) == 200
    TokenStore(store.path).revoke("short-lived")  # another process (`baton tokens revoke`)
    assert _call(client, "POST", "/api/validate", body, token) == 401


def test_page_login_sets_a_cookie_that_then_suffices(store: TokenStore, tokens: dict[str, str]) -> None:
    app = create_app(KafkaSettings(), db_path=":memory:", authorizer=TokenAuthorizer(store))
    browser = TestClient(app, raise_server_exceptions=False)
    first = browser.post(f"/api/validate?token={tokens['viewer']}", json={"definition": DEFINITION})
    assert first.status_code == 200 and COOKIE not in first.cookies  # only a GET logs in
    refused = browser.get("/reviews?token=baton_bad_token")
    assert refused.status_code == 401 and COOKIE not in browser.cookies
    login = browser.get(f"/static/missing.css?token={tokens['viewer']}")  # not let through: no cookie
    assert COOKIE not in login.cookies
    page = browser.get(f"/reviews?token={tokens['reviewer']}")
    assert page.status_code == 200 and browser.cookies.get(COOKIE) == tokens["reviewer"]
    assert "httponly" in page.headers["set-cookie"].lower() and "samesite=strict" in page.headers["set-cookie"].lower()
    assert browser.post("/api/validate", json={"definition": DEFINITION}).status_code == 200


def test_tokens_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    file = str(tmp_path / "t.json")
    runner = CliRunner()
    created = runner.invoke(main, ["tokens", "create", "--role", "reviewer", "--name", "ana", "--file", file])
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert TokenStore(file).verify(token) == Identity("ana", "reviewer")
    listed = runner.invoke(main, ["tokens", "list", "--json", "--file", file])
    assert [e["name"] for e in json.loads(listed.output)] == ["ana"] and token not in listed.output
    assert runner.invoke(main, ["tokens", "revoke", "ana", "--file", file]).exit_code == 0
    assert TokenStore(file).verify(token) is None
    assert runner.invoke(main, ["tokens", "revoke", "ana", "--file", file]).exit_code == 2
