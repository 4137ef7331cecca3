"""Where a transcript segment ends: the one rule shared by live captions and reprocessed transcripts.

A segment ends before a word when
- the speaker changes (reprocessing, where speaker turns are known),
- the previous word ends a sentence (the model writes punctuation: "." "?" "!" "…" and their CJK forms;
  a short list of abbreviations such as "Dr." does not end one),
- no speech came for `pause_ms` (the model emits a token every 80 ms, but none with text in silence),
- or the segment would grow past `max_ms` or `max_chars`.

Both paths see the same words (a token that starts with a space starts a word) with the start of their
first token and the end of their last, so a live final and a reprocessed segment of the same speech
break at the same places. No Django imports: the engine's caption workers use this too.
"""
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

SENTENCE_END = (".", "!", "?", "…", "。", "！", "？", "．")
# Closing quotes and brackets may follow the full stop: `he said "no."` ends a sentence.
_CLOSERS = "\"'”’»)]」』"
# Lower-cased words whose full stop is not a sentence end (titles and the commonest Latin shorthands).
ABBREVIATIONS = frozenset({"dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "mt.", "no.", "vs.", "e.g.", "i.e.", "cf.", "approx.", "dept."})


@dataclass(frozen=True)
class TimedWord:
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class SegmentRules:
    pause_ms: int = 800
    max_ms: int = 15_000
    max_chars: int = 250


def rules_from_settings() -> SegmentRules:
    """The site's rules (settings SEGMENT_PAUSE_MS, SEGMENT_MAX_MS, SEGMENT_MAX_CHARS)."""
    from django.conf import settings

    return SegmentRules(pause_ms=settings.SEGMENT_PAUSE_MS, max_ms=settings.SEGMENT_MAX_MS, max_chars=settings.SEGMENT_MAX_CHARS)


def ends_sentence(text: str) -> bool:
    word = text.strip().rstrip(_CLOSERS)
    return word.endswith(SENTENCE_END) and word.lower() not in ABBREVIATIONS


def boundary(segment: Sequence[TimedWord], word: TimedWord, rules: SegmentRules, *, speaker_changed: bool = False) -> str | None:
    """Why `word` must start a new segment after `segment` ("speaker", "sentence", "pause", "length"), or None."""
    if not segment:
        return None
    last = segment[-1]
    if speaker_changed:
        return "speaker"
    if ends_sentence(last.text):
        return "sentence"
    if word.start_ms - last.end_ms >= rules.pause_ms:
        return "pause"
    chars = sum(len(w.text) + 1 for w in segment) + len(word.text)
    if word.end_ms - segment[0].start_ms > rules.max_ms or chars > rules.max_chars:
        return "length"
    return None


def split_segments(words: Iterable[TimedWord], rules: SegmentRules,
                   speaker_of: Callable[[TimedWord], str | None] | None = None) -> list[tuple[str | None, list[TimedWord]]]:
    """Words (in time order) grouped into (speaker, words) segments by `boundary`."""
    segments: list[tuple[str | None, list[TimedWord]]] = []
    current: list[TimedWord] = []
    speaker = None
    for word in words:
        if not word.text:
            continue
        word_speaker = speaker_of(word) if speaker_of else None
        if current and boundary(current, word, rules, speaker_changed=word_speaker != speaker):
            segments.append((speaker, current))
            current = []
        if not current:
            speaker = word_speaker
        current.append(word)
    if current:
        segments.append((speaker, current))
    return segments


def segment_text(words: Sequence[TimedWord]) -> str:
    return " ".join(w.text for w in words if w.text)


def words_pack(words: Iterable[TimedWord]) -> list[list]:
    """The compact form stored with a segment (Segment.words): [[text, start_ms, end_ms], ...]."""
    return [[w.text, int(w.start_ms), int(w.end_ms)] for w in words]


def words_unpack(rows: Iterable[Sequence]) -> list[TimedWord]:
    return [TimedWord(str(t), int(s), int(e)) for t, s, e in rows or ()]


def words_after_edit(old: Sequence[TimedWord], text: str, *, start_ms: int, end_ms: int) -> list[TimedWord]:
    """The words of corrected `text`, keeping the times of every word left as it was.

    Words are matched in order (difflib, as `diff` does for lines). A replaced run shares out the time
    of the words it replaces, by length; inserted words share the gap between their neighbours; with
    no old words (a segment stored before words were kept) the segment's own span is shared out.
    """
    from difflib import SequenceMatcher

    new = text.split()
    if not old:
        return words_spread(new, start_ms, end_ms)
    out: list[TimedWord] = []
    matcher = SequenceMatcher(a=[w.text for w in old], b=new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out += old[i1:i2]
        elif op == "replace":
            out += words_spread(new[j1:j2], old[i1].start_ms, old[i2 - 1].end_ms)
        elif op == "insert":
            left = old[i1 - 1].end_ms if i1 else start_ms
            right = old[i1].start_ms if i1 < len(old) else max(end_ms, left)
            out += words_spread(new[j1:j2], left, max(left, right))
    return out


def words_spread(texts: Sequence[str], start_ms: int, end_ms: int) -> list[TimedWord]:
    """Texts laid end to end over [start_ms, end_ms], each taking time in proportion to its length."""
    total = sum(len(t) for t in texts) or 1
    words, at, used = [], start_ms, 0
    for t in texts:
        used += len(t)
        end = start_ms + (end_ms - start_ms) * used // total
        words.append(TimedWord(t, at, end))
        at = end
    return words
