"""Fixtures for tests against a real Kafka broker (integration, e2e and reliability tests).

``kafka_bootstrap`` starts a local single-node broker once per pytest session (or reuses one
already answering on ``BATON_KAFKA_PORT``) and stops it at the end only if it started it.
Set ``BATON_KAFKA_BOOTSTRAP`` to run against an existing cluster instead; nothing is started.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# `infra` is not an installed package: make the repository root importable.
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from infra.local_kafka import LocalKafkaError, ensure_up, stop  # noqa: E402

# Under CI (`CI` set) every dependency is installed by scripts/bootstrap, so a skip means a test
# proved nothing: a missing Chromium, playwright, moto or kcat must fail the run, not hide in it.
_NO_SKIPS = bool(os.environ.get("CI"))


def _skip_as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    if _NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI (every dependency should be installed): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    _skip_as_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    _skip_as_failure(outcome.get_result())


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address ("host:port") of a ready Kafka broker."""
    external = os.environ.get("BATON_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    try:
        broker = ensure_up()
    except LocalKafkaError as error:
        # A one-line reason (plus the broker log) reads better than a traceback into infra.
        pytest.fail(f"local Kafka did not start: {error}\n{error.log_tail}", pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        stop(broker)


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A unique topic-name prefix such as ``t1a2b3c4d.`` so tests never share topics.

    The test's topics are deleted afterwards: a broker that keeps every test's topics slows down
    (thousands of partitions on one node), and later tests with it.
    """
    prefix = f"t{uuid.uuid4().hex[:8]}."
    yield prefix
    from kafka_io import KafkaSettings
    from orchestrator.runtime.topics import delete_topics

    asyncio.run(delete_topics(KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix.rstrip("."))))
