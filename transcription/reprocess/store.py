"""Replacing a meeting's transcript with a reprocessed one, in one transaction."""
from django.db import transaction
from django.utils import timezone

from meetings.languages import search_config_for
from meetings.models import Meeting, ReprocessJob, Segment, Speaker
from meetings.segments import words_pack

from .align import AlignedSegment

BATCH = 2000


def transcript_replace(*, job: ReprocessJob, segments: list[AlignedSegment]) -> int:
    """Swap the meeting's segments and speakers for `segments`, and mark the job done; all or nothing.

    Readers see either the old transcript or the new one, never a mix. Running it twice (a worker
    killed after the commit but before the acknowledgement) finds the job done and changes nothing.
    Edits made to the old transcript are dropped with it: the reprocessed text supersedes them.
    """
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().get(pk=job.meeting_id)
        job = ReprocessJob.objects.select_for_update().get(pk=job.pk)
        if job.stage == ReprocessJob.Stage.DONE or job.cancel_requested:
            return 0
        meeting.segments.all().delete()
        meeting.speakers.all().delete()
        labels = sorted({s.speaker for s in segments if s.speaker})
        speakers = {
            sp.label: sp for sp in Speaker.objects.bulk_create([Speaker(meeting=meeting, label=label) for label in labels])
        }
        config = search_config_for(meeting.language)
        version = " + ".join(v for v in (job.asr_version, job.diarization_version) if v)
        rows = [
            Segment(meeting=meeting, start_ms=s.start_ms, end_ms=max(s.end_ms, s.start_ms), text=s.text, words=words_pack(s.words),
                    speaker=speakers.get(s.speaker), origin=Segment.Origin.REPROCESSED,
                    model_version=version[:200], search_config=config)
            for s in segments if s.text.strip()
        ]
        Segment.objects.bulk_create(rows, batch_size=BATCH)
        job.stage, job.percent, job.finished_at, job.error = ReprocessJob.Stage.DONE, 100, timezone.now(), ""
        job.save(update_fields=["stage", "percent", "finished_at", "error", "updated_at"])
        Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.READY)
    return len(rows)
