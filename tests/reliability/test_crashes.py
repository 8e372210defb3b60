"""Crashes under W1-style load: the orchestrator SIGKILLed at random moments, a fn step service
SIGKILLed once, and (full form) the broker itself killed and restarted. Every execution completes,
its history has exactly one event per transition, every step command is committed once."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import Deployment
from tests.reliability.conftest import FULL
from tests.reliability.support import check_exactly_once, drive_with_faults, random_moments

EXECUTIONS = 500 if FULL else 60
IN_FLIGHT = 50 if FULL else 20
ORCHESTRATOR_KILLS = 3 if FULL else 1


def test_orchestrator_and_fn_killed_mid_run(bootstrap: str) -> None:
    seed = int(os.environ.get("BATON_RELIABILITY_SEED", time.time()))
    rng = random.Random(seed)
    with Deployment(bootstrap) as deployment:
        orchestrator, fn = deployment.orchestrator_services[0], deployment.fn_services[0]
        kills: list[str] = []

        def kill_orchestrator() -> None:
            orchestrator.kill()
            orchestrator.start()  # the same instance id fences the dead producer's open transaction
            kills.append("orchestrator")

        def kill_fn() -> None:
            fn.kill()
            fn.start()
            kills.append("fn")

        faults = [(t, kill_orchestrator) for t in random_moments(rng, ORCHESTRATOR_KILLS)]
        faults.append((rng.uniform(0.1, 0.85), kill_fn))
        ids = asyncio.run(drive_with_faults(deployment, EXECUTIONS, IN_FLIGHT, faults, "crash"))
        counts = asyncio.run(check_exactly_once(deployment, ids))
        assert kills.count("orchestrator") == ORCHESTRATOR_KILLS and kills.count("fn") == 1
        print(f"\nseed {seed}: {counts} with kills {kills}")


def test_orchestrator_killed_then_restarted_from_its_checkpoint_and_without_its_store(bootstrap: str) -> None:
    """SIGKILLed twice mid-run: restarted on the same host (its state stores read from their
    checkpoints: only the changelog tail), then with its store folder deleted, as on a new host
    (rebuilt from the state topic). Exactly once holds across both."""
    with Deployment(bootstrap) as deployment:
        orchestrator = deployment.orchestrator_services[0]
        restarts: list[str] = []

        def restart_same_host() -> None:
            orchestrator.kill()
            orchestrator.start()
            restarts.append("checkpoint")

        def restart_new_host() -> None:
            orchestrator.kill()
            shutil.rmtree(deployment.workdir / "orchestrator")
            orchestrator.start()
            restarts.append("rebuild")

        ids = asyncio.run(drive_with_faults(deployment, EXECUTIONS, IN_FLIGHT,
                                            [(0.3, restart_same_host), (0.6, restart_new_host)], "store"))
        counts = asyncio.run(check_exactly_once(deployment, ids))
        log = orchestrator.log_text()
        assert restarts == ["checkpoint", "rebuild"]
        # Stores built at the first start, used from their checkpoints, then built again.
        assert log.count("reading the changelog from its checkpoint") == deployment.partitions, log[-3000:]
        assert log.count("is new: building it") == 2 * deployment.partitions, log[-3000:]
        assert "not used" not in log
        print(f"\n{counts}")


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """A broker of its own (separate state dir and port), so the shared one is untouched."""
    from infra.local_kafka import down, ensure_up, stop

    port = int(os.environ.get("BATON_RELIABILITY_BROKER_PORT", "19392"))
    monkeypatch.setenv("BATON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("BATON_KAFKA_PORT", str(port))
    monkeypatch.delenv("BATON_KAFKA_CONTROLLER_PORT", raising=False)
    broker = ensure_up(port, timeout=120)
    assert broker.started_here
    try:
        yield broker.bootstrap, port
    finally:
        down()  # whichever broker of this state dir runs now (the restarted one)
        stop(broker)


def test_broker_killed_and_restarted_mid_run(own_broker: tuple[str, int]) -> None:
    from infra.broker_process import default_paths, recorded_broker
    from infra.local_kafka import ensure_up

    bootstrap, port = own_broker
    executions, in_flight = (200, 50) if FULL else (60, 20)
    with Deployment(bootstrap) as deployment:
        downtime: list[float] = []

        def kill_broker() -> None:
            record = recorded_broker(default_paths())
            assert record is not None
            os.kill(record["pid"], signal.SIGKILL)
            began = time.monotonic()
            time.sleep(2)
            ensure_up(port, timeout=120)
            downtime.append(time.monotonic() - began)

        ids = asyncio.run(drive_with_faults(deployment, executions, in_flight, [(0.3, kill_broker)], "broker",
                                            timeout=300))
        counts = asyncio.run(check_exactly_once(deployment, ids))
        print(f"\nbroker down {downtime[0]:.1f}s; {counts}")
