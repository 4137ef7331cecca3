"""Celery tasks of known voices: they take ids and call one service each."""
from celery import shared_task
from django.db import OperationalError

from . import services
from .models import Voiceprint


@shared_task(name="voices.tasks.voiceprint_build", autoretry_for=(OperationalError,), retry_backoff=5, max_retries=5, acks_late=True)
def voiceprint_build(voiceprint_id: int) -> None:
    """On a GPU worker (settings.CELERY_TASK_ROUTES): it runs the speaker-separation embedding model."""
    voiceprint = Voiceprint.objects.filter(pk=voiceprint_id, status=Voiceprint.Status.PENDING).select_related("source_recording").first()
    if voiceprint is not None:  # deleted, or already built by a redelivered message: nothing to do
        services.voiceprint_build(voiceprint=voiceprint)
