"""Benchmarks of Baton on a real local Kafka broker (see bench/README.md)."""
