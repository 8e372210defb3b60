"""OIDC: the API also accepts an identity provider's JWTs as bearer tokens (optional).

Configured from the environment (`OidcSettings`, prefix BATON_OIDC_); off unless
BATON_OIDC_ISSUER is set. A JWT (`header.payload.signature`, never `baton_...`) is accepted when:

- its `alg` is one of `algorithms` (asymmetric only: RS*, PS*, ES*, EdDSA). `none` and HS* are
  refused before any key is looked at, so a token MACed with the provider's public key (the
  "algorithm confusion" forgery) never reaches a verifier;
- its signature verifies with the key its `kid` names in the provider's JWKS (`jwks_url`, or the
  `jwks_uri` of `{issuer}/.well-known/openid-configuration`, whose `issuer` must match). The JWKS
  is cached for `jwks_cache_seconds`; an unknown `kid` (the provider rotated its keys) refetches
  it, at most once per `jwks_min_refresh_seconds`, so random kids cannot make Baton hammer the
  provider;
- `iss` equals `issuer`, `aud` contains `audience`, and `exp` (required) / `nbf` hold within
  `leeway_seconds`.

The identity is the `subject_claim` (default `sub`): review decisions record it as the reviewer.
The roles are read from `roles_claim` (a dotted path for nested claims, e.g.
`realm_access.roles`; a list, or a space-separated string such as `scope`). With `role_map`
(claim value -> Baton role) only mapped values count; without it, values that are Baton role
names (viewer, operator, reviewer, admin) count as themselves. A valid JWT without a role is
answered 403 like a token whose role is not enough.

Review queues (optional): with `queues_claim` set, the identity may review only the state
machines that claim names (read like the roles claim); with `queue_map` (claim value -> queue
name, a list of them, or `*` for every queue) only mapped values count. Once the claim is
configured, a JWT without it (or with no value that counts) reviews no queue: a provider that
leaves out an empty group list must not open every queue. Unset, JWTs are not queue-limited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
from jwt import PyJWK
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.api.auth import ALL_QUEUES, IMPLIES, AuthError, Identity, TokenStoreError, check_queues

log = logging.getLogger(__name__)

# Strongest first: an identity's main role is the strongest it holds.
_STRENGTH = ("admin", "operator", "reviewer", "viewer")
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})  # never "oct": a symmetric key has no business in a JWKS here
_MAX_DOCUMENT_BYTES = 1024 * 1024


class OidcSettings(BaseSettings):
    """Env: BATON_OIDC_ISSUER, BATON_OIDC_AUDIENCE, BATON_OIDC_JWKS_URL, BATON_OIDC_ROLES_CLAIM, ...

    Lists and maps are JSON in the environment, e.g.
    `BATON_OIDC_ROLE_MAP='{"baton-admins": "admin", "support": "reviewer"}'`,
    `BATON_OIDC_QUEUE_MAP='{"finance": ["refunds", "invoices"], "review-leads": "*"}'`.
    """

    model_config = SettingsConfigDict(env_prefix="BATON_OIDC_", extra="ignore")

    issuer: str | None = None  # the exact `iss`; setting it turns OIDC on
    audience: str | None = None  # required with an issuer: `aud` must contain it
    jwks_url: str | None = None  # default: discovered from the issuer
    roles_claim: str = "roles"
    role_map: dict[str, str] = {}
    queues_claim: str | None = None  # unset: JWTs may review every queue
    queue_map: dict[str, list[str]] = {}  # claim value -> queue names (a single name is accepted too)
    subject_claim: str = "sub"
    algorithms: list[str] = ["RS256", "ES256"]
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)  # clock skew allowed on exp / nbf / iat
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    http_timeout_seconds: float = Field(default=5.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, values: list[str]) -> list[str]:
        refused = [value for value in values if value not in ASYMMETRIC]
        if refused or not values:
            raise ValueError(f"algorithms must be asymmetric ({', '.join(sorted(ASYMMETRIC))}); "
                             f"refused: {', '.join(refused) or 'an empty list'}")
        return values

    @field_validator("role_map")
    @classmethod
    def _baton_roles(cls, values: dict[str, str]) -> dict[str, str]:
        unknown = sorted({role for role in values.values() if role not in IMPLIES})
        if unknown:
            raise ValueError(f"role_map maps to unknown role(s) {', '.join(unknown)}; use {', '.join(_STRENGTH)}")
        return values

    @field_validator("queue_map", mode="before")
    @classmethod
    def _queue_lists(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {key: [value] if isinstance(value, str) else value for key, value in values.items()}
        return values

    @field_validator("queue_map")
    @classmethod
    def _queue_names(cls, values: dict[str, list[str]]) -> dict[str, list[str]]:
        for queues in values.values():
            try:
                check_queues(queue for queue in queues if queue != ALL_QUEUES)
            except TokenStoreError as exc:
                raise ValueError(f"queue_map: {exc}") from None
        return values

    @model_validator(mode="after")
    def _audience_with_issuer(self) -> OidcSettings:
        # Without an audience check, any token the provider issued to any application would do.
        if self.issuer and not self.audience:
            raise ValueError("BATON_OIDC_AUDIENCE is required with BATON_OIDC_ISSUER (the API's client id or "
                             "audience in the identity provider)")
        return self


def claim_values(claims: dict[str, Any], claim: str) -> list[str]:
    """The strings of a claim: a dotted path for nested claims; a list, or a space-separated string."""
    value: Any = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def roles_of(claims: dict[str, Any], claim: str, role_map: dict[str, str]) -> frozenset[str]:
    """The Baton roles a token's claims grant (see the module docstring)."""
    values = claim_values(claims, claim)
    if role_map:
        return frozenset(role_map[item] for item in values if item in role_map)
    return frozenset(item for item in values if item in IMPLIES)


