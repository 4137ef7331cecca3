"""Meeting pages: list, create, transcript with audio, speaker names, settings, and the audit trail."""
import os

import pytest
from django.urls import reverse

from meetings import services
from meetings.models import AuditEvent, Meeting, Sharing
from tests.factories import attach_recording, meeting_with_transcript
from tests.speech import make_speech_wav, wav_duration_ms


@pytest.fixture
def meeting(owner):
    return meeting_with_transcript(owner)


def test_signing_in_and_out_is_audited(client, owner):
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302
    client.post(reverse("logout"))
    client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor_username"))
    assert actions == [("login", "alice"), ("logout", "alice"), ("login_failed", "")]
    assert AuditEvent.objects.get(action="login_failed").detail == {"username": "alice"}


def test_creating_a_meeting_validates_the_caption_delay(client, owner):
    client.force_login(owner)
    response = client.post(reverse("meetings:create"), {"title": "Board", "language": "fr", "delay_ms": 500})
    assert response.status_code == 400
    assert "multiple of 80" in response.content.decode()
    response = client.post(reverse("meetings:create"), {"title": "Board", "language": "fr", "delay_ms": 560})
    meeting = Meeting.objects.get()
    assert response["Location"] == reverse("meetings:detail", args=[meeting.pk])
    assert (meeting.owner, meeting.language, meeting.delay_ms) == (owner, "fr", 560)
    assert AuditEvent.objects.filter(action="meeting_create", meeting_id=meeting.pk, actor=owner).exists()


def test_the_list_shows_own_and_shared_meetings_with_a_fixed_number_of_queries(client, owner, member, team, django_assert_num_queries):
    for n in range(3):
        meeting_with_transcript(owner, title=f"Mine {n}")
    shared = meeting_with_transcript(member, title="Shared with the team")
    services.meeting_share(meeting=shared, by=member, group=team, role=Sharing.Role.VIEW)
    other = meeting_with_transcript(member, title="Bob alone")
    owner.groups.add(team)
    client.force_login(owner)
    with django_assert_num_queries(5):  # session, user, site settings (default delay), count, page (groups are a subquery)
        page = client.get(reverse("meetings:list")).content.decode()
    assert all(f"Mine {n}" in page for n in range(3))
    assert "Shared with the team" in page and other.title not in page


def test_the_meeting_page_shows_the_transcript_with_speakers_and_times_and_is_audited(client, owner, meeting):
    client.force_login(owner)
    page = client.get(reverse("meetings:detail", args=[meeting.pk])).content.decode()
    assert "Her blood pressure improved overnight" in page
    assert 'data-seek="4200"' in page and "00:04" in page
    assert "SPEAKER_01" in page
    assert AuditEvent.objects.filter(action="meeting_view", actor=owner, meeting_id=meeting.pk).count() == 1


def test_renaming_a_speaker_changes_every_segment_and_the_exports(client, owner, meeting):
    client.force_login(owner)
    speaker = meeting.speakers.get(label="SPEAKER_01")
    client.post(reverse("meetings:speaker_rename", args=[meeting.pk, speaker.pk]), {"display_name": "Dr. Osei"})
    speaker.refresh_from_db()
    assert speaker.display_name == "Dr. Osei"
    assert "Dr. Osei: Her blood pressure" in client.get(reverse("meetings:export", args=[meeting.pk, "txt"])).content.decode()
    event = AuditEvent.objects.get(action="speaker_rename")
    assert event.detail == {"label": "SPEAKER_01", "before": "", "after": "Dr. Osei"}


def test_an_empty_correction_is_refused_and_the_text_kept(client, owner, meeting):
    client.force_login(owner)
    segment = meeting.segments.first()
    response = client.post(reverse("meetings:segment_edit", args=[meeting.pk, segment.pk]), {"text": "   "}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    segment.refresh_from_db()
    assert segment.text.startswith("Good morning")


def test_audio_is_served_in_byte_ranges_so_players_can_seek(client, owner, meeting, tmp_path):
    wav = make_speech_wav(tmp_path / "speech.wav", "The kidney function will be checked tomorrow morning.")
    recording = attach_recording(meeting, wav)
    client.force_login(owner)
    url = reverse("meetings:recording_media", args=[meeting.pk, recording.pk])
    whole = b"".join(client.get(url).streaming_content)
    assert whole == wav.read_bytes() and wav_duration_ms(wav) > 1000
    part = client.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert b"".join(part.streaming_content) == whole[100:200]
    assert client.get(url, HTTP_RANGE=f"bytes={len(whole) + 5}-").status_code == 416
    # One audit row per playback start, not one per chunk the player asks for.
    assert AuditEvent.objects.filter(action="media_download", meeting_id=meeting.pk).count() == 1


def test_deleting_a_meeting_removes_its_audio_and_keeps_the_audit_trail(client, owner, meeting, tmp_path, django_capture_on_commit_callbacks):
    recording = attach_recording(meeting, make_speech_wav(tmp_path / "s.wav", "Delete me."))
    path = recording.file.path
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("meetings:delete", args=[meeting.pk]))
    assert not Meeting.objects.filter(pk=meeting.pk).exists()
    assert not os.path.exists(path)
    assert AuditEvent.objects.filter(action="meeting_delete", meeting_id=meeting.pk).exists()


def test_changing_the_language_restems_the_transcript(owner, meeting):
    services.meeting_update(meeting=meeting, by=owner, title=meeting.title, language="fr", delay_ms=meeting.delay_ms)
    assert set(meeting.segments.values_list("search_config", flat=True)) == {"french"}
