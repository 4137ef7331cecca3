"""Upload a recording, follow its reprocessing, cancel it. Every path checks the meeting role and CSRF."""
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from meetings.access import EDIT, VIEW, MeetingAccessDenied, get_meeting_for_user
from meetings.audit import audit
from meetings.models import AuditEvent, ReprocessJob
from meetings.views import _int_or_none, _wants_json, meeting_access

from . import diarize, resumable, speakers
from .pipeline import reprocess_cancel, reprocess_queue, reprocess_room_check
from .services import recording_upload as upload_service
from .upload import RecordingUploadHandler, upload_limit_bytes

NOT_INSTALLED = "Speaker separation is not installed: the transcript was stored without speakers. An administrator can install it."


def _reply(request, meeting, status: int, *, error: str = "", **data):
    if _wants_json(request):
        return JsonResponse({"error": error, **data} if error else data, status=status)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "The recording is being transcribed.")
    return redirect("meetings:detail", meeting.pk)


# CSRF is checked by csrf_protect on _receive, after the streaming handler is installed: the middleware
# would otherwise parse the body (and the whole file) with the default handlers first.
@csrf_exempt
@require_POST
def recording_upload(request, meeting_id):
    try:  # before a single byte of the body is read
        meeting, _ = get_meeting_for_user(request.user, meeting_id, EDIT)
    except MeetingAccessDenied:
        audit(request, AuditEvent.Action.ACCESS_DENIED, detail={"path": request.path, "needed": EDIT}, meeting_id=_int_or_none(meeting_id))
        raise Http404("No such meeting, or you do not have access to it.") from None
    limit = upload_limit_bytes()
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:  # room for the multipart framing
        return _reply(request, meeting, 413, error=_too_large())
    handler = RecordingUploadHandler(request, limit=limit)
    request.upload_handlers = [handler]
    try:
        return _receive(request, meeting, handler)
    finally:
        handler.cleanup()


def _too_large() -> str:
    return f"The file is larger than this site accepts ({settings.RECORDING_UPLOAD_MAX_MB:,} MB). Split the recording or ask an administrator to raise the limit."


@csrf_protect
def _receive(request, meeting, handler: RecordingUploadHandler):
    upload = request.FILES.get("file")
    if handler.too_large:
        return _reply(request, meeting, 413, error=_too_large())
    if upload is None or not upload.size:
        return _reply(request, meeting, 400, error="Choose a recording to upload; the file was empty or missing.")
    try:
        job = upload_service(meeting=meeting, by=request.user, upload=upload, request=request)
    except ValidationError as exc:
        return _reply(request, meeting, 400, error=" ".join(exc.messages))
    return _reply(request, meeting, 202, job=job_state(job))


def job_state(job: ReprocessJob | None) -> dict | None:
    if job is None:
        return None
    no_speakers = job.stage == ReprocessJob.Stage.DONE and not job.diarization_version
    return {
        "id": job.pk, "stage": job.stage, "stage_label": job.get_stage_display(), "percent": job.percent,
        "error": job.error, "finished": job.is_finished, "cancel_requested": job.cancel_requested,
        "notice": NOT_INSTALLED if no_speakers else "",
    }


@require_GET
@meeting_access(VIEW)
def reprocess_status(request, meeting, role):
    job = meeting.reprocess_jobs.first()
    return JsonResponse({"job": job_state(job), "diarization_installed": diarize.is_installed(settings.DIARIZATION_DIR),
                         "meeting": {"status": meeting.status, "status_label": meeting.get_status_display()}})


@require_POST
@meeting_access(EDIT)
def reprocess_cancel_view(request, meeting, role, job_id):
    job = get_object_or_404(ReprocessJob, pk=job_id, meeting=meeting)
    job = reprocess_cancel(job=job, by=request.user, request=request)
    if _wants_json(request):
        return JsonResponse({"job": job_state(job)})
    messages.success(request, "Reprocessing will stop shortly; the current transcript is kept.")
    return redirect("meetings:detail", meeting.pk)


