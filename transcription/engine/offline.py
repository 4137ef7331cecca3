"""Whole recordings through the same batched step as live captions.

A long recording is cut into segments of about `offline_segment_s`, each cut placed at the quietest
80 ms in the last `offline_search_s` before the target, so a cut rarely splits a word; segments do not
overlap, so nothing has to be de-duplicated. Each segment runs as its own stream (left pad, delay,
right pad, exactly like a live stream of that audio), all segments of all recordings in parallel, as
many at once as free slots allow. Token times are shifted by the segment's start.
"""
import concurrent.futures
import time
from collections.abc import Callable

import numpy as np

from . import audio as A
from .errors import EngineAtCapacity
from .events import TokenTime, Transcript


def cut_points(pcm: np.ndarray, segment_s: int, search_s: int) -> list[int]:
    """Sample offsets where segments start (the first is 0), cuts on 80 ms boundaries."""
    search = search_s * A.SAMPLE_RATE // A.STEP_SAMPLES * A.STEP_SAMPLES
    seg = segment_s * A.SAMPLE_RATE // A.STEP_SAMPLES * A.STEP_SAMPLES
    starts, start = [0], 0
    while len(pcm) - start > seg + search:
        lo = start + seg - search
        frames = pcm[lo:lo + search].reshape(-1, A.STEP_SAMPLES)  # (n, 1280)
        quietest = int(np.argmin((frames.astype(np.float64) ** 2).mean(axis=1)))
        start = lo + quietest * A.STEP_SAMPLES
        starts.append(start)
    return starts


def merge(parts: list[Transcript], offsets_ms: list[int], delay_ms: int, duration_ms: int) -> Transcript:
    tokens = []
    for part, off in zip(parts, offsets_ms):
        tokens += [TokenTime(t.token_id, t.text, t.start_ms + off, t.end_ms + off) for t in part.tokens]
    text = "".join(p.text for p in parts)
    return Transcript(text=text, tokens=tuple(tokens), delay_ms=delay_ms, duration_ms=duration_ms)


def transcribe_many(engine, recordings, delay_ms: int, segment_s: int, search_s: int,
                    on_progress: Callable[[float], None] | None = None) -> list[Transcript]:
    """`on_progress(fraction of the audio transcribed)` is called on the calling thread about once a second."""
    pcms = [A.to_float32(r) for r in recordings]
    jobs = []  # (recording index, offset samples, pcm)
    for i, pcm in enumerate(pcms):
        starts = cut_points(pcm, segment_s, search_s)
        for a, b in zip(starts, starts[1:] + [len(pcm)]):
            jobs.append((i, a, pcm[a:b]))
    # Audio time each segment's stream has reached, from its text events (written on the engine thread,
    # read here: one list slot per segment, so no lock is needed for a progress figure).
    reached = [0] * len(jobs)
    total_ms = max(1, sum(len(job[2]) for job in jobs) * 1000 // A.SAMPLE_RATE)
    results: dict[int, Transcript] = {}
    running: dict[concurrent.futures.Future, int] = {}
    streams: dict[int, object] = {}
    next_job = 0
    while next_job < len(jobs) or running:
        while next_job < len(jobs) and engine.free_slots() > 0:
            try:
                stream = engine.open_stream(delay_ms, on_event=_track(reached, next_job), realtime=False)
            except EngineAtCapacity:  # a live meeting took the slot first
                break
            stream.push(jobs[next_job][2])
            running[stream.close_nowait()] = next_job
            streams[next_job] = stream
            next_job += 1
        if not running:
            time.sleep(0.05)  # every slot is live: wait for one to free up
            continue
        done, _ = concurrent.futures.wait(running, timeout=1.0, return_when=concurrent.futures.FIRST_COMPLETED)
        for fut in done:
            j = running.pop(fut)
            results[j] = fut.result()
            reached[j] = len(jobs[j][2]) * 1000 // A.SAMPLE_RATE
        if on_progress:
            try:
                on_progress(min(1.0, sum(reached) / total_ms))
            except BaseException:  # the job was cancelled: free the engine's slots at once
                for j in running.values():
                    streams[j].abort()
                raise
    out = []
    for i, pcm in enumerate(pcms):
        idx = [j for j, job in enumerate(jobs) if job[0] == i]
        offsets = [jobs[j][1] * 1000 // A.SAMPLE_RATE for j in idx]
        out.append(merge([results[j] for j in idx], offsets, delay_ms, len(pcm) * 1000 // A.SAMPLE_RATE))
    return out


def _track(reached: list[int], index: int):
    def on_event(event) -> None:
        if event.kind == "delta":
            reached[index] = max(reached[index], event.end_ms)

    return on_event

