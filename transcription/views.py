"""Pages for live captions: the owner's host page, the caption view, and saving caption preferences."""
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from meetings.access import OWNER, VIEW
from meetings.views import meeting_access

from .engine_host import speech_model_ready
from .forms import CaptionPreferencesForm
from .live import conf as live_conf
from .models import CaptionPreferences

DELAYS_MS = range(80, 2401, 80)


def _preferences(user) -> CaptionPreferences:
    return CaptionPreferences.objects.filter(user=user).first() or CaptionPreferences(user=user)


def _capture_context(request, meeting) -> dict:
    """What the host page and the recording window both show: the meeting, the user's theme, the grace, the model."""
    return {"meeting": meeting, "prefs": _preferences(request.user), "grace_seconds": live_conf.host_grace_seconds(),
            "model_ready": speech_model_ready()}


@require_GET
@meeting_access(OWNER)
def live_host(request, meeting, role):
    return render(request, "live/host.html", {**_capture_context(request, meeting), "delays": DELAYS_MS})


@require_GET
@meeting_access(OWNER)
def live_recorder(request, meeting, role):
    """The small window that records for the host page: opened by Start, with the page's input and delay."""
    delay = request.GET.get("delay", "")
    delay_ms = int(delay) if delay.isdigit() and int(delay) in DELAYS_MS else meeting.delay_ms
    device = request.GET.get("device", "")[:256]  # the browser's opaque id of the chosen input
    return render(request, "live/recorder.html", {**_capture_context(request, meeting), "delay_ms": delay_ms, "device": device})


@require_GET
@meeting_access(VIEW)
def live_follow(request, meeting, role):
    prefs = _preferences(request.user)
    return render(request, "live/captions.html", {"meeting": meeting, "prefs": prefs, "prefs_form": CaptionPreferencesForm(instance=prefs)})


@require_POST
def caption_preferences(request):
    form = CaptionPreferencesForm(request.POST, instance=_preferences(request.user))
    if not form.is_valid():
        return JsonResponse({"errors": form.errors_by_field()}, status=400)
    form.save()
    return JsonResponse({"saved": True})