@require_POST
@meeting_access(EDIT)
def reprocess_retry(request, meeting, role):
    """Run the meeting's latest recording through reprocessing again (after a failure or a cancel)."""
    recording = meeting.recordings.order_by("-source", "-created_at").first()
    if recording is None:
        return _reply(request, meeting, 400, error="This meeting has no recording to transcribe.")
    try:
        reprocess_room_check(by=request.user, meeting=meeting)
    except ValidationError as exc:
        return _reply(request, meeting, 429, error=" ".join(exc.messages))
    job = reprocess_queue(meeting=meeting, recording=recording, by=request.user, request=request)
    audit(request, AuditEvent.Action.MEETING_UPDATE, obj=meeting, detail={"reprocess": job.pk, "recording": recording.pk})
    return _reply(request, meeting, 202, job=job_state(job))


@require_POST
@meeting_access(EDIT)
def speakers_again(request, meeting, role):
    """Separate speakers again over the stored words, optionally with the number of people present."""
    try:
        counts = speakers.speaker_counts(**{name: _count(request.POST.get(name)) for name in ("exact", "minimum", "maximum")})
        job = speakers.speakers_queue(meeting=meeting, by=request.user, counts=counts, request=request)
    except ValidationError as exc:
        return _reply(request, meeting, 400, error=" ".join(exc.messages))
    audit(request, AuditEvent.Action.MEETING_UPDATE, obj=meeting, detail={"separate_speakers": job.pk, **counts})
    if not _wants_json(request):
        messages.success(request, "Speakers are being separated again. The words stay as they are.")
        return redirect("meetings:detail", meeting.pk)
    return JsonResponse({"job": job_state(job)}, status=202)


def _count(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError("The number of people must be a whole number.") from None


# Resumable uploads (used by the meeting page's script): start, send pieces, ask how far, finish.

def _refused(exc: resumable.UploadRefused) -> JsonResponse:
    return JsonResponse({"error": str(exc), "received": exc.received}, status=exc.status)


@require_POST
@meeting_access(EDIT)
def upload_start(request, meeting, role):
    try:
        size = int(request.POST.get("size", ""))
    except ValueError:
        return JsonResponse({"error": "The file size is missing."}, status=400)
    try:
        token = resumable.start(meeting_id=meeting.pk, user_id=request.user.pk, name=request.POST.get("name", "recording"),
                                size=size, content_type=request.POST.get("type", ""))
    except resumable.UploadRefused as exc:
        return JsonResponse({"error": _too_large() if exc.status == 413 else str(exc)}, status=exc.status)
    return JsonResponse({"token": token, "received": 0}, status=201)


@require_http_methods(["GET", "POST"])
@meeting_access(EDIT)
def upload_piece(request, meeting, role, token):
    """GET: bytes received so far. POST: raw bytes for X-Upload-Offset onwards."""
    ids = {"meeting_id": meeting.pk, "user_id": request.user.pk}
    try:
        if request.method == "GET":
            return JsonResponse({"received": resumable.info(token, **ids)["received"]})
        offset = int(request.headers.get("X-Upload-Offset", "-1"))
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        received = resumable.append(token, request, offset=offset, length=length, **ids)
    except resumable.UploadRefused as exc:
        return _refused(exc)
    except ValueError:
        return JsonResponse({"error": "The piece's position is missing."}, status=400)
    return JsonResponse({"received": received})


@require_POST
@meeting_access(EDIT)
def upload_finish(request, meeting, role, token):
    try:
        upload = resumable.finish(token, meeting_id=meeting.pk, user_id=request.user.pk)
        job = upload_service(meeting=meeting, by=request.user, upload=upload, request=request)
    except resumable.UploadRefused as exc:
        return _refused(exc)
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=400)
    return JsonResponse({"job": job_state(job)}, status=202)
