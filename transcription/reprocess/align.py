"""Speaker-attributed transcript segments from timed words and speaker turns.

Each word goes to the speaker whose turns overlap it most (a word inside a turn boundary goes to the
side holding more of it); words in no turn take the nearest turn's speaker within `snap_ms`, otherwise
none. Consecutive words of one speaker form a segment, which is also closed at a long pause or when it
grows past `max_segment_ms`, so that search hits and "play from here" land near the words.
"""
import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class TimedWord:
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Turn:
    start_ms: int
    end_ms: int
    speaker: str


@dataclass(frozen=True)
class AlignedSegment:
    start_ms: int
    end_ms: int
    speaker: str | None
    text: str


class TurnIndex:
    """Turns sorted by start, for overlap queries in O(log n + overlapping)."""

    def __init__(self, turns: list[Turn]):
        self.turns = sorted(turns, key=lambda t: (t.start_ms, t.end_ms))
        self.starts = [t.start_ms for t in self.turns]
        # Turns overlap (pyannote reports overlapped speech), so a query must look back past
        # earlier-starting turns that are still running; the longest turn bounds how far.
        self.longest = max((t.end_ms - t.start_ms for t in self.turns), default=0)

    def speaker_for(self, start_ms: int, end_ms: int, snap_ms: int) -> str | None:
        if not self.turns:
            return None
        lo = bisect.bisect_left(self.starts, start_ms - self.longest)
        hi = bisect.bisect_right(self.starts, end_ms)
        overlap: dict[str, int] = {}
        for turn in self.turns[lo:hi]:
            shared = min(end_ms, turn.end_ms) - max(start_ms, turn.start_ms)
            if shared > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0) + shared
        if overlap:
            return max(overlap.items(), key=lambda kv: (kv[1], kv[0]))[0]
        return self._nearest(start_ms, end_ms, snap_ms)

    def _nearest(self, start_ms: int, end_ms: int, snap_ms: int) -> str | None:
        i = bisect.bisect_left(self.starts, start_ms)
        best, best_gap = None, snap_ms + 1
        for turn in self.turns[max(0, i - 1 - _LOOKBACK):i + 1]:
            gap = max(turn.start_ms - end_ms, start_ms - turn.end_ms, 0)
            if gap < best_gap:
                best, best_gap = turn.speaker, gap
        return best


_LOOKBACK = 8  # turns before the word checked for the nearest end; overlapping turns are rare beyond this


def align(words: list[TimedWord], turns: list[Turn], *, snap_ms: int = 1000, pause_ms: int = 1500,
          max_segment_ms: int = 30_000) -> list[AlignedSegment]:
    """Words (in time order) grouped into segments, split at speaker changes, long pauses and length."""
    index = TurnIndex(turns)
    segments: list[AlignedSegment] = []
    current: list[TimedWord] = []
    current_speaker: str | None = None
    for word in words:
        speaker = index.speaker_for(word.start_ms, max(word.end_ms, word.start_ms + 1), snap_ms)
        if current and (
            speaker != current_speaker
            or word.start_ms - current[-1].end_ms > pause_ms
            or word.end_ms - current[0].start_ms > max_segment_ms
        ):
            segments.append(_segment(current, current_speaker))
            current = []
        if not current:
            current_speaker = speaker
        current.append(word)
    if current:
        segments.append(_segment(current, current_speaker))
    return segments


def _segment(words: list[TimedWord], speaker: str | None) -> AlignedSegment:
    text = " ".join(w.text for w in words if w.text)
    return AlignedSegment(words[0].start_ms, max(words[-1].end_ms, words[0].start_ms), speaker, text)


def read_rttm(text: str) -> list[Turn]:
    """Turns from RTTM lines: SPEAKER <file> 1 <start s> <duration s> <NA> <NA> <speaker> <NA> <NA>."""
    turns = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0] == "SPEAKER":
            start = round(float(parts[3]) * 1000)
            turns.append(Turn(start, start + round(float(parts[4]) * 1000), parts[7]))
    return turns


def write_rttm(turns: list[Turn], uri: str = "recording") -> str:
    return "".join(
        f"SPEAKER {uri} 1 {t.start_ms / 1000:.3f} {(t.end_ms - t.start_ms) / 1000:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in turns
    )
