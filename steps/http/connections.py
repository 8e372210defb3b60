"""Named connections: the credentials an HTTP task uses, configured once, never in a definition.

The Baton counterpart of an EventBridge connection ([https] "Connectivity for an HTTP Task"): a
Task names one with `InvocationConfig.ConnectionArn` (or the older `Authentication.ConnectionArn`),
as an ARN `arn:aws:events:REGION:ACCOUNT:connection/NAME/ID` or as the bare NAME. Secrets live in
the connections file (or the environment it refers to), so they never enter a definition, a
Task's parameters, its result, the history or a log line.

The file (YAML or JSON) is named by `BATON_HTTP_CONNECTIONS`; `${VAR}` in any string is replaced
by the environment variable VAR when it is loaded, so the file itself can hold no secret:

    connections:
      orders:
        auth:                                # API_KEY | BASIC | BEARER | OAUTH_CLIENT_CREDENTIALS
          type: OAUTH_CLIENT_CREDENTIALS
          token_url: https://auth.example.com/oauth/token
          client_id: baton
          client_secret: ${ORDERS_CLIENT_SECRET}
          scope: orders:read                 # optional
          parameters: {body: {audience: orders}}  # extra token-request parameters (optional)
        invocation:                          # EventBridge's InvocationHttpParameters (optional)
          headers: {X-Tenant: acme}
          query: {api_key: {secret: "${ORDERS_QUERY_KEY}"}}   # {secret: ...} marks a secret value
          body: {}
        endpoints: [https://api.example.com/]   # where these credentials may be sent (optional)

    API_KEY: {name: X-Api-Key, value: ...}       BASIC: {username: ..., password: ...}
    BEARER:  {token: ...}  (a static "Authorization: Bearer" token; Baton's shorthand for an
                            API_KEY connection named Authorization)

`endpoints` plays the part of the IAM condition `states:HTTPEndpoint` on AWS: when set, a Task
may only send this connection's credentials to URLs under one of these prefixes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from steps.http.errors import ConnectionConfigError, InvalidParameters, connection_not_found


class SecretValue(BaseModel):
    """A parameter value that is a secret: `{secret: VALUE}` in the connections file."""

    model_config = ConfigDict(extra="forbid")

    secret: SecretStr


ParameterValue = str | SecretValue


def _scalars_as_text(values: Any) -> Any:
    # YAML reads `version: 2` as an int; parameters are text on the wire.
    if isinstance(values, Mapping):
        return {key: json.dumps(value) if isinstance(value, (bool, int, float)) else value
                for key, value in values.items()}
    return values


Parameters = Annotated[dict[str, ParameterValue], BeforeValidator(_scalars_as_text)]


class InvocationParameters(BaseModel):
    """Headers, query parameters and body fields added to every request (connection values win)."""

    model_config = ConfigDict(extra="forbid")

    headers: Parameters = {}
    query: Parameters = {}
    body: Parameters = {}

    def plain(self, part: Literal["headers", "query", "body"]) -> dict[str, str]:
        """One part's values in clear (for the request only, never for a result or a log)."""
        values: dict[str, ParameterValue] = getattr(self, part)
        return {key: reveal(value) for key, value in values.items()}

    def secrets(self) -> Iterator[str]:
        for part in (self.headers, self.query, self.body):
            for value in part.values():
                if isinstance(value, SecretValue):
                    yield value.secret.get_secret_value()


def reveal(value: ParameterValue) -> str:
    return value.secret.get_secret_value() if isinstance(value, SecretValue) else value


class ApiKeyAuth(BaseModel):
    """A header NAME: VALUE on every request (EventBridge API_KEY)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["API_KEY"]
    name: str = Field(min_length=1)
    value: SecretStr


class BasicAuth(BaseModel):
    """`Authorization: Basic` with a username and password (EventBridge BASIC)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["BASIC"]
    username: str
    password: SecretStr


