"""Caption lines from the engine's token-by-token text: a partial line that grows, then a final.

The engine never takes words back, so a line can be made final as soon as it is complete; the
question is only where to break. A line ends at a sentence end (confirmed by the next word, so "3.5"
or "Dr. Smith" do not break), at a pause in the speech, when it grows too long for a caption display,
or when the speaker stops and nothing new comes (`flush`, called on a timer and at the end).
"""
from dataclasses import dataclass

SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")


@dataclass(frozen=True)
class Caption:
    final: bool
    text: str
    start_ms: int  # audio time, from the start of the stream
    end_ms: int


class LineBreaker:
    def __init__(self, *, max_chars: int = 90, pause_ms: int = 960):
        self.max_chars = max_chars
        self.pause_ms = pause_ms
        self.text = ""
        self.start_ms = self.end_ms = 0
        self.sentence_ended = False

    def add(self, text: str, start_ms: int, end_ms: int) -> list[Caption]:
        """New text from the engine; returns the captions to publish (finals first, then the partial)."""
        out = []
        new_word = text[:1].isspace()
        if self.text.strip() and (
            start_ms - self.end_ms >= self.pause_ms
            or (new_word and (self.sentence_ended or len(self.text) + len(text) > self.max_chars))
        ):
            out.append(self._finish())
        if not self.text.strip():
            self.text, self.start_ms = "", start_ms
            text = text.lstrip()
        self.text += text
        self.end_ms = end_ms
        self.sentence_ended = self.text.rstrip().endswith(SENTENCE_END)
        if self.text.strip():
            out.append(Caption(False, self.text.strip(), self.start_ms, self.end_ms))
        return out

    def flush(self) -> Caption | None:
        """The line so far as a final, if there is one."""
        return self._finish() if self.text.strip() else None

    def _finish(self) -> Caption:
        caption = Caption(True, self.text.strip(), self.start_ms, self.end_ms)
        self.text, self.sentence_ended = "", False
        return caption
