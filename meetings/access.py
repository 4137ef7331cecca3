"""Who may do what with a meeting. Every view, consumer, export, search and media download asks here.

Roles, from least to most: view (read the transcript, play audio, follow live captions, export),
edit (also correct text and rename speakers), owner (also share, stream live audio, delete).
Site administrators get no implicit access to meeting content: they manage users and models, and must
be shared a meeting like anyone else.
"""
from django.db.models import Q, QuerySet

from .models import Meeting, Sharing

VIEW, EDIT, OWNER = "view", "edit", "owner"
_RANK = {VIEW: 1, EDIT: 2, OWNER: 3}


class MeetingAccessDenied(Exception):
    """The meeting does not exist or the user may not use it in this way. Both look the same to users."""


def meetings_visible_to(user) -> QuerySet[Meeting]:
    if not user.is_authenticated or not user.is_active:
        return Meeting.objects.none()
    shared = Sharing.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values("meeting_id")
    return Meeting.objects.filter(Q(owner=user) | Q(pk__in=shared))


def role_for(user, meeting: Meeting) -> str | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if meeting.owner_id == user.pk:
        return OWNER
    roles = Sharing.objects.filter(meeting=meeting).filter(Q(user=user) | Q(group__in=user.groups.all())).values_list("role", flat=True)
    return max(roles, key=_RANK.__getitem__, default=None)


def allows(role: str | None, needed: str) -> bool:
    return role is not None and _RANK[role] >= _RANK[needed]


def get_meeting_for_user(user, meeting_id, needed: str = VIEW) -> tuple[Meeting, str]:
    """Load a meeting the user may use at `needed` level, with the user's role; raise MeetingAccessDenied otherwise."""
    try:
        meeting = Meeting.objects.select_related("owner").get(pk=int(meeting_id))
    except (Meeting.DoesNotExist, TypeError, ValueError):
        raise MeetingAccessDenied() from None
    role = role_for(user, meeting)
    if not allows(role, needed):
        raise MeetingAccessDenied()
    return meeting, role
