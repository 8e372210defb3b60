"""Baton's orchestrator: the pure ASL core (`asl`), the local runner (`local`) and, later, the Kafka runtime."""
