"""Subtitle cues from timed words, following the rules streaming services publish for timed text.

Netflix's timed-text style guide (and the BBC's, in most points): at most 42 characters a line (16 for
Chinese, Japanese and Korean), at most two lines, each cue on screen between 5/6 s and 7 s, reading
speed at most about 20 characters a second, lines broken at phrase boundaries, and a new cue whenever
the speaker changes. Cues are built from the words' own times, not from segments:

1. Words are taken in speaker runs; a run never shares a cue with another speaker.
2. A run is packed greedily into cues: a cue closes when the next word would not fit its lines, would
   keep it on screen past 7 s, or comes after a pause; a forced close moves back to the last phrase
   boundary (punctuation) in the cue's second half so that phrases stay whole.
3. Lines are broken at the word boundary that scores best: after punctuation, before a conjunction,
   never after an article or preposition, balanced, the lower line the longer.
4. Times: a cue starts at its first word; it stays until its reading time (20 chars/s), at least 5/6 s,
   at most 7 s, and never into the next cue (a two-frame gap is kept). A cue that must stay longer
   than the next cue allows pushes that cue a little later.
"""
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .languages import has_cjk
from .segments import TimedWord, ends_sentence, words_spread

PHRASE_END = (",", ";", ":", "—", "–", "、", "，", "；", "：") + (".", "!", "?", "…", "。", "！", "？")
# A line should not end on these (they belong with what follows) and may well start with the conjunctions.
CLINGING = frozenset("a an the of to in on at for from with by and or but as that which who than".split())
CONJUNCTIONS = frozenset("and or but because so that which who when while although if then".split())


@dataclass(frozen=True)
class SubtitleOptions:
    max_chars: int = 42
    max_lines: int = 2
    cjk_max_chars: int = 16
    min_ms: int = 834  # 5/6 s, rounded up to whole milliseconds
    max_ms: int = 7000
    max_cps: float = 20.0
    gap_ms: int = 84  # two frames at 24 fps between cues
    pause_ms: int = 1500  # a silence this long starts a new cue even within one speaker's run


@dataclass
class Cue:
    start_ms: int
    end_ms: int
    speaker: str  # "" when speakers were not separated
    lines: list[str]
    words: list[TimedWord] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def subtitle_cues(runs: Iterable[tuple[str, Sequence[TimedWord]]], options: SubtitleOptions = SubtitleOptions(),
                  *, name_prefix: bool = False) -> list[Cue]:
    """Cues for speaker runs [(speaker, words)], in time order. With `name_prefix` (SRT) the first cue of
    each speaker's turn starts with "Name:", counted in its lines."""
    cues: list[Cue] = []
    for speaker, words in _merge_runs(runs):
        cjk = has_cjk(" ".join(w.text for w in words))
        width = options.cjk_max_chars if cjk else options.max_chars
        words = _fit_words(words, width)
        # The name is a token of the first line; it takes a line of its own when it must, and is left
        # out only where it cannot share the cue's one line with the first word.
        name = f"{speaker}:" if name_prefix and speaker else ""
        if name and not fits([name, words[0].text], width, options.max_lines):
            name = ""
        for k, group in enumerate(_pack(words, width, options, name)):
            head = [name] if name and k == 0 else []
            lines = break_lines(head + [w.text for w in group], width, options.max_lines)
            cues.append(Cue(group[0].start_ms, group[-1].end_ms, speaker, lines, group))
    _time_cues(cues, options)
    return cues


def _merge_runs(runs):
    """Consecutive runs of one speaker joined (segments end at sentences; cues may hold two short ones)."""
    merged: list[tuple[str, list[TimedWord]]] = []
    for speaker, words in runs:
        words = [w for w in words if w.text.strip()]
        if not words:
            continue
        if merged and merged[-1][0] == speaker:
            merged[-1][1].extend(words)
        else:
            merged.append((speaker, list(words)))
    return merged


def _fit_words(words: list[TimedWord], width: int) -> list[TimedWord]:
    """A word longer than a line (a URL, or CJK text without spaces) cut into line-sized pieces."""
    out = []
    for w in words:
        if len(w.text) <= width:
            out.append(w)
        else:
            out += words_spread([w.text[i:i + width] for i in range(0, len(w.text), width)], w.start_ms, w.end_ms)
    return out


