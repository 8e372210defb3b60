"""OIDC/JWT verification against a real local identity provider (keys made here, JWKS over HTTP).

Every refusal is checked for its status (401; 503 when no key can be had) and for not quoting
the token back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from orchestrator.api.auth import AuthError, Identity
from orchestrator.api.oidc import JwksCache, OidcSettings, OidcVerifier, queues_of, roles_of
from tests.oidc_support import AUDIENCE, IdentityProvider, identity_provider, rsa_key


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with identity_provider() as provider:
        yield provider


def _verify(verifier: OidcVerifier, token: str) -> Identity:
    return asyncio.run(verifier.verify(token))


def _refused(verifier: OidcVerifier, token: str, status: int = 401) -> str:
    with pytest.raises(AuthError) as caught:
        _verify(verifier, token)
    assert caught.value.status == status, caught.value.message
    assert all(part not in caught.value.message for part in token.split(".") if len(part) > 3)
    return caught.value.message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWT built by hand: `alg: none` (no signature) or HS256 MACed with `secret`."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def test_a_valid_token_by_discovery_rs256_and_es256(idp: IdentityProvider) -> None:
    verifier = OidcVerifier(idp.settings())
    assert _verify(verifier, idp.token("ana", ["reviewer"])) == Identity("ana", "reviewer")
    es = next(key for key in idp.keys if key.algorithm == "ES256")
    assert _verify(verifier, idp.token("bo", ["operator"], key=es)) == Identity("bo", "operator")
    assert idp.requests["/.well-known/openid-configuration"] >= 1


def test_refusals(idp: IdentityProvider) -> None:
    verifier = OidcVerifier(idp.settings(leeway_seconds=30))
    assert "expired" in _refused(verifier, idp.token(expires_in=-120))
    assert "not valid yet" in _refused(verifier, idp.token(not_before=120))
    assert "issuer" in _refused(verifier, idp.token(issuer="https://evil.example.com"))
    assert "audience" in _refused(verifier, idp.token(audience="another-app"))
    assert "required claim" in _refused(verifier, idp.token(audience=None))
    assert "required claim" in _refused(verifier, idp.token(expires_in=None))
    impostor = rsa_key("rsa-1")  # same kid, another key: the signature cannot verify
    assert "signature" in _refused(verifier, idp.token(key=impostor))
    good = idp.token("ana", ["viewer"])
    header, _, signature = good.split(".")
    promoted = _b64(json.dumps({**json.loads(base64.urlsafe_b64decode(good.split(".")[1] + "==")),
                                "roles": ["admin"]}).encode())
    assert "signature" in _refused(verifier, f"{header}.{promoted}.{signature}")
    assert "malformed" in _refused(verifier, "a.b.c")
    assert "kid" in _refused(verifier, idp.token(kid="unknown-kid"))


def test_a_token_without_its_subject_is_refused(idp: IdentityProvider) -> None:
    message = _refused(OidcVerifier(idp.settings()), idp.token(subject=None, roles=["admin"]))
    assert "'sub'" in message


def test_alg_none_and_hs256_with_the_public_key_are_refused(idp: IdentityProvider) -> None:
    verifier = OidcVerifier(idp.settings())
    payload = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "roles": ["admin"], "exp": 4102444800}
    assert "algorithm" in _refused(verifier, _hand_signed({"alg": "none", "typ": "JWT"}, payload, None))
    # The classic confusion: HMAC keyed with the provider's public key, which anyone can fetch.
    public_pem = idp.keys[0].private.public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = _hand_signed({"alg": "HS256", "typ": "JWT", "kid": idp.keys[0].kid}, payload, public_pem)
    assert "algorithm" in _refused(verifier, forged)
    # An RSA key asked to verify ES256: refused, whatever the header says.
    mixed = _hand_signed({"alg": "ES256", "kid": idp.keys[0].kid}, payload, b"x")
    assert "algorithm" in _refused(verifier, mixed)


def test_leeway_accepts_a_little_clock_skew(idp: IdentityProvider) -> None:
    lenient = OidcVerifier(idp.settings(leeway_seconds=60))
    assert _verify(lenient, idp.token("ana", ["viewer"], expires_in=-20)).name == "ana"
    strict = OidcVerifier(idp.settings(leeway_seconds=0))
    _refused(strict, idp.token("ana", ["viewer"], expires_in=-20))


def test_the_jwks_is_cached_refetched_for_a_rotated_key_and_not_hammered(idp: IdentityProvider) -> None:
    now = [1000.0]
    settings = idp.settings(jwks_url=f"{idp.issuer}/jwks.json", jwks_min_refresh_seconds=30,
                            jwks_cache_seconds=300)
    keys = JwksCache(settings, clock=lambda: now[0])
    verifier = OidcVerifier(settings, keys=keys)
    before = idp.jwks_fetches
    for _ in range(3):
        _verify(verifier, idp.token("ana", ["viewer"]))
    assert keys.fetches == 1 and idp.jwks_fetches == before + 1  # cached, and no discovery needed

    rotated = idp.rotate()
    _refused(verifier, idp.token("ana", ["viewer"], key=rotated))  # within 30 s of the last fetch
    for _ in range(5):  # random kids do not make Baton fetch the JWKS again
        _refused(verifier, idp.token("ana", ["viewer"], kid="kid-" + str(_)))
    assert keys.fetches == 1
    now[0] += 31
    assert _verify(verifier, idp.token("ana", ["viewer"], key=rotated)).name == "ana"  # refetched once
    assert keys.fetches == 2
    now[0] += 301  # past the cache's lifetime: fetched again even for a known kid
    _verify(verifier, idp.token("ana", ["viewer"]))
    assert keys.fetches == 3


def test_an_unreachable_provider_is_503_not_401() -> None:
    settings = OidcSettings(issuer="http://127.0.0.1:9", audience=AUDIENCE, http_timeout_seconds=2)
    with identity_provider() as idp:
        token = idp.token("ana", ["viewer"])
    _refused(OidcVerifier(settings), token, status=503)


def test_a_discovery_document_for_another_issuer_is_not_trusted(idp: IdentityProvider) -> None:
    settings = OidcSettings(issuer=idp.issuer + "/", audience=AUDIENCE)  # the document says idp.issuer
    _refused(OidcVerifier(settings), idp.token("ana", ["viewer"], issuer=idp.issuer + "/"), status=503)


def test_roles_from_claims() -> None:
    assert roles_of({"roles": ["reviewer", "operator", "other"]}, "roles", {}) == {"reviewer", "operator"}
    assert roles_of({"scope": "openid viewer"}, "scope", {}) == {"viewer"}
    assert roles_of({"realm_access": {"roles": ["admin"]}}, "realm_access.roles", {}) == {"admin"}
    # With a map only mapped values count: a group literally named "admin" grants nothing.
    mapped = {"baton-ops": "operator"}
    assert roles_of({"groups": ["baton-ops", "admin"]}, "groups", mapped) == {"operator"}
    assert roles_of({"groups": 3}, "groups", {}) == frozenset()


def test_several_roles_and_no_role(idp: IdentityProvider) -> None:
    verifier = OidcVerifier(idp.settings(roles_claim="groups", role_map={"ops": "operator", "rev": "reviewer"}))
    both = _verify(verifier, idp.token("ana", groups=["rev", "ops"]))
    assert both.role == "operator" and both.may("reviewer") and both.may("viewer") and not both.may("admin")
    nobody = _verify(verifier, idp.token("eve", groups=["unrelated"]))
    assert nobody.role == "" and not nobody.may("viewer")


def test_settings_refuse_unsafe_configurations() -> None:
    with pytest.raises(ValidationError, match="asymmetric"):
        OidcSettings(issuer="https://idp", audience="a", algorithms=["RS256", "HS256"])
    with pytest.raises(ValidationError, match="asymmetric"):
        OidcSettings(issuer="https://idp", audience="a", algorithms=["none"])
    with pytest.raises(ValidationError, match="AUDIENCE is required"):
        OidcSettings(issuer="https://idp")
    with pytest.raises(ValidationError, match="unknown role"):
        OidcSettings(issuer="https://idp", audience="a", role_map={"g": "root"})
    assert not OidcSettings().enabled


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_OIDC_ISSUER", "https://idp.example.com")
    monkeypatch.setenv("BATON_OIDC_AUDIENCE", "baton")
    monkeypatch.setenv("BATON_OIDC_ROLES_CLAIM", "groups")
    monkeypatch.setenv("BATON_OIDC_ROLE_MAP", '{"baton-admins": "admin"}')
    settings = OidcSettings()
    assert settings.enabled and settings.roles_claim == "groups" and settings.role_map == {"baton-admins": "admin"}


def test_queues_from_claims() -> None:
    def queues(claims: dict[str, Any], **settings: Any) -> frozenset[str] | None:
        return queues_of(claims, OidcSettings(**settings))

    assert queues({"baton_queues": ["approval"]}) is None  # no claim configured: every queue
    assert queues({"q": ["approval", "refunds", 7]}, queues_claim="q") == frozenset({"approval", "refunds"})
    assert queues({"q": "approval refunds"}, queues_claim="q") == frozenset({"approval", "refunds"})
    assert queues({"app": {"queues": ["approval"]}}, queues_claim="app.queues") == frozenset({"approval"})
    # Configured but missing or empty: no queue at all (a provider may leave out an empty list).
    assert queues({"sub": "ana"}, queues_claim="q") == frozenset()
    assert queues({"q": []}, queues_claim="q") == frozenset()
    # With a map only mapped values count; a value may grant several queues, or all of them.
    mapped = {"finance": ["refunds", "invoices"], "ops": "approval", "leads": "*"}
    assert queues({"groups": ["finance", "approval"]}, queues_claim="groups", queue_map=mapped) == frozenset({
        "refunds", "invoices"})
    assert queues({"groups": "ops"}, queues_claim="groups", queue_map=mapped) == frozenset({"approval"})
    assert queues({"groups": ["leads"]}, queues_claim="groups", queue_map=mapped) == frozenset({"*"})


def test_a_jwt_with_a_queues_claim_is_limited(idp: IdentityProvider) -> None:
    verifier = OidcVerifier(idp.settings(queues_claim="baton_queues", queue_map={"fin": "refunds", "leads": "*"}))
    limited = _verify(verifier, idp.token("ana", ["reviewer"], baton_queues=["fin"]))
    assert limited == Identity("ana", "reviewer", queues=frozenset({"refunds"}))
    assert limited.may_review("refunds") and not limited.may_review("approval") and not limited.may_review(None)
    lead = _verify(verifier, idp.token("bo", ["reviewer"], baton_queues="leads"))
    assert lead.may_review("approval") and lead.may_review(None)
    without = _verify(verifier, idp.token("cy", ["reviewer"]))
    assert without.queues == frozenset() and not without.may_review("refunds")
    unlimited = _verify(OidcVerifier(idp.settings()), idp.token("dee", ["reviewer"], baton_queues=["fin"]))
    assert unlimited.queues is None and unlimited.may_review("approval")


def test_queue_map_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="registered name"):
        OidcSettings(issuer="https://idp", audience="a", queue_map={"g": ["approval:live"]})
    with pytest.raises(ValidationError, match="queue_map"):
        OidcSettings(issuer="https://idp", audience="a", queue_map={"g": ["ok", "not ok"]})
    monkeypatch.setenv("BATON_OIDC_QUEUES_CLAIM", "groups")
    monkeypatch.setenv("BATON_OIDC_QUEUE_MAP", '{"finance": ["refunds", "invoices"], "support": "approval"}')
    settings = OidcSettings()
    assert settings.queues_claim == "groups"
    assert settings.queue_map == {"finance": ["refunds", "invoices"], "support": ["approval"]}
