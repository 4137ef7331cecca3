"""Reads of known voices, each scoped to what the asking user or meeting owner may see."""
from django.db.models import Q, QuerySet

from meetings.access import meetings_visible_to
from meetings.models import Meeting, Speaker

from .models import SpeakerIdentity, Voiceprint


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


def people_for_search(user) -> list[tuple[str, str]]:
    """(key, name) of the people linked to speakers in meetings the user can see, for the search filter."""
    rows = (SpeakerIdentity.objects.filter(speaker__meeting__in=meetings_visible_to(user).values("pk"))
            .values_list("user_id", "person_id", "name").order_by("name").distinct())
    seen, people = set(), []
    for user_id, person_id, name in rows:
        key = f"u{user_id}" if user_id else f"p{person_id}"
        if key not in seen:
            seen.add(key)
            people.append((key, name))
    return people


def speakers_of_person(key: str) -> QuerySet[Speaker]:
    """Speakers linked to the person `key` ("u<user id>" or "p<person id>"); none for a malformed key."""
    key = (key or "").strip()
    kind, number = key[:1], key[1:]
    if not number.isdigit() or kind not in ("u", "p"):
        return Speaker.objects.none()
    field = "identity__user_id" if kind == "u" else "identity__person_id"
    return Speaker.objects.filter(**{field: int(number)})
