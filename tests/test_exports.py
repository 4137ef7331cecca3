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
    ("SPEAKER_01", 4_250, 65_004, "Quarterly revenue --> up four percent."),
    ("SPEAKER_00", 3_600_000, 3_723_456, "Closing, one hour in.\n\nThank you."),
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
    assert f"meeting-{meeting.pk}.{fmt}" in response["Content-Disposition"]
    return response.content


def test_srt_and_webvtt_round_trip_every_timing(client, owner, meeting):
    client.force_login(owner)
    expected = [(start, end) for _, start, end, _ in LINES]
    for fmt in ("srt", "vtt"):
        assert _cue_times(_export(client, meeting, fmt).decode()) == expected, fmt


def test_webvtt_escapes_markup_and_names_speakers_as_voices(client, owner, meeting):
    client.force_login(owner)
    vtt = _export(client, meeting, "vtt").decode()
    assert vtt.startswith("WEBVTT\n")
    assert "<v Dana (CFO)>Quarterly revenue --&gt; up four percent." in vtt
    assert "&lt;draft&gt;" in vtt and "<draft>" not in vtt
    # A blank line inside a cue would end it early in every player.
    assert "Closing, one hour in. Thank you." in vtt


def test_json_keeps_ids_times_speakers_and_text(client, owner, meeting):
    client.force_login(owner)
    doc = json.loads(_export(client, meeting, "json"))
    assert doc["meeting"]["title"] == "Budget review"
    assert [(s["start_ms"], s["end_ms"], s["text"]) for s in doc["segments"]] == [(a, b, t) for _, a, b, t in LINES]
    assert doc["segments"][1]["speaker"] == "Dana (CFO)"
    assert {s["label"] for s in doc["speakers"]} == {"SPEAKER_00", "SPEAKER_01"}


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
