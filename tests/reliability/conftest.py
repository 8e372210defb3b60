"""Reliability tests on a real broker. Short form by default (part of the normal suite, < 60 s);
`BATON_RELIABILITY=full .venv/bin/pytest tests/reliability` runs the full form (see docs/reliability.md)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from infra.local_kafka import LocalKafkaError, ensure_up, stop  # noqa: E402

FULL = os.environ.get("BATON_RELIABILITY", "").lower() == "full"


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    external = os.environ.get("BATON_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    try:
        broker = ensure_up()
    except LocalKafkaError as error:
        pytest.fail(f"local Kafka did not start: {error}\n{error.log_tail}", pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        stop(broker)
