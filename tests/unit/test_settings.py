"""Kafka client settings: TLS and SASL come from configuration, with no code change."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from kafka_io import KafkaSettings
from kafka_io.faststream_security import broker_security


def test_plaintext_by_default() -> None:
    options = KafkaSettings().client_options()
    assert options["security_protocol"] == "PLAINTEXT" and "ssl_context" not in options


def test_sasl_scram_over_tls_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A throwaway CA, as a deployment would mount its own.
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=baton-test-ca"], check=True, capture_output=True)
    monkeypatch.setenv("BATON_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BATON_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BATON_KAFKA_SASL_USERNAME", "orchestrator")
    monkeypatch.setenv("BATON_KAFKA_SASL_PASSWORD", "s3cret-value")
    monkeypatch.setenv("BATON_KAFKA_SSL_CAFILE", str(cert))
    settings = KafkaSettings()
    options = settings.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["sasl_plain_username"] == "orchestrator"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert any(c.get("subject") == ((("commonName", "baton-test-ca"),),) for c in context.get_ca_certs())
    # The step services (FastStream) get the same TLS context and credentials.
    security = broker_security(settings)
    assert security is not None and security.use_ssl
    assert "s3cret-value" not in repr(settings)  # the password is a secret, never printed


# --------------------------------------------------------------------------- checked at load


@pytest.fixture
def no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No BATON_KAFKA_* of the developer's shell leaks into these settings."""
    for name in ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SASL_PASSWORD_FILE",
                 "SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE"):
        monkeypatch.delenv(f"BATON_KAFKA_{name}", raising=False)
    return monkeypatch


def _sasl(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    monkeypatch.setenv("BATON_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("BATON_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BATON_KAFKA_SASL_USERNAME", "baton-api")
    for key, value in env.items():
        monkeypatch.setenv(f"BATON_KAFKA_{key}", value)


def test_password_from_a_file(no_kafka_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-the-file\n")  # the trailing newline is not part of it
    _sasl(no_kafka_env, SASL_PASSWORD_FILE=str(secret))
    settings = KafkaSettings()
    assert settings.client_options()["sasl_plain_password"] == "from-the-file"
    assert settings.kafka_sasl_password_file is None  # read once: a copy does not read it again
    assert KafkaSettings.model_validate(settings.model_dump()).client_options()["sasl_plain_password"] == \
        "from-the-file"
    assert "from-the-file" not in repr(settings)


@pytest.mark.parametrize(("env", "reason"), [
    ({}, "BATON_KAFKA_SASL_USERNAME='baton-api' has no password"),
    ({"SASL_PASSWORD": "p", "SASL_PASSWORD_FILE": "/nonexistent"}, "keep one"),
    ({"SASL_PASSWORD_FILE": "/nonexistent/password"}, "=/nonexistent/password: cannot read it"),
    ({"SASL_MECHANISM": "SCRAM-SHA-1", "SASL_PASSWORD": "p"}, "BATON_KAFKA_SASL_MECHANISM='SCRAM-SHA-1' is not supported"),
    ({"SECURITY_PROTOCOL": "SASL_TLS", "SASL_PASSWORD": "p"}, "'SASL_TLS' is not a Kafka security protocol"),
    ({"SECURITY_PROTOCOL": "SSL", "SASL_PASSWORD": "p"}, "sends no SASL login; set it to SASL_SSL"),
    ({"SASL_MECHANISM": "", "SASL_PASSWORD": "p"}, "SASL_PLAINTEXT needs BATON_KAFKA_SASL_MECHANISM"),
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_PASSWORD": "p", "SSL_CAFILE": "/nonexistent/ca.pem"},
     "BATON_KAFKA_SSL_CAFILE=/nonexistent/ca.pem: no such file"),
])
def test_a_login_that_cannot_work_is_refused_at_load(no_kafka_env: pytest.MonkeyPatch, env: dict[str, str],
                                                     reason: str) -> None:
    from pydantic import ValidationError

    from kafka_io.explain import settings_problem

    _sasl(no_kafka_env, **env)
    with pytest.raises(ValidationError) as caught:
        KafkaSettings()
    line = settings_problem(caught.value)
    assert line.startswith("invalid Kafka settings: ") and reason in line and "\n" not in line, line
    # Never the input: a model-level error would otherwise print every field, the password too.
    assert "input_value" not in str(caught.value)


def test_names_are_normalised(no_kafka_env: pytest.MonkeyPatch) -> None:
    _sasl(no_kafka_env, SECURITY_PROTOCOL="sasl_plaintext", SASL_MECHANISM="scram-sha-256", SASL_PASSWORD="p")
    settings = KafkaSettings()
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")
