"""Separating speakers again: the words stay, segments and speakers are rebuilt, renamed speakers keep
their names where their turns still match. Through a real Celery worker and the random-weight pipeline."""
import numpy as np
import pytest
from django.urls import reverse

from meetings.models import AuditEvent, Meeting, ReprocessJob, Sharing
from meetings.segments import words_pack, words_spread
from meetings.services import meeting_create, segment_append, segment_edit, speaker_get_or_create, speaker_rename
from tests.factories import attach_recording
from tests.servers import celery_worker
from transcription.reprocess.align import Turn
from transcription.reprocess.diarize import SpeakerLinker, chunk_counts

from .conftest import SCRIPT
from .test_worker import wait_for


def transcript_of(meeting) -> list[tuple]:
    return [tuple(w) for s in meeting.segments.order_by("start_ms") for w in s.words]


@pytest.fixture
def board_meeting(owner, two_voices):
    """The two-voice recording with its transcript: each line on its known speaker, both renamed, one word corrected."""
    wav, _, turns = two_voices
    meeting = meeting_create(owner=owner, title="Board")
    attach_recording(meeting, wav)
    names = {"MALE": "Alice", "FEMALE": "Bob"}
    for (start, end, who), (_, _, text) in zip(turns, SCRIPT):
        speaker = speaker_get_or_create(meeting=meeting, label=who)
        speaker_rename(speaker=speaker, by=owner, display_name=names[who])
        words = words_pack(words_spread(text.split(), start, end))
        segment_append(meeting=meeting, text=text, start_ms=start, end_ms=end, speaker=speaker, words=words, origin="reprocessed")
    first = meeting.segments.order_by("start_ms").first()
    segment_edit(segment=first, by=owner, text=first.text.replace("budget", "Budget"))
    return meeting


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_separating_again_with_a_count_rebuilds_speakers_and_segments_not_words(client, owner, board_meeting, pyannote_dir, settings, tmp_path):
    """In a real worker with the random-weight pipeline: one person present. The random pipeline hears
    one voice whatever it is told, so the test asks for what it can check: the count reaches the job,
    the speakers are the pipeline's, and the words are untouched."""
    meeting = board_meeting
    settings.DIARIZATION_DIR = pyannote_dir
    words_before = transcript_of(meeting)
    segment_ids = set(meeting.segments.values_list("pk", flat=True))
    client.force_login(owner)
    env = dict(SCRIBE_DIARIZATION_DIR=pyannote_dir, SCRIBE_DIARIZATION_DEVICE="cpu", SCRIBE_ASR_MODEL_DIR="")
    with celery_worker(tmp_path, name="speakers", **env):
        response = client.post(reverse("reprocess:speakers", args=[meeting.pk]), {"exact": "1"}, HTTP_ACCEPT="application/json")
        assert response.status_code == 202, response.content
        job = ReprocessJob.objects.get(pk=response.json()["job"]["id"])
        wait_for(lambda: ReprocessJob.objects.get(pk=job.pk).is_finished, 240, "speaker separation to finish")
    job.refresh_from_db()
    meeting.refresh_from_db()
    assert (job.stage, job.error, job.kind, job.speaker_counts) == (ReprocessJob.Stage.DONE, "", "speakers", {"num_speakers": 1})
    assert set(job.timings) == {"decode", "diarize", "store"} and not job.asr_version  # nothing was transcribed
    assert "pyannote.audio" in job.diarization_version and meeting.status == Meeting.Status.READY

    assert transcript_of(meeting) == words_before  # every word, its correction and its times
    assert [sp.label for sp in meeting.speakers.all()] == ["SPEAKER_00"]  # was MALE and FEMALE
    assert not segment_ids & set(meeting.segments.values_list("pk", flat=True))
    assert set(meeting.segments.values_list("speaker__label", flat=True)) == {"SPEAKER_00"}
    # Bob held 16 of the 31 words: the one speaker left holds them all, so Bob's name carries over.
    assert meeting.speakers.get().display_name == "Bob"
    assert meeting.segments.filter(text__contains="Budget", edited_at__isnull=False).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MEETING_UPDATE, meeting_id=meeting.pk, detail__num_speakers=1).exists()


