"""Baton's Kafka plumbing: the settings every client takes, and the clients built from them.

The orchestrator, the step services, the API, the CLI and the benches all reach Kafka through
this package, so how a client logs in, whether it reads committed records only, whether it is
idempotent and how long it waits on a fetch are decided in one place. It stands on `schemas/`
(topic names, the error root) and imports nothing of `orchestrator/` or `steps/`.

- `settings`: `KafkaSettings` (BATON_KAFKA_*, BATON_TOPIC_PREFIX, ...), checked when they load;
- `clients`: `new_consumer`, `new_producer`, `new_admin` (Baton's defaults: read committed, no
  automatic offset commits, idempotent), and `topic_partitions`;
- `errors`: `KafkaFailure` (`KafkaUnavailable`, `RecordTooLarge`, `MissingTopic`) and
  `kafka_errors`, which turns aiokafka's errors into them;
- `explain` (with `probe`): a refused or broken connection as one line with the setting that
  fixes it (imported from `kafka_io.explain` by the commands and services that report it).
"""

from kafka_io.clients import new_admin, new_consumer, new_producer, topic_partitions
from kafka_io.errors import KafkaFailure, KafkaUnavailable, MissingTopic, RecordTooLarge, kafka_errors
from kafka_io.settings import KafkaSettings

__all__ = [
    "KafkaFailure", "KafkaSettings", "KafkaUnavailable", "MissingTopic", "RecordTooLarge", "kafka_errors",
    "new_admin", "new_consumer", "new_producer", "topic_partitions",
]
