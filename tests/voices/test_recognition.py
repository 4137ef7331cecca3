"""Which enrolled voice a separated speaker is: embeddings of known identity, the site threshold, who may
use which voiceprint, and the pipeline version they were built with."""
import numpy as np
import pytest

from administration.models import SiteSettings
from meetings.models import AuditEvent
from meetings.services import meeting_share
from tests.factories import meeting_with_transcript
from voices.matching import match_speakers
from voices.models import SpeakerIdentity, Voiceprint
from voices.recognition import speakers_recognise

from .conftest import VERSION, enrolled, heard, identity, speaker

ALICE, BOB = identity(1), identity(2)


def test_each_speaker_gets_the_closest_voice_above_the_threshold():
    speakers = {"SPEAKER_00": heard(BOB, noise=0.5, seed=3), "SPEAKER_01": heard(ALICE, noise=0.5, seed=4)}
    matches = match_speakers(speakers, {10: ALICE, 20: BOB}, threshold=0.7)
    assert {(m.label, m.voiceprint_id) for m in matches} == {("SPEAKER_00", 20), ("SPEAKER_01", 10)}
    assert all(0.85 < m.score <= 1.0 for m in matches)


def test_nothing_is_matched_below_the_threshold():
    speakers = {"SPEAKER_00": heard(ALICE, noise=1.5, seed=5)}  # cosine about 0.55 with Alice
    assert match_speakers(speakers, {10: ALICE}, threshold=0.7) == []
    assert match_speakers(speakers, {10: ALICE}, threshold=0.5)[0].voiceprint_id == 10


def test_two_speakers_near_one_voice_do_not_both_get_the_name():
    speakers = {"SPEAKER_00": heard(ALICE, noise=0.3, seed=6), "SPEAKER_01": heard(ALICE, noise=0.6, seed=7)}
    matches = match_speakers(speakers, {10: ALICE, 11: heard(ALICE, noise=0.1, seed=8)}, threshold=0.5, holders={10: "u1", 11: "u1"})
    assert [m.label for m in matches] == ["SPEAKER_00"]


def test_vectors_of_another_dimension_are_never_compared():
    assert match_speakers({"SPEAKER_00": ALICE}, {10: ALICE[:128]}, threshold=-1.0) == []


@pytest.mark.django_db
def test_the_name_is_applied_above_the_site_threshold_marked_as_recognised_and_audited(owner, member, ward_round, next_round):
    vp_alice = enrolled(meeting=ward_round, vector=ALICE, user=owner)
    enrolled(meeting=ward_round, vector=BOB, user=member)
    voices = {"SPEAKER_00": heard(BOB, noise=0.4, seed=9), "SPEAKER_01": heard(ALICE, noise=0.4, seed=10)}

    applied = speakers_recognise(meeting=next_round, voices=voices, pipeline_version=VERSION)

    assert sorted(i.name for i in applied) == ["Alice", "Bob"]
    first, second = speaker(next_round, "SPEAKER_00"), speaker(next_round, "SPEAKER_01")
    assert (first.name, second.name) == ("Bob", "Alice")
    assert second.identity.is_recognised and second.identity.voiceprint == vp_alice and second.identity.score > 0.85
    event = AuditEvent.objects.get(action=AuditEvent.Action.VOICE_RECOGNISE, object_id=str(second.pk))
    assert event.meeting_id == next_round.pk and event.detail["name"] == "Alice" and event.detail["threshold"] == 0.75
    vp_alice.refresh_from_db()
    assert vp_alice.last_matched_at is not None


@pytest.mark.django_db
def test_below_the_threshold_nothing_changes(owner, ward_round, next_round):
    enrolled(meeting=ward_round, vector=ALICE, user=owner)
    SiteSettings.objects.filter(pk=SiteSettings.load().pk).update(voice_match_threshold=0.9)
    applied = speakers_recognise(meeting=next_round, voices={"SPEAKER_00": heard(ALICE, noise=0.8, seed=11)}, pipeline_version=VERSION)
    assert applied == []
    assert speaker(next_round, "SPEAKER_00").display_name == "" and not SpeakerIdentity.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VOICE_RECOGNISE).exists()


