"""Upload to searchable, speaker-attributed transcript: the stages run in this process, real models (tiny)."""
import pytest
from django.urls import reverse

from meetings.models import AuditEvent, Meeting, Recording, ReprocessJob, Segment, Speaker
from meetings.search import search_segments
from meetings.services import meeting_create, segment_append

from .conftest import run_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def meeting(owner):
    meeting = meeting_create(owner=owner, title="Budget review")
    segment_append(meeting=meeting, text="live caption draft", start_ms=0, end_ms=1000)
    return meeting


def upload(client, meeting, path, name="meeting.wav"):
    with open(path, "rb") as fh:
        return client.post(reverse("reprocess:upload", args=[meeting.pk]), {"file": fh}, HTTP_ACCEPT="application/json")


def test_an_uploaded_two_voice_recording_becomes_a_speaker_attributed_searchable_transcript(
        client, owner, meeting, two_voices, reprocess_settings, django_capture_on_commit_callbacks):
    client.force_login(owner)
    with django_capture_on_commit_callbacks() as queued:
        response = upload(client, meeting, two_voices[0])
    assert response.status_code == 202, response.content
    assert len(queued) == 1  # the chain is sent only once the upload's rows are committed
    job = ReprocessJob.objects.get(pk=response.json()["job"]["id"])
    recording = job.recording
    assert recording.source == Recording.Source.UPLOAD and len(recording.sha256) == 64 and recording.size_bytes > 0
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RECORDING_UPLOAD, meeting_id=meeting.pk).exists()

    run_job(job.pk)

    job.refresh_from_db()
    meeting.refresh_from_db()
    assert (job.stage, job.percent, job.error) == (ReprocessJob.Stage.DONE, 100, "")
    assert job.asr_version.endswith("at 960 ms") and "pyannote.audio" in job.diarization_version
    assert set(job.timings) == {"decode", "transcribe", "diarize", "store"}
    assert meeting.status == Meeting.Status.READY
    segments = list(meeting.segments.select_related("speaker"))
    assert segments and all(s.origin == Segment.Origin.REPROCESSED for s in segments)
    assert not meeting.segments.filter(text="live caption draft").exists()  # the live transcript was replaced
    assert all(s.speaker is not None for s in segments) and meeting.speakers.exists()
    assert all(a.start_ms <= b.start_ms for a, b in zip(segments, segments[1:]))
    word = next(w for s in segments for w in s.text.split() if w.isascii() and w.isalpha() and len(w) > 3)
    hits = search_segments(user=owner, query=word, meeting_id=meeting.pk)
    assert hits.total >= 1 and hits.hits[0].speaker_name.startswith("SPEAKER_")
    assert not (reprocess_settings.MEDIA_ROOT / job.work_dir).exists()  # intermediate files are removed

    page = client.get(reverse("meetings:detail", args=[meeting.pk]))
    assert b"SPEAKER_00" in page.content and b'id="job-progress"' in page.content


def test_without_speaker_separation_the_transcript_has_no_speakers_and_the_page_says_so(
        client, owner, meeting, two_voices, reprocess_settings):
    reprocess_settings.DIARIZATION_DIR = ""
    client.force_login(owner)
    job_id = upload(client, meeting, two_voices[0]).json()["job"]["id"]
    run_job(job_id)
    job = ReprocessJob.objects.get(pk=job_id)
    assert job.stage == ReprocessJob.Stage.DONE and job.diarization_version == ""
    assert meeting.segments.exists() and not meeting.segments.filter(speaker__isnull=False).exists()
    status = client.get(reverse("reprocess:status", args=[meeting.pk])).json()
    assert "Speaker separation is not installed" in status["job"]["notice"]
    assert "Speaker separation is not installed" in client.get(reverse("meetings:detail", args=[meeting.pk])).content.decode()


def test_a_stage_run_again_after_a_crash_adds_no_duplicates(client, owner, meeting, two_voices, reprocess_settings):
    from transcription import tasks

    client.force_login(owner)
    job_id = upload(client, meeting, two_voices[0]).json()["job"]["id"]
    run_job(job_id)
    first = list(meeting.segments.values_list("start_ms", "end_ms", "text"))
    # A worker killed after committing but before acknowledging: the messages come back.
    tasks.reprocess_decode(job_id)
    tasks.reprocess_store(job_id)
    assert list(meeting.segments.values_list("start_ms", "end_ms", "text")) == first
    # Reprocessing the same recording again replaces, never appends.
    job = ReprocessJob.objects.get(pk=job_id)
    from transcription.reprocess.pipeline import reprocess_queue

    again = reprocess_queue(meeting=meeting, recording=job.recording)
    run_job(again.pk)
    assert sorted(meeting.segments.values_list("start_ms", "end_ms", "text")) == sorted(first)
    assert meeting.speakers.count() == Speaker.objects.filter(meeting=meeting).values("label").distinct().count()


