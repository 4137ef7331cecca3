"""Retention: audio and transcripts older than the site's limits are deleted nightly, and each deletion audited."""
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from administration import tasks
from administration.models import SiteSettings
from meetings.models import AuditEvent, Meeting, Recording, Segment
from tests.factories import attach_recording, meeting_with_transcript

pytestmark = pytest.mark.django_db


def aged(meeting: Meeting, days: int) -> Meeting:
    """Pretend the meeting (and its recordings) happened `days` ago."""
    then = timezone.now() - timedelta(days=days)
    Meeting.objects.filter(pk=meeting.pk).update(created_at=then, started_at=then, ended_at=then + timedelta(hours=1), status="ready")
    Recording.objects.filter(meeting=meeting).update(created_at=then)
    meeting.refresh_from_db()
    return meeting


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF" + b"\0" * 2000)
    return path


def retention(*, audio=None, transcripts=None):
    site = SiteSettings.load()
    site.audio_retention_days, site.transcript_retention_days = audio, transcripts
    site.save()


def test_audio_older_than_the_limit_is_deleted_from_disk_and_the_deletion_audited(owner, wav, django_capture_on_commit_callbacks):
    old = aged(meeting_with_transcript(owner, title="Old round"), days=40)
    old_recording = attach_recording(old, wav)
    aged(old, days=40)
    recent = meeting_with_transcript(owner, title="This week")
    recent_recording = attach_recording(recent, wav)
    retention(audio=30)

    with django_capture_on_commit_callbacks(execute=True):
        tasks.apply_retention()

    assert not Recording.objects.filter(pk=old_recording.pk).exists()
    assert not Path(old_recording.file.path).exists()
    assert Recording.objects.filter(pk=recent_recording.pk).exists() and Path(recent_recording.file.path).exists()
    assert old.segments.count() == 3  # transcripts have no limit here
    event = AuditEvent.objects.get(action="retention_delete")
    assert event.meeting_id == old.pk and event.actor is None
    assert event.detail == {"what": "audio", "recordings": 1, "bytes": old_recording.size_bytes, "older_than_days": 30}


def test_transcripts_older_than_the_limit_are_deleted_and_each_meeting_audited(owner):
    first = aged(meeting_with_transcript(owner, title="First"), days=400)
    second = aged(meeting_with_transcript(owner, title="Second"), days=370)
    kept = aged(meeting_with_transcript(owner, title="Kept"), days=100)
    retention(transcripts=365)

    tasks.apply_retention()

    assert Segment.objects.filter(meeting__in=[first, second]).count() == 0
    assert first.speakers.count() == 0
    assert kept.segments.count() == 3 and Meeting.objects.filter(pk=first.pk).exists()
    events = AuditEvent.objects.filter(action="retention_delete").order_by("meeting_id")
    assert [(e.meeting_id, e.detail["what"], e.detail["segments"]) for e in events] == [(first.pk, "transcript", 3), (second.pk, "transcript", 3)]

    tasks.apply_retention()  # nothing left to delete: nothing more audited
    assert AuditEvent.objects.filter(action="retention_delete").count() == 2


def test_a_live_meeting_is_never_touched(owner, wav):
    live = aged(meeting_with_transcript(owner), days=90)
    attach_recording(live, wav)
    aged(live, days=90)
    Meeting.objects.filter(pk=live.pk).update(status="live")
    retention(audio=1, transcripts=1)
    tasks.apply_retention()
    assert live.segments.count() == 3 and live.recordings.count() == 1
    assert not AuditEvent.objects.filter(action="retention_delete").exists()


def test_without_limits_nothing_is_deleted(owner, wav):
    old = aged(meeting_with_transcript(owner), days=3000)
    attach_recording(old, wav)
    tasks.apply_retention()
    assert old.segments.count() == 3 and old.recordings.count() == 1


def test_retention_runs_nightly_from_celery_beat(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["retention"]
    assert entry["task"] == tasks.apply_retention.name
    assert settings.CELERY_BEAT_SCHEDULE["status-sample"]["task"] == tasks.record_status_sample.name
