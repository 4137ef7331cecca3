"""Celery tasks of the transcription app."""
import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="transcription.tasks.reprocess_meeting")
def reprocess_meeting(meeting_id: int) -> None:
    """Placeholder until offline reprocessing lands: the live session ends by queueing this."""
    log.info("reprocessing of meeting %s requested (not implemented yet)", meeting_id)
