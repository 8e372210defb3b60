"""The Kafka shell of the orchestrator: topics, consumers, producers, timers and metrics."""
