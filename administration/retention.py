"""Deleting old audio and transcripts, as the site settings ask. Run nightly by Celery beat.

Each meeting's deletion is its own transaction and its own audit event, so a failure halfway leaves a
true record of what went. Meetings that are live are left alone. The meeting row itself (title, owner,
dates) stays, so that the meeting list and the audit trail still make sense.
"""
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from meetings.audit import audit
from meetings.models import AuditEvent, Meeting, Recording, Segment

from .hooks import retention_due
from .models import SiteSettings

log = logging.getLogger(__name__)
LIVE = (Meeting.Status.LIVE, Meeting.Status.PAUSED)


def _delete_audio(meeting_id: int, recordings: list[Recording], days: int) -> None:
    files = [r.file for r in recordings if r.file]
    with transaction.atomic():
        Recording.objects.filter(pk__in=[r.pk for r in recordings]).delete()
        audit(None, AuditEvent.Action.RETENTION_DELETE, meeting_id=meeting_id, detail={
            "what": "audio", "recordings": len(recordings), "bytes": sum(r.size_bytes for r in recordings), "older_than_days": days})
        # Files go only once the rows are gone for good.
        transaction.on_commit(lambda: [f.delete(save=False) for f in files])


def retention_delete_audio(*, days: int, now=None) -> int:
    """Delete recordings made more than `days` ago; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = Recording.objects.filter(created_at__lt=cutoff).exclude(meeting__status__in=LIVE).order_by("meeting_id", "id")
    by_meeting: dict[int, list[Recording]] = {}
    for recording in old:
        by_meeting.setdefault(recording.meeting_id, []).append(recording)
    for meeting_id, recordings in by_meeting.items():
        _delete_audio(meeting_id, recordings, days)
    return sum(len(r) for r in by_meeting.values())


def retention_delete_transcripts(*, days: int, now=None) -> int:
    """Delete the transcript text and speaker names of meetings that ended more than `days` ago; returns segments deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    ended_before = Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, created_at__lt=cutoff)
    meetings = Meeting.objects.filter(ended_before).exclude(status__in=LIVE).filter(segments__isnull=False).distinct()
    total = 0
    for meeting_id in meetings.values_list("pk", flat=True):
        with transaction.atomic():
            count, _ = Segment.objects.filter(meeting_id=meeting_id).delete()
            speakers, _ = Meeting.objects.get(pk=meeting_id).speakers.all().delete()
            audit(None, AuditEvent.Action.RETENTION_DELETE, meeting_id=meeting_id, detail={
                "what": "transcript", "segments": count, "speakers": speakers, "older_than_days": days})
        total += count
    return total


def retention_apply(*, now=None) -> dict:
    """Apply the site's retention settings once; returns what was deleted."""
    site = SiteSettings.load()
    done = {"recordings": 0, "segments": 0}
    if site.audio_retention_days:
        done["recordings"] = retention_delete_audio(days=site.audio_retention_days, now=now)
    if site.transcript_retention_days:
        done["segments"] = retention_delete_transcripts(days=site.transcript_retention_days, now=now)
    for _receiver, counts in retention_due.send(sender=SiteSettings, site=site, now=now):
        done.update(counts or {})
    log.info("retention: deleted %(recordings)s recordings and %(segments)s transcript segments", done)
    return done