@pytest.mark.django_db
def test_a_voice_enrolled_from_a_meeting_the_owner_cannot_see_is_never_offered(owner, outsider, next_round):
    elsewhere = meeting_with_transcript(outsider, title="Oncology board")
    vp = enrolled(meeting=elsewhere, vector=ALICE, person_name="Dr Evans", by=outsider)
    voices = {"SPEAKER_00": ALICE.astype(np.float32)}  # a perfect match
    assert speakers_recognise(meeting=next_round, voices=voices, pipeline_version=VERSION) == []
    assert speaker(next_round, "SPEAKER_00").display_name == ""
    # Once the owner may see the meeting it came from, the voice may name speakers in the owner's meetings.
    meeting_share(meeting=elsewhere, by=outsider, role="view", user=owner)
    applied = speakers_recognise(meeting=next_round, voices=voices, pipeline_version=VERSION)
    assert [i.voiceprint_id for i in applied] == [vp.pk]


@pytest.mark.django_db
def test_voiceprints_of_another_pipeline_version_are_not_compared_but_rebuilt_or_marked_stale(
        owner, ward_round, next_round, django_capture_on_commit_callbacks, tmp_path):
    from tests.factories import attach_recording
    from tests.speech import make_speech_wav

    recording = attach_recording(ward_round, make_speech_wav(tmp_path / "a.wav", "Good morning"))
    rebuildable = enrolled(meeting=ward_round, vector=ALICE, user=owner, version="older model", source_recording=recording)
    gone = enrolled(meeting=ward_round, vector=BOB, person_name="Dr Evans", version="older model")
    voices = {"SPEAKER_00": ALICE.astype(np.float32), "SPEAKER_01": BOB.astype(np.float32)}
    with django_capture_on_commit_callbacks() as queued:
        assert speakers_recognise(meeting=next_round, voices=voices, pipeline_version=VERSION) == []
    rebuildable.refresh_from_db()
    gone.refresh_from_db()
    assert rebuildable.status == Voiceprint.Status.PENDING and len(queued) == 1  # the GPU task re-embeds its source speech
    assert gone.status == Voiceprint.Status.STALE and "enrol the voice again" in gone.error


@pytest.mark.django_db
def test_a_speaker_someone_already_named_keeps_the_name(owner, ward_round, next_round):
    from meetings.services import speaker_rename

    enrolled(meeting=ward_round, vector=ALICE, user=owner)
    speaker_rename(speaker=speaker(next_round, "SPEAKER_00"), by=owner, display_name="Chair")
    assert speakers_recognise(meeting=next_round, voices={"SPEAKER_00": ALICE.astype(np.float32)}, pipeline_version=VERSION) == []
    assert speaker(next_round, "SPEAKER_00").name == "Chair"


def test_clean_speech_leaves_out_overlap_short_stretches_and_edges_and_is_capped():
    from transcription.reprocess.voiceprint import MAX_SPEECH_MS, clean_spans

    mine = [(0, 5_000), (4_000, 8_000), (10_000, 11_000), (20_000, 30_000)]
    others = [(6_000, 6_500), (25_000, 26_000)]
    assert clean_spans(mine, others) == [(100, 5_900), (20_100, 24_900), (26_100, 29_900)]  # 6.5-8 s and 10-11 s: too short once trimmed
    long = clean_spans([(0, 200_000)], [(50_000, 50_100)])
    assert long == [(50_200, 50_200 + MAX_SPEECH_MS)]  # the longest stretch first, cut at the cap


@pytest.mark.django_db
def test_a_deactivated_users_voice_names_nobody(owner, member, ward_round, next_round):
    enrolled(meeting=ward_round, vector=BOB, user=member)
    member.is_active = False
    member.save()
    assert speakers_recognise(meeting=next_round, voices={"SPEAKER_00": BOB.astype(np.float32)}, pipeline_version=VERSION) == []
