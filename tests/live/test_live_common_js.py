"""Unit tests of the live pages' JavaScript (tests/live/js/live-common.test.js), run in Chromium.

The page is served from the repository through Playwright's request routing: no server is needed.
"""
import re
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests/live/js/live-common.test.js"
NAMES = re.findall(r'^test\("(.+?)"', TESTS.read_text(), re.M)
ORIGIN = "http://scribe.test"
TYPES = {".js": "text/javascript", ".html": "text/html", ".css": "text/css"}

pytestmark = pytest.mark.browser


def serve(route):
    path = route.request.url.removeprefix(ORIGIN).split("?")[0]
    if path.startswith("/static/frontend/"):
        file = REPO / "frontend/static/frontend" / path.removeprefix("/static/frontend/")
    else:
        file = REPO / "tests/live/js" / path.lstrip("/")
    if not file.is_file():
        return route.fulfill(status=404, body="not found")
    route.fulfill(status=200, body=file.read_bytes(), content_type=TYPES.get(file.suffix, "application/octet-stream"))


@pytest.fixture(scope="module")
def harness():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route(f"{ORIGIN}/**", serve)
        page.goto(f"{ORIGIN}/harness.html")
        # Polled on animation frames: the page replaces setTimeout with its fake clock, which Playwright's timed polling would use.
        page.wait_for_function("window.liveTestsReady === true", timeout=15_000, polling="raf")
        assert not errors, errors
        assert page.evaluate("window.liveTests") == NAMES
        yield page
        browser.close()


@pytest.mark.parametrize("name", NAMES)
def test_live_page_javascript(harness, name):
    result = harness.evaluate("name => window.runLiveTest(name)", name)
    assert result == "ok", result
