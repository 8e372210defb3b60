"""The pages in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against
the real broker, orchestrator, fn and review step services and the API on 127.0.0.1.

Screenshots are kept in tests/artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest

from kafka_io import KafkaSettings
from orchestrator.runtime.topics import ensure_topics

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/bootstrap installs it)")

FLOW = {"StartAt": "Prepare", "States": {
    "Prepare": {"Type": "Pass", "Result": {"a": 2, "b": 3}, "ResultPath": "$.pair", "Next": "Fan"},
    "Fan": {"Type": "Parallel", "ResultPath": "$.fan", "Next": "Each", "Branches": [
        {"StartAt": "Add", "States": {"Add": {"Type": "Task", "Resource": "baton:fn:add", "InputPath": "$.pair",
                                              "End": True}}},
        {"StartAt": "Echo", "States": {"Echo": {"Type": "Task", "Resource": "baton:fn:echo", "End": True}}}]},
    "Each": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.each", "Next": "Route",
             "ItemProcessor": {"StartAt": "Double", "States": {"Double": {"Type": "Pass", "End": True}}}},
    "Route": {"Type": "Choice", "Choices": [{"Variable": "$.pair.a", "NumericEquals": 2, "Next": "Done"}],
              "Default": "Unused"},
    "Unused": {"Type": "Fail", "Error": "Route.Unexpected"},
    "Done": {"Type": "Succeed"}}}
REVIEW = {"StartAt": "Review", "States": {"Review": {
    "Type": "Task", "Resource": "baton:review.waitForTaskToken",
    "Parameters": {"Question": "Send this answer to the customer?", "Content.$": "$.draft",
                   "Decisions": ["approve", "edit", "reject"], "Instructions": "Check the facts and the tone."},
    "ResultPath": "$.review", "End": True}}}


class Stack:
    """The whole system in a background event loop (Playwright's sync API needs this thread free)."""

    def __init__(self, kafka: KafkaSettings, db_path: Path) -> None:
        self.kafka, self.db_path = kafka, db_path
        self.url: Future[str] = Future()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from tests.integration.test_api import serving

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with serving(self.kafka, self.db_path, review=True) as url:
                self.url.set_result(url)
                await self._stop.wait()
        except BaseException as exc:
            if not self.url.done():
                self.url.set_exception(exc)
            raise

    def __enter__(self) -> str:
        self._thread.start()
        return self.url.result(timeout=90)

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture
def system(kafka_bootstrap: str, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    kafka = KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}", partitions=3)
    asyncio.run(ensure_topics(kafka, services=("fn", "review")))
    with Stack(kafka, tmp_path / "readmodel.sqlite") as url:
        yield url


@pytest.fixture
def page(system: str) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000}, base_url=system)
            yield tab
        finally:
            browser.close()


def wait_status(client: httpx.Client, execution_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/executions/{execution_id}")
        if response.status_code == 200 and response.json()["status"] in statuses:
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.3)
    raise TimeoutError(f"{execution_id} did not reach {statuses}")


def test_click_through_an_execution_graph(system: str, page: Any) -> None:
    with httpx.Client(base_url=system, timeout=30) as client:
        started = client.post("/api/executions", json={"definition": FLOW, "state_machine": "fanout",
                                                       "name": "graph-demo", "input": {"items": [1, 2, 3]}})
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        wait_status(client, execution_id, "SUCCEEDED")

    page.goto("/")
    row = page.locator(f'tr.execution[data-execution="{execution_id}"]')
    row.wait_for()
    assert "SUCCEEDED" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "executions.png"), full_page=True)

    row.locator("a").click()
    page.wait_for_selector("svg.graph")
    classes = {name: page.locator(f'svg.graph g.state[data-state="{name}"]').get_attribute("class") or ""
               for name in ("Prepare", "Fan", "Add", "Echo", "Each", "Double", "Route", "Done", "Unused")}
    for name in ("Prepare", "Fan", "Add", "Echo", "Each", "Double", "Route", "Done"):
        assert "status-succeeded" in classes[name], (name, classes[name])
    assert "status-not-run" in classes["Unused"]
    assert page.locator("svg.graph g.group").count() == 3  # two Parallel branches and the Map processor

    page.locator('svg.graph g.state[data-state="Add"] text.name').click()
    details = page.locator("#details")
    details.locator("h2", has_text="Add").wait_for()
    assert '"a": 2' in details.locator("pre.field-input").inner_text()
    assert '"sum": 5' in details.locator("pre.field-output").inner_text()
    assert "SUCCEEDED" in details.locator(".state-status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "execution-graph.png"), full_page=True)


def test_approve_a_review_in_the_inbox(system: str, page: Any) -> None:
    with httpx.Client(base_url=system, timeout=60) as client:
        started = client.post("/api/executions", json={"definition": REVIEW, "state_machine": "answer",
                                                       "name": "needs-review",
                                                       "input": {"draft": "Your burst pipe is covered."}})
        execution_id = started.json()["execution_id"]
        wait_status(client, execution_id, "RUNNING")

        card = page.locator(f'.review[data-execution="{execution_id}"]')
        deadline = time.monotonic() + 60
        while True:  # the request reaches the inbox once the review service has published it
            page.goto("/reviews")
            page.wait_for_selector("#reviews > :not(p.empty:has-text('Loading'))")
            if card.count() or time.monotonic() > deadline:
                break
            time.sleep(1)
        card.wait_for()
        assert "Send this answer to the customer?" in card.inner_text()
        page.screenshot(path=str(ARTIFACTS / "review-inbox.png"), full_page=True)

        card.locator("input.comment").fill("accurate")
        card.locator("button.decide-approve").click()
        card.locator(".done").wait_for()
        page.screenshot(path=str(ARTIFACTS / "review-approved.png"), full_page=True)

        done = wait_status(client, execution_id, "SUCCEEDED")
        assert done["output"]["review"] == {"decision": "approve", "approved": True, "reviewer": "inbox",
                                            "comment": "accurate"}

    page.goto(f"/executions/{execution_id}")
    page.wait_for_selector('svg.graph g.state.status-succeeded[data-state="Review"]')
    page.locator('svg.graph g.state[data-state="Review"] text.name').click()
    assert '"approved": true' in page.locator("#details pre.field-output").inner_text()
    page.screenshot(path=str(ARTIFACTS / "review-execution.png"), full_page=True)
