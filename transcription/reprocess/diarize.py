"""Speaker separation with a pyannote.audio pipeline copied to local disk (never downloaded).

Memory: pyannote holds the whole input as float32 plus per-chunk segmentations and embeddings, so a
three-hour file in one call needs several GB. Long recordings go through in chunks of `chunk_s`
seconds read from the PCM16 memory map; speakers found in different chunks are matched by the cosine
similarity of their voice embeddings (one centroid per speaker, weighted by talk time). Inside one
chunk pyannote's own clustering decides; a speaker split across chunks is merged only when their
voices agree, and users can merge what is left over on the meeting page.
"""
import hashlib
import math
import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from . import fast_steps, vbx_clustering, window_embeddings
from .align import Turn

SAMPLE_RATE = 16_000
# Cosine similarity above which a chunk's speaker is taken for an earlier chunk's speaker. WeSpeaker
# embeddings of one voice score ~0.6-0.9 across minutes of a meeting, different voices mostly < 0.4.
LINK_SIMILARITY = 0.5


def is_installed(model_dir: str) -> bool:
    return bool(model_dir) and (Path(model_dir) / "config.yaml").is_file()


def pipeline_version(model_dir: str) -> str:
    """Folder name, a digest of its config and checkpoints, and the pyannote.audio release."""
    import pyannote.audio

    folder = Path(model_dir)
    digest = hashlib.sha256((folder / "config.yaml").read_bytes())
    for part in sorted(folder.glob("*/*")):
        digest.update(f"{part.relative_to(folder)}:{part.stat().st_size}".encode())
    return f"{folder.name} {digest.hexdigest()[:12]} (pyannote.audio {pyannote.audio.__version__})"


_loaded: dict[tuple, list] = {}  # one set of pipelines per worker process, like the speech engine


def load_pipelines(model_dir: str, device: str | None = None, batch_size: int = 0, copies: int = 1) -> list:
    """`Pipeline.from_pretrained(<local folder>)` `copies` times, kept for the next job; layout in DIARIZATION.md.

    `batch_size` (0: the folder's config.yaml) overrides how many windows the segmentation and embedding
    models take per GPU call: the released configs say 32, which leaves an H100 mostly idle. Each copy
    separates one chunk at a time (see `diarize_pcm`); a copy of the real models takes ~1.6 GiB of GPU memory
    at batch 32 and ~13 GiB at batch 256."""
    copies = max(1, copies)
    key = (model_dir, device, pipeline_version(model_dir), batch_size, copies)
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = [_load(model_dir, device, batch_size) for _ in range(copies)]
    return _loaded[key]


def _load(model_dir: str, device: str | None, batch_size: int = 0):
    import torch
    from pyannote.audio import Pipeline

    pipeline = Pipeline.from_pretrained(Path(model_dir))
    if pipeline is None:
        raise RuntimeError(f"No pyannote pipeline could be loaded from {model_dir}.")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipeline.to(torch.device(device))
    if batch_size:
        pipeline.segmentation_batch_size = pipeline.embedding_batch_size = batch_size
    window_embeddings.install(pipeline)  # same embeddings, the network run once per window
    fast_steps.install(pipeline)  # same turns, pyannote's per-frame loops as array operations
    vbx_clustering.install(pipeline)  # the same clusters, each VBx iteration's terms built once
    return pipeline


def chunk_seconds(duration_s: float, chunk_s: int, copies: int) -> int:
    """`chunk_s`, shortened for short recordings so that every copy gets about two chunks to separate.

    A one-hour recording in 30-minute chunks would keep two of three copies busy at most; pyannote's
    clustering stays inside a chunk either way, and speakers are linked across chunks by voice."""
    return max(60, min(chunk_s, math.ceil(duration_s / (2 * max(1, copies)))))


