"""In Chromium: remember a voice from one meeting, see the name recognised in the next, find the person's
words across meetings, undo the recognition and delete the voiceprint; every page axe-clean."""
import pytest

from administration.models import SiteSettings
from meetings.models import AuditEvent
from tests.browser.conftest import browser, browser_logs, console_errors, sign_in  # noqa: F401  (fixtures)
from tests.reprocess.conftest import build_meeting, write_wav
from tests.servers import daphne_server
from transcription.reprocess import diarize
from transcription.reprocess.align import Turn
from transcription.reprocess.voiceprint import speaker_voices
from voices import services
from voices.models import Voiceprint
from voices.recognition import speakers_recognise

from .conftest import LABELS, meeting_from_reference
from .test_worker import NEXT_WEEK

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
AXE = "/static/vendor/axe-core/axe.min.js"


def assert_axe_clean(page) -> None:
    page.add_script_tag(url=AXE)
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    problems = [f"{v['id']}: {v['help']} {v['nodes'][0]['html'][:120]}" for v in result["violations"]]
    assert not problems, f"{page.url}: " + "; ".join(problems)


def recognise_next_meeting(meeting, wav_pcm, turns, model_dir) -> None:
    """What the store step does after speaker separation, with the real (random-weight) embedding model."""
    pipeline = diarize.load_pipelines(model_dir, "cpu")[0]
    voices = speaker_voices(pipeline, wav_pcm, [Turn(s, e, LABELS[who]) for s, e, who in turns])
    speakers_recognise(meeting=meeting, voices=voices, pipeline_version=diarize.pipeline_version(model_dir))


def test_enrol_see_the_name_in_the_next_meeting_undo_and_delete_the_voiceprint(
        browser, console_errors, owner, two_voices, voice_settings, tmp_path, browser_logs):
    first = meeting_from_reference(owner, two_voices[0], two_voices[2], title="Budget review")
    pcm, turns = build_meeting(tmp_path, NEXT_WEEK)
    second = meeting_from_reference(owner, write_wav(tmp_path / "next.wav", pcm), turns, title="Budget review, next week")
    SiteSettings.objects.filter(pk=SiteSettings.load().pk).update(voice_match_threshold=-1.0)  # random weights: any score
    env = dict(SCRIBE_DIARIZATION_DIR=voice_settings.DIARIZATION_DIR, SCRIBE_VOICEPRINT_MIN_SPEECH_S=4)
    with daphne_server(browser_logs, **env) as site:
        page = console_errors(browser.new_page())
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, site, "alice", "alice-password-1")
        page.goto(f"{site}/meetings/{first.pk}/")
        page.get_by_text("Link to a person (SPEAKER_00)").click()
        assert_axe_clean(page)
        form = page.locator("details.enrol").first
        assert form.get_by_label("Me", exact=True).is_checked()
        form.get_by_label("Remember this voice").check()
        form.get_by_label("I confirm that this person agreed").check()
        form.get_by_role("button", name="Save").click()
        page.get_by_text("SPEAKER_00 is now Alice").wait_for()

        services.voiceprint_build(voiceprint=Voiceprint.objects.get())  # the GPU task's work, in this process
        recognise_next_meeting(second, pcm, turns, voice_settings.DIARIZATION_DIR)

        page.goto(f"{site}/meetings/{second.pk}/")
        note = page.locator(".identity", has_text="Recognised by voice as Alice")
        note.wait_for()
        assert_axe_clean(page)

        page.get_by_role("link", name="Search", exact=True).click()
        page.get_by_label("Search transcripts").fill("line")
        page.get_by_label("Person").select_option(label="Alice")
        page.get_by_role("button", name="Search").click()
        titles = set(page.locator(".result-meeting").all_inner_texts())
        assert titles == {"Budget review", "Budget review, next week"}
        assert set(page.locator(".results .speaker").all_inner_texts()) == {"Alice"}
        assert_axe_clean(page)

        page.goto(f"{site}/meetings/{second.pk}/")
        page.get_by_role("button", name="Undo the recognition of Alice").click()
        page.get_by_text("Alice was removed from").wait_for()
        assert page.locator(".identity", has_text="Recognised by voice").count() == 0

        page.get_by_role("link", name="My voiceprints").click()
        assert page.locator("td", has_text="Ready").count() == 1
        assert_axe_clean(page)
        page.get_by_role("button", name="Delete the voiceprint of Alice").click()
        page.get_by_text("The voiceprint of Alice was deleted.").wait_for()
        assert_axe_clean(page)

    assert not Voiceprint.objects.exists() and console_errors.errors == []
    actions = set(AuditEvent.objects.filter(action__startswith="voice_").values_list("action", flat=True))
    assert actions == {"voice_enrol", "voice_recognise", "voice_undo", "voice_delete"}
