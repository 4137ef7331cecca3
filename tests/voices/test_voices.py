"""Enrolling, seeing, undoing and deleting known voices through the pages, with consent, access and audit."""
import numpy as np
import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from administration.retention import retention_apply
from administration.models import SiteSettings
from meetings.exports import FORMATS
from meetings.models import AuditEvent
from meetings.search import search_segments
from transcription.reprocess import diarize
from voices import services
from voices.models import Person, SpeakerIdentity, Voiceprint
from voices.recognition import speakers_recognise

from .conftest import VERSION, enrolled, identity, meeting_from_reference, speaker

pytestmark = pytest.mark.django_db


def enrol(client, meeting, label, **data):
    sp = speaker(meeting, label)
    return client.post(reverse("voices:enrol", args=[meeting.pk, sp.pk]), {"who": "me", "remember": "on", **data}, follow=True)


@pytest.fixture
def budget(owner, two_voices, voice_settings):
    return meeting_from_reference(owner, two_voices[0], two_voices[2])


def test_a_user_enrols_their_own_voice_with_consent_and_a_gpu_task_builds_it(client, owner, budget, django_capture_on_commit_callbacks):
    client.force_login(owner)
    with django_capture_on_commit_callbacks() as queued:
        response = enrol(client, budget, "SPEAKER_00", consent="on")
    assert "SPEAKER_00 is now Alice" in response.content.decode()
    vp = Voiceprint.objects.get()
    assert (vp.user, vp.status, vp.source_label, vp.consent_confirmed_name, vp.enrolled_by) == (owner, "pending", "SPEAKER_00", "alice", owner)
    assert vp.speech_ms >= 4000 and all(end - start >= 1500 for start, end in vp.source_spans)
    assert len(queued) == 1  # the embedding is computed by voices.tasks.voiceprint_build, on the gpu queue
    assert speaker(budget, "SPEAKER_00").name == "Alice" and speaker(budget, "SPEAKER_00").identity.score is None
    event = AuditEvent.objects.get(action=AuditEvent.Action.VOICE_ENROL)
    assert event.meeting_id == budget.pk and event.detail["consent_confirmed_by"] == "alice"


def test_the_voiceprint_is_built_from_the_clean_speech_with_the_active_pipelines_embedding_model(owner, budget, voice_settings):
    vp = services.voiceprint_enrol(speaker=speaker(budget, "SPEAKER_01"), by=owner, consent=True, person_name="Dr Evans")
    services.voiceprint_build(voiceprint=vp)
    vp.refresh_from_db()
    assert vp.status == Voiceprint.Status.READY, vp.error
    assert len(vp.embedding) == 256 and abs(np.linalg.norm(vp.embedding) - 1.0) < 1e-4
    assert vp.pipeline_version == diarize.pipeline_version(voice_settings.DIARIZATION_DIR)
    assert vp.person == Person.objects.get(name="Dr Evans") and vp.holder_name == "Dr Evans"


def test_enrolment_is_refused_without_consent_or_with_too_little_speech(client, owner, budget, voice_settings):
    client.force_login(owner)
    page = enrol(client, budget, "SPEAKER_01", who="person", person_name="Dr Evans").content.decode()
    assert "confirm that Dr Evans agreed" in page
    voice_settings.VOICEPRINT_MIN_SPEECH_S = 60
    page = enrol(client, budget, "SPEAKER_00", consent="on").content.decode()
    assert "at least 60 s are needed" in page
    assert not Voiceprint.objects.exists() and not AuditEvent.objects.filter(action="voice_enrol").exists()


def test_a_viewer_cannot_enrol_and_an_outsider_cannot_see_the_meeting(client, owner, member, outsider, budget):
    from meetings.services import meeting_share

    meeting_share(meeting=budget, by=owner, role="view", user=member)
    for user in (member, outsider):
        client.force_login(user)
        sp = speaker(budget, "SPEAKER_00")
        response = client.post(reverse("voices:enrol", args=[budget.pk, sp.pk]), {"who": "me", "remember": "on", "consent": "on"})
        assert response.status_code == 404
    assert not Voiceprint.objects.exists()


def test_linking_a_speaker_without_remembering_the_voice_needs_no_consent_and_keeps_no_voiceprint(client, owner, member, budget):
    client.force_login(owner)
    page = enrol(client, budget, "SPEAKER_01", who="user", username="bob", remember="").content.decode()
    assert "SPEAKER_01 is now Bob" in page
    identity = speaker(budget, "SPEAKER_01").identity
    assert (identity.user, identity.voiceprint, identity.score) == (member, None, None)
    assert not Voiceprint.objects.exists()
    assert AuditEvent.objects.get(action=AuditEvent.Action.SPEAKER_RENAME).detail["linked_to"] == f"u{member.pk}"


def test_undo_gives_the_speaker_its_label_back_and_is_audited(client, owner, budget):
    enrolled(meeting=budget, vector=identity(1), user=owner)
    later = meeting_from_reference(owner, budget.recordings.get().file.path, [(0, 5000, "MALE")], title="Next week")
    speakers_recognise(meeting=later, voices={"SPEAKER_00": identity(1).astype(np.float32)}, pipeline_version=VERSION)
    client.force_login(owner)
    page = client.get(reverse("meetings:detail", args=[later.pk])).content.decode()
    assert "Recognised by voice as <strong>Alice</strong> (score 1.00)" in page
    sp = speaker(later, "SPEAKER_00")
    client.post(reverse("voices:unlink", args=[later.pk, sp.pk]))
    sp.refresh_from_db()
    assert sp.name == "SPEAKER_00" and not SpeakerIdentity.objects.filter(speaker=sp).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.VOICE_UNDO)
    assert event.detail == {"label": "SPEAKER_00", "name": "Alice", "score": 1.0, "recognised": True}


