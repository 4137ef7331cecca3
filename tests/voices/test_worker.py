"""End to end on a real Celery worker with the random-weight pyannote pipeline (real architecture):
enrol a voice from one meeting, reprocess the next meeting spoken by the same espeak-ng voices, and
check that the name is applied, undone, the voiceprint deleted, and every step audited.

Random weights make the scores meaningless, so the site threshold is set to the lowest value: the flow
is what is checked here; tests/voices/test_recognition.py checks the rule with voices of known identity.
"""
import time

import pytest
from django.urls import reverse

from administration.models import SiteSettings
from meetings.models import AuditEvent, Recording, ReprocessJob
from meetings.services import meeting_create
from tests.factories import attach_recording
from tests.reprocess.conftest import build_meeting, write_wav
from tests.servers import celery_worker
from transcription.reprocess.pipeline import reprocess_queue
from voices.models import SpeakerIdentity, Voiceprint

from .conftest import meeting_from_reference, speaker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

NEXT_WEEK = [
    ("en+m3", "MALE", "Welcome back. We continue with the budget review of the cardiology ward."),
    ("en+f3", "FEMALE", "The board asked for the staffing figures for the night shifts as well."),
    ("en+m3", "MALE", "Then we meet again on Thursday with the complete numbers for the board."),
]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_voice_enrolled_in_one_meeting_names_the_speaker_in_the_next_until_undone_and_deleted(
        client, owner, two_voices, voice_settings, tiny_model_dir, tmp_path):
    first = meeting_from_reference(owner, two_voices[0], two_voices[2])
    pcm, _ = build_meeting(tmp_path, NEXT_WEEK)
    second = meeting_create(owner=owner, title="Budget review, next week")
    recording = attach_recording(second, write_wav(tmp_path / "next.wav", pcm))
    SiteSettings.objects.filter(pk=SiteSettings.load().pk).update(voice_match_threshold=-1.0)
    env = dict(SCRIBE_ASR_MODEL_DIR=tiny_model_dir, SCRIBE_ASR_DEVICE="cpu", SCRIBE_ASR_MAX_STREAMS=8, SCRIBE_ASR_OFFLINE_SEGMENT_S=8,
               SCRIBE_DIARIZATION_DIR=voice_settings.DIARIZATION_DIR, SCRIBE_DIARIZATION_DEVICE="cpu")
    client.force_login(owner)

    with celery_worker(tmp_path, name="voices", **env):
        response = client.post(reverse("voices:enrol", args=[first.pk, speaker(first, "SPEAKER_00").pk]), {"who": "me", "remember": "on", "consent": "on"})
        assert response.status_code == 302
        vp = wait_for(lambda: Voiceprint.objects.exclude(status=Voiceprint.Status.PENDING).first(), 120, "the voiceprint to be built")
        assert vp.status == Voiceprint.Status.READY, vp.error
        job = reprocess_queue(meeting=second, recording=Recording.objects.get(pk=recording.pk))
        wait_for(lambda: ReprocessJob.objects.get(pk=job.pk).is_finished, 240, "reprocessing of the next meeting")

    job.refresh_from_db()
    assert (job.stage, job.error) == (ReprocessJob.Stage.DONE, "")
    assert job.diarization_version == vp.pipeline_version
    recognised = SpeakerIdentity.objects.get(speaker__meeting=second)  # one person names at most one speaker
    print(f"recognised {recognised.speaker.label} of {second.speakers.count()} speakers as {recognised.name}, score {recognised.score}")
    assert recognised.name == "Alice" and recognised.voiceprint_id == vp.pk and -1.0 <= recognised.score <= 1.0
    assert recognised.speaker.name == "Alice"
    event = AuditEvent.objects.get(action=AuditEvent.Action.VOICE_RECOGNISE)
    assert event.meeting_id == second.pk and event.detail["score"] == recognised.score
    assert not (voice_settings.MEDIA_ROOT / job.work_dir).exists()  # the speakers' own embeddings went with the work files

    page = client.get(reverse("meetings:detail", args=[second.pk])).content.decode()
    assert "Recognised by voice as <strong>Alice</strong>" in page
    client.post(reverse("voices:unlink", args=[second.pk, recognised.speaker_id]))
    assert speaker(second, recognised.speaker.label).name == recognised.speaker.label

    client.post(reverse("voices:delete", args=[vp.pk]))
    assert not Voiceprint.objects.exists()
    actions = list(AuditEvent.objects.filter(action__startswith="voice_").order_by("created_at", "id").values_list("action", flat=True))
    assert actions == ["voice_enrol", "voice_recognise", "voice_undo", "voice_delete"]