@pytest.mark.django_db
def test_new_turns_split_segments_and_names_follow_the_turns_that_still_match(owner, board_meeting):
    """Turns that cut the first line in two: its words split into two segments of two speakers; the
    speaker whose turns still match keeps the name."""
    from meetings.models import Recording
    from transcription.reprocess.speakers import speakers_replace

    meeting = board_meeting
    words_before = transcript_of(meeting)
    first = meeting.segments.order_by("start_ms").first()
    middle = first.words[3][1]
    end = max(e for _, _, e in words_before)
    turns = [Turn(0, middle, "SPEAKER_00"), Turn(middle, first.end_ms + 100, "SPEAKER_01"), Turn(first.end_ms + 100, end + 1000, "SPEAKER_01")]
    job = ReprocessJob.objects.create(meeting=meeting, recording=Recording.objects.get(meeting=meeting), kind="speakers",
                                      diarization_version="pyannote.audio test")
    speakers_replace(job=job, turns=turns)
    assert transcript_of(meeting) == words_before
    rows = list(meeting.segments.order_by("start_ms").values_list("speaker__label", "text"))
    assert rows[0] == ("SPEAKER_00", " ".join(w[0] for w in first.words[:3]))
    assert rows[1][0] == "SPEAKER_01" and rows[1][1].startswith(first.words[3][0])
    names = dict(meeting.speakers.values_list("label", "display_name"))
    # SPEAKER_01 holds all of Bob's words (most of its own); SPEAKER_00 holds only Alice's.
    assert names == {"SPEAKER_00": "Alice", "SPEAKER_01": "Bob"}
    assert speakers_replace(job=job, turns=[]) == 0  # done: a redelivered task changes nothing


@pytest.mark.django_db
def test_contradicting_counts_a_missing_pipeline_and_viewers_are_refused(client, owner, member, board_meeting, pyannote_dir, settings):
    meeting = board_meeting
    url = reverse("reprocess:speakers", args=[meeting.pk])
    client.force_login(owner)
    settings.DIARIZATION_DIR = ""
    response = client.post(url, {}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and "not installed" in response.json()["error"]
    settings.DIARIZATION_DIR = pyannote_dir
    for bad, message in (({"exact": "2", "minimum": "1"}, "not both"), ({"minimum": "4", "maximum": "2"}, "larger than"),
                         ({"exact": "0"}, "between 1 and"), ({"exact": "two"}, "whole number")):
        response = client.post(url, bad, HTTP_ACCEPT="application/json")
        assert response.status_code == 400 and message in response.json()["error"], (bad, response.content)
    assert not ReprocessJob.objects.filter(meeting=meeting).exists()

    Sharing.objects.create(meeting=meeting, user=member, role=Sharing.Role.VIEW)
    client.force_login(member)
    assert client.post(url, {"exact": "2"}).status_code == 404
    page = client.get(reverse("meetings:detail", args=[meeting.pk])).content.decode()
    assert "Separate speakers again" not in page
    client.force_login(owner)
    page = client.get(reverse("meetings:detail", args=[meeting.pk])).content.decode()
    assert "Separate speakers again" in page


def test_counts_for_a_long_recording_cap_each_chunk_and_fold_extra_voices():
    assert chunk_counts({"num_speakers": 3}, 1) == {"num_speakers": 3}
    assert chunk_counts({"num_speakers": 3}, 4) == {"max_speakers": 3}
    assert chunk_counts({"min_speakers": 2}, 4) == {}
    linker = SpeakerLinker()
    voices = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.9, 0.1])]
    linker.centroids, linker.weights = [v / np.linalg.norm(v) for v in voices], [50.0, 40.0, 5.0]
    turns = [Turn(0, 1000, "SPEAKER_00"), Turn(1000, 2000, "SPEAKER_01"), Turn(2000, 2500, "SPEAKER_02")]
    assert [t.speaker for t in linker.fold(turns, 2)] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]


def test_the_counts_reach_each_chunk_and_a_long_recording_keeps_to_the_exact_number():
    """The pipeline is asked with the counts; across chunks the meeting ends with at most that many voices.
    (The pipeline here answers with chosen voices: the random-weight one hears one voice whatever it is asked.)"""
    from tests.reprocess.test_diarize import _chunk
    from transcription.reprocess.diarize import diarize_pcm

    asked = []
    answers = iter([{"A": [1, 0, 0], "B": [0, 1, 0]}, {"A": [0, 0, 1], "B": [0.1, 0.9, 0]}, {"A": [0.9, 0.1, 0]}])

    def pipeline(file, hook=None, **counts):
        asked.append(counts)
        return _chunk(next(answers), seconds=4.0)

    pcm = np.zeros(16_000 * 30, dtype=np.int16)  # three 10 s chunks
    turns = diarize_pcm([pipeline], pcm, chunk_s=10, counts={"num_speakers": 2})
    assert asked == [{"max_speakers": 2}] * 3
    assert len({t.speaker for t in turns}) == 2  # three voices heard, the quietest folded into its nearest
    asked.clear()
    answers = iter([{"A": [1, 0, 0]}])
    diarize_pcm([pipeline], pcm[:16_000 * 5], chunk_s=10, counts={"min_speakers": 2, "max_speakers": 3})
    assert asked == [{"min_speakers": 2, "max_speakers": 3}]