def _pack(words: list[TimedWord], width: int, options: SubtitleOptions, name: str) -> list[list[TimedWord]]:
    groups: list[list[TimedWord]] = []
    current: list[TimedWord] = []
    i = 0
    while i < len(words):
        word = words[i]
        head = [name] if name and not groups else []
        if current and (word.start_ms - current[-1].end_ms >= options.pause_ms or ends_sentence(current[-1].text) and _full_enough(current, width, options)):
            groups.append(current)
            current = []
            continue
        candidate = current + [word]
        too_long = candidate[-1].end_ms - candidate[0].start_ms > options.max_ms
        if current and (too_long or not fits(head + [w.text for w in candidate], width, options.max_lines)):
            keep = _phrase_cut(current)
            groups.append(current[:keep])
            current = current[keep:]
            continue
        current = candidate
        i += 1
    if current:
        groups.append(current)
    return groups


def _full_enough(words: list[TimedWord], width: int, options: SubtitleOptions) -> bool:
    """A sentence that ends past half the cue's room closes the cue, so the next sentence starts fresh."""
    return sum(len(w.text) + 1 for w in words) >= width * options.max_lines // 2


def _phrase_cut(words: list[TimedWord]) -> int:
    """Where to close a full cue: after the last phrase boundary in its second half, else at its end."""
    for k in range(len(words) - 1, max(0, len(words) // 2) - 1, -1):
        if k > 0 and words[k - 1].text.endswith(PHRASE_END):
            return k
    return len(words)


def fits(tokens: Sequence[str], width: int, max_lines: int) -> bool:
    """Whether the tokens fill at most `max_lines` lines of `width` (greedy filling uses the fewest lines)."""
    lines, length = 1, -1
    for t in tokens:
        if len(t) > width:
            return False
        if length + 1 + len(t) <= width:
            length += 1 + len(t)
        else:
            lines, length = lines + 1, len(t)
    return lines <= max_lines


def break_lines(tokens: Sequence[str], width: int, max_lines: int) -> list[str]:
    """The tokens as at most `max_lines` lines of `width`, broken where a reader expects the break."""
    one = " ".join(tokens)
    if len(one) <= width or max_lines <= 1 or len(tokens) < 2:
        return [one]
    best, best_score = None, None
    for k in range(1, len(tokens)):
        first = " ".join(tokens[:k])
        if len(first) > width or not fits(tokens[k:], width, max_lines - 1):
            continue
        score = _break_score(tokens, k, len(first), len(" ".join(tokens[k:])))
        if best_score is None or score < best_score:
            best, best_score = k, score
    if best is None:  # cannot fit: greedy lines, the caller keeps cues small enough that this is rare
        return _greedy(tokens, width)
    return [" ".join(tokens[:best]), *break_lines(tokens[best:], width, max_lines - 1)]


def _break_score(tokens: Sequence[str], k: int, first: int, rest: int) -> float:
    before, after = tokens[k - 1], tokens[k]
    score = abs(first - rest) + (3 if first > rest else 0)  # balanced, and rather bottom-heavy
    if before.endswith(PHRASE_END) and not before.endswith(":"):  # a speaker's name keeps their first words
        score -= 30
    if after.lower() in CONJUNCTIONS:
        score -= 12
    if before.lower() in CLINGING:
        score += 25
    return score


def _greedy(tokens: Sequence[str], width: int) -> list[str]:
    lines = [""]
    for t in tokens:
        if lines[-1] and len(lines[-1]) + 1 + len(t) > width:
            lines.append(t)
        else:
            lines[-1] = f"{lines[-1]} {t}".strip() if lines[-1] else t
    return lines


def _time_cues(cues: list[Cue], options: SubtitleOptions) -> None:
    """Start, end and spacing of each cue (rule 4 above), in place."""
    for i, cue in enumerate(cues):
        if i:
            cue.start_ms = max(cue.start_ms, cues[i - 1].end_ms + options.gap_ms)
        reading = round(len(cue.text) * 1000 / options.max_cps)
        end = max(cue.end_ms, cue.start_ms + options.min_ms, cue.start_ms + reading)
        end = min(end, cue.start_ms + options.max_ms)
        if i + 1 < len(cues):  # stay clear of the next cue unless the minimum time needs more
            end = min(end, max(cues[i + 1].start_ms - options.gap_ms, cue.start_ms + options.min_ms, cue.end_ms))
        cue.end_ms = min(max(end, cue.start_ms + options.min_ms), cue.start_ms + options.max_ms)
