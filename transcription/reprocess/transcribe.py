"""A decoded recording through the engine's offline mode, in groups so memory stays bounded.

`Engine.transcribe_many` converts every recording it is given to float32 at once. Handing it a whole
three-hour file would hold 691 MB of floats (and its cut segments) in memory; instead the file is cut
here, with the engine's own rule, and the segments are passed in groups as large as the engine's stream
pool, so each group still fills the GPU in one batched pass while at most one group is in memory.
"""
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from transcription.engine import offline
from transcription.engine import audio as A

from .align import TimedWord

# Steps of a segment's stream besides its audio: 32 left-pad steps, the delay (12 at 960 ms) and the
# right pad (delay + 11), rounded up.
RING_MARGIN_STEPS = 80


def asr_version(model_dir: str, delay_ms: int) -> str:
    folder = Path(model_dir)
    config = folder / "config.json"
    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:12] if config.is_file() else "unknown"
    return f"{folder.name} {digest} at {delay_ms} ms"


def transcribe_pcm(engine, pcm: np.ndarray, delay_ms: int, *, on_progress: Callable[[float], None] | None = None,
                   group_size: int | None = None) -> list[TimedWord]:
    """Timed words for 16 kHz int16 `pcm` (a memory map is fine), in recording order."""
    options = engine.options
    segment_s = options.offline_segment_s
    if options.text_window:  # a shortened ring must hold a whole segment (with its search), prompt and padding
        fits_s = (options.text_window - RING_MARGIN_STEPS) * A.STEP_MS // 1000
        segment_s = min(segment_s, max(1, fits_s * 4 // 5))
    # The quiet-point search must stay inside one segment; short segments shorten it.
    search_s = min(options.offline_search_s, max(1, segment_s // 4))
    starts = offline.cut_points(pcm, segment_s, search_s)
    spans = list(zip(starts, starts[1:] + [len(pcm)]))
    spans = [(a, b) for a, b in spans if b > a]
    group = max(1, group_size or engine.capacity)
    words: list[TimedWord] = []
    for g in range(0, len(spans), group):
        batch = spans[g:g + group]
        # Each cut segment is shorter than offline_segment_s + offline_search_s, so the engine keeps it whole.
        within = _share(on_progress, done=batch[0][0], size=batch[-1][1] - batch[0][0], total=len(pcm)) if on_progress else None
        transcripts = engine.transcribe_many([np.array(pcm[a:b]) for a, b in batch], delay_ms, on_progress=within)
        for (a, _), transcript in zip(batch, transcripts):
            offset = a * 1000 // A.SAMPLE_RATE
            words += [TimedWord(w.text, w.start_ms + offset, w.end_ms + offset) for w in transcript.words() if w.text]
        if on_progress:
            on_progress(min(1.0, batch[-1][1] / max(1, len(pcm))))
    return words


def _share(on_progress: Callable[[float], None], *, done: int, size: int, total: int) -> Callable[[float], None]:
    """A group's progress (0..1 of its own samples) reported as progress through the whole recording."""
    return lambda fraction: on_progress(min(1.0, (done + fraction * size) / max(1, total)))
