"""What a stream reports, and what a transcript holds. Plain frozen dataclasses; `as_dict()` is JSON-ready."""
import time
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TokenTime:
    """One emitted token and the 80 ms of audio it was emitted for (relative to the stream's start)."""

    token_id: int
    text: str  # "" for special tokens
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Word:
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Transcript:
    text: str
    tokens: tuple[TokenTime, ...]
    delay_ms: int
    duration_ms: int

    def words(self) -> list[Word]:
        """Tokens grouped into words: a token whose text starts with a space begins a new word."""
        words: list[list[TokenTime]] = []
        for tok in self.tokens:
            if not tok.text:
                continue
            if not words or tok.text[0].isspace():
                words.append([tok])
            else:
                words[-1].append(tok)
        return [Word("".join(t.text for t in w).strip(), w[0].start_ms, w[-1].end_ms) for w in words]


@dataclass(frozen=True)
class Delta:
    """New caption text; `start_ms`/`end_ms` span the audio of the tokens that made it."""

    stream_id: int
    text: str
    start_ms: int
    end_ms: int
    lag_ms: float  # how long the audio for this text waited in the engine before being transcribed
    made_at: float = field(default_factory=time.time)  # wall clock (s) when the step that made it ended
    kind: str = field(default="delta", init=False)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Final:
    stream_id: int
    transcript: Transcript
    kind: str = field(default="final", init=False)

    @property
    def text(self) -> str:
        return self.transcript.text

    def as_dict(self) -> dict:
        return {"kind": self.kind, "stream_id": self.stream_id, "text": self.text}


@dataclass(frozen=True)
class Error:
    stream_id: int
    message: str
    kind: str = field(default="error", init=False)

    def as_dict(self) -> dict:
        return asdict(self)
