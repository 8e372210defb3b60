"""Baton's event contracts: one pydantic model per event, one module per topic family.

Every event carries `schema_version`, an `id`, the `execution_id` (also the Kafka key, so every
topic an orchestrator reads is co-partitioned by execution) and a `timestamp`.
"""

from schemas.base import SCHEMA_VERSION, Envelope, decode, encode
from schemas.topics import Topics

__all__ = ["SCHEMA_VERSION", "Envelope", "Topics", "decode", "encode"]