def diarize_pcm(pipelines, pcm: np.ndarray, *, chunk_s: int, on_progress: Callable[[float], None] | None = None,
                counts: dict | None = None) -> list[Turn]:
    """Speaker turns (without overlaps) for 16 kHz int16 `pcm`, `chunk_s` seconds of audio per call.

    `pipelines` are copies of one pipeline (`load_pipelines`): that many chunks are separated at once, in
    threads, so one chunk's GPU calls overlap another's Python and CPU work (clustering, reconstruction);
    pyannote's Python holds the interpreter lock, so the gain is modest (3 h on an H100: 31 s with one
    copy, 26 s with three). Chunks are linked into
    meeting-wide speakers in their order afterwards, so the result does not depend on the copies.
    `on_progress` is called on the calling thread only (it may write to the database).
    `counts`: the people present, {"num_speakers": n} or {"min_speakers": a, "max_speakers": b} (see
    `chunk_counts`)."""
    pipelines = list(pipelines)
    chunk = max(1, chunk_s) * SAMPLE_RATE
    # A last sliver too short to hold speech is left out.
    starts = [s for s in range(0, len(pcm), chunk) if min(chunk, len(pcm) - s) >= SAMPLE_RATE // 10]
    per_chunk = chunk_counts(counts or {}, len(starts))
    done = [0.0] * len(starts)  # each chunk's progress, written by its thread
    stop = threading.Event()
    idle: queue.SimpleQueue = queue.SimpleQueue()
    for pipeline in pipelines:
        idle.put(pipeline)

    def separate(index: int, start: int):
        import torch

        pipeline = idle.get()
        try:
            piece = np.asarray(pcm[start:start + chunk], dtype=np.float32) / 32768.0  # one chunk as float, never the whole file
            output = pipeline({"waveform": torch.from_numpy(piece)[None], "sample_rate": SAMPLE_RATE}, hook=_hook(done, index, stop), **per_chunk)
            return output, len(piece)
        finally:
            idle.put(pipeline)

    with ThreadPoolExecutor(max_workers=len(pipelines), thread_name_prefix="diarize") as pool:
        futures = [pool.submit(separate, i, start) for i, start in enumerate(starts)]
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
                if any(f.exception() for f in finished):
                    break
                if on_progress and starts:
                    on_progress(sum(done) / len(starts))  # may raise: the job was cancelled
        finally:
            # On an error or a cancellation, chunks not started never start and running ones stop at
            # their next progress report, so the worker is free in seconds, not after every chunk.
            stop.set()
            for f in futures:
                f.cancel()
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    if real := [e for e in errors if not isinstance(e, _Stopped)]:
        raise real[0]  # the chunk that failed, not one stopped because of it
    results = [f.result() for f in futures]
    linker = SpeakerLinker()
    turns: list[Turn] = []
    for start, (output, length) in zip(starts, results):
        turns += linker.add_chunk(output, offset_ms=start * 1000 // SAMPLE_RATE, length_ms=length * 1000 // SAMPLE_RATE)
    cap = (counts or {}).get("num_speakers") or (counts or {}).get("max_speakers")
    if cap and len(starts) > 1:
        turns = linker.fold(turns, cap)
    if on_progress:
        on_progress(1.0)
    return turns


def chunk_counts(counts: dict, chunks: int) -> dict:
    """The pipeline's speaker-count arguments for one chunk. A recording in one chunk takes them as
    given; in several, a chunk may hear fewer people than the meeting, so only the ceiling applies
    to each chunk and the meeting-wide count is enforced when chunks are linked (`fold`)."""
    if chunks <= 1:
        return {k: v for k, v in counts.items() if k in ("num_speakers", "min_speakers", "max_speakers") and v}
    cap = counts.get("num_speakers") or counts.get("max_speakers")
    return {"max_speakers": cap} if cap else {}


class _Stopped(Exception):
    """Another chunk failed or the job was cancelled: this chunk's work is no longer wanted."""


def _hook(done: list[float], index: int, stop: threading.Event):
    def hook(step_name, step_artifact, file=None, total=None, completed=None):
        if stop.is_set():
            raise _Stopped()
        # pyannote reports segmentation then embeddings; embeddings take most of the time.
        if total and completed is not None and step_name in ("segmentation", "embeddings"):
            within = 0.2 * completed / total if step_name == "segmentation" else 0.2 + 0.8 * completed / total
            done[index] = max(done[index], min(within, 1.0))

    return hook


class SpeakerLinker:
    """Gives chunk-local speakers meeting-wide labels, matching voices by embedding."""

    def __init__(self, threshold: float = LINK_SIMILARITY):
        self.threshold = threshold
        self.centroids: list[np.ndarray] = []  # unit vectors, one per meeting speaker
        self.weights: list[float] = []

    def add_chunk(self, output, offset_ms: int, length_ms: int | None = None) -> list[Turn]:
        """Meeting-wide turns for one chunk's pipeline output; clipped to the chunk (pyannote pads the
        last window past the end of the audio)."""
        annotation = getattr(output, "exclusive_speaker_diarization", output)
        labels = getattr(output, "speaker_diarization", annotation).labels()
        embeddings = getattr(output, "speaker_embeddings", None)
        durations = {label: annotation.label_duration(label) for label in labels}
        names = {}
        for k, label in enumerate(labels):
            vector = embeddings[k] if embeddings is not None and k < len(embeddings) else None
            names[label] = self._assign(vector, durations.get(label, 0.0))
        end_ms = length_ms if length_ms is not None else 1 << 62
        turns = []
        for segment, _, label in annotation.itertracks(yield_label=True):
            start, end = round(segment.start * 1000), min(round(segment.end * 1000), end_ms)
            if label in names and end > start:
                turns.append(Turn(offset_ms + start, offset_ms + end, names[label]))
        return turns

    def fold(self, turns: list[Turn], cap: int) -> list[Turn]:
        """Turns relabelled so that at most `cap` speakers remain: the ones who spoke longest stay, and
        each other voice joins the remaining speaker it sounds most like."""
        order = sorted(range(len(self.centroids)), key=lambda i: -self.weights[i])
        kept, into = order[:cap], {}
        for i in order[cap:]:
            sims = [float(self.centroids[k] @ self.centroids[i]) if self.centroids[k].shape == self.centroids[i].shape else -np.inf for k in kept]
            sims = [x if np.isfinite(x) else -np.inf for x in sims]
            into[_label(i)] = _label(kept[int(np.argmax(sims))] if kept else i)
        return [Turn(t.start_ms, t.end_ms, into.get(t.speaker, t.speaker)) for t in turns]

    def _assign(self, vector, weight: float) -> str:
        unit = None
        if vector is not None and np.all(np.isfinite(vector)) and np.linalg.norm(vector) > 0:
            unit = vector / np.linalg.norm(vector)
            if self.centroids:
                sims = np.array([float(c @ unit) if c.shape == unit.shape else -np.inf for c in self.centroids])
                best = int(np.argmax(sims))
                if sims[best] >= self.threshold:
                    total = self.weights[best] + weight
                    mixed = self.centroids[best] * self.weights[best] + unit * weight
                    self.centroids[best] = mixed / (np.linalg.norm(mixed) or 1.0)
                    self.weights[best] = total
                    return _label(best)
        # A voice without a usable embedding (too little speech) is kept apart rather than guessed.
        self.centroids.append(unit if unit is not None else np.full(1, np.nan))
        self.weights.append(weight)
        return _label(len(self.centroids) - 1)


def _label(index: int) -> str:
    return f"SPEAKER_{index:02d}"
