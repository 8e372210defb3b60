"""Baton's configuration, read from the environment (prefix BATON_) and passed in explicitly."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import Topics


class KafkaSettings(BaseSettings):
    """How to reach Kafka and name the topics. Env: BATON_KAFKA_BOOTSTRAP, BATON_TOPIC_PREFIX, ..."""

    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "baton"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # SASL/SCRAM over TLS by configuration (the security issue fills these in)
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def client_options(self) -> dict[str, object]:
        """Keyword arguments every aiokafka client of Baton takes."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options
