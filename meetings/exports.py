"""Transcript exports. Each takes a meeting and its segments (speakers preloaded) and returns bytes."""
import io
import json
from dataclasses import dataclass
from typing import Callable, Iterable

from .models import Meeting, Segment


def clock(ms: int, *, sep: str = ".", hours: bool = True) -> str:
    """12_345_678 ms -> '03:25:45.678' (SRT uses ',' as the decimal separator)."""
    ms = max(0, int(ms))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    head = f"{h:02d}:" if hours or h else ""
    return f"{head}{m:02d}:{s:02d}{sep}{ms:03d}"


def _speaker(segment: Segment) -> str:
    return segment.speaker.name if segment.speaker_id else ""


def _cue_text(segment: Segment) -> str:
    # A blank line would end the cue early in SRT and WebVTT players.
    text = " ".join(segment.text.split())
    speaker = _speaker(segment)
    return f"{speaker}: {text}" if speaker else text


def to_txt(meeting: Meeting, segments: Iterable[Segment]) -> bytes:
    lines = [meeting.title, ""]
    for seg in segments:
        speaker = f" {_speaker(seg)}:" if seg.speaker_id else ""
        lines.append(f"[{clock(seg.start_ms, hours=True)[:8]}]{speaker} {seg.text.strip()}")
    return ("\n".join(lines) + "\n").encode()


def to_srt(meeting: Meeting, segments: Iterable[Segment]) -> bytes:
    blocks = []
    for n, seg in enumerate(segments, start=1):
        blocks.append(f"{n}\n{clock(seg.start_ms, sep=',')} --> {clock(seg.end_ms, sep=',')}\n{_cue_text(seg)}\n")
    return "\n".join(blocks).encode()


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "--&gt;")


def to_vtt(meeting: Meeting, segments: Iterable[Segment]) -> bytes:
    blocks = ["WEBVTT\n"]
    for seg in segments:
        speaker = _speaker(seg)
        text = _vtt_escape(" ".join(seg.text.split()))
        if speaker:
            text = f"<v {_vtt_escape(speaker)}>{text}"
        blocks.append(f"{seg.pk}\n{clock(seg.start_ms)} --> {clock(seg.end_ms)}\n{text}\n")
    return "\n".join(blocks).encode()


def to_json(meeting: Meeting, segments: Iterable[Segment]) -> bytes:
    segments = list(segments)
    speakers = {seg.speaker_id: seg.speaker for seg in segments if seg.speaker_id}
    doc = {
        "meeting": {
            "id": meeting.pk,
            "title": meeting.title,
            "language": meeting.language or None,
            "started_at": meeting.started_at.isoformat() if meeting.started_at else None,
            "ended_at": meeting.ended_at.isoformat() if meeting.ended_at else None,
        },
        "speakers": [{"id": s.pk, "label": s.label, "name": s.name} for s in speakers.values()],
        "segments": [
            {
                "id": seg.pk,
                "start_ms": seg.start_ms,
                "end_ms": seg.end_ms,
                "speaker_id": seg.speaker_id,
                "speaker": _speaker(seg) or None,
                "text": seg.text,
                "origin": seg.origin,
                "model_version": seg.model_version or None,
                "edited": seg.edited_at is not None,
            }
            for seg in segments
        ],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2).encode()


def to_docx(meeting: Meeting, segments: Iterable[Segment]) -> bytes:
    from docx import Document  # imported here: only this export needs it

    doc = Document()
    doc.core_properties.title = meeting.title
    doc.add_heading(meeting.title, level=1)
    when = meeting.started_or_created
    doc.add_paragraph(f"{when:%Y-%m-%d %H:%M %Z}")
    for seg in segments:
        para = doc.add_paragraph()
        para.add_run(f"[{clock(seg.start_ms)[:8]}] ").italic = True
        if seg.speaker_id:
            para.add_run(f"{_speaker(seg)}: ").bold = True
        para.add_run(seg.text)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class ExportFormat:
    render: Callable[[Meeting, Iterable[Segment]], bytes]
    content_type: str
    extension: str
    label: str


FORMATS = {
    "txt": ExportFormat(to_txt, "text/plain; charset=utf-8", "txt", "Plain text"),
    "srt": ExportFormat(to_srt, "application/x-subrip; charset=utf-8", "srt", "SubRip subtitles (SRT)"),
    "vtt": ExportFormat(to_vtt, "text/vtt; charset=utf-8", "vtt", "WebVTT captions"),
    "json": ExportFormat(to_json, "application/json", "json", "JSON"),
    "docx": ExportFormat(to_docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", "Word document (DOCX)"),
}
