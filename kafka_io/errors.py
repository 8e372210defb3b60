"""Kafka failures a user can act on, and the one translation of aiokafka's errors into them.

aiokafka raises its own exception classes, whose text lists resolved socket addresses; callers
wrap their Kafka calls in :func:`kafka_errors` and get a `KafkaFailure` naming the configured
bootstrap address instead (the API answers it 503, or 413 for `RecordTooLarge`; a command, one
line). `kafka_io.explain` goes further for a refused login or certificate: it asks the broker why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from kafka_io.settings import KafkaSettings
from schemas.errors import BatonError


class KafkaFailure(BatonError):
    """Kafka could not do what Baton asked; the message names the bootstrap address."""


class KafkaUnavailable(KafkaFailure):
    """The broker could not be reached or answered with an error."""


class RecordTooLarge(KafkaFailure):
    """Kafka refused a record as too large (MessageSizeTooLargeError): the request, not Kafka, is
    at fault, so the API answers 413 and the CLI one line, never "Kafka unavailable"."""


class MissingTopic(KafkaFailure):
    """A topic Baton needs does not exist (topics are provisioned, never auto-created)."""


@contextmanager
def kafka_errors(settings: KafkaSettings) -> Iterator[None]:
    """Turn aiokafka's errors into KafkaUnavailable naming the bootstrap address (RecordTooLarge
    for a record the client or the broker refuses by size)."""
    try:
        yield
    except (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError) as exc:
        raise RecordTooLarge(f"Kafka at {settings.kafka_bootstrap} refused a record of this request as too large "
                             f"({exc}); see docs/limits.md") from None
    except KafkaConnectionError:
        # aiokafka's text lists resolved socket addresses; the configured address says more.
        raise KafkaUnavailable(f"cannot reach Kafka at {settings.kafka_bootstrap}: is the broker running "
                               "and the address right?") from None
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {settings.kafka_bootstrap} failed: {exc}") from None
