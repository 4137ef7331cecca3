"""Transcript segments end at sentences, pauses, speaker turns and a maximum length, live and reprocessed alike.

The meeting below is spoken by two espeak-ng voices with known sentence ends and pauses. Its words are
timed from the audio (each sentence's voiced span shared out by word length, on the engine's 80 ms
token grid) rather than transcribed: these tests are about where segments break, which the random
test model (it writes no punctuation and never falls silent) cannot exercise.
"""
import random

import numpy as np
import pytest

from meetings import services
from meetings.models import Segment
from meetings.segments import (
    SegmentRules,
    TimedWord,
    boundary,
    ends_sentence,
    split_segments,
    words_after_edit,
    words_spread,
    words_unpack,
)
from tests.speech import make_speech_wav, read_wav
from transcription.live.lines import LineBreaker
from transcription.reprocess.align import Turn, align

STEP = 80
RULES = SegmentRules(pause_ms=700, max_ms=6000, max_chars=250)
# (voice, speaker, text, silence after in ms). A "|" is a pause inside a sentence (no punctuation).
SCRIPT = [
    ("en+m3", "MALE", "Good morning everyone. The budget review starts now.", 500),
    ("en+f3", "FEMALE", "Thank you. The hospital figures are ready | for the board", 1200),
    ("en+f3", "FEMALE", "and the wards sent theirs on time.", 400),
    ("en+m3", "MALE", "Please send the cardiology numbers, the oncology numbers, the radiology numbers and the pharmacy numbers "
                      "to the finance office before Friday", 600),
    ("en+f3", "FEMALE", "Dr. Smith will send them tomorrow morning!", 300),
]


def _voiced_span(pcm: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 500)
    return int(loud[0]) * 1000 // 16_000, int(loud[-1]) * 1000 // 16_000


def _on_grid(ms: int) -> int:
    return ms // STEP * STEP


@pytest.fixture(scope="module")
def meeting_words(tmp_path_factory):
    """(words, turns, expected break times in ms): words on the token grid, with each word's speaker."""
    folder = tmp_path_factory.mktemp("segments")
    words, speakers, turns, breaks, at = [], [], [], [], 0
    n = 0
    for voice, speaker, text, after_ms in SCRIPT:
        for part in text.split(" | "):
            pcm, _ = read_wav(make_speech_wav(folder / f"{n}.wav", part, voice=voice))
            n += 1
            first, last = _voiced_span(pcm)
            spread = words_spread(part.split(), at + first, at + last)
            words += [TimedWord(w.text, _on_grid(w.start_ms), max(_on_grid(w.end_ms), _on_grid(w.start_ms) + STEP)) for w in spread]
            speakers += [speaker] * len(spread)
            turns.append(Turn(at + first, at + last, speaker))
            at += len(pcm) * 1000 // 16_000 + (1000 if part != text.split(" | ")[-1] else after_ms)
            breaks.append(words[-1].end_ms)  # a pause or a speaker turn follows every part
    sentence_ends = [w.end_ms for w in words if ends_sentence(w.text)]
    return words, speakers, turns, sorted(set(breaks[:-1]) | set(sentence_ends[:-1]))


# --- The rule -------------------------------------------------------------------------------------------

def w(text, start, end):
    return TimedWord(text, start, end)


def test_each_rule_names_its_reason():
    seg = [w("Good", 0, 300), w("morning.", 300, 700)]
    assert boundary(seg, w("Next", 800, 900), RULES) == "sentence"
    assert boundary([w("Good", 0, 300)], w("morning", 1000, 1300), RULES) == "pause"
    assert boundary([w("Good", 0, 300)], w("morning", 400, 7000), RULES) == "length"
    assert boundary([w("Good", 0, 300)], w("morning", 300, 600), RULES, speaker_changed=True) == "speaker"
    assert boundary([w("Good", 0, 300)], w("morning", 300, 600), RULES) is None
    assert boundary([], w("Good", 0, 300), RULES) is None


def test_abbreviations_and_decimals_do_not_end_a_sentence_but_quotes_after_a_stop_do():
    assert not ends_sentence("Dr.") and not ends_sentence("3.5") and not ends_sentence("e.g.")
    assert ends_sentence('"no."') and ends_sentence("ready?") and ends_sentence("好。")


def test_live_lines_break_exactly_where_reprocessed_segments_do():
    """Random words in random token pieces: the live finals are the batch segments, word for word."""
    rng = random.Random(7)
    words, at = [], 0
    for i in range(400):
        at += rng.choice([0, 0, 0, 80, 160, 800, 1600])
        text = rng.choice(["alpha", "beta", "gamma.", "delta", "Dr.", "3.5", "epsilon?", "zeta"])
        length = rng.randint(1, 6) * STEP
        words.append(w(text, at, at + length))
        at += length
    live = LineBreaker(RULES)
    finals = []
    for word in words:
        if len(word.text) > 3 and word.end_ms - word.start_ms > STEP:  # a word of two tokens
            pieces = [(" " + word.text[:2], word.start_ms, word.start_ms + STEP), (word.text[2:], word.start_ms + STEP, word.end_ms)]
        else:
            pieces = [(" " + word.text, word.start_ms, word.end_ms)]
        for piece in pieces:
            finals += [c for c in live.add(*piece) if c.final]
    finals += live.flush()
    batch = split_segments(words, RULES)
    assert [[x.text for x in c.words] for c in finals] == [[x.text for x in g] for _, g in batch]
    assert [(c.start_ms, c.end_ms) for c in finals] == [(g[0].start_ms, g[-1].end_ms) for _, g in batch]