def queues_of(claims: dict[str, Any], settings: OidcSettings) -> frozenset[str] | None:
    """The review queues a token's claims grant: None (all) without `queues_claim`; otherwise what
    the claim names (mapped when `queue_map` is set), possibly nothing."""
    if not settings.queues_claim:
        return None
    values = claim_values(claims, settings.queues_claim)
    if settings.queue_map:
        return frozenset(queue for item in values for queue in settings.queue_map.get(item, ()))
    return frozenset(values)


def identity_from(claims: dict[str, Any], settings: OidcSettings) -> Identity:
    """The identity of verified claims: the subject, its strongest role, the others, its queues."""
    subject = claims.get(settings.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise AuthError(401, "Unauthorized", f"the bearer JWT has no {settings.subject_claim!r} claim")
    roles = roles_of(claims, settings.roles_claim, settings.role_map)
    ordered = [role for role in _STRENGTH if role in roles]
    queues = queues_of(claims, settings)
    if not ordered:
        return Identity(subject, "", queues=queues)
    return Identity(subject, ordered[0], frozenset(ordered[1:]), queues=queues)


# PyJWT's messages are fine but some quote token parts: answer with fixed phrases instead.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "it has expired"),
    (jwt.ImmatureSignatureError, "it is not valid yet (nbf / iat)"),
    (jwt.InvalidAudienceError, "its audience (aud) is not this API"),
    (jwt.InvalidIssuerError, "its issuer (iss) is not the configured one"),
    (jwt.MissingRequiredClaimError, "a required claim (exp, iss, aud) is missing"),
    (jwt.InvalidSignatureError, "its signature does not verify"),
    (jwt.InvalidKeyError, "its key does not fit its algorithm"),
    (jwt.InvalidAlgorithmError, "its algorithm is not allowed"),
)


def _reason(exc: Exception) -> str:
    return next((text for kind, text in _REASONS if isinstance(exc, kind)), "it is malformed")


def _refused(reason: str) -> AuthError:
    return AuthError(401, "Unauthorized", f"the bearer JWT was refused: {reason}")


Fetch = Callable[[str], Awaitable[Any]]


