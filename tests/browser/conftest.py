import os
import shutil
from contextlib import contextmanager

import pytest

from tests.servers import daphne_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags that keep Chromium from phoning home: the machine has no route out and must not try.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
    "--metrics-recording-only", "--no-pings", "--disable-features=Translate,OptimizationHints,MediaRouter",
]


def fake_microphone_args(wav, *, loop: bool) -> list[str]:
    """Chromium flags for a microphone that plays `wav`: in a loop for as long as the page captures, or once."""
    return [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}{'' if loop else '%noloop'}", "--autoplay-policy=no-user-gesture-required"]


@contextmanager
def chromium_launched(args: list[str]):
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed (apt-get install chromium); tests/run.sh installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browser_logs(tmp_path_factory):
    return tmp_path_factory.mktemp("browser-logs")


@pytest.fixture
def live_site(transactional_db, browser_logs):
    with daphne_server(browser_logs) as url:
        yield url


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still
    # synchronous, so Django's async-safety check would misfire.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium_launched(CHROMIUM_ARGS) as browser:
        yield browser


@pytest.fixture
def console_errors():
    """Collects console errors and failed requests of pages registered with `watch(page)`."""
    errors: list[str] = []

    def watch(page):
        page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("response", lambda r: errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None)
        return page

    watch.errors = errors
    return watch


def sign_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
