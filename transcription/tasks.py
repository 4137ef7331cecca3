"""Celery tasks of the transcription app: thin wrappers that run one reprocessing stage each.

Routing (settings.CELERY_TASK_ROUTES): decode and store on the `cpu` queue, transcribe and diarize on
the `gpu` queue. Stages hand over through files in the shared media store, so each may run on a
different host. acks_late (settings) plus stages that skip finished work make redelivery after a
killed worker safe. Transcription and speaker separation need only the decoded audio, so they run
side by side (two GPU workers: one per GPU, or two on one GPU with memory for both) as a chord whose
body, the store stage, runs once both have finished; the chord counts its header's results in the
result backend (settings.CELERY_RESULT_BACKEND), the only tasks that keep a result. The chains are
built by name in transcription/reprocess/pipeline.py, which never imports this module.
"""
import logging

from celery import shared_task
from django.db import OperationalError

from transcription.reprocess import pipeline, speakers
from transcription.reprocess.pipeline import Stage

log = logging.getLogger(__name__)
_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 5, "max_retries": 5, "acks_late": True}


@shared_task(name="transcription.tasks.reprocess_decode", **_RETRY)
def reprocess_decode(job_id: int) -> None:
    pipeline.run_stage(job_id, Stage.DECODING, pipeline.stage_decode)


@shared_task(name="transcription.tasks.reprocess_transcribe", ignore_result=False, **_RETRY)
def reprocess_transcribe(job_id: int) -> None:
    pipeline.run_stage(job_id, Stage.TRANSCRIBING, pipeline.stage_transcribe)


@shared_task(name="transcription.tasks.reprocess_diarize", ignore_result=False, **_RETRY)
def reprocess_diarize(job_id: int) -> None:
    pipeline.run_stage(job_id, Stage.DIARIZING, pipeline.stage_diarize)


@shared_task(name="transcription.tasks.reprocess_store", **_RETRY)
def reprocess_store(job_id: int) -> None:
    pipeline.run_stage(job_id, Stage.STORING, pipeline.stage_store)


@shared_task(name="transcription.tasks.speakers_store", **_RETRY)
def speakers_store(job_id: int) -> None:
    pipeline.run_stage(job_id, Stage.STORING, speakers.stage_speakers_store)


@shared_task(name="transcription.tasks.reprocess_meeting")
def reprocess_meeting(meeting_id: int) -> None:
    """Reprocess a meeting's live recording (kept for messages queued before the stages existed)."""
    from meetings.models import Meeting

    meeting = Meeting.objects.filter(pk=meeting_id).first()
    if meeting is not None:
        pipeline.queue_reprocessing(meeting)


@shared_task(name="transcription.tasks.end_abandoned_live_meetings")
def end_abandoned_live_meetings() -> list[int]:
    """Every minute (beat): end meetings left live by a host who vanished, and queue their reprocessing."""
    from transcription.live.sweep import end_abandoned_meetings

    return end_abandoned_meetings()


@shared_task(name="transcription.tasks.remove_abandoned_uploads")
def remove_abandoned_uploads() -> int:
    """Every hour (beat): remove resumable uploads nobody has added to for settings.UPLOAD_ABANDONED_HOURS."""
    from django.conf import settings

    from transcription.reprocess.resumable import expire_abandoned

    return expire_abandoned(older_than_s=settings.UPLOAD_ABANDONED_HOURS * 3600)
