"""API auth without Kafka: the token store, and every route refused or let through per role,
with Baton's tokens and with an identity provider's JWTs (a real local JWKS server); review queues
(stored with a token, or from a JWT claim) and their enforcement on the decision routes.

The app is used without its lifespan (no Kafka), so a route that passes auth then fails for want
of a backend (500); what is asserted is only whether auth let it through (not 401/403).
`test_the_matrix_lists_every_route` keeps ROUTES complete: a new route must be added to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from orchestrator.api.auth import COOKIE, Identity, TokenAuthorizer, TokenStore, TokenStoreError, in_queues
from orchestrator.api.oidc import OidcVerifier
from orchestrator.api.readmodel import ExecutionView
from schemas.tokens import TokenSigner
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
    ("GET", "/api/executions/x/payloads/d", None, "viewer"),
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
    ("GET", "/api/state-machines/m/versions", None, "viewer"),
    ("GET", "/state-machines", None, "viewer"),
    ("GET", "/state-machines/m", None, "viewer"),
    ("POST", "/api/validate", {"definition": DEFINITION}, "viewer"),
    ("POST", "/api/test-state", {"definition": DEFINITION, "state": "P"}, "viewer"),
    ("GET", "/", None, "viewer"),
    ("GET", "/executions/x", None, "viewer"),
    ("GET", "/reviews", None, "reviewer"),
    ("GET", "/studio", None, "viewer"),
    ("GET", "/studio/m", None, "viewer"),
    ("GET", "/api/studio/prompts?ref=p@v1", None, "viewer"),
    ("POST", "/api/studio/save", {"name": "m", "definition": DEFINITION}, "operator"),
    ("POST", "/api/studio/evals", {"definition": DEFINITION, "state": "P", "dataset": "", "variants": [{"name": "a"}]},
     "viewer"),
]
ALLOWED = {"viewer": {"viewer"}, "operator": {"operator", "viewer"}, "reviewer": {"reviewer", "viewer"},
           "admin": {"viewer", "operator", "reviewer", "admin"}}
PUBLIC = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
          ("GET", "/static"), ("GET", "/healthz")}


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
def limited(store: TokenStore, idp: IdentityProvider) -> dict[str, str]:
    """A reviewer token and JWT limited to one review queue: by role, let through as any reviewer."""
    return {"token": store.create("queue-reviewer", "reviewer", ["approval"]),
            "jwt": idp.token("queue-user", ["reviewer"], baton_queues=["approval"])}


@pytest.fixture(scope="module")
def client(store: TokenStore, idp: IdentityProvider) -> TestClient:
    authorizer = TokenAuthorizer(store, oidc=OidcVerifier(idp.settings(queues_claim="baton_queues")))
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
        # `baton_<hex id>_<secret>`: the secret (url-safe, so it may hold "_") is all after the id.
        assert token not in text and token.split("_", 2)[2] not in text
    assert {e["name"]: e["role"] for e in store.list() if e["name"].endswith("-1")} == {f"{r}-1": r for r in ALLOWED}
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

    placeholders = {"x": "{execution}", "m": "{name}", "d": "{digest}"}  # the sample values ROUTES uses in paths
    listed = {(method, "/".join(placeholders.get(part, part) for part in path.split("?", 1)[0].split("/")))
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
                                      limited: dict[str, str], idp: IdentityProvider, method: str, path: str,
                                      body: object, needs: str) -> None:
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
    for kind, token in limited.items():  # the matrix's task token "t" is malformed: 400, not a queue's 403
        status = _call(client, method, path, body, token)
        assert (status not in (401, 403)) if needs in ALLOWED["reviewer"] else (status == 403), (kind, status)


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


# ------------------------------------------------------------ review queues


def test_queues_are_stored_listed_and_verified(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "api-tokens.json")
    ana = store.create("ana", "reviewer", ["refunds", "approval", "approval"])
    bo = store.create("bo", "reviewer")
    boss = store.create("boss", "admin", ["refunds"])  # queues limit whoever holds them, admins too
    assert store.verify(ana) == Identity("ana", "reviewer", queues=frozenset({"approval", "refunds"}))
    assert store.verify(bo) == Identity("bo", "reviewer", queues=None)  # no limit
    assert store.verify(boss) == Identity("boss", "admin", queues=frozenset({"refunds"}))
    assert [(e["name"], e["queues"]) for e in store.list()] == [
        ("ana", ["approval", "refunds"]), ("bo", None), ("boss", ["refunds"])]
    stored = {e["name"]: e for e in json.loads(store.path.read_text())["tokens"].values()}
    assert stored["ana"]["queues"] == ["approval", "refunds"]
    assert "queues" not in stored["bo"]  # an unlimited token's entry reads exactly as before queues
    store.revoke("ana")
    assert store.verify(ana) is None and store.verify(boss) is not None
    assert [e["name"] for e in store.list()] == ["bo", "boss"]


def test_queue_names_and_roles_are_checked(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "api-tokens.json")
    with pytest.raises(TokenStoreError, match="registered name, without :VERSION or :ALIAS"):
        store.create("ana", "reviewer", ["approval:live"])
    with pytest.raises(TokenStoreError, match="registered name"):
        store.create("ana", "reviewer", ["two words"])
    for role in ("viewer", "operator"):
        with pytest.raises(TokenStoreError, match="cannot review"):
            store.create("ana", role, ["approval"])
    assert store.list() == []  # nothing refused was written
    assert store.verify(store.create("ana", "reviewer", [])) == Identity("ana", "reviewer")  # no queue: all


def _old_entry(secret: str, **extra: Any) -> dict[str, Any]:
    """A token entry exactly as files written before queues hold it (built here, not by the store)."""
    salt = bytes(range(16))
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, 100_000).hex()
    return {"name": "legacy", "role": "reviewer", "salt": salt.hex(), "hash": digest,
            "created": "2024-01-01T00:00:00Z", **extra}


def test_a_token_file_from_before_queues_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens.json"
    path.write_text(json.dumps({"tokens": {"0a1b2c3d4e5f": _old_entry("s3cret-part")}}))
    store = TokenStore(path)
    legacy = "baton_0a1b2c3d4e5f_s3cret-part"
    assert store.verify(legacy) == Identity("legacy", "reviewer")
    assert store.verify(legacy).may_review("anything")  # type: ignore[union-attr]
    assert store.list() == [{"name": "legacy", "role": "reviewer", "created": "2024-01-01T00:00:00Z", "queues": None}]
    new = store.create("ana", "reviewer", ["approval"])  # rewriting the file keeps the old entry as it was
    assert json.loads(path.read_text())["tokens"]["0a1b2c3d4e5f"] == _old_entry("s3cret-part")
    assert store.verify(legacy) == Identity("legacy", "reviewer") and store.verify(new) is not None
    store.revoke("legacy")
    assert store.verify(legacy) is None and store.verify(new) is not None


def test_an_entry_with_damaged_queues_lets_nobody_in(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens.json"
    path.write_text(json.dumps({"tokens": {"0a1b2c3d4e5f": _old_entry("s3cret-part", queues="approval")}}))
    store = TokenStore(path)
    assert store.verify("baton_0a1b2c3d4e5f_s3cret-part") is None  # not read as "no limit"
    assert store.list() == [{"name": "legacy", "role": "reviewer", "created": "2024-01-01T00:00:00Z",
                             "queues": None, "unusable": True}]


@pytest.mark.parametrize("queues,state_machine,allowed", [
    (None, "approval", True),  # no limit: every queue
    (None, None, True),
    (frozenset({"approval"}), "approval", True),
    (frozenset({"approval"}), "refunds", False),
    (frozenset({"approval"}), "approval-2", False),  # exact names, no prefixes
    (frozenset({"approval"}), None, False),  # an unknown execution is in no limited queue
    (frozenset(), "approval", False),  # limited to nothing
    (frozenset({"*"}), "refunds", True),  # an OIDC queue map may grant every queue
    (frozenset({"refunds", "*"}), None, True),
])
def test_the_queue_matching_rule(queues: frozenset[str] | None, state_machine: str | None, allowed: bool) -> None:
    assert in_queues(queues, state_machine) is allowed
    assert Identity("x", "reviewer", queues=queues).may_review(state_machine) is allowed


def test_tokens_cli_queues(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    file = str(tmp_path / "t.json")
    runner = CliRunner()
    created = runner.invoke(main, ["tokens", "create", "--role", "reviewer", "--name", "ana", "--queue", "refunds",
                                   "--queue", "approval", "--file", file])
    assert created.exit_code == 0, created.output
    assert TokenStore(file).verify(created.output.strip()) == Identity("ana", "reviewer",
                                                                       queues=frozenset({"approval", "refunds"}))
    unlimited = runner.invoke(main, ["tokens", "create", "--role", "reviewer", "--name", "bo", "--file", file])
    assert unlimited.exit_code == 0, unlimited.output
    listed = runner.invoke(main, ["tokens", "list", "--file", file])
    lines = listed.output.splitlines()
    assert lines[0].startswith("ana\treviewer\t") and lines[0].endswith("\tqueues: approval,refunds"), lines
    assert lines[1].endswith("\tall queues"), lines
    as_json = json.loads(runner.invoke(main, ["tokens", "list", "--json", "--file", file]).output)
    assert [(e["name"], e["queues"]) for e in as_json] == [("ana", ["approval", "refunds"]), ("bo", None)]
    refused = runner.invoke(main, ["tokens", "create", "--role", "reviewer", "--name", "cy", "--queue",
                                   "approval:live", "--file", file])
    assert refused.exit_code == 2 and "registered name" in refused.output
    assert runner.invoke(main, ["tokens", "create", "--role", "viewer", "--name", "dee", "--queue", "approval",
                                "--file", file]).exit_code == 2
    assert [e["name"] for e in TokenStore(file).list()] == ["ana", "bo"]


class _Backend:
    """What the decision routes use of the API's backend: the read model's describe, whether a task
    waits (any task of an execution it knows) and posting a decision."""

    def __init__(self, views: list[ExecutionView]) -> None:
        from kafka_io import KafkaSettings

        self.settings = KafkaSettings()
        self.model = self
        self.views = {view.execution_id: view for view in views}
        self.published: list[Any] = []

    def describe(self, execution: str) -> ExecutionView | None:
        return self.views.get(execution)

    async def publish(self, topic: str, record: Any) -> None:
        self.published.append(record)

    async def task_state(self, execution_id: str, task_id: str) -> str:
        return "waiting" if execution_id in self.views else "unknown"

    async def post_decision(self, decision: Any, wait: float) -> str:
        self.published.append(decision)
        return "accepted"  # as if the orchestrator had not consumed it yet: 202


def test_decision_routes_enforce_queues(tmp_path: Path, idp: IdentityProvider) -> None:
    """A limited reviewer (token or JWT) decides its queue's tasks; another queue's, and an unknown
    execution's, get the same bare 403 and nothing is published; the unlimited decide anything."""
    prefix = "arn:baton:states:local:execution:"
    approval, refunds = f"{prefix}approval:live:a1", f"{prefix}refunds:3:r1"  # run via an alias / a version
    backend = _Backend([ExecutionView(execution_id=approval, state_machine="approval", name="a1", status="RUNNING"),
                        ExecutionView(execution_id=refunds, state_machine="refunds", name="r1", status="RUNNING")])
    secret = "unit-test-secret-0123456789"
    signer = TokenSigner(secret.encode())
    tasks = {name: signer.sign(execution, "Review#1") for name, execution in
             (("approval", approval), ("refunds", refunds), ("unknown", f"{prefix}refunds:1:nope"))}
    store = TokenStore(tmp_path / "api-tokens.json")
    authorizer = TokenAuthorizer(store, oidc=OidcVerifier(idp.settings(queues_claim="baton_queues")))
    app = create_app(KafkaSettings(), db_path=":memory:", authorizer=authorizer, token_secret=SecretStr(secret))
    app.state.backend = backend  # no lifespan: the routes reach this stand-in instead of Kafka
    client = TestClient(app, raise_server_exceptions=False)
    ana = store.create("ana", "reviewer", ["approval"])
    jwt = idp.token("jo@example.com", ["reviewer"], baton_queues=["approval"])
    everyone = store.create("bo", "reviewer")

    def post(path: str, token: str, task: str, **body: Any) -> Any:
        return client.post(path, json={"task_token": task, **body}, headers={"Authorization": f"Bearer {token}"})

    routes: list[tuple[str, dict[str, Any]]] = [
        ("/api/reviews/decision", {"decision": "approve"}), ("/api/reviews/decision", {"decision": "reject"}),
              ("/api/tasks/success", {"output": {}}), ("/api/tasks/failure", {}), ("/api/tasks/heartbeat", {})]
    for credential in (ana, jwt):
        for path, body in routes:
            other = post(path, credential, tasks["refunds"], **body)
            unknown = post(path, credential, tasks["unknown"], **body)
            assert other.status_code == 403 and set(other.json()["error"]) == {"code", "message"}, other.text
            assert unknown.status_code == 403 and unknown.json() == other.json()  # existence is not revealed
            assert "refunds" not in other.text and "r1" not in other.text
        assert backend.published == []
        malformed = post("/api/reviews/decision", credential, "not-a-token", decision="approve")
        assert malformed.status_code == 400
    own = post("/api/reviews/decision", ana, tasks["approval"], decision="approve", reviewer="somebody-else")
    assert own.status_code == 202, own.text
    assert backend.published[-1].execution_id == approval and backend.published[-1].reviewer == "ana"
    assert post("/api/tasks/heartbeat", jwt, tasks["approval"]).status_code == 202
    assert backend.published[-1].reviewer == "jo@example.com"
    # Without a limit, as before; the API checks the token then (an unknown execution: 404).
    assert post("/api/reviews/decision", everyone, tasks["refunds"], decision="approve").status_code == 202
    assert post("/api/reviews/decision", everyone, tasks["unknown"], decision="approve").status_code == 404
    assert len(backend.published) == 3
    page = client.get("/reviews", headers={"Authorization": f"Bearer {ana}"})
    assert page.status_code == 200 and "Your review queues: approval." in page.text
    assert "review queues" not in client.get("/reviews", headers={"Authorization": f"Bearer {everyone}"}).text
