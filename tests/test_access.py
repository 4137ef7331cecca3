"""Per-meeting permissions on every HTTP path: view, export, media, search, edit, share."""
import pytest
from django.urls import reverse

from meetings import services
from meetings.models import AuditEvent, Sharing
from tests.factories import attach_recording, meeting_with_transcript
from tests.speech import make_speech_wav

FORMATS = ["txt", "srt", "vtt", "json", "docx"]


@pytest.fixture
def meeting(owner):
    return meeting_with_transcript(owner)


@pytest.fixture
def recording(meeting, tmp_path):
    return attach_recording(meeting, make_speech_wav(tmp_path / "round.wav", "Good morning, let us review the patient."))


def read_paths(meeting, recording):
    return [
        reverse("meetings:detail", args=[meeting.pk]),
        *(reverse("meetings:export", args=[meeting.pk, fmt]) for fmt in FORMATS),
        reverse("meetings:recording_media", args=[meeting.pk, recording.pk]),
    ]


def test_anonymous_visitors_are_sent_to_sign_in_everywhere(client, meeting, recording):
    for path in read_paths(meeting, recording) + [reverse("meetings:list"), reverse("meetings:search") + "?q=patient"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(reverse("login")), path


def test_an_outsider_cannot_open_export_or_download_a_meeting(client, outsider, meeting, recording):
    client.force_login(outsider)
    for path in read_paths(meeting, recording):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"patient" not in response.content
    denied = AuditEvent.objects.filter(actor=outsider, action=AuditEvent.Action.ACCESS_DENIED, meeting_id=meeting.pk)
    assert denied.count() == len(read_paths(meeting, recording))


def test_an_outsider_does_not_see_the_meeting_in_lists_or_search(client, outsider, meeting):
    client.force_login(outsider)
    assert meeting.title not in client.get(reverse("meetings:list")).content.decode()
    page = client.get(reverse("meetings:search"), {"q": "patient"}).content.decode()
    assert "bed four" not in page and reverse("meetings:detail", args=[meeting.pk]) not in page
    page = client.get(reverse("meetings:search"), {"q": "patient", "meeting": meeting.pk}).content.decode()
    assert "bed four" not in page


def test_an_outsider_cannot_change_anything(client, outsider, meeting):
    client.force_login(outsider)
    segment = meeting.segments.first()
    speaker = meeting.speakers.first()
    attempts = [
        (reverse("meetings:segment_edit", args=[meeting.pk, segment.pk]), {"text": "tampered"}),
        (reverse("meetings:speaker_rename", args=[meeting.pk, speaker.pk]), {"display_name": "tampered"}),
        (reverse("meetings:share", args=[meeting.pk]), {"username": "carol", "role": "edit"}),
        (reverse("meetings:settings", args=[meeting.pk]), {"title": "tampered", "language": "en", "delay_ms": 480}),
        (reverse("meetings:delete", args=[meeting.pk]), {}),
    ]
    for path, data in attempts:
        assert client.post(path, data).status_code == 404, path
    segment.refresh_from_db(), speaker.refresh_from_db(), meeting.refresh_from_db()
    assert segment.text != "tampered" and speaker.display_name == "" and meeting.title == "Ward round"
    assert not Sharing.objects.filter(meeting=meeting).exists()


def test_a_viewer_can_read_export_and_play_but_not_edit(client, owner, member, meeting, recording):
    services.meeting_share(meeting=meeting, by=owner, user=member, role=Sharing.Role.VIEW)
    client.force_login(member)
    for path in read_paths(meeting, recording):
        assert client.get(path).status_code == 200, path
    segment = meeting.segments.first()
    assert client.post(reverse("meetings:segment_edit", args=[meeting.pk, segment.pk]), {"text": "changed"}).status_code == 404
    assert client.post(reverse("meetings:share", args=[meeting.pk]), {"username": "carol", "role": "view"}).status_code == 404
    segment.refresh_from_db()
    assert segment.text.startswith("Good morning")


def test_a_group_editor_can_correct_text_and_the_edit_is_audited(client, owner, member, team, meeting):
    services.meeting_share(meeting=meeting, by=owner, group=team, role=Sharing.Role.EDIT)
    client.force_login(member)
    segment = meeting.segments.first()
    response = client.post(reverse("meetings:segment_edit", args=[meeting.pk, segment.pk]), {"text": "Good morning, review bed five."})
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.text == "Good morning, review bed five." and segment.edited_by == member
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEGMENT_EDIT)
    assert event.actor == member and event.meeting_id == meeting.pk
    assert event.detail == {"before": "Good morning, let us review the patient in bed four.", "after": "Good morning, review bed five."}


def test_removing_a_share_takes_access_away(client, owner, member, meeting):
    sharing = services.meeting_share(meeting=meeting, by=owner, user=member, role=Sharing.Role.VIEW)
    client.force_login(owner)
    page = client.get(reverse("meetings:detail", args=[meeting.pk])).content.decode()
    assert "Remove<span class=\"visually-hidden\"> access for bob</span>" in page
    assert client.post(reverse("meetings:unshare", args=[meeting.pk, sharing.pk])).status_code == 302
    client.force_login(member)
    assert client.get(reverse("meetings:detail", args=[meeting.pk])).status_code == 404


def test_site_administrators_get_no_implicit_access_to_meetings(client, django_user_model, meeting):
    admin = django_user_model.objects.create_superuser("root-admin", password="x" * 12)
    client.force_login(admin)
    assert client.get(reverse("meetings:detail", args=[meeting.pk])).status_code == 404


def test_a_segment_of_another_meeting_cannot_be_edited_through_your_own(client, owner, outsider, meeting):
    mine = meeting_with_transcript(outsider, title="Carol's meeting")
    client.force_login(outsider)
    foreign = meeting.segments.first()
    assert client.post(reverse("meetings:segment_edit", args=[mine.pk, foreign.pk]), {"text": "x"}).status_code == 404
    foreign.refresh_from_db()
    assert foreign.text != "x"


def test_posts_without_a_csrf_token_are_refused(owner, meeting):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    segment = meeting.segments.first()
    assert client.post(reverse("meetings:segment_edit", args=[meeting.pk, segment.pk]), {"text": "x"}).status_code == 403