# --- A two-voice meeting, live and reprocessed -----------------------------------------------------------

def _check_breaks(starts_ends: list[tuple[int, int]], expected: list[int]) -> None:
    """Every segment is at most the maximum, and segment ends sit within 300 ms of the known breaks."""
    assert all(e - s <= RULES.max_ms for s, e in starts_ends), starts_ends
    ends = [e for _, e in starts_ends[:-1]]
    for known in expected:
        assert min(abs(e - known) for e in ends) <= 300, (known, ends)
    # The only other breaks are the length rule's, inside the one long sentence.
    extra = [e for e in ends if min(abs(e - k) for k in expected) > 300]
    assert len(extra) <= 2, extra


def test_live_finals_end_at_sentences_and_pauses(meeting_words):
    words, _, _, expected = meeting_words
    live = LineBreaker(RULES)
    finals = []
    for word in words:
        pieces = [word.text[k:k + 3] for k in range(0, len(word.text), 3)]  # tokens of up to three characters
        steps = (word.end_ms - word.start_ms) // STEP
        for k, piece in enumerate(pieces):  # spread over the word's 80 ms steps, the last ending with the word
            start = word.start_ms + STEP * (k * steps // len(pieces))
            end = word.end_ms if k == len(pieces) - 1 else max(start + STEP, word.start_ms + STEP * ((k + 1) * steps // len(pieces)))
            finals += [c for c in live.add((" " if k == 0 else "") + piece, start, end) if c.final]
    finals += live.flush()
    assert " ".join(c.text for c in finals) == " ".join(x.text for x in words)
    _check_breaks([(c.start_ms, c.end_ms) for c in finals], expected)
    assert "Dr. Smith will send them tomorrow morning!" in [c.text for c in finals]


@pytest.mark.django_db
def test_reprocessed_segments_end_at_sentences_pauses_and_turns_and_keep_their_words(meeting_words, owner):
    from meetings.models import Recording, ReprocessJob
    from transcription.reprocess.store import transcript_replace

    words, speakers, turns, expected = meeting_words
    segments = align(words, turns, RULES)
    _check_breaks([(s.start_ms, s.end_ms) for s in segments], expected)
    meeting = services.meeting_create(owner=owner, title="Budget review")
    recording = Recording.objects.create(meeting=meeting, source=Recording.Source.UPLOAD, sha256="x" * 64)
    job = ReprocessJob.objects.create(meeting=meeting, recording=recording)
    transcript_replace(job=job, segments=segments)
    stored = list(Segment.objects.filter(meeting=meeting).select_related("speaker"))
    assert [x for s in stored for x in words_unpack(s.words)] == words
    assert [s.speaker.label for s in stored for _ in s.words] == speakers
    for s in stored:
        assert s.text == " ".join(t for t, _, _ in s.words) and s.start_ms == s.words[0][1] and s.end_ms == s.words[-1][2]


# --- Corrections ----------------------------------------------------------------------------------------

def test_a_correction_keeps_the_times_of_the_words_it_leaves_alone():
    old = [w("the", 0, 200), w("patient", 200, 600), w("in", 600, 700), w("bad", 700, 900), w("four", 900, 1200)]
    new = words_after_edit(old, "the patient in bed number four today", start_ms=0, end_ms=1200)
    assert [x.text for x in new] == ["the", "patient", "in", "bed", "number", "four", "today"]
    assert new[:3] == old[:3] and new[5] == old[4]
    assert (new[3].start_ms, new[4].end_ms) == (700, 900) and new[3].end_ms == new[4].start_ms
    assert new[6].start_ms == 1200 and all(a.end_ms <= b.start_ms for a, b in zip(new, new[1:]))


@pytest.mark.django_db
def test_editing_a_segment_through_the_page_keeps_unchanged_word_times(client, owner):
    from tests.factories import meeting_with_transcript

    meeting = meeting_with_transcript(owner)
    segment = meeting.segments.first()
    before = words_unpack(segment.words)
    client.force_login(owner)
    text = segment.text.replace("review", "discuss")
    response = client.post(f"/meetings/{meeting.pk}/segments/{segment.pk}", {"text": text}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    segment.refresh_from_db()
    after = words_unpack(segment.words)
    assert [x.text for x in after] == text.split()
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert changed == [text.split().index("discuss")]
    assert (after[changed[0]].start_ms, after[changed[0]].end_ms) == (before[changed[0]].start_ms, before[changed[0]].end_ms)
    assert segment.pk in [s.pk for s in Segment.objects.filter(search_vector="discuss")]
