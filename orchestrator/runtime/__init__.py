"""The Kafka shell of the orchestrator: topics, consumers, producers, timers and metrics."""

from orchestrator.runtime.service import Orchestrator
from orchestrator.runtime.topics import ensure_topics

__all__ = ["Orchestrator", "ensure_topics"]
