"""Exports keep every segment's timing and speaker, in each format, and are audited."""
import io
import json
import re

import pytest
from django.urls import reverse

from meetings.models import AuditEvent
from tests.factories import meeting_with_transcript

LINES = [
    ("SPEAKER_00", 0, 4_250, "Opening remarks & agenda <draft>."),
    ("SPEAKER_01", 4_250, 9_004, "Quarterly revenue --> up four percent."),
    ("SPEAKER_00", 3_600_000, 3_603_456, "Closing, one hour in.\n\nThank you."),
]


@pytest.fixture
def meeting(owner):
    meeting = meeting_with_transcript(owner, title="Budget review", lines=LINES)
    speaker = meeting.speakers.get(label="SPEAKER_01")
    speaker.display_name = "Dana (CFO)"
    speaker.save()
    return meeting


def _ms(stamp: str) -> int:
    h, m, rest = stamp.replace(",", ".").split(":")
    s, ms = rest.split(".")
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)


def _cue_times(text: str) -> list[tuple[int, int]]:
    return [(_ms(a), _ms(b)) for a, b in re.findall(r"(\d\d:\d\d:\d\d[.,]\d{3}) --> (\d\d:\d\d:\d\d[.,]\d{3})", text)]


def _export(client, meeting, fmt):
    response = client.get(reverse("meetings:export", args=[meeting.pk, fmt]))
    assert response.status_code == 200
    day = meeting.started_or_created.strftime("%Y-%m-%d")
    assert response["Content-Disposition"] == f'attachment; filename="budget-review-{day}.{fmt}"'

    return response.content


def test_srt_and_webvtt_cues_start_with_their_words_and_stay_within_the_rules(client, owner, meeting):
    client.force_login(owner)
    for fmt in ("srt", "vtt"):
        times = _cue_times(_export(client, meeting, fmt).decode())
        # Each segment starts a cue (a new speaker; two frames after the cue before); long ones are cut
        # into cues of at most 7 s.
        for _, start, _, _ in LINES:
            assert any(0 <= s - start <= 84 for s, _ in times), (fmt, start)
        assert all(834 <= e - s <= 7000 for s, e in times) and all(a[1] < b[0] for a, b in zip(times, times[1:])), fmt


def test_subtitle_line_length_and_lines_are_options_and_bad_ones_are_refused(client, owner, meeting):
    client.force_login(owner)
    url = reverse("meetings:export", args=[meeting.pk, "srt"])
    srt = client.get(url, {"max_chars": 20, "max_lines": 1}).content.decode()
    text_lines = [line for line in srt.splitlines() if line and "-->" not in line and not line.isdigit()]
    assert text_lines and max(len(line) for line in text_lines) <= 20
    assert all(block.count("\n") == 2 for block in srt.strip().split("\n\n")), "one text line per cue"
    for bad in ({"max_chars": 5}, {"max_lines": 9}, {"max_chars": "wide"}):
        response = client.get(url, bad)
        assert response.status_code == 400 and "Subtitle lines hold" in response.content.decode()
    event = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, meeting_id=meeting.pk).first()
    assert event.detail["max_chars"] == 20 and event.detail["max_lines"] == 1


def test_export_file_names_come_from_the_title_and_date_in_safe_characters(client, owner, meeting):
    client.force_login(owner)
    meeting.title = 'Réunion "budget" ../../etc/passwd; 3/4'
    meeting.save()
    header = client.get(reverse("meetings:export", args=[meeting.pk, "txt"]))["Content-Disposition"]
    day = meeting.started_or_created.strftime("%Y-%m-%d")
    assert header == f"attachment; filename=\"reunion-budget-etcpasswd-34-{day}.txt\"; filename*=UTF-8''r%C3%A9union-budget-etcpasswd-34-{day}.txt"


def test_webvtt_escapes_markup_and_names_speakers_as_voices(client, owner, meeting):
    client.force_login(owner)
    vtt = _export(client, meeting, "vtt").decode()
    assert vtt.startswith("WEBVTT\n")
    assert "<v Dana (CFO)>Quarterly revenue --&gt; up four percent." in vtt.replace("\n", " ")
    srt = _export(client, meeting, "srt").decode()
    assert "\nDana (CFO): Quarterly revenue --> up four percent." in srt.replace("y\nr", "y r")
    assert "\nSPEAKER_00: Opening" in srt
    assert "&lt;draft&gt;" in vtt and "<draft>" not in vtt
    # A blank line inside a cue would end it early in every player.
    assert "Closing, one hour in. Thank you." in vtt.replace("\n", " ")
    assert "\n\n\n" not in vtt.split("WEBVTT", 1)[1].strip()


def test_json_keeps_ids_times_speakers_and_text(client, owner, meeting):
    client.force_login(owner)
    doc = json.loads(_export(client, meeting, "json"))
    assert doc["meeting"]["title"] == "Budget review"
    assert [(s["start_ms"], s["end_ms"], s["text"]) for s in doc["segments"]] == [(a, b, t) for _, a, b, t in LINES]
    assert doc["segments"][1]["speaker"] == "Dana (CFO)"
    assert {s["label"] for s in doc["speakers"]} == {"SPEAKER_00", "SPEAKER_01"}
    words = doc["segments"][1]["words"]
    assert " ".join(w["text"] for w in words) == doc["segments"][1]["text"]
    assert words[0]["start_ms"] == 4_250 and words[-1]["end_ms"] == 9_004
    assert all(a["end_ms"] <= b["start_ms"] for a, b in zip(words, words[1:]))


def test_text_and_word_exports_carry_time_stamps_and_names(client, owner, meeting):
    from docx import Document

    client.force_login(owner)
    txt = _export(client, meeting, "txt").decode()
    assert "[00:01:04] Dana (CFO): Quarterly revenue" not in txt  # a segment is stamped with its start
    assert "[00:00:04] Dana (CFO): Quarterly revenue --> up four percent." in txt
    assert "[01:00:00] SPEAKER_00: Closing" in txt
    paragraphs = [p.text for p in Document(io.BytesIO(_export(client, meeting, "docx"))).paragraphs]
    assert "[00:00:04] Dana (CFO): Quarterly revenue --> up four percent." in paragraphs


def test_every_export_is_audited_with_its_format(client, owner, meeting):
    client.force_login(owner)
    for fmt in ("txt", "srt", "vtt", "json", "docx"):
        _export(client, meeting, fmt)
    events = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, actor=owner, meeting_id=meeting.pk)
    assert sorted(e.detail["format"] for e in events) == ["docx", "json", "srt", "txt", "vtt"]


def test_an_unknown_format_is_not_found(client, owner, meeting):
    client.force_login(owner)
    assert client.get(reverse("meetings:export", args=[meeting.pk, "pdf"])).status_code == 404
