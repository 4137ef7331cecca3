"""The host page, the caption view and caption preferences, as plain HTTP."""
import pytest

from meetings import services
from meetings.models import Sharing

pytestmark = pytest.mark.django_db


def test_the_owner_gets_the_host_page_and_a_viewer_the_caption_view(client, owner, member, outsider, team):
    meeting = services.meeting_create(owner=owner, title="Ward round")
    services.meeting_share(meeting=meeting, by=owner, group=team, role=Sharing.Role.VIEW)
    client.force_login(owner)
    assert "Start live captions" in client.get(f"/meetings/{meeting.pk}/").content.decode()
    page = client.get(f"/meetings/{meeting.pk}/live/host").content.decode()
    assert 'data-socket-path="/ws/meetings/%d/live/host"' % meeting.pk in page and '<option value="480" selected>' in page

    # The recording window that Start opens: the page's chosen delay and input, a made-up delay refused.
    window = client.get(f"/meetings/{meeting.pk}/live/recorder?delay=960&device=abc123").content.decode()
    assert 'id="delay" value="960"' in window and 'id="device" value="abc123"' in window and 'data-mode="recorder"' in window
    assert 'id="delay" value="480"' in client.get(f"/meetings/{meeting.pk}/live/recorder?delay=123").content.decode()
    assert 'href="/search' not in window  # no links away from a window that records

    client.force_login(member)
    assert "Follow live captions" in client.get(f"/meetings/{meeting.pk}/").content.decode()
    assert client.get(f"/meetings/{meeting.pk}/live/host").status_code == 404
    assert client.get(f"/meetings/{meeting.pk}/live/recorder").status_code == 404
    page = client.get(f"/meetings/{meeting.pk}/live/").content.decode()
    assert 'role="log"' in page and 'aria-hidden="true"' in page

    client.force_login(outsider)
    assert client.get(f"/meetings/{meeting.pk}/live/").status_code == 404


def test_caption_preferences_are_kept_per_user(client, member, owner):
    meeting = services.meeting_create(owner=owner, title="Ward round")
    services.meeting_share(meeting=meeting, by=owner, user=member, role=Sharing.Role.VIEW)
    client.force_login(member)
    response = client.post("/live/preferences", {"font_size": 48, "lines": 4, "theme": "contrast"})
    assert response.status_code == 200
    member.refresh_from_db()
    assert (member.caption_preferences.font_size, member.caption_preferences.lines) == (48, 4)
    page = client.get(f"/meetings/{meeting.pk}/live/").content.decode()
    assert "theme-contrast" in page and 'data-font-size="48"' in page
    response = client.post("/live/preferences", {"font_size": 500, "lines": 4, "theme": "contrast"})
    assert response.status_code == 400 and "font_size" in response.json()["errors"]


def test_caption_display_fields_state_their_real_limits_and_errors_name_the_field(client, member, owner):
    meeting = services.meeting_create(owner=owner, title="Ward round")
    services.meeting_share(meeting=meeting, by=owner, user=member, role=Sharing.Role.VIEW)
    client.force_login(member)
    page = client.get(f"/meetings/{meeting.pk}/live/").content.decode()
    assert 'min="16"' in page and 'max="96"' in page and 'min="2"' in page and 'max="20"' in page
    assert 'id="id_font_size_helptext"' in page and "From 16 to 96 pixels." in page
    errors = client.post("/live/preferences", {"font_size": 500, "lines": 1, "theme": "contrast"}).json()["errors"]
    assert errors["font_size"].startswith("Text size (pixels): ") and "96" in errors["font_size"]
    assert errors["lines"].startswith("Lines shown: ") and "2" in errors["lines"]
    member.refresh_from_db()
    assert not hasattr(member, "caption_preferences") or member.caption_preferences.font_size != 500


def test_without_a_speech_model_start_is_disabled_and_only_staff_are_told_where_to_install_one(client, owner, settings, tmp_path):
    settings.ASR_MODEL_DIR = ""
    meeting = services.meeting_create(owner=owner, title="Ward round")
    client.force_login(owner)
    page = client.get(f"/meetings/{meeting.pk}/live/host").content.decode()
    assert "no speech model is installed" in page and '<button type="button" id="start" disabled' in page
    assert "Ask your administrator" in page and "/console/" not in page
    detail = client.get(f"/meetings/{meeting.pk}/").content.decode()
    assert "cannot be transcribed" in detail and "/console/models/" not in detail  # the upload is warned

    owner.is_staff = True
    owner.save()
    page = client.get(f"/meetings/{meeting.pk}/live/host").content.decode()
    assert "/console/models/" in page and "Ask your administrator" not in page

    (tmp_path / "config.json").write_text("{}")
    settings.ASR_MODEL_DIR = str(tmp_path)
    page = client.get(f"/meetings/{meeting.pk}/live/host").content.decode()
    assert "no speech model is installed" not in page and '<button type="button" id="start">' in page
    assert "cannot be transcribed" not in client.get(f"/meetings/{meeting.pk}/").content.decode()
