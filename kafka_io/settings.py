"""How to reach Kafka: `KafkaSettings`, read from the environment (prefix BATON_) and passed in
explicitly to every client of Baton (orchestrator, step services, API, CLI, benches)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import Topics


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The mechanisms both aiokafka and FastStream (the step services) take with a username and
# password; GSSAPI and OAUTHBEARER need settings Baton does not have.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettings(BaseSettings):
    """How to reach Kafka and name the topics. Env: BATON_KAFKA_BOOTSTRAP, BATON_TOPIC_PREFIX, ...

    The security settings are checked when they load, so a username without a password or an
    unknown mechanism is one clear validation error, not a failure deep inside the Kafka client.
    """

    # hide_input_in_errors: a validation error must never print the input, which holds the password.
    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "baton"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # min.insync.replicas of the topics Baton creates (None: the broker's default). With
    # replication factor 3, 2 lets a write acknowledged by acks=all survive losing any one broker.
    min_insync_replicas: int | None = Field(default=None, ge=1)
    # SASL/SCRAM over TLS, or mTLS, by configuration (docs/security.md, "Kafka").
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # A file holding the password (its first line), so a launcher need not put the password in a
    # child's environment. Read when the settings load, into kafka_sasl_password; None afterwards.
    kafka_sasl_password_file: Path | None = None
    # TLS: the CA that signed the brokers' certificates (default: the system's), and for mTLS the
    # client's certificate and key.
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    # How long a fetch may wait on the broker for data. aiokafka sends no new fetch to a broker
    # while one is in flight there, so a partition drained in the meantime waits this long for its
    # next records: the 500 ms default showed as ~600 ms p99 per Task. Short waits cost idle
    # fetches (100/s per idle consumer at 10 ms); 5-20 ms measured the same within noise.
    fetch_max_wait_ms: int = Field(default=10, ge=1)

    @field_validator("kafka_security_protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        protocol = value.strip().upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"BATON_KAFKA_SECURITY_PROTOCOL={value!r} is not a Kafka security protocol; "
                             f"use one of {', '.join(SECURITY_PROTOCOLS)}")
        return protocol

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _known_mechanism(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        mechanism = value.strip().upper()
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(f"BATON_KAFKA_SASL_MECHANISM={value!r} is not supported; "
                             f"use one of {', '.join(SASL_MECHANISMS)}")
        return mechanism

    @model_validator(mode="after")
    def _consistent_login(self) -> Self:
        """Read the password file, then refuse a login that cannot work, naming the setting to fix."""
        if self.kafka_sasl_password_file is not None:
            if self.kafka_sasl_password is not None:
                raise ValueError("both BATON_KAFKA_SASL_PASSWORD and BATON_KAFKA_SASL_PASSWORD_FILE are set; "
                                 "keep one")
            self.kafka_sasl_password = SecretStr(_read_password(self.kafka_sasl_password_file))
            self.kafka_sasl_password_file = None  # read: a copy of these settings must not read it again
        sasl = self.kafka_security_protocol.startswith("SASL_")
        user, password = self.kafka_sasl_username, self.kafka_sasl_password
        if sasl and self.kafka_sasl_mechanism is None:
            raise ValueError(f"BATON_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                             f"BATON_KAFKA_SASL_MECHANISM ({', '.join(SASL_MECHANISMS)})")
        if not sasl and (self.kafka_sasl_mechanism or user):
            # Kafka clients ignore SASL settings without a SASL protocol: the login would silently
            # not happen, and the broker would refuse the connection for a reason hard to see.
            tls = "SASL_SSL" if self.uses_tls else "SASL_PLAINTEXT"
            raise ValueError(f"BATON_KAFKA_SASL_* is set but BATON_KAFKA_SECURITY_PROTOCOL="
                             f"{self.kafka_security_protocol} sends no SASL login; set it to {tls}, "
                             "or unset BATON_KAFKA_SASL_MECHANISM and BATON_KAFKA_SASL_USERNAME")
        if sasl and not user:
            raise ValueError(f"BATON_KAFKA_SASL_MECHANISM={self.kafka_sasl_mechanism} needs "
                             "BATON_KAFKA_SASL_USERNAME (and a password)")
        if sasl and (password is None or not password.get_secret_value()):
            raise ValueError(f"BATON_KAFKA_SASL_USERNAME={user!r} has no password: set "
                             "BATON_KAFKA_SASL_PASSWORD_FILE (a file only its owner can read) or "
                             "BATON_KAFKA_SASL_PASSWORD")
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("BATON_KAFKA_SSL_KEYFILE is set without BATON_KAFKA_SSL_CERTFILE (the client certificate)")
        if self.uses_tls:
            try:  # a missing or unreadable CA file / certificate is a setting's fault: say which
                self.ssl_context()
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(_tls_file_problem(self, exc)) from None
        return self

    @property
    def uses_tls(self) -> bool:
        return self.kafka_security_protocol.upper() in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every Baton client uses (aiokafka needs one for SSL / SASL_SSL)."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_ssl_certfile:
            context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        return context

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def bootstrap_servers(self) -> list[str]:
        """The comma-separated bootstrap addresses as a list. aiokafka splits the string itself,
        but FastStream takes a string as one address, so a cluster's "a:9092,b:9092" breaks it."""
        return [address.strip() for address in self.kafka_bootstrap.split(",") if address.strip()]

    def client_options(self) -> dict[str, object]:
        """Keyword arguments every aiokafka client of Baton takes."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options


def _read_password(path: Path) -> str:
    """The first line of a password file (a trailing newline is not part of the password)."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"BATON_KAFKA_SASL_PASSWORD_FILE={path}: cannot read it: {reason}") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise ValueError(f"BATON_KAFKA_SASL_PASSWORD_FILE={path} is empty")
    return password


def _tls_file_problem(settings: KafkaSettings, exc: OSError | ssl.SSLError) -> str:
    """Which TLS setting names a file that cannot be used, and why."""
    files = [("BATON_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
             ("BATON_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
             ("BATON_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile)]
    for name, value in files:
        if value and not Path(value).expanduser().is_file():
            return f"{name}={value}: no such file"
    reason = exc.strerror if not isinstance(exc, ssl.SSLError) and exc.strerror else str(exc)
    given = ", ".join(f"{name}={value}" for name, value in files if value)
    return f"the TLS files cannot be loaded ({given or 'the system CA certificates'}): {reason}"
