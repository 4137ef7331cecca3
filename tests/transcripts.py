"""A long synthetic transcript with the timing of real speech, for subtitle tests and the subtitle benchmark.

Four people (one with a long name) talk in turns of one to eight sentences at about 150 words a minute,
with short answers ("Yes."), commas, pauses, the odd web address, and a speaker who switches to
Japanese now and then (words of several characters with no spaces, as the engine writes them).
Segments are cut by the product's own rule (meetings.segments), as a reprocessed transcript is.
"""
import random

from meetings.segments import SegmentRules, TimedWord, split_segments

SPEAKERS = ["Dr. Alexandra Montgomery-Smith", "Ben", "Chen Wei", "Dana (CFO)"]
VOCABULARY = (
    "the patient budget figures ward review morning board hospital cardiology numbers before Friday "
    "we should send them tomorrow and but because although pressure improved overnight medication "
    "kidney function dose check results department quarterly revenue percent agenda meeting schedule "
    "nurses staffing shortage weekend rota discharge planning admissions emergency theatre capacity "
    "a an of to in on for with by that which approximately considerably interdisciplinary responsibilities"
).split()
SHORT_ANSWERS = ["Yes.", "Right.", "Okay.", "No.", "Thanks.", "Agreed."]
JAPANESE = ["会議", "予算", "確認します", "明日までに", "送ります", "病院の数字", "ありがとうございます", "了解"]


def _sentence(rng: random.Random, japanese: bool) -> list[str]:
    if japanese:
        return [rng.choice(JAPANESE) for _ in range(rng.randint(2, 6))] + ["。"]
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(4, 24))]
    words[0] = words[0].capitalize()
    for i in range(3, len(words) - 2, rng.randint(5, 9)):
        words[i] += ","
    if rng.random() < 0.02:
        words.insert(rng.randint(0, len(words)), "https://intranet.example.org/finance/reports/quarterly")
    words[-1] += rng.choice([".", ".", ".", "?", "!"])
    return words


def synthetic_turns(*, hours: float = 1.0, seed: int = 0) -> list[tuple[str, list[TimedWord]]]:
    """[(speaker, words)] turns filling `hours` of meeting."""
    rng = random.Random(seed)
    turns, at, speaker = [], 0, SPEAKERS[0]
    while at < hours * 3_600_000:
        speaker = rng.choice([s for s in SPEAKERS if s != speaker])
        short = rng.random() < 0.2
        japanese = speaker == "Chen Wei" and rng.random() < 0.3 and not short
        texts = [SHORT_ANSWERS[rng.randrange(len(SHORT_ANSWERS))]] if short else \
            [w for _ in range(rng.randint(1, 8)) for w in _sentence(rng, japanese)]
        if japanese:  # the full stop joins the word before it
            texts = [t for t in texts if t != "。"]
            texts[-1] += "。"
        words = []
        for text in texts:
            duration = 90 + 55 * min(len(text), 14) + rng.randint(-40, 60)
            words.append(TimedWord(text, at, at + duration))
            at += duration + (rng.choice([0, 0, 40, 80, 120]) if not text.endswith((".", "?", "!", "。")) else rng.randint(200, 700))
            if rng.random() < 0.01:
                at += rng.randint(800, 2500)  # a thinking pause
        turns.append((speaker, words))
        at += rng.choice([80, 150, 300, 600, 1200, 2000])
    return turns


def synthetic_segments(*, hours: float = 1.0, seed: int = 0) -> list[tuple[str, list[TimedWord]]]:
    """The turns cut into transcript segments by the product's rule: [(speaker, words)]."""
    speaker_of = {}
    words = []
    for speaker, turn in synthetic_turns(hours=hours, seed=seed):
        for w in turn:
            speaker_of[id(w)] = speaker
            words.append(w)
    return split_segments(words, SegmentRules(), lambda w: speaker_of[id(w)])