class JwksCache:
    """The provider's signing keys by `kid`, fetched over HTTP and kept `jwks_cache_seconds`."""

    def __init__(self, settings: OidcSettings, fetch: Fetch | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._fetch_json = fetch or self._get
        self._clock = clock
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._parsed: dict[tuple[str | None, str], PyJWK] = {}
        self._fetched_at: float | None = None
        self._jwks_url = settings.jwks_url
        self._lock = asyncio.Lock()
        self.fetches = 0  # JWKS documents fetched (tests and logs)

    async def key(self, kid: str | None, algorithm: str) -> PyJWK:
        """The key `kid` names, ready for `algorithm`; AuthError 401 when there is none."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self.settings.jwks_cache_seconds:
            await self._refresh(stale_before=now)
        jwk = self._find(kid)
        if jwk is None and self._fetched_at is not None \
                and now - self._fetched_at >= self.settings.jwks_min_refresh_seconds:
            await self._refresh(stale_before=now)  # a rotated key: look once more
            jwk = self._find(kid)
        if jwk is None:
            raise _refused("its key id (kid) is not in the identity provider's JWKS")
        if jwk.get("alg") not in (None, algorithm):
            raise _refused("its algorithm is not the one its key is for")
        parsed = self._parsed.get((kid, algorithm))
        if parsed is None:
            try:
                parsed = PyJWK(jwk, algorithm=algorithm)
            except jwt.PyJWTError:
                raise _refused("its key does not fit its algorithm") from None
            self._parsed[(kid, algorithm)] = parsed
        return parsed

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))  # a provider with one key may omit kid
        return self._keys.get(kid)

    async def _refresh(self, stale_before: float) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at > stale_before:
                return  # another request refreshed it while this one waited
            try:
                document = await self._fetch_json(await self._url())
                keys = _signing_keys(document)
            except (httpx.HTTPError, ValueError) as exc:
                if not self._keys:
                    raise AuthError(503, "IdentityProviderUnavailable",
                                    "the identity provider's keys (JWKS) cannot be fetched; try again") from None
                log.warning("OIDC: JWKS refresh failed, keeping the %d cached key(s): %s", len(self._keys), exc)
                self._fetched_at = self._clock()  # do not retry on every request
                return
            self.fetches += 1
            self._keys, self._parsed, self._fetched_at = keys, {}, self._clock()
            log.info("OIDC: %d signing key(s) loaded from the JWKS", len(keys))

    async def _url(self) -> str:
        if self._jwks_url is None:
            issuer = (self.settings.issuer or "").rstrip("/")
            discovery = await self._fetch_json(f"{issuer}/.well-known/openid-configuration")
            if not isinstance(discovery, dict) or not isinstance(discovery.get("jwks_uri"), str):
                raise ValueError("the discovery document has no jwks_uri")
            # OIDC Discovery 1.0 section 4.3: the document must name the issuer it was asked for.
            if discovery.get("issuer") != self.settings.issuer:
                raise ValueError(f"the discovery document names issuer {discovery.get('issuer')!r}, "
                                 f"not {self.settings.issuer!r}")
            self._jwks_url = discovery["jwks_uri"]
        return self._jwks_url

    async def _get(self, url: str) -> Any:
        # A client per fetch: fetches are rare, and a pooled client would be tied to one event loop.
        async with httpx.AsyncClient(timeout=self.settings.http_timeout_seconds, follow_redirects=False) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > _MAX_DOCUMENT_BYTES:
                raise ValueError(f"{url} answered with more than 1 MiB")
            return response.json()


def _signing_keys(document: Any) -> dict[str | None, dict[str, Any]]:
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("the JWKS has no keys list")
    keys: dict[str | None, dict[str, Any]] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("kty") in _KEY_TYPES and entry.get("use", "sig") == "sig":
            kid = entry.get("kid")
            keys[kid if isinstance(kid, str) else None] = entry
    if not keys:
        raise ValueError("the JWKS has no asymmetric signing key")
    return keys


class OidcVerifier:
    """Verifies a JWT and answers its `Identity`, or raises `AuthError` (401; 503 without keys)."""

    def __init__(self, settings: OidcSettings, *, keys: JwksCache | None = None) -> None:
        if not settings.enabled:
            raise ValueError("OIDC is not configured: set BATON_OIDC_ISSUER and BATON_OIDC_AUDIENCE")
        self.settings = settings
        self.keys = keys or JwksCache(settings)

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("it is malformed") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.settings.algorithms:
            raise _refused(f"its algorithm must be one of {', '.join(self.settings.algorithms)}")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None, algorithm)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key=key.key, algorithms=[algorithm], audience=self.settings.audience,
                issuer=self.settings.issuer, leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            log.info("OIDC: a JWT was refused: %s", _reason(exc))
            raise _refused(_reason(exc)) from None
        return identity_from(claims, self.settings)
