"""Speaker-attributed transcript segments from timed words and speaker turns.

Each word goes to the speaker whose turns overlap it most (a word inside a turn boundary goes to the
side holding more of it); words in no turn take the nearest turn's speaker within `snap_ms`, otherwise
none. Segments then end where `meetings.segments.boundary` says (speaker change, sentence end,
pause, maximum length), the same rule live captions follow, and keep their words with their times.
"""
import bisect
from dataclasses import dataclass, field

from meetings.segments import SegmentRules, TimedWord, segment_text, split_segments

__all__ = ["TimedWord", "Turn", "AlignedSegment", "TurnIndex", "align", "read_rttm", "write_rttm"]


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
    words: tuple[TimedWord, ...] = field(default=(), compare=False)


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


def align(words: list[TimedWord], turns: list[Turn], rules: SegmentRules | None = None, *, snap_ms: int = 1000) -> list[AlignedSegment]:
    """Words (in time order) grouped into segments at speaker changes, sentence ends, pauses and length."""
    index = TurnIndex(turns)

    def speaker_of(word: TimedWord) -> str | None:
        return index.speaker_for(word.start_ms, max(word.end_ms, word.start_ms + 1), snap_ms)

    return [
        AlignedSegment(group[0].start_ms, max(group[-1].end_ms, group[0].start_ms), speaker, segment_text(group), tuple(group))
        for speaker, group in split_segments(words, rules or SegmentRules(), speaker_of)
    ]


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
