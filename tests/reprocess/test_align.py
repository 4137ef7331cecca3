"""Splitting transcript segments at speaker turns, on hand-made words and on a two-voice meeting."""

from meetings.segments import SegmentRules
from transcription.reprocess.align import TimedWord, Turn, align, read_rttm, write_rttm


def words_every(ms: int, start: int, end: int) -> list[TimedWord]:
    return [TimedWord(f"w{t}", t, t + ms) for t in range(start, end, ms)]


def test_words_are_split_at_speaker_turns():
    words = words_every(200, 0, 4000)
    turns = [Turn(0, 2000, "A"), Turn(2000, 4000, "B")]
    segments = align(words, turns)
    assert [(s.speaker, s.start_ms, s.end_ms) for s in segments] == [("A", 0, 2000), ("B", 2000, 4000)]
    assert segments[0].text.split()[0] == "w0" and segments[1].text.split()[0] == "w2000"


def test_a_word_across_a_turn_boundary_goes_to_the_speaker_holding_most_of_it():
    segments = align([TimedWord("early", 900, 1300), TimedWord("late", 1900, 2300)], [Turn(0, 1000, "A"), Turn(1000, 3000, "B")])
    assert [(s.speaker, s.text) for s in segments] == [("B", "early late")]


def test_words_outside_every_turn_take_the_nearest_speaker_or_none():
    turns = [Turn(0, 1000, "A"), Turn(5000, 6000, "B")]
    segments = align([TimedWord("near", 1200, 1400), TimedWord("far", 3000, 3200)], turns, SegmentRules(pause_ms=10_000), snap_ms=500)
    assert [(s.speaker, s.text) for s in segments] == [("A", "near"), (None, "far")]


def test_overlapping_turns_go_to_the_longer_overlap():
    turns = [Turn(0, 10_000, "A"), Turn(4100, 4400, "B")]
    segments = align(words_every(500, 3000, 6000), turns)
    assert [s.speaker for s in segments] == ["A"]  # B's interjection covers less of any word than A


def test_without_turns_segments_have_no_speaker_and_break_at_pauses_and_length():
    words = words_every(100, 0, 1000) + words_every(100, 5000, 6000)
    segments = align(words, [], SegmentRules(max_ms=600))
    assert all(s.speaker is None for s in segments)
    assert [s.start_ms for s in segments] == [0, 600, 5000, 5600]


def test_rttm_round_trips():
    turns = [Turn(0, 1500, "SPEAKER_00"), Turn(1500, 2750, "SPEAKER_01")]
    assert read_rttm(write_rttm(turns)) == turns


def test_a_two_voice_meeting_is_split_where_the_voices_change(two_voices, tiny_engine):
    """Real token times from the engine (tiny model on espeak speech) against the known turns (RTTM)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    from transcription.reprocess.transcribe import transcribe_pcm

    _, pcm, reference = two_voices
    words = transcribe_pcm(tiny_engine, pcm, 960)
    assert len(words) > 20 and all(a.start_ms <= b.start_ms for a, b in zip(words, words[1:]))
    turns = read_rttm(write_rttm([Turn(s, e, spk) for s, e, spk in reference]))
    segments = align(words, turns)
    speakers = [s.speaker for s in segments]
    assert [k for k, _ in zip(speakers, speakers[1:] + [None]) if _ != k] == ["MALE", "FEMALE", "MALE", "FEMALE"]
    for seg in segments:  # a segment's speech is its own speaker's; only a word straddling a gap spills over
        shared = lambda t: max(0, min(seg.end_ms, t.end_ms) - max(seg.start_ms, t.start_ms))
        own = sum(shared(t) for t in turns if t.speaker == seg.speaker)
        # Each word goes to the speaker holding most of it; a longer segment is almost all its speaker's.
        assert own >= (0.8 if seg.end_ms - seg.start_ms >= 2000 else 0.5) * sum(shared(t) for t in turns), (seg, own)
    ref, hyp = Annotation(), Annotation()
    for t in turns:
        ref[Segment(t.start_ms / 1000, t.end_ms / 1000)] = t.speaker
    for s in segments:
        hyp[Segment(s.start_ms / 1000, s.end_ms / 1000)] = s.speaker
    der = DiarizationErrorRate(collar=0.5)(ref, hyp)
    assert der < 0.1, der


def test_transcription_progress_moves_as_each_segment_is_done_not_only_at_the_end(tmp_path, tiny_engine):
    """Several 8 s segments transcribed side by side in one group: progress is reported as they finish."""
    from tests.reprocess.conftest import build_meeting
    from transcription.reprocess.transcribe import transcribe_pcm

    pcm, _ = build_meeting(tmp_path, repeat=2)  # about 28 s: four segments, one group
    seen: list[float] = []
    transcribe_pcm(tiny_engine, pcm, 960, on_progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert len({round(f, 3) for f in seen if f < 1.0}) >= 2, seen  # not just "nothing, then everything"
