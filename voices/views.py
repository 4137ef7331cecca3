"""Known voices: enrol from a meeting speaker, undo a recognition, see and delete voiceprints."""
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from administration.views import staff_required
from meetings.access import EDIT
from meetings.models import Speaker
from meetings.views import meeting_access

from . import services
from .forms import VoiceEnrolForm
from .models import Person, SpeakerIdentity, Voiceprint
from .selectors import voiceprint_deletable_by, voiceprints_of


def _speakers_panel(meeting) -> str:
    return f"{reverse('meetings:detail', args=[meeting.pk])}#speakers-heading"


@require_POST
@meeting_access(EDIT)
def voice_enrol(request, meeting, role, speaker_id):
    """Link a speaker to a person, and with "remember" (and consent) enrol their voice."""
    speaker = get_object_or_404(Speaker, pk=speaker_id, meeting=meeting)
    form = VoiceEnrolForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
        return redirect(_speakers_panel(meeting))
    data = form.cleaned_data
    holder = {"user": request.user if data["who"] == "me" else data.get("user_obj"), "person_name": data.get("person_name", "")}
    try:
        if data["remember"]:
            voiceprint = services.voiceprint_enrol(speaker=speaker, by=request.user, consent=data["consent"], request=request, **holder)
            messages.success(request, f"{speaker.label} is now {voiceprint.holder_name}. Their voice is being remembered: in "
                                      "later meetings a speaker with this voice will be named, and you can undo it.")
        else:
            identity = services.speaker_link(speaker=speaker, by=request.user, request=request, **holder)
            messages.success(request, f"{speaker.label} is now {identity.name}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(_speakers_panel(meeting))


@require_POST
@meeting_access(EDIT)
def speaker_unlink(request, meeting, role, speaker_id):
    identity = get_object_or_404(SpeakerIdentity.objects.select_related("speaker"), speaker_id=speaker_id, speaker__meeting=meeting)
    speaker = services.speaker_unlink(identity=identity, by=request.user, request=request)
    messages.success(request, f"{identity.name} was removed from {speaker.label}.")
    return redirect(_speakers_panel(meeting))


@require_GET
def my_voices(request):
    return render(request, "voices/mine.html", {"voiceprints": voiceprints_of(request.user)})


@require_POST
def voice_delete(request, voiceprint_id):
    voiceprint = get_object_or_404(Voiceprint, pk=voiceprint_id)
    if not voiceprint_deletable_by(request.user, voiceprint):
        raise PermissionDenied("Only the person whose voice it is, whoever enrolled it, or an administrator can delete a voiceprint.")
    services.voiceprint_delete(voiceprint=voiceprint, by=request.user, request=request)
    messages.success(request, f"The voiceprint of {voiceprint.holder_name} was deleted.")
    return redirect("voices:mine")


@staff_required
@require_GET
def console_voices(request):
    voiceprints = Voiceprint.objects.select_related("enrolled_by", "user", "person")
    return render(request, "console/voices.html", {"voiceprints": voiceprints, "people": Person.objects.all()})


@staff_required
@require_POST
def console_voice_delete(request, voiceprint_id):
    voiceprint = get_object_or_404(Voiceprint, pk=voiceprint_id)
    services.voiceprint_delete(voiceprint=voiceprint, by=request.user, request=request, reason="deleted by an administrator")
    messages.success(request, f"The voiceprint of {voiceprint.holder_name} was deleted.")
    return redirect("voices:console")


@staff_required
@require_POST
def console_person_delete(request, person_id):
    person = get_object_or_404(Person, pk=person_id)
    services.person_delete(person=person, by=request.user, request=request)
    messages.success(request, f"{person.name} and their voiceprints were deleted.")
    return redirect("voices:console")


@staff_required
@require_POST
def console_purge(request):
    count = services.voiceprints_purge(by=request.user, request=request)
    messages.success(request, f"{count} voiceprint{'s' if count != 1 else ''} deleted.")
    return redirect("voices:console")
