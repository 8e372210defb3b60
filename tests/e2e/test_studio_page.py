"""The studio page in a real headless Chromium against the real broker, orchestrator, llm step
service and API, with the real offline model (`infra.local_model.ensure_up` reuses running
servers; only the ones started here are stopped).

The story demo is copied to a folder of the test's own (its prompts are the prompt store the
step service and the API's in-process integrations read), registered, and run once, so the page
opens it from a recorded execution: it tests the Outline state on the recorded input next to the
recorded answer, tests an edited prompt before it is saved, compares two models, and saves a new
version (a new registry version and a new prompt file; the old ones unchanged). A viewer tests but
cannot save. Screenshots are kept in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from kafka_io import KafkaSettings
from orchestrator.api.app import create_app
from orchestrator.api.auth import TokenAuthorizer, TokenStore
from tests.e2e.test_execution_page import kafka_for
from tests.e2e.test_pages import ARTIFACTS, CHROMIUM, FLAGS, wait_status
from tests.integration.test_api_studio import snapshot, story_copy

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/bootstrap installs it)")

# Notional prices (USD per million tokens), so cost tells the two models apart.
PRICES = {"smollm2": {"input_per_million": 0.15, "output_per_million": 0.6},
          "smollm2-b": {"input_per_million": 0.8, "output_per_million": 4.0}}
EDITED_PROMPT = "Plan a two-chapter story about {{ topic }}. Studio edit marker: keep it short.\n"


class StudioStack:
    """Orchestrator, llm step service and API (with in-process integrations on the story copy) in
    a background event loop: Playwright's sync API needs this thread free."""

    def __init__(self, kafka: KafkaSettings, folder: Path, definition: dict[str, Any], llm: dict[str, Any],
                 tokens: TokenStore, db_path: Path) -> None:
        self.kafka, self.folder, self.definition, self.llm = kafka, folder, definition, llm
        self.tokens, self.db_path = tokens, db_path
        self.url: Future[str] = Future()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @contextlib.asynccontextmanager
    async def _api(self) -> AsyncIterator[str]:
        from steps.inprocess import LocalIntegrations, LocalIntegrationsConfig
        from tests.integration.test_api import free_port
        from tests.integration.runtime_support import eventually

        integrations = LocalIntegrations(LocalIntegrationsConfig(definition=self.definition, definition_dir=self.folder,
                                                                 llm_overrides={"prices": PRICES}))
        app = create_app(self.kafka, db_path=self.db_path, authorizer=TokenAuthorizer(self.tokens),
                         integrations=integrations)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())

        async def started() -> bool:
            return server.started

        try:
            await eventually(started, timeout=30)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)

    async def _main(self) -> None:
        from orchestrator.runtime.service import Orchestrator
        from orchestrator.settings import OrchestratorSettings
        from steps.llm.config import LLMSettings
        from steps.llm.service import llm_service

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        stop = asyncio.Event()
        orchestrator = Orchestrator(self.kafka, OrchestratorSettings(instance_id="studio", metrics_port=None))
        running = asyncio.create_task(orchestrator.run(stop))
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(llm_service(LLMSettings(**self.llm), kafka=self.kafka))
                await asyncio.wait_for(orchestrator.ready.wait(), 60)
                self.url.set_result(await stack.enter_async_context(self._api()))
                await self._stop.wait()
        except BaseException as exc:
            if not self.url.done():
                self.url.set_exception(exc)
            raise
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)

    def __enter__(self) -> str:
        self._thread.start()
        return self.url.result(timeout=120)

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def studio(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from infra.local_model import LocalModelError, ensure_up, llm_config, stop

    try:
        servers = ensure_up()
    except LocalModelError as error:
        pytest.fail(f"the local model did not start: {error}\n{error.log_tail}", pytrace=False)
    root = tmp_path_factory.mktemp("studio")
    folder, definition = story_copy(root)
    llm = {**llm_config(servers), "prices": PRICES, "prompt_stores": {"story": {"url": str(folder / "prompts")}}}
    tokens = TokenStore(root / "api-tokens.json")
    issued = {role: tokens.create(f"{role}-1", role) for role in ("viewer", "operator")}
    kafka = kafka_for(kafka_bootstrap, "llm")
    try:
        with StudioStack(kafka, folder, definition, llm, tokens, root / "readmodel.sqlite") as url:
            operator = {"Authorization": f"Bearer {issued['operator']}"}
            with httpx.Client(base_url=url, timeout=120, headers=operator) as client:
                deployed = client.post("/api/state-machines", json={"name": "story", "definition": definition})
                assert deployed.status_code == 201, deployed.text
                started = client.post("/api/executions", json={"state_machine": "story:1", "name": "recorded",
                                                               "input": {"topic": "a lighthouse keeper"}})
                assert started.status_code == 201, started.text
                execution = started.json()["execution_id"]
                wait_status(client, execution, "SUCCEEDED", timeout=180)
            yield {"url": url, "folder": folder, "definition": definition, "execution": execution,
                   "tokens": issued}
    finally:
        stop(servers)  # only the servers started here


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _tab(browser: Any, studio: dict[str, Any]) -> Any:
    return browser.new_page(viewport={"width": 1500, "height": 1100}, base_url=studio["url"])


def _select_outline(tab: Any) -> Any:
    tab.locator('svg.graph g.state[data-state="Outline"] text.name').click()
    panel = tab.locator("#panel")
    panel.locator("h2", has_text="Outline").wait_for()
    return panel


def _test(panel: Any) -> Any:
    panel.locator("button.test").click()
    result = panel.locator("table.test-result")
    result.wait_for(timeout=120_000)
    return result


def test_test_compare_and_save_from_a_recorded_execution(studio: dict[str, Any], browser: Any) -> None:
    folder, execution = studio["folder"], studio["execution"]
    headers = {"Authorization": f"Bearer {studio['tokens']['operator']}"}
    with httpx.Client(base_url=studio["url"], timeout=60, headers=headers) as client:
        recorded = client.get(f"/api/executions/{execution}/states").json()["states"]["Outline"]
        recorded_history = client.get(f"/api/executions/{execution}/history").json()
    prompts_before = snapshot(folder)
    tab = _tab(browser, studio)

    # Opened from the execution: the state machine's version it ran, the recorded input picked.
    tab.goto(f"/studio?execution={execution}&token={studio['tokens']['operator']}")
    assert "/studio/story?" in tab.url and "token" not in tab.url
    assert tab.locator("#opened-version").inner_text() == "version 1"
    panel = _select_outline(tab)
    prompt = panel.locator("textarea.prompt-text")
    tab.wait_for_function("document.querySelector('textarea.prompt-text').value.length > 0")
    assert prompt.input_value() == (folder / "prompts" / "outline" / "v1.j2").read_text()
    assert panel.locator("input.field-model").input_value() == "smollm2-b"
    assert panel.locator("input.field-promptref").input_value() == "story:outline@v1"
    tab.wait_for_function("document.querySelector('textarea.state-input').value.includes('lighthouse')")
    assert json.loads(panel.locator("textarea.state-input").input_value()) == recorded["input"]

    # Test on the recorded input: the answer, tokens, latency and cost next to the recorded ones.
    result = _test(panel)
    assert result.locator("td.test-status").inner_text() == "SUCCEEDED"
    assert result.locator("td.test-model").inner_text() == "smollm2-b"
    assert int(result.locator("td.test-input-tokens").inner_text()) > 0
    assert float(result.locator("td.test-latency").inner_text()) > 0
    assert float(result.locator("td.test-cost").inner_text()) > 0
    assert float(result.locator("td.recorded-cost").inner_text()) == recorded["cost_usd"] > 0
    assert result.locator("td.recorded-model").inner_text() == recorded["model"] == "smollm2-b"
    assert int(result.locator("td.recorded-input-tokens").inner_text()) == recorded["tokens"]["input_tokens"]
    assert float(result.locator("td.recorded-latency").inner_text()) == recorded["latency_ms"]
    assert "lighthouse keeper" in result.locator("td.test-prompt").inner_text()
    assert json.loads(result.locator("td.recorded-output").inner_text()) == recorded["output"]

    # Edit the model, temperature and the prompt text: the unsaved prompt is tested inline.
    panel.locator("input.field-model").fill("smollm2")
    panel.locator("input.field-model").dispatch_event("change")
    panel.locator("input.field-temperature").fill("0.2")
    panel.locator("input.field-temperature").dispatch_event("change")
    prompt.fill(EDITED_PROMPT)
    assert "edited" in panel.locator(".prompt-status").inner_text()
    result = _test(panel)
    assert result.locator("td.test-status").inner_text() == "SUCCEEDED"
    assert result.locator("td.test-model").inner_text() == "smollm2"
    assert "Studio edit marker" in result.locator("td.test-prompt").inner_text()
    assert snapshot(folder) == prompts_before  # testing wrote nothing
    tab.screenshot(path=str(ARTIFACTS / "studio-test.png"), full_page=True)

    # Compare the two models on a two-line dataset: a chart point and a column of answers each.
    compare = tab.locator("#compare")
    lines = [{"id": "cat", "input": {"topic": "a cat who sails"}, "expected": "cat"},
             {"id": "robot", "input": {"topic": "a robot gardener"}, "expected": "robot"}]
    compare.locator("textarea.compare-dataset").fill("\n".join(json.dumps(line) for line in lines))
    rows = compare.locator(".variant-row")
    assert rows.nth(0).locator(".variant-model").input_value() == ""  # the edited definition's: smollm2
    rows.nth(1).locator(".variant-model").fill("smollm2-b")
    compare.locator("select.compare-scorer").select_option("contains")
    compare.locator("input.compare-path").fill("$.outline")
    compare.locator("button.compare-run").click()
    compare.locator("svg.compare-chart").wait_for(timeout=180_000)
    assert compare.locator("svg.compare-chart g.point-group").count() == 2
    assert [compare.locator("tr.summary-row td.summary-variant").nth(i).inner_text() for i in range(2)] == \
        ["current", "other"]
    for i in range(2):  # the tiny model may break the JSON schema on an item: a failure, still counted
        row = compare.locator("tr.summary-row").nth(i)
        done, failed = (int(row.locator(f"td.summary-{key}").inner_text()) for key in ("completed", "failed"))
        assert done + failed == 2 and done >= 1, (i, done, failed)
        assert float(row.locator("td.summary-cost_usd").inner_text()) > 0
    answers = compare.locator("table.compare-answers tr.answer-row")
    assert answers.count() == 2 and answers.nth(0).locator("td.answer").count() == 2
    assert "a cat who sails" in answers.nth(0).inner_text()
    tab.screenshot(path=str(ARTIFACTS / "studio-compare.png"), full_page=True)

    # Save: a new prompt version and a new state machine version; nothing old changes.
    panel.locator("input.save-description").fill("cheaper model, shorter prompt")
    panel.locator("button.save").click()
    saved = tab.locator("#save-result.saved")
    saved.wait_for(timeout=60_000)
    text = saved.inner_text()
    assert "Saved version 2" in text and "story:outline@v1 \u2192 story:outline@v" in text
    new_ref = text.rsplit("\u2192 ", 1)[1].strip()
    new_file = folder / "prompts" / "outline" / f"{new_ref.rsplit('@', 1)[1]}.j2"
    assert new_file.read_text() == EDITED_PROMPT and str(new_file.relative_to(folder)) not in prompts_before
    assert {name: data for name, data in snapshot(folder).items() if name in prompts_before} == prompts_before
    assert tab.locator("#opened-version").inner_text() == "version 2"
    assert panel.locator("input.field-promptref").input_value() == new_ref
    assert "edited" not in panel.locator(".prompt-status").inner_text()
    tab.screenshot(path=str(ARTIFACTS / "studio-saved.png"), full_page=True)

    with httpx.Client(base_url=studio["url"], timeout=60, headers=headers) as client:
        record = client.get("/api/state-machines/story").json()
        versions = {v["version"]: v["definition"] for v in record["versions"]}
        assert versions[1] == studio["definition"]
        expected = copy.deepcopy(studio["definition"])
        expected["States"]["Outline"]["Parameters"].update({"Model": "smollm2", "Temperature": 0.2, "PromptRef": new_ref})
        assert versions[2] == expected
        assert [v["description"] for v in record["versions"]] == [None, "cheaper model, shorter prompt"]
        # The recorded execution is untouched: its version, history and states.
        assert client.get(f"/api/executions/{execution}").json()["version"] == 1
        assert client.get(f"/api/executions/{execution}/history").json() == recorded_history

    # The saved version tests from the stored prompt (no inline Prompt any more).
    result = _test(panel)
    assert "Studio edit marker" in result.locator("td.test-prompt").inner_text()
    tab.close()


def test_a_viewer_can_test_but_not_save(studio: dict[str, Any], browser: Any) -> None:
    tab = _tab(browser, studio)
    tab.goto(f"/studio/story?version=1&token={studio['tokens']['viewer']}")
    panel = _select_outline(tab)
    save = panel.locator("button.save")
    assert save.is_disabled() and "operator" in panel.locator(".save-note").inner_text()
    assert panel.locator("input.save-description").count() == 0
    panel.locator("textarea.state-input").fill(json.dumps({"topic": "a viewer's test"}))
    result = _test(panel)
    assert result.locator("td.test-status").inner_text() == "SUCCEEDED"
    assert "a viewer's test" in result.locator("td.test-prompt").inner_text()
    # The API refuses the viewer's save too (the page's own cookie, as a crafted call would send it).
    status = tab.evaluate("""async definition => (await fetch('/api/studio/save', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'story', definition})})).status""",
                          studio["definition"])
    assert status == 403
    tab.screenshot(path=str(ARTIFACTS / "studio-viewer.png"), full_page=True)
    tab.close()
