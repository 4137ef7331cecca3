"""Reads for the console pages."""
import csv
from datetime import datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from meetings.models import AuditEvent

CSV_COLUMNS = ["time", "user", "action", "object_type", "object_id", "meeting_id", "ip_address", "detail"]


def audit_events(*, user: str = "", action: str = "", date_from=None, date_to=None) -> QuerySet[AuditEvent]:
    """Audit events, newest first, filtered by user name, action and a date range in the site's time zone."""
    events = AuditEvent.objects.all()
    if user:
        events = events.filter(actor_username__iexact=user)
    if action:
        events = events.filter(action=action)
    tz = timezone.get_current_timezone()
    if date_from:
        events = events.filter(created_at__gte=datetime.combine(date_from, time.min, tzinfo=tz))
    if date_to:
        events = events.filter(created_at__lt=datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=tz))
    return events.order_by("-created_at", "-id")


class _Echo:
    def write(self, value):
        return value


def audit_csv_lines(events: QuerySet[AuditEvent]):
    """CSV text of `events`, a line at a time, so that a year of events never sits in memory."""
    import json

    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for e in events.iterator(chunk_size=2000):
        yield writer.writerow([
            e.created_at.isoformat(), e.actor_username, e.action, e.object_type, e.object_id,
            e.meeting_id or "", e.ip_address or "", json.dumps(e.detail, sort_keys=True),
        ])