class BearerAuth(BaseModel):
    """A static `Authorization: Bearer TOKEN`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["BEARER"]
    token: SecretStr


class OAuthClientCredentials(BaseModel):
    """OAuth 2.0 client credentials (RFC 6749 section 4.4; EventBridge OAUTH_CLIENT_CREDENTIALS).

    A token is fetched from `token_url`, cached until `expiry_margin_seconds` before it expires,
    and fetched again once when the API answers 401. `client_authentication` sends the client id
    and secret as HTTP Basic (RFC 6749 section 2.3.1, the default) or as body fields.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["OAUTH_CLIENT_CREDENTIALS"]
    token_url: str
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    method: Literal["GET", "POST", "PUT"] = "POST"  # EventBridge's HttpMethod
    client_authentication: Literal["basic", "body"] = "basic"
    parameters: InvocationParameters = InvocationParameters()  # EventBridge's OAuthHttpParameters
    expiry_margin_seconds: float = Field(default=30.0, ge=0)
    # For a token response without `expires_in`: how long to trust it (None: until a 401).
    default_lifetime_seconds: float | None = Field(default=3600.0, gt=0)

    @field_validator("token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("token_url must be an http(s) URL")
        return value


Auth = Annotated[ApiKeyAuth | BasicAuth | BearerAuth | OAuthClientCredentials, Field(discriminator="type")]

_AUTH_TYPES = {"APIKEY": "API_KEY", "OAUTH": "OAUTH_CLIENT_CREDENTIALS",
               "OAUTH2": "OAUTH_CLIENT_CREDENTIALS", "CLIENT_CREDENTIALS": "OAUTH_CLIENT_CREDENTIALS"}


class Connection(BaseModel):
    """One named connection: how to authenticate, what to add to each request, where it may go."""

    model_config = ConfigDict(extra="forbid")

    name: str
    auth: Auth | None = None
    invocation: InvocationParameters = InvocationParameters()
    endpoints: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _normalise_type(cls, data: Any) -> Any:
        auth = data.get("auth") if isinstance(data, dict) else None
        if isinstance(auth, dict) and isinstance(auth.get("type"), str):
            kind = re.sub(r"[\s-]+", "_", auth["type"].strip()).upper()
            data = {**data, "auth": {**auth, "type": _AUTH_TYPES.get(kind, kind)}}
        return data

    @field_validator("endpoints")
    @classmethod
    def _prefixes(cls, values: list[str]) -> list[str]:
        for value in values:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"endpoint prefix {value!r} must be an http(s) URL")
        return values

    def secrets(self) -> list[str]:
        """Every secret value of this connection (to keep them out of results and causes)."""
        found = list(self.invocation.secrets())
        auth = self.auth
        if isinstance(auth, ApiKeyAuth):
            found.append(auth.value.get_secret_value())
        elif isinstance(auth, BasicAuth):
            found.append(auth.password.get_secret_value())
        elif isinstance(auth, BearerAuth):
            found.append(auth.token.get_secret_value())
        elif isinstance(auth, OAuthClientCredentials):
            found.append(auth.client_secret.get_secret_value())
            found.extend(auth.parameters.secrets())
        return [value for value in found if value]

    def allows(self, url: str) -> bool:
        """True when this connection's credentials may be sent to `url` (see `endpoints`)."""
        return not self.endpoints or any(_under(url, prefix) for prefix in self.endpoints)


def _under(url: str, prefix: str) -> bool:
    # Compared by parts, so "https://api.example.com" does not admit "https://api.example.com.evil".
    target, allowed = urlsplit(url), urlsplit(prefix)
    if (target.scheme.lower(), target.hostname, _port(target)) != \
            (allowed.scheme.lower(), allowed.hostname, _port(allowed)):
        return False
    path = allowed.path or "/"
    return target.path.startswith(path) if path.endswith("/") else \
        target.path == path or target.path.startswith(path + "/")


def _port(parts: Any) -> int:
    return int(parts.port or (443 if parts.scheme.lower() == "https" else 80))


