"""The audit log in the console: filters by user, action and date, CSV export; user admin changes are audited."""
import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from meetings.audit import audit
from meetings.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(owner, member):
    made = [
        audit(None, AuditEvent.Action.MEETING_VIEW, user=owner, meeting_id=1),
        audit(None, AuditEvent.Action.EXPORT, user=owner, meeting_id=1),
        audit(None, AuditEvent.Action.MEETING_VIEW, user=member, meeting_id=2),
    ]
    AuditEvent.objects.filter(pk=made[0].pk).update(created_at=timezone.now() - timedelta(days=10))
    return made


def rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_filters_by_user_action_and_dates(admin_client, events):
    page = admin_client.get(reverse("console:audit"), {"user": "alice", "action": "meeting_view"}).content.decode()
    assert "1 event," in page
    today = timezone.localdate()
    page = admin_client.get(reverse("console:audit"), {"date_from": (today - timedelta(days=1)).isoformat(), "date_to": today.isoformat(), "action": "meeting_view"}).content.decode()
    assert "1 event," in page and "bob" in page and "alice" not in page.split("<tbody>")[1]


def test_a_backwards_date_range_is_explained(admin_client, events):
    page = admin_client.get(reverse("console:audit"), {"date_from": "2026-02-01", "date_to": "2026-01-01"}).content.decode()
    assert "The start date is after the end date." in page


def test_csv_export_holds_the_filtered_events_and_is_itself_audited(admin_client, admin_user, events):
    response = admin_client.get(reverse("console:audit_export"), {"user": "alice"})
    assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    got = rows(response)
    assert [(r["user"], r["action"]) for r in got] == [("alice", "export"), ("alice", "meeting_view")]
    assert got[0]["meeting_id"] == "1"
    export = AuditEvent.objects.get(action="audit_export")
    assert export.actor == admin_user and export.detail["filters"] == {"user": "alice"}


def test_changes_to_users_and_groups_in_the_admin_are_audited(admin_client, member):
    response = admin_client.post(reverse("admin:auth_group_add"), {"name": "Radiology", "permissions": []})
    assert response.status_code == 302
    group = Group.objects.get(name="Radiology")
    change = reverse("admin:auth_user_change", args=[member.pk])
    form = {"username": "bob", "first_name": "Bob", "last_name": "", "email": "", "is_active": "on", "is_staff": "on",
            "groups": [group.pk], "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00", "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00"}
    assert admin_client.post(change, form).status_code == 302
    assert User.objects.get(pk=member.pk).is_staff
    admin_client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    events = AuditEvent.objects.filter(action="admin").order_by("id")
    assert [(e.detail["change"], e.object_type, e.actor_username) for e in events] == [
        ("added", "group", "dana"), ("changed", "user", "dana"), ("deleted", "group", "dana")]
    assert "Staff status" in events[1].detail["message"] or "is_staff" in events[1].detail["message"]


def test_the_audit_page_costs_the_same_queries_for_few_or_many_events(admin_client, owner, django_assert_max_num_queries):
    for i in range(120):
        audit(None, AuditEvent.Action.SEARCH, user=owner, detail={"q": f"query {i}"})
    with django_assert_max_num_queries(8):
        assert admin_client.get(reverse("console:audit")).status_code == 200


def test_the_models_page_costs_the_same_queries_for_many_versions(admin_client, admin_user, django_assert_max_num_queries):
    from administration.models import ModelVersion

    for i in range(30):
        ModelVersion.objects.create(name=f"v{i}", kind="asr", path=f"/srv/models/v{i}", status="retired", imported_by=admin_user)
    with django_assert_max_num_queries(6):
        assert admin_client.get(reverse("console:models")).status_code == 200
