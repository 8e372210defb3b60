"""Benchmarks of Baton on a real local Kafka broker (see bench/README.md)."""

__all__: list[str] = []  # `baton bench` (orchestrator/cli/bench.py) runs them