def test_a_person_sees_and_deletes_their_own_voiceprint_and_nobody_else_can(client, owner, member, outsider, budget):
    vp = enrolled(meeting=budget, vector=identity(1), user=member)
    client.force_login(outsider)
    assert "Dr" not in client.get(reverse("voices:mine")).content.decode() and "Bob" not in client.get(reverse("voices:mine")).content.decode()
    assert client.post(reverse("voices:delete", args=[vp.pk])).status_code == 403
    client.force_login(member)
    assert "Ward round" not in client.get(reverse("voices:mine")).content.decode()
    assert "Budget review (SPEAKER_00" in client.get(reverse("voices:mine")).content.decode()
    client.post(reverse("voices:delete", args=[vp.pk]))
    assert not Voiceprint.objects.exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.VOICE_DELETE)
    assert event.actor == member and event.detail["reason"] == "deleted on request" and event.detail["holder"] == "Bob"


def test_deleting_a_user_or_a_person_record_deletes_their_voiceprints_with_an_audit_record(client, owner, member, budget):
    enrolled(meeting=budget, vector=identity(1), user=member)
    enrolled(meeting=budget, vector=identity(2), person_name="Dr Evans")
    User.objects.get(pk=member.pk).delete()
    assert list(Voiceprint.objects.values_list("holder_name", flat=True)) == ["Dr Evans"]
    admin = User.objects.create_user("dana", password="x", is_staff=True)
    client.force_login(admin)
    assert "Dr Evans" in client.get(reverse("voices:console")).content.decode()
    client.post(reverse("voices:console_person_delete", args=[Person.objects.get().pk]))
    assert not Voiceprint.objects.exists() and not Person.objects.exists()
    reasons = sorted(AuditEvent.objects.filter(action="voice_delete").values_list("detail__reason", flat=True))
    assert reasons == ["its person, user account or source meeting was deleted", "the person record was deleted"]


def test_the_console_is_for_administrators_and_can_purge_every_voiceprint(client, owner, budget):
    enrolled(meeting=budget, vector=identity(1), user=owner)
    client.force_login(owner)
    assert client.get(reverse("voices:console")).status_code == 403
    assert client.post(reverse("voices:console_purge")).status_code == 403
    client.force_login(User.objects.create_user("dana", password="x", is_staff=True))
    client.post(reverse("voices:console_purge"))
    assert not Voiceprint.objects.exists()
    assert AuditEvent.objects.get(action="voice_delete").detail["reason"] == "all voiceprints purged by an administrator"


def test_retention_deletes_voiceprints_unused_for_the_set_period(owner, budget):
    from datetime import timedelta

    from django.utils import timezone

    old = enrolled(meeting=budget, vector=identity(1), user=owner)
    used = enrolled(meeting=budget, vector=identity(2), person_name="Dr Evans")
    Voiceprint.objects.filter(pk__in=[old.pk, used.pk]).update(enrolled_at=timezone.now() - timedelta(days=400))
    Voiceprint.objects.filter(pk=used.pk).update(last_matched_at=timezone.now() - timedelta(days=10))
    SiteSettings.objects.filter(pk=SiteSettings.load().pk).update(voiceprint_retention_days=365)
    assert retention_apply()["voiceprints"] == 1
    assert list(Voiceprint.objects.values_list("pk", flat=True)) == [used.pk]
    assert "365 days" in AuditEvent.objects.get(action="voice_delete").detail["reason"]


def test_voiceprints_never_appear_in_exports(client, owner, budget):
    vp = enrolled(meeting=budget, vector=identity(1), user=owner)
    client.force_login(owner)
    digits = f"{vp.embedding[0]:.6f}"[:8]
    for fmt in FORMATS:
        body = client.get(reverse("meetings:export", args=[budget.pk, fmt])).content
        assert digits.encode() not in body and b"embedding" not in body and b"voiceprint" not in body.lower()


def test_search_filters_by_person_across_meetings(owner, member, budget):
    later = meeting_from_reference(owner, budget.recordings.get().file.path, [(0, 5000, "MALE"), (5000, 9000, "FEMALE")], title="Next week")
    for meeting in (budget, later):
        services._link(speaker=speaker(meeting, "SPEAKER_00"), holder={"user": owner}, name="Alice", by=owner)
    all_hits = search_segments(user=owner, query="line", limit=100)
    alice = search_segments(user=owner, query="line", person=f"u{owner.pk}", limit=100)
    assert {h.meeting_id for h in alice.hits} == {budget.pk, later.pk} and alice.total < all_hits.total
    assert all(h.speaker_name == "Alice" for h in alice.hits)
    assert search_segments(user=member, query="line", person=f"u{owner.pk}").total == 0  # not shared with them
    assert search_segments(user=owner, query="line", person="x'; drop").total == 0


def test_deleting_the_source_meeting_deletes_the_voiceprints_enrolled_from_it(owner, budget):
    from meetings.services import meeting_delete

    enrolled(meeting=budget, vector=identity(1), user=owner)
    meeting_id = budget.pk
    meeting_delete(meeting=budget, by=owner)
    assert not Voiceprint.objects.exists()
    event = AuditEvent.objects.get(action="voice_delete")
    assert event.meeting_id == meeting_id and event.detail["holder"] == "Alice"
