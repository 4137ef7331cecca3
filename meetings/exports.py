"""Transcript exports. Each takes a meeting and its segments (speakers preloaded) and returns bytes."""
import io
import json
from dataclasses import dataclass
from typing import Callable, Iterable

from .models import Meeting, Segment
from .segments import TimedWord, words_spread, words_unpack
from .subtitles import SubtitleOptions, subtitle_cues


def clock(ms: int, *, sep: str = ".", hours: bool = True) -> str:
    """12_345_678 ms -> '03:25:45.678' (SRT uses ',' as the decimal separator)."""
    ms = max(0, int(ms))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    head = f"{h:02d}:" if hours or h else ""
    return f"{head}{m:02d}:{s:02d}{sep}{ms:03d}"


def _speaker(segment: Segment) -> str:
    return segment.speaker.name if segment.speaker else ""


def segment_words(segment: Segment) -> list[TimedWord]:
    """The segment's timed words; a segment stored before words were kept shares out its own span."""
    return words_unpack(segment.words) or words_spread(segment.text.split(), segment.start_ms, segment.end_ms)


def _cues(segments: Iterable[Segment], options: SubtitleOptions | None, *, name_prefix: bool):
    runs = ((_speaker(seg), segment_words(seg)) for seg in segments)
    return subtitle_cues(runs, options or SubtitleOptions(), name_prefix=name_prefix)


def to_txt(meeting: Meeting, segments: Iterable[Segment]) -> bytes:
    lines = [meeting.title, ""]
    for seg in segments:
        speaker = f" {_speaker(seg)}:" if seg.speaker_id else ""
        lines.append(f"[{clock(seg.start_ms, hours=True)[:8]}]{speaker} {seg.text.strip()}")
    return ("\n".join(lines) + "\n").encode()


def to_srt(meeting: Meeting, segments: Iterable[Segment], options: SubtitleOptions | None = None) -> bytes:
    """SubRip: speakers as a "Name: " prefix on the first cue of each turn."""
    blocks = []
    for n, cue in enumerate(_cues(segments, options, name_prefix=True), start=1):
        # A blank line would end the cue early in SRT players; lines never hold one.
        blocks.append(f"{n}\n{clock(cue.start_ms, sep=',')} --> {clock(cue.end_ms, sep=',')}\n" + "\n".join(cue.lines) + "\n")
    return "\n".join(blocks).encode()


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "--&gt;")


def to_vtt(meeting: Meeting, segments: Iterable[Segment], options: SubtitleOptions | None = None) -> bytes:
    """WebVTT: speakers as voices, `<v Name>` on every cue of theirs."""
    blocks = ["WEBVTT\n"]
    for n, cue in enumerate(_cues(segments, options, name_prefix=False), start=1):
        lines = [_vtt_escape(line) for line in cue.lines]
        if cue.speaker:
            # A voice name ends at ">"; the escaped form keeps a name with one from ending it early.
            lines[0] = f"<v {_vtt_escape(cue.speaker)}>{lines[0]}"
        blocks.append(f"{n}\n{clock(cue.start_ms)} --> {clock(cue.end_ms)}\n" + "\n".join(lines) + "\n")
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
                "words": [{"text": w.text, "start_ms": w.start_ms, "end_ms": w.end_ms} for w in segment_words(seg)],
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


def subtitle_options(query) -> SubtitleOptions:
    """Line length and lines per cue from an export's query string; ValueError when out of range."""
    defaults = SubtitleOptions()
    problem = f"Subtitle lines hold {MIN_LINE_CHARS} to {MAX_LINE_CHARS} characters, and a cue 1 to {MAX_CUE_LINES} lines."
    try:
        chars = int(query.get("max_chars") or defaults.max_chars)
        lines = int(query.get("max_lines") or defaults.max_lines)
    except ValueError:
        raise ValueError(problem) from None
    if not (MIN_LINE_CHARS <= chars <= MAX_LINE_CHARS and 1 <= lines <= MAX_CUE_LINES):
        raise ValueError(problem)
    # CJK lines keep their narrower width unless the chosen width is narrower still.
    return SubtitleOptions(max_chars=chars, max_lines=lines, cjk_max_chars=min(defaults.cjk_max_chars, chars))


MIN_LINE_CHARS, MAX_LINE_CHARS, MAX_CUE_LINES = 16, 80, 3


def export_filename(meeting: Meeting, extension: str, *, allow_unicode: bool = False) -> str:
    """"Budget review 3/4" of 30 Nov 2026 -> budget-review-34-2026-11-30.srt: letters, digits and hyphens only."""
    from django.utils.text import slugify

    title = slugify(meeting.title, allow_unicode=allow_unicode)[:80].strip("-") or "meeting"
    return f"{title}-{meeting.started_or_created:%Y-%m-%d}.{extension}"


def export_disposition(meeting: Meeting, extension: str) -> str:
    """Content-Disposition naming the file after the meeting: ASCII for every client, UTF-8 for those that read it."""
    from urllib.parse import quote

    ascii_name = export_filename(meeting, extension)
    unicode_name = export_filename(meeting, extension, allow_unicode=True)
    header = f'attachment; filename="{ascii_name}"'
    return header if unicode_name == ascii_name else f"{header}; filename*=UTF-8''{quote(unicode_name)}"


@dataclass(frozen=True)
class ExportFormat:
    render: Callable[..., bytes]
    content_type: str
    extension: str
    label: str
    subtitles: bool = False  # takes SubtitleOptions (line length and lines per cue)


FORMATS = {
    "txt": ExportFormat(to_txt, "text/plain; charset=utf-8", "txt", "Plain text"),
    "srt": ExportFormat(to_srt, "application/x-subrip; charset=utf-8", "srt", "SubRip subtitles (SRT)", subtitles=True),
    "vtt": ExportFormat(to_vtt, "text/vtt; charset=utf-8", "vtt", "WebVTT captions", subtitles=True),
    "json": ExportFormat(to_json, "application/json", "json", "JSON"),
    "docx": ExportFormat(to_docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", "Word document (DOCX)"),
}
