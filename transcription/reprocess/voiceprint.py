"""Voice embeddings of one speaker, from stretches where only they speak, with the speaker-separation
pipeline's own embedding model (no Django here; voices/ stores and compares them).

The same function embeds a voice when it is enrolled and each speaker of a newly separated meeting, so
the two land in the same space and their cosine similarity means the same thing in both places.
"""
import bisect
import warnings
from collections.abc import Iterable

import numpy as np

SAMPLE_RATE = 16_000
MIN_SPAN_MS = 1_500  # shorter stretches are mostly a turn's edges: too little voice, too much neighbour
MAX_PIECE_MS = 10_000  # the embedding model was trained on a few seconds; longer stretches are cut up
MAX_SPEECH_MS = 60_000  # more speech barely changes an embedding, and this bounds the work per speaker
EDGE_MS = 100  # trimmed off both ends of a stretch: turn boundaries are uncertain by about this much


def clean_spans(spans: Iterable[tuple[int, int]], others: Iterable[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """One speaker's stretches (ms) with anyone else's speech cut out, edges trimmed, the short ones
    dropped, longest first up to MAX_SPEECH_MS in all."""
    mine = _merge(spans)
    cut = _merge(others)
    cut_ends = [hi for _, hi in cut]  # increasing, since merged stretches do not overlap
    pieces = []
    for start, end in mine:
        for lo, hi in _subtract(start, end, cut, cut_ends):
            lo, hi = lo + EDGE_MS, hi - EDGE_MS
            if hi - lo >= MIN_SPAN_MS:
                pieces.append((lo, hi))
    chosen, total = [], 0
    for lo, hi in sorted(pieces, key=lambda p: p[0] - p[1]):
        if total >= MAX_SPEECH_MS:
            break
        hi = min(hi, lo + MAX_SPEECH_MS - total)
        if hi - lo >= MIN_SPAN_MS:
            chosen.append((lo, hi))
            total += hi - lo
    return sorted(chosen)


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in spans if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _subtract(start: int, end: int, cut: list[tuple[int, int]], cut_ends: list[int]) -> list[tuple[int, int]]:
    """[start, end) minus the sorted, disjoint `cut` stretches; only those that can overlap are visited."""
    out, at = [], start
    for lo, hi in cut[bisect.bisect_right(cut_ends, start):]:
        if lo >= end:
            break
        if lo > at:
            out.append((at, lo))
        at = max(at, hi)
    if at < end:
        out.append((at, end))
    return out


def speech_ms(spans: Iterable[tuple[int, int]]) -> int:
    return sum(e - s for s, e in spans)


def voice_embedding(pipeline, pcm: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray | None:
    """A unit vector for the voice in `spans` of 16 kHz int16 `pcm`, or None when there is too little
    usable speech. Pieces are embedded one at a time (their lengths differ) and averaged by length."""
    import torch

    embedding = pipeline._embedding  # pyannote's PretrainedSpeakerEmbedding, as the pipeline itself uses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it finds the shortest input by trying ever shorter ones, which warn
        min_samples = embedding.min_num_samples
    total = None
    for lo, hi in spans:
        for start in range(lo, hi, MAX_PIECE_MS):
            end = min(hi, start + MAX_PIECE_MS)
            if end - start < MIN_SPAN_MS // 2:
                continue
            piece = np.asarray(pcm[start * SAMPLE_RATE // 1000:end * SAMPLE_RATE // 1000], dtype=np.float32) / 32768.0
            if len(piece) < min_samples:
                continue
            vector = embedding(torch.from_numpy(piece)[None, None])[0]  # (1, 1, samples) -> (dimension,)
            norm = float(np.linalg.norm(vector))
            if not np.isfinite(norm) or norm == 0.0:
                continue
            share = (end - start) * vector / norm
            total = share if total is None else total + share
    if total is None:
        return None
    norm = float(np.linalg.norm(total))
    return (total / norm).astype(np.float32) if norm > 0 else None


def speaker_voices(pipeline, pcm: np.ndarray, turns) -> dict[str, np.ndarray]:
    """Each separated speaker's voice embedding, from their turns (`align.Turn`); speakers with too
    little clean speech are left out. Turns from `diarize_pcm` never overlap, so only the short ones and
    the edges go."""
    by_speaker: dict[str, list[tuple[int, int]]] = {}
    for turn in turns:
        by_speaker.setdefault(turn.speaker, []).append((turn.start_ms, turn.end_ms))
    voices = {}
    for label, spans in sorted(by_speaker.items()):
        others = [(t.start_ms, t.end_ms) for t in turns if t.speaker != label]
        vector = voice_embedding(pipeline, pcm, clean_spans(spans, others))
        if vector is not None:
            voices[label] = vector
    return voices
