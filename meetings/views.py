import functools
import os
from dataclasses import replace

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST


from . import exports, services
from .access import EDIT, OWNER, VIEW, MeetingAccessDenied, allows, get_meeting_for_user, meetings_visible_to
from .audit import audit
from .forms import MeetingForm, SearchForm, SegmentEditForm, ShareForm, SpeakerRenameForm
from .media import file_response
from .models import AuditEvent, Recording, Segment, Sharing, Speaker
from .search import people_for_search, search_segments
from .word_times import hits_at_words



def meeting_access(needed: str):
    """Load the URL's meeting for the user at `needed` level; anything else is a 404 (and audited)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, meeting_id, *args, **kwargs):
            try:
                meeting, role = get_meeting_for_user(request.user, meeting_id, needed)
            except MeetingAccessDenied:
                audit(request, AuditEvent.Action.ACCESS_DENIED, detail={"path": request.path, "needed": needed}, meeting_id=_int_or_none(meeting_id))
                raise Http404("No such meeting, or you do not have access to it.") from None
            return view(request, meeting, role, *args, **kwargs)

        return wrapper

    return decorator


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _meeting_rows(user):
    # GROUP BY drops the model's default ordering, so it is spelled out for stable pages.
    return meetings_visible_to(user).select_related("owner").annotate(segment_count=Count("segments")).order_by("-created_at", "-id")


@require_GET
def meeting_list(request):
    meetings = _meeting_rows(request.user)
    page = Paginator(meetings, 50).get_page(request.GET.get("page"))
    return render(request, "meetings/list.html", {"page": page, "form": MeetingForm(initial={"delay_ms": services.default_delay_ms()})})


@require_POST
def meeting_create(request):
    form = MeetingForm(request.POST)
    if not form.is_valid():
        meetings = _meeting_rows(request.user)
        page = Paginator(meetings, 50).get_page(1)
        return render(request, "meetings/list.html", {"page": page, "form": form}, status=400)
    meeting = services.meeting_create(owner=request.user, request=request, **form.cleaned_data)
    return redirect("meetings:detail", meeting.pk)


@require_GET
@meeting_access(VIEW)
def meeting_detail(request, meeting, role):
    segments = meeting.segments.select_related("speaker")
    job = meeting.reprocess_jobs.first()
    recording = meeting.recordings.order_by("-source", "-created_at").first()
    diarization_installed = bool(settings.DIARIZATION_DIR) and os.path.isfile(os.path.join(settings.DIARIZATION_DIR, "config.yaml"))
    context = {
        "meeting": meeting,
        "role": role,
        "can_edit": allows(role, EDIT),
        "is_owner": role == OWNER,
        "segments": segments,
        "speakers": meeting.speakers.annotate(segment_count=Count("segments")).select_related("identity__voiceprint"),
        "recording": recording,
        "job": job,
        "diarization_installed": diarization_installed,
        # The job's own notice says speaker separation is missing; the general hint would say it twice.
        "job_without_speakers": job is not None and job.stage == job.Stage.DONE and not job.diarization_version,
        "can_separate_speakers": allows(role, EDIT) and diarization_installed and recording is not None
                                 and (job is None or job.is_finished) and segments.exists(),
        "upload_max_mb": settings.RECORDING_UPLOAD_MAX_MB,
        "upload_piece_bytes": settings.UPLOAD_PIECE_MAX_BYTES,
        "sharings": meeting.sharings.select_related("user", "group") if role == OWNER else [],
        "share_form": ShareForm(),
        "settings_form": MeetingForm(instance=meeting),
        "formats": exports.FORMATS,
        "start_ms": _int_or_none(request.GET.get("t")),
    }
    audit(request, AuditEvent.Action.MEETING_VIEW, obj=meeting)
    return render(request, "meetings/detail.html", context)


@require_POST
@meeting_access(OWNER)
def meeting_settings(request, meeting, role):
    form = MeetingForm(request.POST, instance=meeting)
    if form.is_valid():
        services.meeting_update(meeting=meeting, by=request.user, request=request, **form.cleaned_data)
        messages.success(request, "Meeting settings saved.")
    else:
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    return redirect("meetings:detail", meeting.pk)


@require_POST
@meeting_access(OWNER)
def meeting_delete(request, meeting, role):
    services.meeting_delete(meeting=meeting, by=request.user, request=request)
    messages.success(request, f"“{meeting.title}” was deleted with its audio and transcript.")
    return redirect("meetings:list")


@require_POST
@meeting_access(EDIT)
def segment_edit(request, meeting, role, segment_id):
    segment = get_object_or_404(Segment, pk=segment_id, meeting=meeting)
    form = SegmentEditForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("The text is missing or too long.")
        services.segment_edit(segment=segment, by=request.user, text=form.cleaned_data["text"], request=request)
    except ValidationError as exc:
        if _wants_json(request):
            return JsonResponse({"error": " ".join(exc.messages)}, status=400)
        messages.error(request, " ".join(exc.messages))
    if _wants_json(request):
        return JsonResponse({"id": segment.pk, "text": segment.text})
    return redirect(f"{reverse('meetings:detail', args=[meeting.pk])}#seg-{segment.pk}")


@require_POST
@meeting_access(EDIT)
def speaker_rename(request, meeting, role, speaker_id):
    speaker = get_object_or_404(Speaker, pk=speaker_id, meeting=meeting)
    form = SpeakerRenameForm(request.POST)
    if form.is_valid():
        services.speaker_rename(speaker=speaker, by=request.user, display_name=form.cleaned_data["display_name"], request=request)
    if _wants_json(request):
        return JsonResponse({"id": speaker.pk, "name": speaker.name})
    messages.success(request, f"Speaker {speaker.label} is now shown as {speaker.name}.")
    return redirect("meetings:detail", meeting.pk)


@require_POST
@meeting_access(EDIT)
def speaker_merge(request, meeting, role):
    into = get_object_or_404(Speaker, pk=_int_or_none(request.POST.get("into")), meeting=meeting)
    others = list(Speaker.objects.filter(meeting=meeting, pk__in=[i for i in map(_int_or_none, request.POST.getlist("speakers")) if i]))
    try:
        services.speaker_merge(meeting=meeting, into=into, others=others, by=request.user, request=request)
        messages.success(request, f"Merged {len(others)} speaker(s) into {into.name}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("meetings:detail", meeting.pk)


@require_POST
@meeting_access(OWNER)
def meeting_share(request, meeting, role):
    form = ShareForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.meeting_share(meeting=meeting, by=request.user, role=data["role"], user=data.get("user_obj"), group=data.get("group_obj"), request=request)
            messages.success(request, "Sharing updated.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    else:
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    return redirect(f"{reverse('meetings:detail', args=[meeting.pk])}#sharing")


@require_POST
@meeting_access(OWNER)
def meeting_unshare(request, meeting, role, sharing_id):
    sharing = get_object_or_404(Sharing, pk=sharing_id, meeting=meeting)
    services.meeting_unshare(sharing=sharing, by=request.user, request=request)
    messages.success(request, "Access removed.")
    return redirect(f"{reverse('meetings:detail', args=[meeting.pk])}#sharing")


@require_GET
@meeting_access(VIEW)
def meeting_export(request, meeting, role, fmt):
    export = exports.FORMATS.get(fmt)
    if export is None:
        raise Http404("Unknown export format.")
    extra = {}
    if export.subtitles:
        try:
            extra["options"] = exports.subtitle_options(request.GET)
        except ValueError as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    body = export.render(meeting, meeting.segments.select_related("speaker"), **extra)
    detail = {"format": fmt, "bytes": len(body), **({"max_chars": extra["options"].max_chars, "max_lines": extra["options"].max_lines} if extra else {})}
    audit(request, AuditEvent.Action.EXPORT, obj=meeting, detail=detail)
    response = HttpResponse(body, content_type=export.content_type)
    response["Content-Disposition"] = exports.export_disposition(meeting, export.extension)
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@meeting_access(VIEW)
def recording_media(request, meeting, role, recording_id):
    recording = get_object_or_404(Recording, pk=recording_id, meeting=meeting)
    if not recording.file or not recording.file.storage.exists(recording.file.name):
        raise Http404("The audio file is missing from the media store.")
    range_header = request.headers.get("Range")
    # Players fetch a file in many ranges; one audit row per playback start, not per chunk.
    if not range_header or range_header.replace(" ", "").startswith("bytes=0-"):
        audit(request, AuditEvent.Action.MEDIA_DOWNLOAD, obj=recording, meeting_id=meeting.pk, detail={"range": range_header or ""})
    download = exports.export_filename(meeting, recording.file.name.rsplit(".", 1)[-1]) if request.GET.get("download") else None
    return file_response(recording.file.path, recording.content_type, range_header=range_header, download_name=download)


@require_GET
def search(request):
    form = SearchForm(request.GET)
    results, meeting = None, None
    if form.is_valid() and form.cleaned_data["q"].strip():
        data = form.cleaned_data
        page_number = data.get("page") or 1
        results = search_segments(
            user=request.user,
            query=data["q"],
            meeting_id=data.get("meeting"),
            speaker=data.get("speaker") or None,
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            limit=20,
            offset=(page_number - 1) * 20,
            person=data.get("person") or None,
        )
        results = replace(results, hits=hits_at_words(results.hits))
        # Who searched, when and how many hits, never what for: the audit log is read by administrators,
        # who get no meeting content, and a query is content ("HIV result Smith").
        audit(request, AuditEvent.Action.SEARCH, meeting_id=data.get("meeting"), detail={"hits": results.total, "words": len(data["q"].split())})
        if data.get("meeting"):
            meeting = meetings_visible_to(request.user).filter(pk=data["meeting"]).first()
    return render(request, "meetings/search.html", {"form": form, "results": results, "scoped_meeting": meeting, "people": people_for_search(request.user)})
