"""In Chromium: the word being spoken is highlighted while the recording plays, clicking a word plays
from it, and a search hit opens at the word that matched."""
import pytest

from meetings.segments import words_unpack
from tests.browser.conftest import sign_in
from tests.factories import attach_recording, meeting_with_transcript
from tests.speech import make_speech_wav

pytestmark = pytest.mark.browser
AXE = "/static/vendor/axe-core/axe.min.js"
PLAYER_MS = "document.getElementById('player').currentTime * 1000"


def test_words_follow_playback_seek_on_click_and_search_lands_on_the_word(live_site, browser, console_errors, owner, tmp_path):
    meeting = meeting_with_transcript(owner)
    wav = make_speech_wav(tmp_path / "round.wav", "Good morning. Her blood pressure improved overnight. We keep the dose and check the kidney function tomorrow.", words_per_minute=80)
    attach_recording(meeting, wav)
    third = meeting.segments.order_by("start_ms")[2]
    kidney = next(w for w in words_unpack(third.words) if w.text == "kidney")
    page = console_errors(browser.new_page())
    sign_in(page, live_site, "alice", "alice-password-1")
    page.goto(f"{live_site}/meetings/{meeting.pk}/")

    # Clicking a word plays from that word, and it is the one highlighted.
    page.locator(".word", has_text="overnight").click()
    overnight = next(w for s in meeting.segments.all() for w in words_unpack(s.words) if w.text == "overnight")
    page.wait_for_function(f"() => Math.abs({PLAYER_MS} - {overnight.start_ms}) < 400")
    page.evaluate("document.getElementById('player').pause()")
    page.wait_for_function(f"() => document.querySelector('.current-word')?.dataset.startMs == {overnight.start_ms}"
                           f" || document.querySelector('.current-word')?.textContent === 'medication.'")

    # While it plays, the highlighted word is always the one at the player's time, and it moves on.
    page.evaluate("document.getElementById('player').currentTime = 0; document.getElementById('player').play()")
    seen = set()
    for _ in range(12):
        page.wait_for_timeout(250)
        state = page.evaluate(f"""() => {{ const w = document.querySelector('.current-word'); const t = {PLAYER_MS};
            return w ? [Number(w.dataset.startMs), Number(w.dataset.endMs), t, w.textContent] : null; }}""")
        if state:
            start, end, at, text = state
            assert start - 300 <= at <= end + 300, state  # a frame or two behind the clock at most
            seen.add(text)
    page.evaluate("document.getElementById('player').pause()")
    assert len(seen) >= 3, seen

    # A search hit opens at its word: the player stands there and the word is highlighted.
    page.get_by_role("link", name="Search", exact=True).click()
    page.get_by_label("Search transcripts").fill("kidney")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Ward round 00:").click()
    page.wait_for_url(f"**/meetings/{meeting.pk}/?t={kidney.start_ms}#seg-{third.pk}")
    page.wait_for_function(f"() => Math.abs({PLAYER_MS} - {kidney.start_ms}) < 300")
    assert page.locator(".current-word").inner_text() == "kidney"

    page.add_script_tag(url=AXE)
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    assert [v["id"] for v in result["violations"]] == []
    assert console_errors.errors == []
