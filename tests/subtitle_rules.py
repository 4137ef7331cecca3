"""A validator for SRT and WebVTT files against the timed-text rules, reporting every violation.

It reads the exported file as a player would (nothing from the code that wrote it) and checks each cue:
line length (16 characters for lines with Chinese, Japanese or Korean), lines per cue, time on screen
(5/6 s to 7 s), no overlap, times in order, one speaker per cue, and, against the transcript it was
made from, that every speaker change starts a cue and no word is lost or reordered. Reading speed is
checked where timing allows: a cue read faster than 20 characters a second is a violation only if it
could have stayed longer (before its 7 s and the next cue).
"""
import re
from dataclasses import dataclass, field

CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
TIMES = re.compile(r"^(\d\d):(\d\d):(\d\d)[.,](\d{3}) --> (\d\d):(\d\d):(\d\d)[.,](\d{3})")
VOICE = re.compile(r"<v(?:\.[^ >]*)? ([^>]*)>")
MIN_MS, MAX_MS, MAX_CPS, GAP_MS = 833, 7000, 20.0, 84


@dataclass
class ParsedCue:
    number: int
    start_ms: int
    end_ms: int
    lines: list[str]
    speakers: list[str] = field(default_factory=list)  # voices (VTT) or name prefixes (SRT)
    text: str = ""  # the words as a viewer reads them, without names or markup


def _ms(h, m, s, ms) -> int:
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)


def parse(text: str, fmt: str, names: set[str] = frozenset()) -> list[ParsedCue]:
    """Cues of an SRT or VTT file; `names` are the speakers an SRT prefix may name."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    if fmt == "vtt":
        assert blocks and blocks[0].startswith("WEBVTT"), "a WebVTT file starts with WEBVTT"
        blocks = blocks[1:]
    cues = []
    for n, block in enumerate(blocks, start=1):
        rows = block.split("\n")
        at = next(i for i, row in enumerate(rows) if TIMES.match(row))
        t = TIMES.match(rows[at]).groups()
        cue = ParsedCue(n, _ms(*t[:4]), _ms(*t[4:]), rows[at + 1:])
        if fmt == "vtt":
            cue.speakers = [m.group(1) for line in cue.lines for m in VOICE.finditer(line)]
            plain = [re.sub(r"<[^>]*>", "", line).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for line in cue.lines]
            cue.lines = plain
        else:  # an SRT name prefix counts towards its line's length, as viewers see it
            cue.speakers = [name for line in cue.lines for name in names if line.startswith(f"{name}: ") or line == f"{name}:"]
        cue.text = " ".join(cue.lines)
        if fmt == "srt" and cue.speakers:
            cue.text = cue.text.removeprefix(f"{cue.speakers[0]}:").lstrip()
        cues.append(cue)
    return cues


def violations(cues: list[ParsedCue], *, max_chars=42, max_lines=2, cjk_max_chars=16,
               turns: list[tuple[str, str]] | None = None, fmt: str = "vtt") -> list[str]:
    """Every broken rule, as "cue N: what". `turns`: the transcript as [(speaker, text)] speaker runs."""
    out = []
    for i, cue in enumerate(cues):
        where = f"cue {cue.number}"
        duration = cue.end_ms - cue.start_ms
        if len(cue.lines) > max_lines:
            out.append(f"{where}: {len(cue.lines)} lines")
        for line in cue.lines:
            limit = cjk_max_chars if CJK.search(line) else max_chars
            if len(line) > limit:
                out.append(f"{where}: line of {len(line)} characters: {line!r}")
            if not line.strip():
                out.append(f"{where}: empty line")
        if duration < MIN_MS:
            out.append(f"{where}: on screen {duration} ms, under 5/6 s")
        if duration > MAX_MS:
            out.append(f"{where}: on screen {duration} ms, over 7 s")
        if i and cue.start_ms < cues[i - 1].end_ms:
            out.append(f"{where}: starts before cue {cue.number - 1} ends")
        if i and cue.start_ms < cues[i - 1].start_ms:
            out.append(f"{where}: starts before the cue before it")
        if len(set(cue.speakers)) > 1 or (fmt == "srt" and len(cue.speakers) > 1):
            out.append(f"{where}: more than one speaker {cue.speakers}")
        room = min(cue.start_ms + MAX_MS, cues[i + 1].start_ms - GAP_MS if i + 1 < len(cues) else 10**12)
        if len(cue.text) * 1000 / max(duration, 1) > MAX_CPS and cue.end_ms + 100 < min(room, cue.start_ms + len(cue.text) * 1000 / MAX_CPS):
            out.append(f"{where}: {len(cue.text) * 1000 / duration:.0f} characters a second though it could stay longer")
    if turns is not None:
        out += _speaker_violations(cues, turns, fmt, max_chars, max_lines)
    return out


def _speaker_violations(cues: list[ParsedCue], turns: list[tuple[str, str]], fmt: str, max_chars: int, max_lines: int) -> list[str]:
    """Cue texts, in order, are the transcript's text (compared without spaces: a word longer than a line
    may be cut); each cue's text comes from one speaker's turn, named as the format names speakers."""
    out = []
    chars = [(speaker, c) for speaker, text in turns for c in text if not c.isspace()]
    at, current = 0, None
    for cue in cues:
        text = "".join(cue.text.split())
        got = chars[at:at + len(text)]
        if "".join(c for _, c in got) != text:
            return out + [f"cue {cue.number}: text differs from the transcript at character {at}: {cue.text[:40]!r}"]
        speakers = {s for s, _ in got}
        if len(speakers) > 1:
            out.append(f"cue {cue.number}: holds words of {sorted(speakers)}: a speaker change inside a cue")
        speaker = got[0][0] if got else current
        if fmt == "vtt" and speaker and cue.speakers != [speaker]:
            out.append(f"cue {cue.number}: voice {cue.speakers}, spoken by {speaker}")
        first_word = (cue.text.split() or [""])[0]
        width = 16 if CJK.search(cue.text) else max_chars
        name_fits = max_lines > 1 or len(speaker or "") + 2 + len(first_word) <= width
        if fmt == "srt" and speaker and speaker != current and cue.speakers != [speaker] and name_fits:
            out.append(f"cue {cue.number}: {speaker} starts speaking without their name")
        at, current = at + len(text), speaker
    if at != len(chars):
        out.append(f"the cues hold {at} of the transcript's {len(chars)} characters")
    return out


def summary(cues: list[ParsedCue], found: list[str]) -> dict:
    durations = [c.end_ms - c.start_ms for c in cues]
    return {
        "cues": len(cues),
        "violations": len(found),
        "max_line_chars": max((len(line) for c in cues for line in c.lines), default=0),
        "max_lines": max((len(c.lines) for c in cues), default=0),
        "min_duration_s": round(min(durations, default=0) / 1000, 3),
        "max_duration_s": round(max(durations, default=0) / 1000, 3),
    }