def test_cancel_stops_the_job_and_keeps_the_live_transcript(client, owner, meeting, two_voices, reprocess_settings):
    client.force_login(owner)
    job_id = upload(client, meeting, two_voices[0]).json()["job"]["id"]
    from transcription import tasks

    tasks.reprocess_decode(job_id)
    response = client.post(reverse("reprocess:cancel", args=[meeting.pk, job_id]), HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json()["job"]["cancel_requested"]
    tasks.reprocess_transcribe(job_id)
    tasks.reprocess_diarize(job_id)
    tasks.reprocess_store(job_id)
    job = ReprocessJob.objects.get(pk=job_id)
    meeting.refresh_from_db()
    assert job.stage == ReprocessJob.Stage.CANCELLED and meeting.status == Meeting.Status.READY
    assert list(meeting.segments.values_list("text", flat=True)) == ["live caption draft"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REPROCESS_CANCEL, meeting_id=meeting.pk).exists()


def test_a_job_with_no_speech_model_fails_with_a_readable_message(client, owner, meeting, two_voices, reprocess_settings):
    reprocess_settings.ASR_MODEL_DIR = ""
    client.force_login(owner)
    job_id = upload(client, meeting, two_voices[0]).json()["job"]["id"]
    run_job(job_id)
    job = ReprocessJob.objects.get(pk=job_id)
    assert job.stage == ReprocessJob.Stage.FAILED and "No speech model is configured" in job.error
    assert meeting.segments.filter(text="live caption draft").exists()


def test_ending_a_live_session_queues_its_recording(owner, meeting, django_capture_on_commit_callbacks):
    from transcription.live.session import host_end

    Recording.objects.create(meeting=meeting, file=f"recordings/{meeting.pk}/live.wav", source=Recording.Source.LIVE)
    with django_capture_on_commit_callbacks() as queued:
        host_end(meeting_id=meeting.pk)
    job = ReprocessJob.objects.get(meeting=meeting)
    assert job.recording.source == Recording.Source.LIVE and job.delay_ms == 960 and len(queued) == 1
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.PROCESSING


def test_the_missing_speaker_separation_notice_appears_once_and_errors_name_no_exception(client, owner, meeting, settings):
    from transcription.reprocess.pipeline import run_stage

    settings.DIARIZATION_DIR = ""
    recording = Recording.objects.create(meeting=meeting, source=Recording.Source.UPLOAD, sha256="a" * 64)
    ReprocessJob.objects.create(meeting=meeting, recording=recording, stage=ReprocessJob.Stage.DONE, percent=100)
    client.force_login(owner)
    page = client.get(reverse("meetings:detail", args=[meeting.pk])).content.decode()
    assert page.count("Speaker separation is not installed") == 1

    def broken(job, progress):
        raise KeyError("segment_words")

    failing = ReprocessJob.objects.create(meeting=meeting, recording=recording)
    with pytest.raises(KeyError):
        run_stage(failing.pk, ReprocessJob.Stage.STORING, broken)
    failing.refresh_from_db()
    assert failing.stage == ReprocessJob.Stage.FAILED
    assert "KeyError" not in failing.error and "Saving the transcript" in failing.error and "Try again" in failing.error
def test_side_by_side_stages_share_one_progress_bar_and_name_what_still_runs(owner, meeting, settings, tmp_path):
    """Transcription and speaker separation run at once on two workers: the bar shows the mean of both."""
    from transcription.reprocess import pipeline

    settings.MEDIA_ROOT = str(tmp_path)
    recording = Recording.objects.create(meeting=meeting, file="recordings/x.wav", source=Recording.Source.UPLOAD)
    job = ReprocessJob.objects.create(meeting=meeting, recording=recording, delay_ms=960)
    seen = []

    def diarize(job, progress):
        progress(0.6)  # transcription has reported nothing yet: (0.6 + 0) / 2 of the shared span
        seen.append(ReprocessJob.objects.values_list("stage", "percent").get(pk=job.pk))
        pipeline.work_path(job, pipeline.TURNS_FILE).write_text("")

    def transcribe(job, progress):
        progress(0.5)  # speaker separation is done: (0.5 + 1) / 2
        seen.append(ReprocessJob.objects.values_list("stage", "percent").get(pk=job.pk))

    pipeline.run_stage(job.pk, ReprocessJob.Stage.DIARIZING, diarize)
    after_diarization = ReprocessJob.objects.get(pk=job.pk)
    pipeline.run_stage(job.pk, ReprocessJob.Stage.TRANSCRIBING, transcribe)
    assert seen == [(ReprocessJob.Stage.DIARIZING, 10 + round(85 * 0.3)), (ReprocessJob.Stage.TRANSCRIBING, 10 + round(85 * 0.75))]
    assert after_diarization.stage == ReprocessJob.Stage.TRANSCRIBING  # what is still running, not what finished
    assert set(ReprocessJob.objects.get(pk=job.pk).timings) == {"diarize", "transcribe"}
