"""Site settings an administrator changes in the console."""
from django.db import transaction

from meetings.audit import audit
from meetings.models import AuditEvent

from .models import SiteSettings

EDITABLE = ("live_delay_ms", "reprocess_delay_ms", "max_live_streams", "audio_retention_days", "transcript_retention_days",
            "voice_match_threshold", "voiceprint_retention_days")


def site_settings() -> SiteSettings:
    return SiteSettings.load()


def site_settings_update(*, by, request=None, **values) -> SiteSettings:
    """Change the given settings (validated), audited with each change as [before, after]."""
    with transaction.atomic():
        row = SiteSettings.objects.select_for_update().get(pk=SiteSettings.load().pk)
        changes = {}
        for field in EDITABLE:
            if field in values and getattr(row, field) != values[field]:
                changes[field] = [getattr(row, field), values[field]]
                setattr(row, field, values[field])
        if not changes:
            return row
        row.full_clean()
        row.updated_by = by
        row.save()
        audit(request, AuditEvent.Action.SETTINGS_CHANGE, user=by, obj=row, detail=changes)
    return row
