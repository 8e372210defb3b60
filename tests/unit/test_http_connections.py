"""Named connections: the file format, `${VAR}` expansion, ARNs, endpoint limits, secret hygiene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steps.http.connections import (
    ApiKeyAuth,
    BearerAuth,
    OAuthClientCredentials,
    SecretValue,
    connection_name,
    load_connections,
)
from steps.http.errors import ConnectionConfigError, ConnectionFailure, InvalidParameters
from steps.http.settings import HttpSettings

YAML = """
connections:
  orders:
    auth:
      type: oauth_client_credentials
      token_url: http://127.0.0.1:9/oauth/token
      client_id: baton
      client_secret: ${ORDERS_SECRET}
      scope: orders:read
      parameters: {body: {audience: orders}}
    invocation:
      headers: {X-Tenant: acme, X-Version: 2}
      query: {key: {secret: "${QUERY_KEY}"}}
    endpoints: [http://127.0.0.1:8080/api/]
  stripe:
    auth: {type: API_KEY, name: X-Api-Key, value: sk_live_123456}
  static:
    auth: {type: bearer, token: tok-abcdef}
"""
ENV = {"ORDERS_SECRET": "client-secret-1", "QUERY_KEY": "query-key-99"}


def test_a_yaml_file_with_environment_references(tmp_path: Path) -> None:
    path = tmp_path / "connections.yaml"
    path.write_text(YAML)
    registry = load_connections(str(path), ENV)
    assert registry.names == ["orders", "static", "stripe"]
    orders = registry.get("orders")
    assert isinstance(orders.auth, OAuthClientCredentials)
    assert orders.auth.client_secret.get_secret_value() == "client-secret-1"
    assert orders.invocation.plain("headers") == {"X-Tenant": "acme", "X-Version": "2"}
    assert orders.invocation.plain("query") == {"key": "query-key-99"}
    assert sorted(orders.secrets()) == ["client-secret-1", "query-key-99"]
    assert isinstance(registry.get("stripe").auth, ApiKeyAuth)
    assert isinstance(registry.get("static").auth, BearerAuth)
    # Secrets never show in a repr (which is what ends up in logs and tracebacks).
    assert "client-secret-1" not in repr(orders) and "query-key-99" not in repr(orders)


def test_inline_json_from_the_environment_variable() -> None:
    document = json.dumps({"c": {"auth": {"type": "BASIC", "username": "u", "password": "p4ssw0rd!"}}})
    settings = HttpSettings(connections=document)
    assert load_connections(settings.connections, {}).get("c").secrets() == ["p4ssw0rd!"]


@pytest.mark.parametrize(("reference", "name"), [
    ("orders", "orders"),
    ("arn:aws:events:us-east-2:123456789012:connection/orders/81210c42-8af1-456b-9c4a-6ff02fc664ac", "orders"),
    ("arn:aws:events:us-east-2:123456789012:connection/orders", "orders"),
])
def test_connection_arns_name_the_connection(reference: str, name: str) -> None:
    assert connection_name(reference) == name


def test_an_arn_that_is_not_a_connection_is_refused() -> None:
    with pytest.raises(InvalidParameters):
        connection_name("arn:aws:lambda:us-east-1:123:function:f")


def test_an_unknown_connection_is_resource_not_found() -> None:
    registry = load_connections(json.dumps({"a": {}}), {})
    with pytest.raises(ConnectionFailure) as caught:
        registry.get("arn:aws:events:us-east-1:1:connection/missing/x")
    assert caught.value.error == "Events.ConnectionResource.ResourceNotFound"
    assert "'missing'" in (caught.value.cause or "") and "known: a" in (caught.value.cause or "")


def test_endpoint_prefixes_compare_by_parts() -> None:
    registry = load_connections(json.dumps({"c": {"endpoints": ["https://api.example.com/v1/"]}}), {})
    connection = registry.get("c")
    assert connection.allows("https://api.example.com/v1/orders")
    assert connection.allows("https://API.example.com:443/v1/x")
    assert not connection.allows("https://api.example.com.evil.net/v1/orders")
    assert not connection.allows("http://api.example.com/v1/orders")
    assert not connection.allows("https://api.example.com/v2/orders")
    anywhere = load_connections(json.dumps({"c": {}}), {}).get("c")
    assert anywhere.allows("https://anything.example/")


def test_errors_name_the_place_but_never_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConnectionConfigError, match="ORDERS_SECRET, which is not set"):
        load_connections(YAML, {"QUERY_KEY": "x"})
    bad = json.dumps({"c": {"auth": {"type": "API_KEY", "name": "X-Key", "value": "very-secret-value",
                                     "extra": "also-secret"}}})
    with pytest.raises(ConnectionConfigError) as caught:
        load_connections(bad, {})
    assert "auth.API_KEY.extra" in str(caught.value)
    assert "very-secret-value" not in str(caught.value) and "also-secret" not in str(caught.value)
    with pytest.raises(ConnectionConfigError, match="unknown-type|does not match|tag"):
        load_connections(json.dumps({"c": {"auth": {"type": "KERBEROS"}}}), {})
    with pytest.raises(ConnectionConfigError, match="cannot read"):
        load_connections(str(tmp_path / "absent.yaml"), {})
    with pytest.raises(ConnectionConfigError, match="not valid YAML"):
        load_connections("{unclosed: [", {})


def test_no_source_means_no_connections() -> None:
    assert load_connections(None).names == [] and load_connections("").names == []


def test_secret_values_in_invocation_parameters() -> None:
    registry = load_connections(json.dumps({"c": {"invocation": {"headers": {"X-Key": {"secret": "hdr-secret"}}}}}), {})
    value = registry.get("c").invocation.headers["X-Key"]
    assert isinstance(value, SecretValue)
    assert registry.get("c").secrets() == ["hdr-secret"]
