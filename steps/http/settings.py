"""The HTTP step service's configuration, from the environment (prefix BATON_HTTP_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Step Functions asks for `Range: bytes=0-262144` and fails a larger output: the same cap here.
AWS_RESPONSE_BYTES = 262_144
AWS_TIMEOUT_SECONDS = 60.0  # "HTTP task requests will timeout after 60 seconds" ([https])


class HttpSettings(BaseSettings):
    """Env: BATON_HTTP_CONNECTIONS (a YAML/JSON file path, or the JSON itself), BATON_HTTP_TIMEOUT_SECONDS, ..."""

    model_config = SettingsConfigDict(env_prefix="BATON_HTTP_", extra="ignore")

    connections: str | None = None
    # The whole request (connect, send, wait, read); past it the task fails with States.Http.Socket.
    timeout_seconds: float = Field(default=AWS_TIMEOUT_SECONDS, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=100, ge=1)  # pooled, shared by all tasks of the service
    max_keepalive_connections: int = Field(default=20, ge=0)
    max_response_bytes: int = Field(default=AWS_RESPONSE_BYTES, ge=1)
    # Off by default: a redirect could carry a connection's credentials to another host.
    follow_redirects: bool = False
    # AWS requires a ConnectionArn; Baton lets a Task call an API without one unless this is set.
    require_connection: bool = False
    user_agent: str = "Baton|HttpInvoke"
    # SSRF guard (steps.http.guard): destinations refused by address, e.g. the cloud metadata
    # endpoint 169.254.169.254. JSON list in the env; `[]` turns the guard off.
    blocked_networks: list[str] = Field(default_factory=lambda: ["169.254.0.0/16", "fe80::/10",
                                                                 "fd00:ec2::254/128"])
