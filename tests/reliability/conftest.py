"""Reliability tests on a real broker. Short form by default (part of the normal suite, < 60 s);
`BATON_RELIABILITY=full .venv/bin/pytest tests/reliability` runs the full form (see docs/reliability.md)."""

from __future__ import annotations

import os

import pytest

FULL = os.environ.get("BATON_RELIABILITY", "").lower() == "full"


@pytest.fixture(scope="session")
def bootstrap(kafka_bootstrap: str) -> str:
    """The session's broker (tests/conftest.py starts or reuses it)."""
    return kafka_bootstrap
