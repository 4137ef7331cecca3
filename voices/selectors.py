"""Reads of known voices, each scoped to what the asking user or meeting owner may see."""
from django.db.models import Q, QuerySet

from meetings.access import meetings_visible_to
from meetings.models import Meeting

from .models import Voiceprint


def voiceprints_offered(*, meeting: Meeting) -> QuerySet[Voiceprint]:
    """Voiceprints that may name speakers in `meeting`: those enrolled from a meeting its owner can see.

    A voice enrolled in a ward the owner has no access to is never compared, so recognition cannot
    reveal who speaks in meetings the owner could not open."""
    visible = Voiceprint.objects.filter(source_meeting__in=meetings_visible_to(meeting.owner).values("pk"))
    return visible.exclude(user__is_active=False)  # a deactivated account is not named in new meetings


def voiceprints_of(user) -> QuerySet[Voiceprint]:
    """A user's own voiceprints and those they enrolled for someone else: the ones they may see and delete."""
    return Voiceprint.objects.filter(Q(user=user) | Q(enrolled_by=user)).select_related("source_meeting", "enrolled_by")


def voiceprint_deletable_by(user, voiceprint: Voiceprint) -> bool:
    return user.is_active and (user.is_staff or voiceprint.user_id == user.pk or voiceprint.enrolled_by_id == user.pk)
