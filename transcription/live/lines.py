"""Caption lines from the engine's token-by-token text: a partial line that grows, then a final.

The engine never takes words back, so a line can be made final as soon as it is complete. Where it
breaks is `meetings.segments.boundary`, the rule reprocessed transcripts follow too: a sentence
end (confirmed by the next word, so "3.5" or "Dr. Smith" do not break), a pause in the speech, a
maximum length; and the speaker stopping with nothing new coming (`flush`, on a timer and at the end).

Tokens become words as in the engine's transcripts: a token that starts with a space starts a word.
The rule is asked twice per word: when it starts (its start decides sentence and pause breaks at
once) and when the next word shows it complete (its end decides the length break), which gives the
same breaks as applying the rule to the finished words.
"""
from dataclasses import dataclass

from meetings.segments import SegmentRules, TimedWord, boundary, segment_text


@dataclass(frozen=True)
class Caption:
    final: bool
    text: str
    start_ms: int  # audio time, from the start of the stream
    end_ms: int
    words: tuple[TimedWord, ...] = ()


class LineBreaker:
    def __init__(self, rules: SegmentRules | None = None):
        self.rules = rules or SegmentRules(pause_ms=960, max_ms=15_000, max_chars=250)
        self.words: list[TimedWord] = []  # the complete words of the current line
        self.word: TimedWord | None = None  # the word still growing token by token

    @property
    def text(self) -> str:
        return segment_text(self._line())

    def add(self, text: str, start_ms: int, end_ms: int) -> list[Caption]:
        """New text from the engine; returns the captions to publish (finals first, then the partial)."""
        out: list[Caption] = []
        if self.word is not None and not text[:1].isspace():
            self.word = TimedWord(self.word.text + text, self.word.start_ms, end_ms)
        else:
            self._complete_word(out)
            if text.strip():
                self.word = TimedWord(text.strip(), start_ms, end_ms)
                if boundary(self.words, self.word, self.rules):
                    out.append(self._final(self.words))
                    self.words = []
        line = self._line()
        if line:
            out.append(Caption(False, segment_text(line), line[0].start_ms, line[-1].end_ms))
        return out

    def flush(self) -> list[Caption]:
        """The line so far as finals (two when its last word passes the length limit)."""
        out: list[Caption] = []
        self._complete_word(out)
        if self.words:
            out.append(self._final(self.words))
            self.words = []
        return out

    def _complete_word(self, out: list[Caption]) -> None:
        word, self.word = self.word, None
        if word is None:
            return
        if boundary(self.words, word, self.rules):
            out.append(self._final(self.words))
            self.words = []
        self.words.append(word)

    def _line(self) -> list[TimedWord]:
        return self.words + ([self.word] if self.word else [])

    @staticmethod
    def _final(words: list[TimedWord]) -> Caption:
        return Caption(True, segment_text(words), words[0].start_ms, words[-1].end_ms, tuple(words))
