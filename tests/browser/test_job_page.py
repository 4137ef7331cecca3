"""In Chromium, the meeting page while a job runs: the upload's message outlives the page's own
reload, the header follows the job to "Failed", and the failure reads as a sentence, not a class name."""
import re

import pytest

from meetings.models import Meeting, ReprocessJob
from meetings.services import meeting_create
from tests.browser.conftest import sign_in
from tests.speech import make_speech_wav
from transcription.reprocess.pipeline import Stage, _finish

pytestmark = pytest.mark.browser
UPLOADED = "Uploaded. Transcription has started."


def test_upload_message_survives_reloads_and_the_header_follows_the_job(live_site, browser, console_errors, owner, tmp_path):
    meeting = meeting_create(owner=owner, title="Ward round")
    wav = make_speech_wav(tmp_path / "round.wav", "Good morning everyone.")
    page = console_errors(browser.new_page())
    sign_in(page, live_site, "alice", "alice-password-1")
    page.goto(f"{live_site}/meetings/{meeting.pk}/")
    page.get_by_label(re.compile("Upload a recording")).set_input_files(str(wav))
    page.get_by_role("button", name="Upload and transcribe").click()

    # The page reloads itself to show the new job's panel; the message is still there, and after a
    # reload by the reader too. No worker runs here, so the job stays queued.
    page.locator("#job").wait_for()
    page.wait_for_function("() => document.getElementById('upload-message').textContent.includes('Uploaded.')")
    page.reload()
    assert page.locator("#upload-message").inner_text() == UPLOADED
    assert page.locator("#meeting-status").inner_text() == "Processing"

    job = ReprocessJob.objects.get(meeting=meeting)
    _finish(job, Stage.FAILED, error="The sound track could not be decoded; the file may be damaged or cut short.")
    assert Meeting.objects.get(pk=meeting.pk).status == Meeting.Status.FAILED
    page.wait_for_function("() => document.getElementById('meeting-status').textContent === 'Failed'", timeout=15_000)
    assert "could not be decoded" in page.locator("#job-message").inner_text()
    assert page.locator("#upload-message").inner_text() == ""  # the success message goes with its job
    page.reload()
    assert page.locator("#upload-message").inner_text() == "" and page.locator("#meeting-status").inner_text() == "Failed"
    assert console_errors.errors == []
