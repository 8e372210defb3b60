"""Kafka client settings: TLS and SASL come from configuration, with no code change."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from orchestrator.settings import KafkaSettings
from steps.service import broker_security


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
