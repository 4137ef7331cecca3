"""In Chromium: sign in, open a meeting, play from a time stamp, search and land on the right moment."""
import pytest

from meetings.models import AuditEvent
from tests.browser.conftest import sign_in
from tests.factories import attach_recording, meeting_with_transcript
from tests.speech import make_speech_wav

pytestmark = pytest.mark.browser


def test_a_user_signs_in_opens_a_meeting_plays_from_a_segment_and_searches(live_site, browser, console_errors, owner, tmp_path):
    meeting = meeting_with_transcript(owner)
    wav = make_speech_wav(tmp_path / "round.wav", "Good morning. Her blood pressure improved overnight. We keep the dose and check the kidney function tomorrow.", words_per_minute=80)
    attach_recording(meeting, wav)
    page = console_errors(browser.new_page())

    sign_in(page, live_site, "alice", "alice-password-1")
    page.get_by_role("link", name="Ward round").click()
    page.get_by_role("heading", name="Ward round").wait_for()
    assert page.locator(".segment .text", has_text="Her blood pressure improved overnight").is_visible()

    # Choosing a time stamp moves the player there.
    page.get_by_role("button", name="Play from 00:04").click()
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 4.2) < 0.5")

    page.get_by_role("link", name="Search", exact=True).click()
    page.get_by_label("Search transcripts").fill("kidney")
    page.get_by_role("button", name="Search").click()
    status = page.get_by_role("status")
    assert "1 result" in status.inner_text()
    assert page.locator("mark").first.inner_text().lower() == "kidney"

    third = meeting.segments.order_by("start_ms")[2]
    kidney_ms = next(start for text, start, _ in third.words if text == "kidney")  # the hit opens at its word
    page.get_by_role("link", name=f"Ward round 00:{kidney_ms // 1000:02d}").click()
    page.wait_for_url(f"**/meetings/{meeting.pk}/?t={kidney_ms}#seg-{third.pk}")
    assert page.locator(f"#seg-{third.pk}").evaluate("el => el.classList.contains('target')")
    page.wait_for_load_state("load")  # the browser's own move to the fragment comes last
    assert page.evaluate("document.activeElement.id") == f"seg-{third.pk}"  # keyboard and screen reader start at the hit
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {kidney_ms / 1000}) < 0.5")

    assert console_errors.errors == []
    actions = set(AuditEvent.objects.filter(actor=owner).values_list("action", flat=True))
    assert {"login", "meeting_view", "search", "media_download"} <= actions


def test_another_user_cannot_reach_the_meeting_in_the_browser(live_site, browser, owner, outsider):
    meeting = meeting_with_transcript(owner)
    page = browser.new_page()
    sign_in(page, live_site, "carol", "carol-password-1")
    assert "Ward round" not in page.content()
    response = page.goto(f"{live_site}/meetings/{meeting.pk}/")
    assert response.status == 404
