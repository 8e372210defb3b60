"""Development infrastructure for Baton: a local Kafka broker and its helpers."""
