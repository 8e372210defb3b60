"""The executions list without Kafka: the read model's filters (state machine, status, a part of
the name, a start-time range), its count and pages; the API's and the page's use of them
(pagination beyond one page, the duration column, "waiting for review")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from orchestrator.api.readmodel import ReadModel
from schemas.executions import ExecutionStatus, execution_id_for

T0 = datetime(2026, 12, 4, 12, 0, 0, tzinfo=timezone.utc)


def _status(machine: str, name: str, state: str, minute: int, seconds: float = 0.0) -> ExecutionStatus:
    times: dict[str, Any] = {"start_time": T0 + timedelta(minutes=minute)}
    if state != "RUNNING":
        times["stop_time"] = T0 + timedelta(minutes=minute, seconds=seconds)
    return ExecutionStatus(execution_id=execution_id_for(machine, name), state_machine=machine, name=name,
                           status=state, **times)


@pytest.fixture
def model(tmp_path: Path) -> Iterator[ReadModel]:
    with ReadModel(tmp_path / "readmodel.sqlite") as read_model:
        # 250 travel runs a minute apart (every 5th failed), and 3 story runs.
        read_model.apply([_status("travel", f"trip-{i:03d}", "FAILED" if i % 5 == 0 else "SUCCEEDED", i, 1.5)
                          for i in range(250)])
        read_model.apply([_status("story", f"Tale-{i}", "RUNNING", 300 + i) for i in range(3)])
        yield read_model


def test_the_filters_and_the_count(model: ReadModel) -> None:
    assert model.count() == 253 and model.state_machines() == ["story", "travel"]
    assert model.count(state_machine="travel", status="FAILED") == 50
    assert [v.name for v in model.list(name="tALE")] == ["Tale-2", "Tale-1", "Tale-0"]
    assert model.count(name="%") == 0  # a name part, not a LIKE pattern
    window = model.list(started_after="2026-12-04T12:10", started_before="2026-12-04T12:13", limit=10)
    assert [v.name for v in window] == ["trip-012", "trip-011", "trip-010"]


def test_pages_go_beyond_the_first_200(model: ReadModel) -> None:
    seen = [v.name for offset in range(0, 300, 100) for v in model.list(state_machine="travel", limit=100,
                                                                        offset=offset)]
    assert len(seen) == len(set(seen)) == 250 and seen[0] == "trip-249" and seen[-1] == "trip-000"


class _Backend:
    def __init__(self, model: ReadModel) -> None:
        self.model = model
        waiting = execution_id_for("story", "Tale-1")
        self.definitions = type("Definitions", (), {"awaited": {waiting: frozenset({"Review#1"})}})()


@pytest.fixture
def client(model: ReadModel) -> TestClient:
    app = create_app(KafkaSettings(), db_path=":memory:")
    app.state.backend = _Backend(model)
    return TestClient(app)


def test_the_api_pages_with_a_total(client: TestClient) -> None:
    first = client.get("/api/executions", params={"state_machine": "travel", "limit": 200})
    assert first.headers["X-Total-Count"] == "250" and len(first.json()) == 200
    rest = client.get("/api/executions", params={"state_machine": "travel", "limit": 200, "offset": 200}).json()
    assert len(rest) == 50 and rest[-1]["name"] == "trip-000"
    named = client.get("/api/executions", params={"name": "trip-00", "status": "failed"})
    assert [e["name"] for e in named.json()] == ["trip-005", "trip-000"] and named.headers["X-Total-Count"] == "2"


def test_the_page_filters_pages_and_shows_durations_and_reviews(client: TestClient) -> None:
    page = client.get("/", params={"state_machine": "travel", "status": "FAILED"}).text
    assert page.count('class="execution"') == 50 and "1&ndash;50 of 50" in page and 'class="next"' not in page
    assert "trip-245" in page and "trip-244" not in page
    assert re.search(r'<td class="duration">1\.500 s</td>', page)

    all_runs = client.get("/").text
    assert all_runs.count('class="execution"') == 100 and "1&ndash;100 of 253" in all_runs
    older = re.search(r'class="next" href="([^"]+)"', all_runs)
    assert older is not None
    last = client.get("/", params={"page": 3}).text
    assert last.count('class="execution"') == 53 and 'class="next"' not in last and "trip-000" in last
    assert older.group(1) == "/?page=2"

    stories = client.get("/", params={"state_machine": "story"}).text
    rows = dict(re.findall(r'data-execution="[^"]+:(Tale-\d)">(.*?)</tr>', stories, re.S))
    assert "waiting for review" in rows["Tale-1"] and "waiting for review" not in rows["Tale-0"]
    assert client.get("/", params={"name": "nothing-like-this"}).text.count("No execution matches") == 1