def connection_name(reference: str) -> str:
    """The connection a ConnectionArn names: NAME of `arn:aws:events:...:connection/NAME[/ID]`, or
    the reference itself when it is not an ARN."""
    if not reference.startswith("arn:"):
        return reference
    parts = reference.split(":", 5)
    if len(parts) == 6 and parts[2] == "events" and parts[5].startswith("connection/"):
        name = parts[5].split("/")[1]
        if name:
            return name
    raise InvalidParameters(
        f"ConnectionArn {reference!r} is not an EventBridge connection ARN "
        "(arn:aws:events:REGION:ACCOUNT:connection/NAME/ID) nor a connection name")


class ConnectionRegistry:
    """The configured connections, by name."""

    def __init__(self, connections: Mapping[str, Connection] | None = None) -> None:
        self._connections = dict(connections or {})

    def __contains__(self, name: object) -> bool:
        return name in self._connections

    @property
    def names(self) -> list[str]:
        return sorted(self._connections)

    def get(self, reference: str) -> Connection:
        """The connection a Task's ConnectionArn names; `Events.ConnectionResource.ResourceNotFound`
        when there is none."""
        name = connection_name(reference)
        connection = self._connections.get(name)
        if connection is None:
            raise connection_not_found(name, self.names)
        return connection


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_connections(source: str | None, environ: Mapping[str, str] | None = None) -> ConnectionRegistry:
    """Connections from `source`: a YAML/JSON file path, or the document itself when it starts
    with "{" or spans lines (handy for an environment variable). None or "" means no connections.

    Raises `ConnectionConfigError` naming the file, the connection and the field at fault; its
    message never repeats a value from the file (it may be a secret).
    """
    if not source or not source.strip():
        return ConnectionRegistry()
    where = "BATON_HTTP_CONNECTIONS"
    if source.lstrip().startswith("{") or "\n" in source.strip():
        text = source
    else:
        path = Path(source).expanduser()
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConnectionConfigError(f"cannot read the connections file {where}: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConnectionConfigError(f"{where} is not valid YAML or JSON{at}") from None
    return parse_connections(document, environ if environ is not None else os.environ, where)


def parse_connections(document: Any, environ: Mapping[str, str], where: str = "connections") -> ConnectionRegistry:
    """Validate a loaded connections document (see the module docstring for its shape)."""
    if document is None:
        return ConnectionRegistry()
    if not isinstance(document, dict):
        raise ConnectionConfigError(f"{where}: expected a mapping of connection names to connections")
    entries = document["connections"] if "connections" in document else document
    if entries is None:
        return ConnectionRegistry()
    if not isinstance(entries, dict):
        raise ConnectionConfigError(f"{where}: 'connections' must map names to connections")
    connections: dict[str, Connection] = {}
    for name, body in entries.items():
        if not isinstance(name, str) or not name or "/" in name or ":" in name:
            raise ConnectionConfigError(f"{where}: connection name {name!r} must be text without '/' or ':'")
        if not isinstance(body, dict):
            raise ConnectionConfigError(f"{where}: connection {name!r} must be a mapping")
        expanded = _expand(body, environ, f"connections.{name}", where)
        try:
            connections[name] = Connection.model_validate({**expanded, "name": name})
        except ValidationError as exc:
            # Locations and messages only: pydantic's own text repeats the input (maybe a secret).
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(connection)'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False))
            raise ConnectionConfigError(f"{where}: connection {name!r}: {problems}") from None
    return ConnectionRegistry(connections)


def _expand(value: Any, environ: Mapping[str, str], path: str, where: str) -> Any:
    if isinstance(value, str):
        def variable(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConnectionConfigError(
                    f"{where}: {path} refers to the environment variable {name}, which is not set")
            return environ[name]

        return _VARIABLE.sub(variable, value)
    if isinstance(value, dict):
        return {key: _expand(item, environ, f"{path}.{key}", where) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, environ, f"{path}[{index}]", where) for index, item in enumerate(value)]
    return value
