"""Live captions in Debian's Chromium: a fake microphone plays espeak-ng speech into the host page."""
from urllib.parse import quote

import numpy as np
import pytest
from django.contrib.auth.models import User

from meetings import services
from meetings.models import Meeting, Recording, Segment, Sharing
from tests.browser.conftest import chromium_launched, fake_microphone_args, sign_in
from tests.servers import daphne_server
from tests.speech import make_speech_wav, read_wav, wav_duration_ms

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SPEECH = "Good morning. The patient in bed four slept well, and her blood pressure is better today."
AXE = "/static/vendor/axe-core/axe.min.js"


@pytest.fixture
def speech(tmp_path):
    return make_speech_wav(tmp_path / "speech.wav", SPEECH)


@pytest.fixture
def people(db):
    owner = User.objects.create_user("alice", password="alice-password-1", first_name="Alice")
    member = User.objects.create_user("bob", password="bob-password-1", first_name="Bob")
    meeting = services.meeting_create(owner=owner, title="Ward round", language="en")
    services.meeting_share(meeting=meeting, by=owner, user=member, role=Sharing.Role.VIEW)
    return meeting


@pytest.fixture
def chromium(speech, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium_launched(fake_microphone_args(speech, loop=False)) as browser:
        yield browser


@pytest.fixture
def site(transactional_db, tmp_path, tiny_model_dir):
    # The real engine in the server process: a tiny random-weight Voxtral Realtime model on the CPU.
    with daphne_server(tmp_path, SCRIBE_ASR_MODEL_DIR=tiny_model_dir, SCRIBE_ASR_DEVICE="cpu", SCRIBE_ASR_MAX_STREAMS=2) as url:
        yield url


def ncc(recorded: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of `window` at every position of `recorded`."""
    r, w = recorded.astype(np.float64), window.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(r) + len(w))))
    corr = np.fft.irfft(np.fft.rfft(r, n) * np.conj(np.fft.rfft(w, n)), n)[: len(r) - len(w) + 1]
    squares = np.concatenate([[0.0], np.cumsum(r * r)])  # a running sum: convolving with ones took minutes on long recordings
    energy = np.sqrt(np.maximum(squares[len(w):] - squares[: len(r) - len(w) + 1], 0))
    return corr / (energy * np.linalg.norm(w) + 1e-9)


def window_alignment(recorded: np.ndarray, reference: np.ndarray, rate: int = 16_000) -> float:
    """Median, over the voiced seconds of the speech, of each second's best correlation with the recording.

    Each second is looked for on its own, anywhere in the recording: the fake microphone may start
    playing before capture starts (the recording then lacks the first few hundred milliseconds) and a
    loaded machine may drop a few milliseconds mid-way, yet the recording is still the speech.
    """
    scores = []
    for start in range(0, len(reference) - rate, rate // 2):
        window = reference[start : start + rate]
        if np.sqrt(np.mean(window.astype(float) ** 2)) >= 300:
            scores.append(float(np.max(ncc(recorded, window))))
    return float(np.median(scores))


def open_page(browser, site, user, password, path, errors):
    context = browser.new_context()
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, site, user, password)
    page.goto(f"{site}{path}")
    return page


def caption_lines(page) -> list[str]:
    return page.locator("#caption-log .caption-line").all_inner_texts()


def test_the_host_streams_the_follower_sees_it_live_and_the_recording_matches_the_speech(chromium, site, people, speech, tmp_path):
    meeting, errors = people, []
    follower = open_page(chromium, site, "bob", "bob-password-1", f"/meetings/{meeting.pk}/live/", errors)
    follower.get_by_text("The host is not streaming right now.").wait_for()
    host = open_page(chromium, site, "alice", "alice-password-1", f"/meetings/{meeting.pk}/live/host", errors)
    host.get_by_label("Caption delay").select_option("960")
    recorder = start_in_recording_window(host, errors)  # the window that holds the microphone
    follower.locator("#host-status", has_text="The host is live.").wait_for()
    follower.locator("#caption-log .caption-line").first.wait_for(timeout=60_000)  # captions while the host speaks
    host.wait_for_timeout(wav_duration_ms(speech) + 1500)
    follower.screenshot(path=tmp_path / "caption-view.png")  # kept with the test's files, for people to look at
    assert host.locator("#level").evaluate("m => m.value") > 0  # the window's input level, shown on the host page
    host.get_by_role("button", name="Stop and finish").click()
    host.get_by_text("Stopped. The recording is saved").wait_for(timeout=60_000)
    recorder.wait_for_event("close", timeout=10_000)  # its work done, the window closes itself
    follower.locator("#host-status", has_text="The meeting has ended.").wait_for(timeout=30_000)
    assert not errors

    meeting = Meeting.objects.get(pk=meeting.pk)
    assert meeting.status == Meeting.Status.PROCESSING and meeting.delay_ms == 960 and meeting.ended_at
    stored = list(Segment.objects.filter(meeting=meeting, origin=Segment.Origin.LIVE).order_by("start_ms", "id").values_list("text", flat=True))
    assert stored, "the engine's captions were not stored"
    assert caption_lines(follower) == stored  # every final caption, once, in order, for the follower ...
    assert caption_lines(host) == stored  # ... and on the host's page
    word = max((w.strip(".,!?") for line in stored for w in line.split() if w.strip(".,!?").isalpha()), key=len, default=None)
    if word:  # random weights may say nothing searchable; when they do, search must find it
        follower.goto(f"{site}/search?q={quote(word)}")
        follower.get_by_role("link", name="Ward round").first.wait_for()

    recording = Recording.objects.get(meeting=meeting, source=Recording.Source.LIVE)
    recorded, rate = read_wav(recording.file.path)
    reference, _ = read_wav(speech)
    assert rate == 16_000 and recording.duration_ms == len(recorded) // 16
    assert recording.duration_ms >= wav_duration_ms(speech) - 300
    assert window_alignment(recorded, reference) > 0.8


def start_in_recording_window(host, errors):
    """Press Start on the host page; returns the recording window it opens, once both say it is live."""
    with host.expect_popup() as opened:
        host.get_by_role("button", name="Start live captions").click()
    recorder = opened.value
    recorder.on("pageerror", lambda exc: errors.append(str(exc)))
    recorder.on("dialog", lambda dialog: dialog.accept())
    for page in (recorder, host):
        page.get_by_text("Live: your audio is being captioned and recorded.").wait_for(timeout=60_000)
    return recorder


def captured(page) -> dict:
    return page.evaluate("() => ({...document.getElementById('live').liveStats})")


def test_the_recording_window_records_on_while_the_host_page_is_closed_and_opened_again(chromium, site, people):
    meeting, errors = people, []
    follower = open_page(chromium, site, "bob", "bob-password-1", f"/meetings/{meeting.pk}/live/", errors)
    host = open_page(chromium, site, "alice", "alice-password-1", f"/meetings/{meeting.pk}/live/host", errors)
    # Opened other than by the host page's Start (a link from elsewhere), the window records nothing until asked.
    stray = host.context.new_page()
    stray.goto(f"{site}/meetings/{meeting.pk}/live/recorder")
    stray.get_by_text("Press “Start recording” to record this meeting's audio in this window.").wait_for()
    stray.wait_for_timeout(1000)
    assert captured(stray)["captured"] == 0 and stray.get_by_role("button", name="Start recording").is_enabled()
    stray.close()

    recorder = start_in_recording_window(host, errors)
    assert host.get_by_role("button", name="Start live captions").is_disabled()
    assert host.get_by_text("Your audio is recorded in the recording window.").is_visible()

    # The host closes the page (no warning: nothing is lost) and opens it again in a new tab.
    before = captured(recorder)
    host.close(run_before_unload=True)
    follower.wait_for_timeout(1500)
    assert follower.locator("#host-status").get_attribute("data-host") == "live"  # the followers saw nothing happen
    host = recorder.context.new_page()
    host.on("pageerror", lambda exc: errors.append(str(exc)))
    host.goto(f"{site}/meetings/{meeting.pk}/live/host")
    host.get_by_text("Live: your audio is being captioned and recorded.").wait_for(timeout=10_000)
    assert host.get_by_role("button", name="Start live captions").is_disabled()
    after = captured(recorder)
    assert after["captured"] > before["captured"] and after["openedAt"] == before["openedAt"]  # one connection all along

    # Its buttons work the window.
    host.get_by_role("button", name="Pause", exact=True).click()
    recorder.get_by_text("Paused: nothing is sent or recorded until you resume.").wait_for(timeout=5000)
    host.get_by_text("Paused: nothing is sent or recorded until you resume.").wait_for(timeout=5000)
    follower.locator("#host-status", has_text="The host has paused captions.").wait_for(timeout=10_000)
    host.get_by_role("button", name="Resume", exact=True).click()
    host.get_by_text("Live: your audio is being captioned and recorded.").wait_for(timeout=5000)

    # The window is closed by mistake: the host page says so at once, and Start continues the same session.
    recorder.close(run_before_unload=False)
    host.get_by_text("The recording window was closed, so nothing is being recorded.").wait_for(timeout=5000)
    follower.locator("#host-status", has_text="The host is reconnecting").wait_for(timeout=10_000)
    recorder = start_in_recording_window(host, errors)
    follower.locator("#host-status", has_text="The host is live.").wait_for(timeout=10_000)
    host.get_by_role("button", name="Stop and finish").click()
    host.get_by_text("Stopped. The recording is saved").wait_for(timeout=60_000)
    recorder.wait_for_event("close", timeout=10_000)
    assert not errors
    assert Recording.objects.filter(meeting=meeting, source=Recording.Source.LIVE).count() == 1  # one session, one recording


def test_where_pop_ups_are_blocked_the_host_page_records_itself_and_resumes_after_a_reload(chromium, site, people):
    meeting, errors = people, []
    context = chromium.new_context()
    context.add_init_script("window.open = () => null")  # what a pop-up blocker gives the page
    host = context.new_page()
    host.on("pageerror", lambda exc: errors.append(str(exc)))
    host.on("dialog", lambda dialog: dialog.accept())  # the beforeunload warning: this page records
    sign_in(host, site, "alice", "alice-password-1")
    host.goto(f"{site}/meetings/{meeting.pk}/live/host")
    host.get_by_role("button", name="Start live captions").click()
    host.get_by_text("Live: your audio is being captioned and recorded.").wait_for(timeout=60_000)
    host.get_by_role("alert").filter(has_text="pop-ups are blocked for this site), so this page records").wait_for()
    assert len(context.pages) == 1 and captured(host)["captured"] > 0

    host.reload()  # the session waits for the page, which opens the microphone again by itself
    host.get_by_text("Live: your audio is being captioned and recorded.").wait_for(timeout=60_000)
    previous = host.evaluate("JSON.parse(sessionStorage.getItem('scribe-live-previous-capture'))")
    print(f"a reload of a page that records itself: no page captured for {captured(host)['firstAt'] - 80 - previous['lastAt']:.0f} ms")
    host.get_by_role("button", name="Stop and finish").click()
    host.get_by_text("Stopped. The recording is saved").wait_for(timeout=60_000)
    assert not errors
    assert Recording.objects.filter(meeting=meeting, source=Recording.Source.LIVE).count() == 1


def test_the_live_pages_and_the_recording_window_have_no_accessibility_violations(chromium, site, people):
    meeting, errors = people, []
    follower = open_page(chromium, site, "bob", "bob-password-1", f"/meetings/{meeting.pk}/live/", errors)
    host = open_page(chromium, site, "alice", "alice-password-1", f"/meetings/{meeting.pk}/live/host", errors)
    host.locator("#host-status").filter(has_text="host").wait_for()
    pages = [follower, host, start_in_recording_window(host, errors)]  # the host page as it is while the window records
    for page in pages:
        page.add_script_tag(url=AXE)
        for theme in ("dark", "contrast", "light"):
            page.evaluate("t => document.body.className = document.body.className.replace(/theme-\\S+/, 'theme-' + t)", theme)
            result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
            problems = [f"{v['id']}: {v['help']} ({len(v['nodes'])}) {v['nodes'][0]['html'][:120]}" for v in result["violations"]]
            assert not problems, f"{page.url} in the {theme} theme: " + "; ".join(problems)
    assert not errors
