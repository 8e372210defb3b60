"""An identity provider for tests: real keys (RSA, EC) made in the test, served over real HTTP.

`IdentityProvider` runs an HTTP server on 127.0.0.1 (a thread) with
`/.well-known/openid-configuration` and `/jwks.json`, counts the requests each gets, and signs
JWTs with its private keys. Nothing of the verifier is mocked: the API fetches the JWKS over HTTP.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from orchestrator.api.oidc import OidcSettings

AUDIENCE = "baton-api"


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any  # rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        exported = RSAAlgorithm.to_jwk(public, as_dict=True) if self.algorithm.startswith("RS") \
            else ECAlgorithm.to_jwk(public, as_dict=True)
        return {**exported, "kid": self.kid, "use": "sig", "alg": self.algorithm}


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


class IdentityProvider:
    """Keys, a JWKS and a discovery document on a local port; `token(...)` signs a JWT."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = [rsa_key("rsa-1"), ec_key("ec-1")]
        self.requests: Counter[str] = Counter()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                provider.requests[self.path] += 1
                if self.path == "/.well-known/openid-configuration":
                    body: Any = {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks.json"}
                elif self.path == "/jwks.json":
                    body = {"keys": [key.jwk() for key in provider.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def jwks_fetches(self) -> int:
        return self.requests["/jwks.json"]

    def settings(self, **overrides: Any) -> OidcSettings:
        values: dict[str, Any] = {"issuer": self.issuer, "audience": AUDIENCE, **overrides}
        return OidcSettings(**values)

    def rotate(self) -> SigningKey:
        """A new RSA key, published in the JWKS next to the old ones."""
        key = rsa_key(f"rsa-{uuid.uuid4().hex[:6]}")
        self.keys.append(key)
        return key

    def token(self, subject: str | None = "ana", roles: Any = None, *, key: SigningKey | None = None,
              kid: str | None = None, audience: Any = AUDIENCE, issuer: str | None = None,
              expires_in: float | None = 300, not_before: float | None = None, headers: dict[str, Any] | None = None,
              **claims: Any) -> str:
        """A JWT signed by `key` (default: the first RSA key); None leaves a claim out."""
        key = key or self.keys[0]
        now = time.time()
        payload: dict[str, Any] = {"iss": issuer or self.issuer, "iat": int(now), **claims}
        if subject is not None:
            payload["sub"] = subject
        if audience is not None:
            payload["aud"] = audience
        if expires_in is not None:
            payload["exp"] = int(now + expires_in)
        if not_before is not None:
            payload["nbf"] = int(now + not_before)
        if roles is not None:
            payload["roles"] = roles
        return jwt.encode(payload, key.private, algorithm=key.algorithm,
                          headers={"kid": kid if kid is not None else key.kid, **(headers or {})})


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    try:
        yield provider
    finally:
        provider.close()
