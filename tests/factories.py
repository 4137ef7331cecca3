"""Small builders for test data. They go through the same services as the application."""
import hashlib
from pathlib import Path

from django.core.files import File

from meetings import services
from meetings.models import Meeting, Recording, Segment
from meetings.segments import words_pack, words_spread


def meeting_with_transcript(owner, *, title="Ward round", language="en", lines=None) -> Meeting:
    """A meeting with two speakers and a short transcript; `lines` is [(speaker label, start_ms, end_ms, text)]."""
    meeting = services.meeting_create(owner=owner, title=title, language=language)
    lines = lines or [
        ("SPEAKER_00", 0, 4_200, "Good morning, let us review the patient in bed four."),
        ("SPEAKER_01", 4_200, 9_800, "Her blood pressure improved overnight after the new medication."),
        ("SPEAKER_00", 9_800, 15_000, "Then we keep the dose and check the kidney function tomorrow."),
    ]
    for label, start, end, text in lines:
        speaker = services.speaker_get_or_create(meeting=meeting, label=label)
        words = words_pack(words_spread(text.split(), start, end))
        services.segment_append(meeting=meeting, text=text, start_ms=start, end_ms=end, speaker=speaker, origin=Segment.Origin.REPROCESSED, words=words)
    return meeting


def attach_recording(meeting: Meeting, wav_path: Path, *, source=Recording.Source.UPLOAD) -> Recording:
    data = Path(wav_path).read_bytes()
    recording = Recording(meeting=meeting, source=source, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), content_type="audio/wav")
    with open(wav_path, "rb") as fh:
        recording.file.save("recording.wav", File(fh), save=True)
    return recording
