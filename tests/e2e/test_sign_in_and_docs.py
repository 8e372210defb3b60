"""Offline and signed-out, in a real headless Chromium against `baton api` with tokens (the real
broker, orchestrator and step services behind it): `/docs` and `/redoc` render with every
request off this machine blocked, and a page without a token is a sign-in page that works.

Screenshots are kept in tests/artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from orchestrator.api.auth import TokenAuthorizer, TokenStore
from tests.e2e.test_execution_page import Stack, kafka_for
from tests.e2e.test_pages import ARTIFACTS, CHROMIUM, FLAGS

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/bootstrap installs it)")

LOCAL = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TokenStore:
    return TokenStore(tmp_path_factory.mktemp("tokens") / "api-tokens.json")


@pytest.fixture(scope="module")
def secured(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, store: TokenStore) -> Iterator[str]:
    kafka = kafka_for(kafka_bootstrap, "fn", "review")
    with Stack(kafka, tmp_path_factory.mktemp("secured") / "readmodel.sqlite",
               authorizer=TokenAuthorizer(store)) as url:
        yield url


@pytest.fixture
def offline_tab(secured: str) -> Iterator[tuple[Any, list[str]]]:
    """A tab whose requests off this machine are aborted (and listed), as on a machine offline."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []

    def only_local(route: Any) -> None:
        if urlsplit(route.request.url).hostname in LOCAL:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000}, base_url=secured)
            tab.route("**/*", only_local)
            yield tab, blocked
        finally:
            browser.close()


def test_swagger_ui_renders_offline(offline_tab: tuple[Any, list[str]]) -> None:
    tab, blocked = offline_tab
    tab.goto("/docs")
    tab.locator(".swagger-ui .info .title", has_text="Baton").wait_for(timeout=20_000)
    paths = tab.locator(".opblock-summary-path")
    paths.first.wait_for()
    shown = {paths.nth(i).inner_text().replace("\u200b", "") for i in range(paths.count())}
    assert {"/api/executions", "/api/executions/{execution}/stop", "/api/test-state"} <= shown
    tab.screenshot(path=str(ARTIFACTS / "docs-offline.png"))
    assert blocked == []  # nothing was even asked of a CDN


def test_redoc_renders_offline(offline_tab: tuple[Any, list[str]]) -> None:
    tab, blocked = offline_tab
    tab.goto("/redoc")
    tab.locator("redoc h1", has_text="Baton").wait_for(timeout=30_000)
    assert tab.locator("redoc", has_text="/api/executions").count() == 1
    assert blocked == []


def test_a_page_without_a_token_is_a_sign_in_page(offline_tab: tuple[Any, list[str]], store: TokenStore) -> None:
    tab, _ = offline_tab
    response = tab.goto("/")
    assert response.status == 401
    assert tab.locator("h1").inner_text() == "Sign in to Baton"
    assert "baton tokens create --role viewer" in tab.locator("main").inner_text()
    assert "error" not in tab.content().split("<main>")[0]  # an HTML page, not the API's JSON
    tab.screenshot(path=str(ARTIFACTS / "sign-in.png"), full_page=True)

    tab.fill("input[name=token]", "baton_0000_not-a-real-token")
    tab.click("button[type=submit]")
    assert "was not accepted" in tab.locator(".error-line").inner_text()

    token = store.create("page-viewer", "viewer")
    tab.fill("input[name=token]", token)
    tab.click("button[type=submit]")
    tab.locator("h1", has_text="Executions").wait_for()
    tab.goto("/")  # the cookie the sign-in set carries the token from now on
    assert tab.locator("h1").inner_text() == "Executions"
    assert tab.goto("/reviews").status == 403  # a viewer may not see the inbox: told so, on a page
    assert tab.locator("h1").inner_text() == "Not allowed"
