"""A few minutes of two-voice audio through the whole chain on real Celery worker processes.

The first worker is killed (SIGKILL) while it transcribes; the broker hands the unacknowledged task
to a second worker, and the stored transcript must have no duplicate segments and no gaps.
"""
import time
from pathlib import Path

import pytest
from django.conf import settings

from meetings.models import Meeting, Recording, ReprocessJob, Segment
from meetings.services import meeting_create, segment_append
from tests.servers import celery_worker
from transcription.reprocess.pipeline import reprocess_queue

from .conftest import build_meeting, write_wav

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_worker_leaves_no_duplicate_or_missing_segments(owner, tiny_model_dir, tmp_path):
    pcm, turns = build_meeting(tmp_path, repeat=10)  # 40 turns, about 2.3 minutes
    duration_ms = len(pcm) * 1000 // 16_000
    meeting = meeting_create(owner=owner, title="Long board meeting")
    segment_append(meeting=meeting, text="live caption draft", start_ms=0, end_ms=1000)
    name = f"recordings/{meeting.pk}/board-upload.wav"
    (Path(settings.MEDIA_ROOT) / name).parent.mkdir(parents=True, exist_ok=True)
    write_wav(Path(settings.MEDIA_ROOT) / name, pcm)
    recording = Recording.objects.create(meeting=meeting, file=name, source=Recording.Source.UPLOAD, size_bytes=len(pcm) * 2)
    env = dict(SCRIBE_ASR_MODEL_DIR=tiny_model_dir, SCRIBE_ASR_DEVICE="cpu", SCRIBE_ASR_MAX_STREAMS=8,
               SCRIBE_ASR_OFFLINE_SEGMENT_S=8, SCRIBE_DIARIZATION_DIR="", SCRIBE_CELERY_VISIBILITY_TIMEOUT=5)

    with celery_worker(tmp_path, name="first", **env) as first:
        job = reprocess_queue(meeting=meeting, recording=recording)
        wait_for(lambda: ReprocessJob.objects.filter(pk=job.pk, stage=ReprocessJob.Stage.TRANSCRIBING).exists(), 180, "transcription to start")
        first.kill()
        first.wait()
    job.refresh_from_db()
    assert job.stage == ReprocessJob.Stage.TRANSCRIBING  # nothing finished it: the task was in flight

    with celery_worker(tmp_path, name="second", **env):
        wait_for(lambda: ReprocessJob.objects.get(pk=job.pk).is_finished, 300, "the job to finish on the second worker")

    job.refresh_from_db()
    meeting.refresh_from_db()
    assert (job.stage, job.error) == (ReprocessJob.Stage.DONE, "")
    assert meeting.status == Meeting.Status.READY
    rows = list(Segment.objects.filter(meeting=meeting).values_list("start_ms", "end_ms", "origin"))
    assert all(origin == Segment.Origin.REPROCESSED for _, _, origin in rows)
    starts = [s for s, _, _ in rows]
    assert len(starts) == len(set(starts)), "duplicate segments"
    # No gaps: the tiny model emits words all through the audio, so segments tile the recording.
    assert rows[0][0] < 1000 and rows[-1][1] > duration_ms - 2000
    assert all(b[0] - a[1] <= 1600 for a, b in zip(rows, rows[1:])), "a stretch of the recording is missing"
    assert duration_ms > 120_000
