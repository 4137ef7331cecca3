"""The console in Debian's Chromium: no accessibility violations, and an import driven from the keyboard
whose progress the page follows until the model is imported."""
import pytest
from django.contrib.auth.models import User

from administration.models import SiteSettings, StatusSample
from tests.browser.conftest import browser, console_errors, sign_in  # noqa: F401  (fixtures)
from tests.servers import celery_worker, daphne_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
AXE = "/static/vendor/axe-core/axe.min.js"
PAGES = ["/console/", "/console/models/", "/console/settings", "/console/audit/", "/console/voices/"]


@pytest.fixture
def site(transactional_db, tmp_path):
    User.objects.create_user("dana", password="dana-password-1", is_staff=True, is_superuser=True)
    SiteSettings.load()
    with daphne_server(tmp_path, SCRIBE_ASR_MODEL_DIR="") as url, celery_worker(tmp_path, name="console-browser"):
        yield url


def violations(page) -> list[str]:
    page.add_script_tag(url=AXE)
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']}: {v['help']} {v['nodes'][0]['html'][:120]}" for v in result["violations"]]


def test_console_pages_have_no_accessibility_violations(browser, site, console_errors):
    from django.utils import timezone

    StatusSample.objects.create(at=timezone.now(), active_streams=1, capacity=4, step_ms_p50=20, step_ms_p95=35)
    page = console_errors(browser.new_page())
    sign_in(page, site, "dana", "dana-password-1")
    for path in PAGES:
        page.goto(f"{site}{path}")
        assert page.locator("h1").count() == 1
        assert not violations(page), f"{path}: {violations(page)}"
    assert not console_errors.errors


def test_an_import_started_from_the_keyboard_shows_progress_until_the_model_is_imported(browser, site, model_folder, console_errors):
    page = console_errors(browser.new_page())
    sign_in(page, site, "dana", "dana-password-1")
    page.goto(f"{site}/console/models/")
    page.get_by_label("Folder on this server").fill(str(model_folder))
    page.get_by_label("Name").fill("voxtral-tiny")
    page.get_by_label("Name").press("Enter")
    page.get_by_role("heading", name="voxtral-tiny").wait_for()
    # The page polls and reloads itself when the worker has read every file.
    page.locator("#model-status", has_text="Imported (not yet verified)").wait_for(timeout=90_000)
    assert page.locator("#model-progress").is_hidden()
    page.get_by_role("button", name="Verify (read every file again)").click()
    page.locator("#model-status", has_text="Verified").wait_for(timeout=90_000)
    page.get_by_role("button", name="Activate").focus()
    page.keyboard.press("Enter")
    page.get_by_text("voxtral-tiny is now active").wait_for()
    assert not violations(page)
    assert not console_errors.errors
