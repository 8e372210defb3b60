"""Benchmarks of Baton on a real local Kafka broker (see bench/README.md)."""

__all__: list[str] = []  # `baton bench` (bench/cli.py) runs them
