"""Writes behind the upload and reprocessing pages. Views call these and nothing lower."""
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from meetings.audit import audit
from meetings.models import AuditEvent, Meeting, Recording, ReprocessJob, recording_path

from . import decode
from .pipeline import reprocess_queue, reprocess_room_check
from .upload import DiskUpload


def recording_upload(*, meeting: Meeting, by, upload: DiskUpload, request=None) -> ReprocessJob:
    """Validate an uploaded file, keep it as the meeting's recording and queue its reprocessing.

    Raises ValidationError (and removes the file) when PyAV cannot decode it. Uploading the same
    file again (same SHA-256), e.g. after a broken connection, reuses the stored recording.
    """
    try:
        probe = decode.probe(upload.temporary_file_path())
        if probe.duration_ms is not None and probe.duration_ms > settings.RECORDING_MAX_HOURS * 3_600_000:
            raise decode.RecordingTooLong(decode.too_long_message(settings.RECORDING_MAX_HOURS))
        reprocess_room_check(by=by, meeting=meeting)
    except (decode.RecordingUnreadable, ValidationError) as exc:
        upload.discard()
        raise ValidationError(exc.messages if isinstance(exc, ValidationError) else str(exc)) from None
    recording = meeting.recordings.filter(sha256=upload.sha256, source=Recording.Source.UPLOAD).first()
    if recording is not None:
        upload.discard()
    else:
        recording = Recording(meeting=meeting, original_name=upload.name[:255], content_type=upload.content_type[:100] or "application/octet-stream",
                              size_bytes=upload.size, sha256=upload.sha256, source=Recording.Source.UPLOAD, duration_ms=probe.duration_ms)
        name = recording_path(recording, upload.name)
        target = Path(settings.MEDIA_ROOT) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload.temporary_file_path(), target)  # same file system: a rename, not a copy
        os.chmod(target, settings.FILE_UPLOAD_PERMISSIONS or 0o640)
        recording.file.name = name
    with transaction.atomic():
        if recording.pk is None:
            recording.save()
        job = reprocess_queue(meeting=meeting, recording=recording, by=by, request=request)
        audit(request, AuditEvent.Action.RECORDING_UPLOAD, user=by, obj=recording, meeting_id=meeting.pk,
              detail={"bytes": recording.size_bytes, "sha256": recording.sha256, "format": f"{probe.container}/{probe.codec}", "job": job.pk})
    return job
