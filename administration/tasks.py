"""Celery tasks of the console: they take ids and call one service each."""
from celery import shared_task
from django.contrib.auth import get_user_model

from . import registry, retention, status
from .models import ModelVersion


@shared_task(name="administration.tasks.import_model_version")
def import_model_version(version_id: int) -> None:
    version = ModelVersion.objects.filter(pk=version_id, status=ModelVersion.Status.IMPORTING).first()
    if version is not None:  # already imported (a redelivered message): nothing to do
        registry.model_version_import(version=version)


@shared_task(name="administration.tasks.verify_model_version")
def verify_model_version(version_id: int, user_id: int | None = None) -> None:
    version = ModelVersion.objects.filter(pk=version_id, checking=True).first()
    if version is not None:
        user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
        registry.model_version_verify(version=version, by=user)


@shared_task(name="administration.tasks.record_status_sample")
def record_status_sample() -> None:
    status.status_sample_record()


@shared_task(name="administration.tasks.apply_retention")
def apply_retention() -> None:
    retention.retention_apply()
