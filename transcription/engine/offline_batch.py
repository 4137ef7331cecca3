"""Whole recordings through prefill plus decode (prefill.py), in batches sized by free GPU memory.

Segments are cut as in offline.py (about `offline_segment_s`, at the quietest 80 ms) and need no
stream slot: the live stream pool is left to live meetings. When not even one segment fits in the
memory left beside the pool, the recording goes through the live step instead (offline.py), slot by
slot, as before; the tokens are the same either way.
"""
from collections.abc import Callable

import numpy as np
import torch

from . import audio as A
from . import offline
from .events import Transcript
from .prefill import Batch, Prefill, positions, segment_transcript

GIB = 1024**3
# Per segment besides its decoder cache and embeddings: the encoder pass's share (ENCODE_BATCH
# segments at once) and the decoder's activations; generous, measured peaks stay well under it.
WORK_BYTES_PER_STEP = 96 * 1024


def segment_bytes(model, steps: int, dtype) -> int:
    """GPU memory one segment of `steps` decoder positions holds while its batch decodes."""
    t = model.config.text_config
    size = torch.finfo(dtype).bits // 8
    kv = 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * steps * size
    return kv + steps * t.hidden_size * size + steps * WORK_BYTES_PER_STEP


def batch_size(engine, steps: int) -> int:
    """Segments of `steps` positions that one decoder run can hold now (0: none fits)."""
    cap = engine.options.offline_batch
    if engine.device.type != "cuda":
        return cap
    free, _ = torch.cuda.mem_get_info(engine.device)
    budget = free - engine.options.activation_reserve_gib * GIB
    return max(0, min(cap, int(budget // segment_bytes(engine.model, steps, engine.dtype))))


def transcribe_many(engine, recordings: list, delay_ms: int, segment_s: int, search_s: int, *,
                    on_progress: Callable[[float], None] | None = None) -> list[Transcript]:
    """Transcripts of whole recordings; `on_progress(fraction)` is called on this thread (it may raise to stop)."""
    pcms = [A.to_float32(r) for r in recordings]
    jobs = []  # (recording index, offset samples, pcm)
    for i, pcm in enumerate(pcms):
        starts = offline.cut_points(pcm, segment_s, search_s)
        jobs += [(i, a, pcm[a:b]) for a, b in zip(starts, starts[1:] + [len(pcm)])]
    delay_steps = A.delay_steps(delay_ms)
    n_pos = [positions(engine.spec, len(job[2]), delay_steps) for job in jobs]
    if not jobs:
        return []
    if batch_size(engine, max(n_pos)) < 1:
        return offline.transcribe_many(engine, recordings, delay_ms, segment_s, search_s, on_progress=on_progress)
    results = transcribe_segments(engine, [job[2] for job in jobs], delay_ms, on_progress=on_progress)
    out = []
    for i, pcm in enumerate(pcms):
        idx = [j for j, job in enumerate(jobs) if job[0] == i]
        offsets = [jobs[j][1] * 1000 // A.SAMPLE_RATE for j in idx]
        out.append(offline.merge([results[j] for j in idx], offsets, delay_ms, len(pcm) * 1000 // A.SAMPLE_RATE))
    return out


def transcribe_segments(engine, segments: list[np.ndarray], delay_ms: int, *,
                        on_progress: Callable[[float], None] | None = None) -> list[Transcript]:
    """One transcript per float32 segment (each read as its own stream would read it), same order."""
    prefill = _prefill(engine)
    spec, delay_steps = engine.spec, A.delay_steps(delay_ms)
    prompt = spec.prompt(delay_steps)
    n_pos = [positions(spec, len(s), delay_steps) for s in segments]
    order = sorted(range(len(segments)), key=lambda j: -n_pos[j])  # longest first: running rows stay a prefix
    results: list[Transcript | None] = [None] * len(segments)
    done_steps, total_steps = 0, sum(n_pos)
    while order:
        size = max(1, batch_size(engine, n_pos[order[0]]))
        group, order = order[:size], order[size:]
        pcms, lengths = [segments[j] for j in group], [n_pos[j] for j in group]
        with prefill.timed("audio_s"):
            batch = Batch(pcms, lengths, prefill.embed_audio(spec, pcms, lengths))
        progress = _step_progress(on_progress, done_steps, total_steps, batch)
        with prefill.timed("decoder_s"):
            tokens = prefill.decode(prompt, delay_steps, batch, on_step=progress)
        del batch
        with prefill.timed("text_s"):
            for j, toks in zip(group, tokens):
                results[j] = segment_transcript(spec, toks, delay_ms, len(segments[j]), prefill.pieces)
        done_steps += sum(lengths)
        if on_progress:
            on_progress(done_steps / total_steps)
    return results


def _step_progress(on_progress, done_steps: int, total_steps: int, batch: Batch):
    """Progress every 32 decoder steps: the share of all segments' positions done so far."""
    if on_progress is None:
        return None
    lengths = np.array(batch.n_pos)

    def report(pos: int, _last: int) -> None:
        if pos % 32 == 0:
            on_progress((done_steps + int(np.minimum(lengths, pos).sum())) / total_steps)

    return report


def _prefill(engine) -> Prefill:
    """One Prefill per engine, sharing the live step's modules and delay conditioning."""
    if getattr(engine, "_prefill", None) is None:
        engine._prefill = Prefill(engine.runner.step, engine.scheduler.logmel, engine.device, engine.dtype,
                                  prefix=engine.scheduler.prefix)
    return engine._prefill
