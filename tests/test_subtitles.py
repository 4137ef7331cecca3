"""Subtitle exports follow the timed-text rules: checked cue by cue by an independent validator."""
import pytest

from meetings import exports
from meetings.models import Meeting, Segment, Speaker
from meetings.segments import TimedWord, segment_text, words_pack
from meetings.subtitles import SubtitleOptions, break_lines, subtitle_cues
from tests.subtitle_rules import parse, summary, violations
from tests.transcripts import synthetic_segments


def unsaved_segments(segments):
    """Segment rows as the exports read them (speakers preloaded), without a database."""
    speakers = {}
    rows = []
    for name, words in segments:
        speaker = speakers.setdefault(name, Speaker(label=f"SPEAKER_{len(speakers):02d}", display_name=name))
        rows.append(Segment(start_ms=words[0].start_ms, end_ms=words[-1].end_ms, text=segment_text(words), words=words_pack(words), speaker=speaker))
    return rows


def check(segments, fmt, **options):
    rows = unsaved_segments(segments)
    render = exports.to_srt if fmt == "srt" else exports.to_vtt
    text = render(Meeting(title="t"), rows, SubtitleOptions(**options)).decode()
    names = {name for name, _ in segments}
    cues = parse(text, fmt, names)
    turns = [(name, segment_text(words)) for name, words in segments]
    limits = {k: v for k, v in options.items() if k in ("max_chars", "max_lines")}
    return cues, violations(cues, turns=turns, fmt=fmt, **limits)


@pytest.fixture(scope="module")
def hour():
    return synthetic_segments(hours=1.0, seed=3)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_an_hour_of_transcript_breaks_no_rule(hour, fmt):
    cues, found = check(hour, fmt)
    assert found == [], found[:20]
    facts = summary(cues, found)
    assert facts["max_line_chars"] <= 42 and facts["max_lines"] <= 2 and facts["cues"] > 500
    assert 0.833 <= facts["min_duration_s"] and facts["max_duration_s"] <= 7.0


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_line_length_and_lines_per_cue_are_export_options(hour, fmt):
    cues, found = check(hour[:300], fmt, max_chars=32, max_lines=1)
    assert found == [], found[:20]
    assert max(len(c.lines) for c in cues) == 1


def test_the_validator_reports_broken_rules():
    """A file that breaks each rule once: the validator must name every one (else its silence means nothing)."""
    bad = "WEBVTT\n\n1\n00:00:00.000 --> 00:00:00.500\n<v Ann>short\n\n2\n00:00:00.400 --> 00:00:09.000\n" \
          "<v Ann>a line that is much longer than forty-two characters in all\nsecond\nthird\n\n" \
          "3\n00:00:09.100 --> 00:00:10.000\n<v Ann>one <v Bob>two\n"
    found = violations(parse(bad, "vtt"), turns=[("Ann", "short a line that is much longer than forty-two characters in all second third one"), ("Bob", "two")])
    for expected in ("under 5/6 s", "over 7 s", "starts before cue 1 ends", "3 lines", "line of", "more than one speaker", "speaker change inside a cue"):
        assert any(expected in v for v in found), (expected, found)


def test_lines_break_at_phrase_boundaries_not_after_an_article():
    lines = break_lines("We reviewed the budget for the ward, and the board agreed to the new rota".split(), 42, 2)
    assert lines == ["We reviewed the budget for the ward,", "and the board agreed to the new rota"]
    lines = break_lines("Please send the cardiology numbers to the finance office".split(), 42, 2)
    assert not lines[0].endswith((" the", " to")) and all(len(x) <= 42 for x in lines)


def test_every_speaker_change_starts_a_cue_and_a_short_answer_stays_readable():
    runs = [("Ann", [TimedWord("Shall", 0, 200), TimedWord("we", 200, 300), TimedWord("start?", 300, 600)]),
            ("Bob", [TimedWord("Yes.", 650, 900)]),
            ("Ann", [TimedWord("Good.", 950, 1200)])]
    cues = subtitle_cues(runs)
    assert [(c.speaker, c.text) for c in cues] == [("Ann", "Shall we start?"), ("Bob", "Yes."), ("Ann", "Good.")]
    assert all(c.end_ms - c.start_ms >= 834 for c in cues)
    assert all(a.end_ms + 84 <= b.start_ms for a, b in zip(cues, cues[1:]))


def test_japanese_lines_hold_sixteen_characters():
    words = [TimedWord(t, i * 400, i * 400 + 350) for i, t in enumerate(["ありがとうございます", "明日までに", "病院の数字を", "送ります。"])]
    cues = subtitle_cues([("Chen", words)])
    assert all(len(line) <= 16 for c in cues for line in c.lines)
    assert "".join(c.text.replace(" ", "") for c in cues) == "".join(w.text for w in words)


def test_srt_names_a_speaker_at_each_turn_and_vtt_as_a_voice_on_every_cue(hour):
    rows = unsaved_segments(hour[:40])
    srt = exports.to_srt(Meeting(title="t"), rows).decode()
    vtt = exports.to_vtt(Meeting(title="t"), rows).decode()
    first = hour[0][0]
    assert f"\n{first}: " in srt.split("\n\n")[0] + "\n"
    assert vtt.count("<v ") == vtt.count(" --> ")
