"""The registry's pages in a real headless Chromium against the real broker, orchestrator, fn step
service and API: a state machine with two versions and an alias splitting executions between them
by weight, then the list and the state machine's page, whose figures (executions, success rate,
mean cost) must equal what each execution's own page reports.

Screenshots are kept in tests/artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kafka_io import KafkaSettings
from orchestrator.runtime.topics import ensure_topics
from schemas.registry import AliasRoute
from tests.e2e.test_pages import ARTIFACTS, CHROMIUM, FLAGS, Stack, wait_status

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/bootstrap installs it)")


def priced(cost: float, *, may_fail: bool) -> dict[str, Any]:
    """Charge `cost` (the fn step `priced` reports it), then fail when the input says so (if `may_fail`)."""
    states: dict[str, Any] = {
        "Charge": {"Type": "Task", "Resource": "baton:fn:priced", "Parameters": {"cost_usd": cost},
                   "ResultPath": "$.charge", "Next": "Check" if may_fail else "Done"},
        "Done": {"Type": "Succeed"}}
    if may_fail:
        states["Check"] = {"Type": "Choice", "Choices": [{"Variable": "$.fail", "BooleanEquals": True,
                                                         "Next": "Refuse"}], "Default": "Done"}
        states["Refuse"] = {"Type": "Fail", "Error": "Order.Refused"}
    return {"StartAt": "Charge", "States": states}


@pytest.fixture
def kafka(kafka_bootstrap: str, topic_prefix: str) -> KafkaSettings:
    settings = KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix.rstrip("."), partitions=3)
    asyncio.run(ensure_topics(settings, services=("fn", "review")))
    return settings


@pytest.fixture
def system(kafka: KafkaSettings, tmp_path: Path) -> Iterator[str]:
    with Stack(kafka, tmp_path / "readmodel.sqlite") as url:
        yield url


def test_versions_aliases_and_their_figures(kafka: KafkaSettings, system: str) -> None:
    from orchestrator.registry.writer import RegistryWriter

    with httpx.Client(base_url=system, timeout=60) as client:
        first = client.post("/api/state-machines", json={"name": "orders", "description": "cheap and reliable",
                                                         "definition": priced(0.002, may_fail=False), "alias": "live"})
        second = client.post("/api/state-machines", json={"name": "orders", "description": "dearer, refuses some",
                                                          "definition": priced(0.005, may_fail=True)})
        assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
        assert (first.json()["version"], second.json()["version"]) == (1, 2)
        asyncio.run(RegistryWriter(kafka).set_alias("orders", "live", [AliasRoute(version=1, weight=60),
                                                                        AliasRoute(version=2, weight=40)]))

        starts = [("orders:live", f"order-{i}", {"fail": i % 3 == 0}) for i in range(10)]
        starts += [("orders:2", "pinned-ok", {"fail": False}), ("orders:2", "pinned-refused", {"fail": True}),
                   ("orders", "on-the-draft", {"fail": False})]
        ids = []
        for reference, name, given in starts:
            started = client.post("/api/executions", json={"state_machine": reference, "name": name, "input": given})
            assert started.status_code == 201, started.text
            ids.append(started.json()["execution_id"])
        ended = [wait_status(client, execution_id, "SUCCEEDED", "FAILED") for execution_id in ids]

        # What each execution's own page reports, grouped by the version it ran.
        expected: dict[str, dict[str, Any]] = {}
        for execution in ended:
            group = expected.setdefault(str(execution.get("version", "draft")), {"n": 0, "ok": 0, "cost": 0.0})
            totals = client.get(f"/api/executions/{execution['execution_id']}/states").json()["totals"]
            group["n"] += 1
            group["ok"] += execution["status"] == "SUCCEEDED"
            group["cost"] += totals["cost_usd"]
        assert set(expected) == {"1", "2", "draft"}, expected  # the alias sent executions to both versions

        figures = client.get("/api/state-machines/orders/versions").json()
        by_version = {str(v["version"]): v for v in figures["versions"]} | {"draft": figures["draft"]}
        for version, group in expected.items():
            shown = by_version[version]
            assert (shown["executions"], shown["ended"], shown["succeeded"]) == (group["n"], group["n"], group["ok"])
            assert shown["success_rate"] == pytest.approx(group["ok"] / group["n"])
            assert shown["mean_cost_usd"] == pytest.approx(group["cost"] / group["n"])
        assert figures["aliases"] == [{"name": "live", "description": None, "updated": figures["aliases"][0]["updated"],
                                       "routes": [{"version": 1, "weight": 60}, {"version": 2, "weight": 40}]}]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900}, base_url=system)
            page.goto("/")
            page.locator("nav a", has_text="State machines").click()
            row = page.locator('tr.state-machine[data-name="orders"]')
            row.wait_for()
            assert "2 (newest: 2)" in row.locator("td.versions").inner_text()
            assert "live → 1 (60 %), 2 (40 %)" in row.locator("td.aliases").inner_text()
            assert row.locator("td.executions").inner_text() == str(len(ids))
            page.screenshot(path=str(ARTIFACTS / "state-machines.png"), full_page=True)

            row.locator("a").first.click()
            page.locator("h1", has_text="orders").wait_for()
            routes = page.locator('tr.alias[data-alias="live"] span.route')
            assert [routes.nth(i).inner_text() for i in range(routes.count())] == ["version 1: 60 %",
                                                                                     "version 2: 40 %"]
            for version, group in expected.items():
                shown = page.locator(f'tr.version[data-version="{version}"]')
                assert shown.locator("td.executions").inner_text() == str(group["n"])
                assert shown.locator("td.success-rate").inner_text() == f"{group['ok'] / group['n'] * 100:.1f} %"
                assert shown.locator("td.mean-cost").inner_text() == f"${group['cost'] / group['n']:.6f}"
            assert "dearer, refuses some" in page.locator('tr.version[data-version="2"]').inner_text()
            page.screenshot(path=str(ARTIFACTS / "state-machine.png"), full_page=True)
        finally:
            browser.close()
