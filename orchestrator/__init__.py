"""Baton's orchestrator: the pure ASL core (`asl`), the in-process runner (`local`), the registry,
the Kafka runtime (`runtime`), the client (`client`), the API and pages (`api`) and the CLI."""

__all__: list[str] = []  # a family of packages: import from the one you need
