"""A client the secured broker refuses is told why in one line, with the setting that fixes it.

aiokafka reports a wrong password, an untrusted CA or a port that wants TLS alike as "Unable to
bootstrap"; `baton` used to print "cannot reach Kafka: is the broker running?" for all of them, or
a traceback. Each case below runs `baton list`, `baton orchestrator` and `baton step fn` as their
own processes (as a user would) against a fresh secured broker (SASL_SSL and mTLS listeners,
infra/secure_kafka.py) or the plain session broker, and checks: a non-zero exit, exactly one line
on stderr, the right reason in it, no traceback, and no password.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.secure_kafka import SecureBroker, issue_client_certificates, new_ca, stop
from tests.integration.secure_support import baton, clean_env, provision_as_admin, start_secure_broker


@dataclass(frozen=True)
class World:
    broker: SecureBroker
    plain_bootstrap: str  # the session's plaintext broker
    foreign_ca: Path  # another CA's certificate
    foreign_cert: tuple[Path, Path]  # (certificate, key) CN=baton-step-fn from that other CA
    wrong_password: Path  # a password file with the wrong password


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[World]:
    broker = start_secure_broker(tmp_path_factory.mktemp("kafka-secure"))
    try:
        provision_as_admin(broker)
        other = tmp_path_factory.mktemp("foreign-ca")
        ca_pem, ca_key = new_ca(other, "Another CA")
        issue_client_certificates(ca_pem, ca_key, ["baton-step-fn"], other)
        wrong = other / "wrong.password"
        wrong.write_text("not-the-password\n")
        wrong.chmod(0o600)
        yield World(broker, kafka_bootstrap, ca_pem,
                    (other / "baton-step-fn-cert.pem", other / "baton-step-fn-key.pem"), wrong)
    finally:
        stop(broker)


def _without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {key: value for key, value in env.items() if key not in names}


SASL = ("BATON_KAFKA_SASL_MECHANISM", "BATON_KAFKA_SASL_USERNAME", "BATON_KAFKA_SASL_PASSWORD_FILE")

# case -> (the client's BATON_KAFKA_* settings, what the one line must say)
CASES: dict[str, tuple[Callable[[World], dict[str, str]], tuple[str, ...]]] = {
    "wrong-password": (
        lambda w: w.broker.client_env("baton-cli") | {"BATON_KAFKA_SASL_PASSWORD_FILE": str(w.wrong_password)},
        ("refused the login of user 'baton-cli' (SCRAM-SHA-512)", "wrong password, or no such user")),
    "unknown-user": (
        lambda w: w.broker.client_env("baton-cli") | {"BATON_KAFKA_SASL_USERNAME": "mallory"},
        ("refused the login of user 'mallory'",)),
    "tls-expected-but-plaintext-port": (
        lambda w: w.broker.client_env("baton-cli") | {"BATON_KAFKA_BOOTSTRAP": w.plain_bootstrap},
        ("speaks plaintext on this port, not TLS", "BATON_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT")),
    "plaintext-client-on-tls-port": (
        lambda w: _without(w.broker.client_env("baton-cli"), *SASL, "BATON_KAFKA_SSL_CAFILE")
        | {"BATON_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
        ("expects TLS on this port", "BATON_KAFKA_SECURITY_PROTOCOL=SSL")),
    "untrusted-ca": (
        lambda w: w.broker.client_env("baton-cli") | {"BATON_KAFKA_SSL_CAFILE": str(w.foreign_ca)},
        ("certificate at", "(CN=baton-broker, issued by CN=Baton throwaway CA) is not trusted by the CA file",
         "BATON_KAFKA_SSL_CAFILE")),
    "tls-without-sasl-on-sasl-port": (
        lambda w: w.broker.client_env(None),
        ("requires a SASL login on this port (mechanisms: SCRAM-SHA-512)",
         "BATON_KAFKA_SECURITY_PROTOCOL=SASL_SSL")),
    "missing-client-certificate": (
        lambda w: w.broker.mtls_env(None),
        ("requires a client certificate (mutual TLS) and none is set", "BATON_KAFKA_SSL_CERTFILE")),
    "client-certificate-of-another-ca": (
        lambda w: w.broker.mtls_env("baton-step-fn") | {"BATON_KAFKA_SSL_CERTFILE": str(w.foreign_cert[0]),
                                                        "BATON_KAFKA_SSL_KEYFILE": str(w.foreign_cert[1])},
        ("refused the client certificate", "(CN=baton-step-fn, issued by CN=Another CA)")),
    "username-without-password": (
        lambda w: _without(w.broker.client_env("baton-cli"), "BATON_KAFKA_SASL_PASSWORD_FILE"),
        ("invalid Kafka settings: BATON_KAFKA_SASL_USERNAME='baton-cli' has no password",
         "BATON_KAFKA_SASL_PASSWORD_FILE")),
    "unknown-mechanism": (
        lambda w: w.broker.client_env("baton-cli") | {"BATON_KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"},
        ("BATON_KAFKA_SASL_MECHANISM='SCRAM-SHA-1' is not supported", "SCRAM-SHA-512")),
}

COMMANDS = {
    "list": ["list"],  # + --db (the test's own read model)
    "orchestrator": ["orchestrator", "--metrics-port", "0"],
    "step-fn": ["step", "fn", "--module", "tests.integration.steps_for_tests"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_refusal_is_one_line_with_the_reason(world: World, case: str, command: str, tmp_path: Path) -> None:
    settings, expected = CASES[case]
    args = COMMANDS[command] + (["--db", str(tmp_path / "readmodel.sqlite")] if command == "list" else [])
    result = baton(args, clean_env(**settings(world)))
    output = result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert all(text in lines[0] for text in expected), (expected, lines[0])
    assert not [user for user, password in world.broker.passwords().items() if password in output]


def test_control_the_same_commands_get_in_with_valid_settings(world: World, tmp_path: Path) -> None:
    """The refusals above are the settings' fault: with valid ones `baton list` answers."""
    result = baton(["list", "--db", str(tmp_path / "readmodel.sqlite")], clean_env(**world.broker.client_env("baton-cli")))
    assert result.returncode == 0, result.stderr
