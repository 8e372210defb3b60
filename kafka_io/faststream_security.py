"""FastStream's security object (TLS and/or SASL) for Baton's Kafka settings: the step services
run on FastStream, the orchestrator on aiokafka directly, so this lives apart from `clients.py`
(importing it loads FastStream)."""

from __future__ import annotations

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from kafka_io.errors import KafkaFailure
from kafka_io.settings import KafkaSettings

__all__ = ["broker_security"]


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    """FastStream's security object for Baton's Kafka settings (TLS and/or SASL)."""
    tls = settings.uses_tls
    context = settings.ssl_context()
    mechanism = (settings.kafka_sasl_mechanism or "").upper()
    if not mechanism:
        return BaseSecurity(ssl_context=context) if tls else None
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    if mechanism not in kinds:
        raise KafkaFailure(f"unsupported SASL mechanism {mechanism!r}; use one of {', '.join(kinds)}")
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    return kinds[mechanism](settings.kafka_sasl_username or "", password, ssl_context=context, use_ssl=tls)
