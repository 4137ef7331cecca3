"""Writes that span models or leave a trace. Views, consumers and tasks call these and nothing lower."""
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .audit import audit
from .languages import search_config_for
from .models import AuditEvent, Meeting, Segment, Sharing, Speaker
from .segments import words_after_edit, words_pack, words_unpack


def default_delay_ms() -> int:
    """The live caption delay new meetings start with, chosen by an administrator in the site settings."""
    # By name through the app registry: administration builds on meetings, so meetings never imports it.
    return apps.get_model("administration", "SiteSettings").load().live_delay_ms


def meeting_create(*, owner: User, title: str, language: str = "", delay_ms: int | None = None, request=None) -> Meeting:
    if delay_ms is None:
        delay_ms = default_delay_ms()
    meeting = Meeting(owner=owner, title=title.strip(), language=language, delay_ms=delay_ms)
    meeting.full_clean()
    meeting.save()
    audit(request, AuditEvent.Action.MEETING_CREATE, user=owner, obj=meeting, detail={"title": meeting.title})
    return meeting


def meeting_update(*, meeting: Meeting, by: User, title: str, language: str, delay_ms: int, request=None) -> Meeting:
    changes = {}
    for field, value in (("title", title.strip()), ("language", language), ("delay_ms", delay_ms)):
        if getattr(meeting, field) != value:
            changes[field] = [getattr(meeting, field), value]
            setattr(meeting, field, value)
    if not changes:
        return meeting
    meeting.full_clean()
    with transaction.atomic():
        meeting.save()
        if "language" in changes:
            # Re-stem the transcript for the new language; the database trigger rebuilds the index.
            meeting.segments.update(search_config=search_config_for(meeting.language))
        audit(request, AuditEvent.Action.MEETING_UPDATE, user=by, obj=meeting, detail=changes)
    return meeting


def meeting_delete(*, meeting: Meeting, by: User, request=None) -> None:
    files = [rec.file for rec in meeting.recordings.all()]
    meeting_id, title = meeting.pk, meeting.title
    with transaction.atomic():
        meeting.delete()
        audit(request, AuditEvent.Action.MEETING_DELETE, user=by, meeting_id=meeting_id, detail={"title": title})
        # Audio goes only once the rows are gone for good.
        transaction.on_commit(lambda: [f.delete(save=False) for f in files if f])


def speaker_get_or_create(*, meeting: Meeting, label: str) -> Speaker:
    speaker, _ = Speaker.objects.get_or_create(meeting=meeting, label=label)
    return speaker


def segment_append(
    *,
    meeting: Meeting,
    text: str,
    start_ms: int,
    end_ms: int,
    origin: str = Segment.Origin.LIVE,
    speaker: Speaker | None = None,
    model_version: str = "",
    words: list | None = None,
) -> Segment:
    """`words`: [[text, start_ms, end_ms], ...] of the segment's words (see Segment.words)."""
    return Segment.objects.create(
        words=words or [],
        meeting=meeting,
        text=text,
        start_ms=start_ms,
        end_ms=max(end_ms, start_ms),
        origin=origin,
        speaker=speaker,
        model_version=model_version,
        search_config=search_config_for(meeting.language),
    )


def segment_edit(*, segment: Segment, by: User, text: str, request=None) -> Segment:
    text = text.strip()
    if not text:
        raise ValidationError("A segment cannot be empty. Delete words you do not want, but keep at least one.")
    if text == segment.text:
        return segment
    before = segment.text
    old_words = words_unpack(segment.words)
    with transaction.atomic():
        segment.text = text
        segment.words = words_pack(words_after_edit(old_words, text, start_ms=segment.start_ms, end_ms=segment.end_ms))
        segment.edited_at = timezone.now()
        segment.edited_by = by
        segment.save(update_fields=["text", "words", "edited_at", "edited_by"])
        audit(request, AuditEvent.Action.SEGMENT_EDIT, user=by, obj=segment, detail={"before": before, "after": text})
    return segment


def speaker_rename(*, speaker: Speaker, by: User, display_name: str, request=None) -> Speaker:
    display_name = display_name.strip()[:100]
    before = speaker.display_name
    if display_name == before:
        return speaker
    with transaction.atomic():
        speaker.display_name = display_name
        speaker.save(update_fields=["display_name"])
        audit(request, AuditEvent.Action.SPEAKER_RENAME, user=by, obj=speaker, detail={"label": speaker.label, "before": before, "after": display_name})
    return speaker


def speaker_merge(*, meeting: Meeting, into: Speaker, others: list[Speaker], by: User, request=None) -> Speaker:
    """Fold `others` into `into`: their segments move over and they are deleted (over-counted speakers)."""
    others = [sp for sp in others if sp.pk != into.pk]
    if any(sp.meeting_id != meeting.pk for sp in [into, *others]):
        raise ValidationError("Speakers can only be merged within one meeting.")
    if not others:
        raise ValidationError("Choose at least one other speaker to merge.")
    with transaction.atomic():
        moved = Segment.objects.filter(meeting=meeting, speaker__in=others).update(speaker=into)
        Speaker.objects.filter(pk__in=[sp.pk for sp in others]).delete()
        audit(request, AuditEvent.Action.SPEAKER_MERGE, user=by, obj=into, detail={"into": into.label, "merged": [sp.label for sp in others], "segments": moved})
    return into


def meeting_share(*, meeting: Meeting, by: User, role: str, user: User | None = None, group: Group | None = None, request=None) -> Sharing:
    if (user is None) == (group is None):
        raise ValidationError("Share with either one person or one group.")
    if user is not None and user.pk == meeting.owner_id:
        raise ValidationError("The owner already has full access.")
    if role not in Sharing.Role.values:
        raise ValidationError("Choose whether they can view or edit.")
    with transaction.atomic():
        sharing, _ = Sharing.objects.update_or_create(
            meeting=meeting, user=user, group=group, defaults={"role": role, "created_by": by}
        )
        audit(request, AuditEvent.Action.SHARE_ADD, user=by, obj=meeting, detail={"with": str(user or group), "kind": "user" if user else "group", "role": role})
    return sharing


def meeting_unshare(*, sharing: Sharing, by: User, request=None) -> None:
    meeting = sharing.meeting
    with transaction.atomic():
        target = str(sharing.user or sharing.group)
        sharing.delete()
        audit(request, AuditEvent.Action.SHARE_REMOVE, user=by, obj=meeting, detail={"with": target})
