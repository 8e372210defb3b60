"""The execution page in a real headless Chromium against the real broker, orchestrator and step
services: Stop and Redrive from the page, the event table's filters and its live count, and an
LLM state's model, tokens and cost (the real offline model behind the llm step service).

Screenshots are kept in tests/artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from kafka_io import KafkaSettings
from orchestrator.runtime.topics import ensure_topics
from tests.e2e.test_pages import ARTIFACTS, CHROMIUM, FLAGS, FLOW, wait_status

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/bootstrap installs it)")

WAITING = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 600, "End": True}}}
# Fails on its first run and succeeds once redriven: `flaky` fails while `retry` < 2.
REDRIVABLE = {"StartAt": "Call", "States": {"Call": {
    "Type": "Task", "Resource": "baton:fn:flaky", "End": True,
    "Parameters": {"retry.$": "States.MathAdd($$.Execution.RedriveCount, 1)"}}}}
SHORT_WAIT = {"StartAt": "Pause", "States": {
    "Pause": {"Type": "Wait", "Seconds": 3, "Next": "Add"},
    "Add": {"Type": "Task", "Resource": "baton:fn:add", "InputPath": "$.pair", "End": True}}}
LLM = {"StartAt": "Plan", "States": {"Plan": {
    "Type": "Task", "Resource": "baton:llm", "End": True,
    "Parameters": {"Model": "smollm2", "Temperature": 0, "MaxTokens": 16, "Variables.$": "$",
                   "Prompt": "Name one city in {{ country }}."},
    "ResultSelector": {"text.$": "$.Text"}}}}
PRICE = {"input_per_million": 150.0, "output_per_million": 600.0}  # so the cost is not zero


class Stack:
    """The API, the orchestrator and step services in a background event loop (Playwright's sync
    API needs this thread free); `extra` adds services inside the same loop."""

    def __init__(self, kafka: KafkaSettings, db_path: Path,
                 extra: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None = None,
                 authorizer: Any = None) -> None:
        self.kafka, self.db_path, self.extra, self.authorizer = kafka, db_path, extra, authorizer
        self.url: Future[str] = Future()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from tests.integration.test_api import serving

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with contextlib.AsyncExitStack() as stack:
                auth = {"authorizer": self.authorizer} if self.authorizer is not None else {}
                url = await stack.enter_async_context(serving(self.kafka, self.db_path, review=True, **auth))
                if self.extra is not None:
                    await stack.enter_async_context(self.extra())
                self.url.set_result(url)
                await self._stop.wait()
        except BaseException as exc:
            if not self.url.done():
                self.url.set_exception(exc)
            raise

    def __enter__(self) -> str:
        self._thread.start()
        return self.url.result(timeout=120)

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


def kafka_for(bootstrap: str, *services: str) -> KafkaSettings:
    kafka = KafkaSettings(kafka_bootstrap=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}", partitions=3)
    # In a thread of its own: Playwright's sync API may already run a loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, ensure_topics(kafka, services=services)).result()
    return kafka


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kafka = kafka_for(kafka_bootstrap, "fn", "review")
    with Stack(kafka, tmp_path_factory.mktemp("pages") / "readmodel.sqlite") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _tab(browser: Any, base_url: str) -> Any:
    return browser.new_page(viewport={"width": 1400, "height": 1000}, base_url=base_url)


def _start(client: httpx.Client, definition: dict[str, Any], name: str, input: Any = None) -> str:
    started = client.post("/api/executions", json={"definition": definition, "state_machine": "page-test",
                                                   "name": f"{name}-{uuid.uuid4().hex[:6]}", "input": input or {}})
    assert started.status_code == 201, started.text
    execution_id: str = started.json()["execution_id"]
    return execution_id


def _badge(tab: Any, status: str) -> None:
    tab.wait_for_selector(f"#status.status-{status.lower()}", timeout=30_000)


def test_stop_a_running_execution_from_the_page(system: str, browser: Any) -> None:
    tab = _tab(browser, system)
    with httpx.Client(base_url=system, timeout=30) as client:
        execution_id = _start(client, WAITING, "stop-me")
        wait_status(client, execution_id, "RUNNING")
        tab.goto(f"/executions/{execution_id}")
        stop, redrive = tab.locator("#actions .action-stop"), tab.locator("#actions .action-redrive")
        assert stop.is_visible() and not redrive.is_visible()

        tab.once("dialog", lambda dialog: dialog.dismiss())  # the confirmation, declined: nothing is sent
        stop.click()
        time.sleep(1.5)
        assert client.get(f"/api/executions/{execution_id}").json()["status"] == "RUNNING"

        tab.once("dialog", lambda dialog: dialog.accept())
        stop.click()
        _badge(tab, "ABORTED")  # live: the page was not reloaded
        assert wait_status(client, execution_id, "ABORTED")["status"] == "ABORTED"
        tab.locator("#actions .action-redrive").wait_for()  # an aborted execution may be redriven
        assert not stop.is_visible()
        tab.screenshot(path=str(ARTIFACTS / "execution-stopped.png"), full_page=True)
    tab.close()


def test_redrive_a_failed_execution_from_the_page(system: str, browser: Any) -> None:
    tab = _tab(browser, system)
    with httpx.Client(base_url=system, timeout=30) as client:
        execution_id = _start(client, REDRIVABLE, "redrive-me")
        failed = wait_status(client, execution_id, "FAILED")
        assert failed["error"] == "Model.Throttled"
        tab.goto(f"/executions/{execution_id}")
        assert tab.locator("#error").inner_text().startswith("Model.Throttled")
        assert not tab.locator("#actions .action-stop").is_visible()

        tab.once("dialog", lambda dialog: dialog.accept())
        tab.locator("#actions .action-redrive").click()
        tab.locator("#actions .action-result", has_text="Redrive requested").wait_for()
        _badge(tab, "SUCCEEDED")  # followed live through the redriven run
        done = wait_status(client, execution_id, "SUCCEEDED")
        assert done["redrive_count"] == 1 and done["output"] == {"ok": True, "attempts": 3}
        assert "ExecutionRedriven" in tab.locator("#events").inner_text()
        tab.screenshot(path=str(ARTIFACTS / "execution-redriven.png"), full_page=True)
    tab.close()


def test_start_again_with_the_same_input(system: str, browser: Any) -> None:
    tab = _tab(browser, system)
    with httpx.Client(base_url=system, timeout=30) as client:
        first = _start(client, FLOW, "again", {"items": [4, 5]})
        wait_status(client, first, "SUCCEEDED")
        tab.goto(f"/executions/{first}")
        tab.once("dialog", lambda dialog: dialog.accept())
        tab.locator("#actions .action-restart").click()
        tab.wait_for_url(lambda url: "/executions/" in url and "again-" not in url, timeout=30_000)
        second = tab.locator(".execution-view").get_attribute("data-execution")
        assert second and second != first
        rerun = wait_status(client, second, "SUCCEEDED")
        assert rerun["input"] == {"items": [4, 5]} and rerun["state_machine"] == "page-test"
    tab.close()


def test_the_event_table_filters_and_stays_live(system: str, browser: Any) -> None:
    tab = _tab(browser, system)
    with httpx.Client(base_url=system, timeout=30) as client:
        execution_id = _start(client, SHORT_WAIT, "events", {"pair": {"a": 2, "b": 3}})
        wait_status(client, execution_id, "RUNNING")
        tab.goto(f"/executions/{execution_id}")
        shown_at_load = int(tab.locator("#event-count").inner_text())
        wait_status(client, execution_id, "SUCCEEDED")
        history = client.get(f"/api/executions/{execution_id}/history").json()
        assert len(history) > shown_at_load  # the Wait was still running when the page loaded
        tab.wait_for_function(f"document.getElementById('event-count').textContent === '{len(history)}'",
                              timeout=15_000)
        rows = tab.locator("#events tbody tr.event")
        assert rows.count() == len(history)

        tab.select_option("#filter-type", "TaskSucceeded")
        assert rows.count() == sum(1 for e in history if e["type"] == "TaskSucceeded") == 1
        assert rows.first.get_attribute("data-state") == "Add"

        tab.select_option("#filter-type", "")
        tab.select_option("#filter-state", "Pause")
        types = [rows.nth(i).get_attribute("data-type") for i in range(rows.count())]
        assert types == ["WaitStateEntered", "WaitStateExited"], types
        elapsed = tab.locator("#events tbody tr.event td.elapsed").last.inner_text()
        assert float(elapsed.split()[0]) >= 2.9  # the Wait's 3 seconds, measured from the start
        tab.screenshot(path=str(ARTIFACTS / "execution-events.png"), full_page=True)
    tab.close()


@pytest.fixture(scope="module")
def llm_system(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from infra.local_model import LocalModelError, ensure_up, llm_config, stop
    from steps.llm.config import LLMSettings
    from steps.llm.service import llm_service

    try:
        servers = ensure_up(["smollm2"])
    except LocalModelError as error:
        pytest.fail(f"the local model did not start: {error}\n{error.log_tail}", pytrace=False)
    config = llm_config(servers)
    config["prices"] = {alias: PRICE for alias in config["prices"]}
    kafka = kafka_for(kafka_bootstrap, "fn", "review", "llm")

    @contextlib.asynccontextmanager
    async def llm() -> AsyncIterator[Any]:
        async with llm_service(LLMSettings(**config), kafka=kafka) as service:
            yield service

    try:
        with Stack(kafka, tmp_path_factory.mktemp("llm-page") / "readmodel.sqlite", llm) as url:
            yield url
    finally:
        stop(servers)


def test_an_llm_state_shows_model_tokens_and_cost(llm_system: str, browser: Any) -> None:
    tab = _tab(browser, llm_system)
    with httpx.Client(base_url=llm_system, timeout=60) as client:
        execution_id = _start(client, LLM, "llm", {"country": "France"})
        wait_status(client, execution_id, "SUCCEEDED", timeout=120)
        history = client.get(f"/api/executions/{execution_id}/history").json()
        succeeded = [e for e in history if e["type"] == "TaskSucceeded"]
        assert len(succeeded) == 1
        measured = succeeded[0]["taskSucceededEventDetails"]["metadata"]
        assert measured["model"] == "smollm2" and measured["input_tokens"] > 0 and measured["cost_usd"] > 0

        states = client.get(f"/api/executions/{execution_id}/states").json()
        plan = states["states"]["Plan"]
        assert plan["model"] == "smollm2" and plan["cost_usd"] == measured["cost_usd"]
        assert plan["tokens"] == {"input_tokens": measured["input_tokens"], "output_tokens": measured["output_tokens"]}
        assert states["totals"]["input_tokens"] == measured["input_tokens"]
        assert states["totals"]["cost_usd"] == pytest.approx(measured["cost_usd"])

    tab.goto(f"/executions/{execution_id}")
    tab.locator('svg.graph g.state[data-state="Plan"] text.name').click()
    details = tab.locator("#details")
    details.locator("h2", has_text="Plan").wait_for()
    assert details.locator(".metric-model").inner_text() == "smollm2 / smollm2"
    assert details.locator(".metric-tokens-in").inner_text() == str(measured["input_tokens"])
    assert details.locator(".metric-tokens-out").inner_text() == str(measured["output_tokens"])
    assert float(details.locator(".metric-cost").get_attribute("data-value")) == measured["cost_usd"]
    assert float(details.locator(".metric-latency").inner_text().removesuffix(" ms")) == measured["latency_ms"]
    totals = tab.locator("#totals").inner_text()
    assert f"tokens in {measured['input_tokens']} / out {measured['output_tokens']}" in totals
    assert tab.locator("#timeline .gantt-row[data-state='Plan'] .bar").count() == 1
    tab.screenshot(path=str(ARTIFACTS / "execution-llm.png"), full_page=True)
    tab.close()


REVIEW = {"StartAt": "Review", "States": {"Review": {
    "Type": "Task", "Resource": "baton:review.waitForTaskToken", "ResultPath": "$.review", "End": True,
    "Parameters": {"Question": "Send this plan?", "Content.$": "$.draft", "Decisions": ["approve", "edit", "reject"]}}}}
DRAFT = ("# Day 1\n\nVisit **the Louvre** <script>window.pwned = 1</script> then [the site](https://example.org)"
         " or [this](javascript:window.pwned=2)\n\n- morning: museum\n- evening: `seine`\n")


def _review_card(tab: Any, execution_id: str) -> Any:
    card = tab.locator(f'.review[data-execution="{execution_id}"]')
    deadline = time.monotonic() + 60
    while True:  # the request reaches the inbox once the review service has published it
        tab.goto("/reviews")
        tab.wait_for_selector("#reviews > :not(p.empty:has-text('Loading'))")
        if card.count() or time.monotonic() > deadline:
            break
        time.sleep(1)
    card.wait_for()
    return card


def test_a_review_card_shows_markdown_as_text_and_edits_in_a_large_editor(system: str, browser: Any) -> None:
    tab = _tab(browser, system)
    with httpx.Client(base_url=system, timeout=60) as client:
        execution_id = _start(client, REVIEW, "plan-review", {"draft": DRAFT})
        wait_status(client, execution_id, "RUNNING")
        card = _review_card(tab, execution_id)
        content = card.locator(".content")
        assert content.locator("h3").inner_text() == "Day 1"
        assert content.locator("strong").inner_text() == "the Louvre"
        assert content.locator("li").all_inner_texts() == ["morning: museum", "evening: seine"]
        assert content.locator("a").count() == 1  # a javascript: link stays text
        assert content.locator("a").get_attribute("href") == "https://example.org"
        assert "<script>window.pwned = 1</script>" in content.inner_text()  # HTML shown as text, not run
        assert card.locator("script").count() == 0 and tab.evaluate("window.pwned") is None

        editor = card.locator("textarea.edit-content")
        assert not editor.is_visible() and not card.locator("button.send-edit").is_visible()
        card.locator("button.decide-edit").click()
        assert editor.is_visible() and editor.bounding_box()["height"] >= 300
        assert editor.input_value() == DRAFT
        editor.fill("# Day 1\n\nThe Louvre only.")
        card.locator("input.comment").fill("shorter")
        tab.screenshot(path=str(ARTIFACTS / "review-editing.png"), full_page=True)
        card.locator("button.send-edit").click()
        card.locator(".done").wait_for()

        done = wait_status(client, execution_id, "SUCCEEDED")
        assert done["output"]["review"] == {"decision": "edit", "approved": True, "content": "# Day 1\n\nThe Louvre only.",
                                            "reviewer": "inbox", "comment": "shorter"}

    tab.goto(f"/executions/{execution_id}")
    tab.locator('svg.graph g.state[data-state="Review"] text.name').click()
    decision = tab.locator("#details dl.review-outcome")
    decision.wait_for()
    assert decision.locator(".review-decision").inner_text() == "edit"
    assert decision.locator(".review-reviewer").inner_text() == "inbox"
    assert decision.locator(".review-comment").inner_text() == "shorter"
    tab.screenshot(path=str(ARTIFACTS / "review-decision-on-execution.png"), full_page=True)
    tab.close()
