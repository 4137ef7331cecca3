"""Site settings in the console: validated, audited, and used by new meetings."""
import pytest
from django.urls import reverse

from administration.models import SiteSettings
from meetings import services
from meetings.models import AuditEvent

pytestmark = pytest.mark.django_db

VALID = {"live_delay_ms": 960, "reprocess_delay_ms": 1600, "max_live_streams": 12, "audio_retention_days": 30, "transcript_retention_days": "", "voice_match_threshold": 0.75}


def test_saving_settings_changes_them_and_records_who_changed_what(admin_client, admin_user):
    response = admin_client.post(reverse("console:settings"), VALID)
    assert response.status_code == 302
    site = SiteSettings.load()
    assert (site.live_delay_ms, site.reprocess_delay_ms, site.max_live_streams, site.audio_retention_days) == (960, 1600, 12, 30)
    assert site.transcript_retention_days is None and site.updated_by == admin_user
    event = AuditEvent.objects.get(action="settings_change")
    assert event.detail["live_delay_ms"] == [480, 960] and event.detail["audio_retention_days"] == [None, 30]


@pytest.mark.parametrize("field,value,message", [
    ("live_delay_ms", 500, "multiple of 80"),
    ("live_delay_ms", 2480, "less than or equal to 2400"),
    ("reprocess_delay_ms", 0, "greater than or equal to 80"),
    ("max_live_streams", 0, "greater than or equal to 1"),
])
def test_out_of_range_settings_are_refused_with_a_reason(admin_client, field, value, message):
    response = admin_client.post(reverse("console:settings"), {**VALID, field: value})
    assert response.status_code == 400 and message in response.content.decode()
    assert SiteSettings.load().live_delay_ms == 480
    assert not AuditEvent.objects.filter(action="settings_change").exists()


def test_new_meetings_start_with_the_sites_live_delay(admin_client, owner, client):
    admin_client.post(reverse("console:settings"), {**VALID, "live_delay_ms": 1200})
    assert services.meeting_create(owner=owner, title="Board").delay_ms == 1200
    client.force_login(owner)
    assert 'value="1200"' in client.get(reverse("meetings:list")).content.decode()


def test_the_settings_form_has_a_label_for_every_field(admin_client):
    page = admin_client.get(reverse("console:settings")).content.decode()
    for field in VALID:
        assert f'<label for="id_{field}">' in page
