"""Where speaker separation spends its time outside the two networks, on the CPU.

pyannote's SpeakerDiarization.apply runs two networks (segmentation, embedding) and, between and after
them, NumPy/SciPy/Python steps: speaker counting (overlap-add of the windows), clustering (AHC + VBx,
then the constrained assignment), reconstruction of the clustered windows (overlap-add again and a
top-k per frame) and the conversion of frames to turns, twice (with and without overlaps).

The random-weight networks find nothing meaningful, and so gives the Python steps little to do (one
speaker talking throughout), so the steps are fed with what real models give on a meeting instead: a
script of speakers taking turns (with overlaps and short blips) becomes the per-window segmentation that
the powerset model outputs (up to three local speakers per 10 s window, slots in random order), and
each (window, speaker) gets that speaker's voice vector plus noise as its embedding. The networks are
timed separately on the benchmark's synthetic audio: the segmentation network over the whole recording,
the embedding network over a sample of windows, scaled to all of them.

    python benchmarks/diarization_python_bench.py --minutes 30 [--speakers 5] [--profile]
        [--network-minutes 2] [--end-to-end-minutes 3]

prints, per implementation (pyannote's own steps, then ours: `transcription/reprocess/fast_steps.py` and
`vbx_clustering.py`), the seconds of each step and of all of them, whether both give the same turns,
and the cost of the two network steps without their networks.
Results: benchmarks/results/diarization-python-2026-11-30.md.
"""
import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SR = 16_000
STEPS = ("speaker_count", "clustering", "reconstruct", "to_annotation")


def meeting_activity(minutes: float, speakers: int, frames, rng) -> np.ndarray:
    """(frames, speakers) 0/1 activity of a meeting: turns of 0.5-15 s, 15 % of them overlapping the next,
    pauses, and short blips (back-channel, segmentation slips) of other speakers."""
    step = frames.step
    total = int(minutes * 60 / step) + 1
    act = np.zeros((total, speakers), dtype=np.float32)
    t, who = 0.0, 0
    while t < minutes * 60:
        length = min(15.0, 0.5 + rng.exponential(4.0))
        start = int(t / step)
        act[start:int((t + length) / step), who] = 1
        if rng.random() < 0.3:  # a short blip of someone else inside the turn
            other, at = (who + 1 + rng.integers(speakers - 1)) % speakers, t + rng.random() * length
            act[int(at / step):int((at + 0.1 + rng.random() * 0.5) / step), other] = 1
        overlap = rng.random() < 0.15
        t += length - (0.3 + rng.random()) if overlap else length + rng.exponential(0.5)
        who = (who + 1 + rng.integers(speakers - 1)) % speakers
    return act


def synthetic_steps(pipeline, minutes: float, speakers: int, seed: int = 0):
    """(segmentations, embeddings) as the two network steps would give them for a meeting of `minutes`."""
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    rng = np.random.default_rng(seed)
    inference = pipeline._segmentation
    frames = inference.model.receptive_field
    num_frames = inference.model.num_frames(round(inference.duration * SR))
    window = SlidingWindow(start=0.0, duration=inference.duration, step=inference.step)
    act = meeting_activity(minutes, speakers, frames, rng)
    num_chunks = int(np.ceil(max(0.0, minutes * 60 - inference.duration) / inference.step)) + 1
    padded = np.concatenate([act, np.zeros((num_frames + int(inference.duration / frames.step), speakers), np.float32)])
    data = np.zeros((num_chunks, num_frames, 3), dtype=np.float32)
    voices = rng.standard_normal((speakers, pipeline._embedding.dimension)).astype(np.float32)
    embeddings = np.full((num_chunks, 3, voices.shape[1]), np.nan, dtype=np.float32)
    for c in range(num_chunks):
        first = frames.closest_frame(window[c].start + 0.5 * frames.duration)
        piece = padded[first:first + num_frames]
        talk = piece.sum(axis=0)
        local = [s for s in np.argsort(-talk, kind="stable")[:3] if talk[s] > 0]
        slots = rng.permutation(3)[:len(local)]
        for slot, s in zip(slots, local):
            data[c, :, slot] = piece[:, s]
            embeddings[c, slot] = voices[s] + 0.6 * rng.standard_normal(voices.shape[1])
    return SlidingWindowFeature(data, window), embeddings


def run_steps(pipeline, segmentations, embeddings, fast: bool):
    """pipeline.apply on the given network outputs, each post-processing step timed."""
    import torch

    from transcription.reprocess import fast_steps, vbx_clustering

    times = dict.fromkeys(STEPS, 0.0)
    saved = {name: getattr(pipeline, name) for name in ("get_segmentations", "get_embeddings", *STEPS) if name in vars(pipeline)}
    try:
        if fast:
            fast_steps.install(pipeline)
            vbx_clustering.install(pipeline)
        else:
            fast_steps.uninstall(pipeline)
            vbx_clustering.uninstall(pipeline)

        def timed(name, f):
            def call(*args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return f(*args, **kwargs)
                finally:
                    times[name] += time.perf_counter() - t0
            return call

        for name in STEPS:
            setattr(pipeline, name, timed(name, getattr(pipeline, name)))
        pipeline.get_segmentations = lambda file, hook=None: segmentations
        pipeline.get_embeddings = lambda *args, **kwargs: embeddings.copy()
        t0 = time.perf_counter()
        output = pipeline({"waveform": torch.zeros(1, SR), "sample_rate": SR, "uri": "meeting"})  # the steps that read it are replaced
        times["all"] = time.perf_counter() - t0
    finally:
        for name in ("get_segmentations", "get_embeddings", *STEPS):
            vars(pipeline).pop(name, None)
        vars(pipeline).update(saved)
    return output, times


def turns(output):
    return [(round(s.start, 6), round(s.end, 6), label) for s, _, label in output.exclusive_speaker_diarization.itertracks(yield_label=True)], \
        [(round(s.start, 6), round(s.end, 6), label) for s, _, label in output.speaker_diarization.itertracks(yield_label=True)]


def network_seconds(pipeline, minutes: float, total_minutes: float, sample_windows: int) -> dict:
    """The segmentation network over `minutes` of the benchmark's audio, the embedding network over a few
    windows; both scaled to `total_minutes`."""
    import torch
    from engine_bench import chirp

    from transcription.reprocess.window_embeddings import window_embeddings

    seconds = int(minutes * 60)
    pcm = np.concatenate([chirp(min(600, seconds - s), seed=i % 7) for i, s in enumerate(range(0, seconds, 600))])
    audio = {"waveform": torch.from_numpy(pcm.astype(np.float32) / 32768)[None], "sample_rate": SR, "uri": "chirp"}
    t0 = time.perf_counter()
    segmentations = pipeline.get_segmentations(audio)
    segmentation_s = time.perf_counter() - t0
    from pyannote.core import SlidingWindowFeature

    sample = SlidingWindowFeature(segmentations.data[:sample_windows], segmentations.sliding_window)
    t0 = time.perf_counter()
    window_embeddings(pipeline, audio, sample, exclude_overlap=True)
    embedding_s = (time.perf_counter() - t0) * len(segmentations.data) / sample_windows
    scale = total_minutes / minutes
    return {"segmentation network": segmentation_s * scale, "embedding network": embedding_s * scale}


def around_networks_seconds(pipeline, minutes: float, segmentations) -> dict:
    """The segmentation and embedding steps over `minutes` of audio with both networks replaced by
    functions that return zeros at once: what these steps cost besides the networks (windows cut and
    batched, powerset conversion, copies, masks)."""
    import torch

    from transcription.reprocess.window_embeddings import window_embeddings

    segmentation, embedding = pipeline._segmentation.model, pipeline._embedding.model_
    assert pipeline._embedding.min_num_samples  # found once per worker by running the network: not counted
    classes = segmentation.specifications.num_powerset_classes if segmentation.specifications.powerset else 3
    frames = segmentation.num_frames(round(pipeline._segmentation.duration * SR))
    segmentation.forward = lambda waveforms, **kwargs: torch.zeros(len(waveforms), frames, classes)
    embedding.forward_frames = lambda waveforms: torch.zeros(len(waveforms), 1, 1)
    embedding.forward_embedding = lambda frames, weights=None: torch.zeros(len(frames), pipeline._embedding.dimension)
    try:
        audio = {"waveform": torch.zeros(1, int(minutes * 60 * SR)), "sample_rate": SR, "uri": "zeros"}
        t0 = time.perf_counter()
        pipeline.get_segmentations(audio)
        t1 = time.perf_counter()
        window_embeddings(pipeline, audio, segmentations, exclude_overlap=True)
        t2 = time.perf_counter()
    finally:
        for name in ("forward",):
            vars(segmentation).pop(name, None)
        for name in ("forward_frames", "forward_embedding"):
            vars(embedding).pop(name, None)
    return {"segmentation step without its network": t1 - t0, "embedding step without its network": t2 - t1}


def end_to_end(pipeline, minutes: float) -> None:
    """`diarize_pcm` on `minutes` of the benchmark's audio, networks included, with pyannote's steps and
    with ours: wall time and whether the turns are the same."""
    from engine_bench import chirp

    from transcription.reprocess import fast_steps, vbx_clustering
    from transcription.reprocess.diarize import diarize_pcm

    seconds = int(minutes * 60)
    pcm = np.concatenate([chirp(min(600, seconds - s), seed=i % 7) for i, s in enumerate(range(0, seconds, 600))])
    noise = (np.random.default_rng(0).standard_normal(SR * 20) * 3000).astype(np.int16)
    diarize_pcm([pipeline], noise, chunk_s=1800)  # warm-up, as a worker after its first job (min_num_samples found)
    results = {}
    for fast in (False, True):
        (fast_steps.install if fast else fast_steps.uninstall)(pipeline)
        vbx_clustering.uninstall(pipeline)
        if fast:
            vbx_clustering.install(pipeline)
        t0 = time.perf_counter()
        results[fast] = diarize_pcm([pipeline], pcm, chunk_s=1800)
        print(f"{'fast_steps' if fast else 'pyannote':>10}: {minutes:g} min separated in {time.perf_counter() - t0:.1f}s "
              f"({len(results[fast])} turns, {len({t.speaker for t in results[fast]})} speakers)", flush=True)
    print(f"same turns end to end: {results[False] == results[True]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the meeting (one chunk of diarize_pcm)")
    ap.add_argument("--speakers", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each implementation; the fastest counts")
    ap.add_argument("--profile", action="store_true", help="cProfile both, top 15 functions by own time")
    ap.add_argument("--network-minutes", type=float, default=0.0, help="also time the networks on this much audio (0: not)")
    ap.add_argument("--sample-windows", type=int, default=16)
    ap.add_argument("--end-to-end-minutes", type=float, default=0.0, help="also separate this much audio with the networks (0: not)")
    args = ap.parse_args()

    import torch

    from tests.reprocess.pyannote_models import build_pyannote_dir
    from transcription.reprocess.diarize import load_pipelines

    torch.manual_seed(0)
    folder = build_pyannote_dir(Path(tempfile.mkdtemp()) / "pyannote", segmentation_step=0.1)
    [pipeline] = load_pipelines(str(folder), "cpu")
    segmentations, embeddings = synthetic_steps(pipeline, args.minutes, args.speakers)
    print(f"{args.minutes:g} min meeting, {args.speakers} speakers: {len(segmentations.data)} windows, "
          f"{int(np.isfinite(embeddings[..., 0]).sum())} (window, speaker) embeddings")

    results = {}
    for _ in range(args.repeat):  # alternating, so that both see the same load on a shared machine
        for fast in (False, True):
            output, times = run_steps(pipeline, segmentations, embeddings, fast)
            if fast not in results or times["all"] < results[fast][1]["all"]:
                results[fast] = (output, times)
    for fast in (False, True):
        name = "fast_steps" if fast else "pyannote"
        print(f"{name:>10}: " + "  ".join(f"{k} {v:.3f}s" for k, v in results[fast][1].items()))
    (a, ta), (b, tb) = results[False], results[True]
    exclusive, overlapping = turns(a)
    print(f"same turns: {turns(a) == turns(b)} ({len(exclusive)} exclusive, {len(overlapping)} with overlaps, "
          f"{len(a.speaker_diarization.labels())} speakers); speaker embeddings differ by at most "
          f"{np.max(np.abs(a.speaker_embeddings - b.speaker_embeddings)):.1e}")
    print(f"post-processing: {ta['all']:.2f}s -> {tb['all']:.2f}s ({ta['all'] / tb['all']:.1f}x)")

    if args.profile:
        for fast in (False, True):
            print(f"--- profile of {'ours' if fast else 'pyannote'}")
            profiler = cProfile.Profile()
            profiler.enable()
            run_steps(pipeline, segmentations, embeddings, fast)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)

    if args.end_to_end_minutes:
        end_to_end(pipeline, args.end_to_end_minutes)

    around = around_networks_seconds(pipeline, args.minutes, segmentations)
    print("  ".join(f"{k} {v:.2f}s" for k, v in around.items()))

    if args.network_minutes:
        net = network_seconds(pipeline, args.network_minutes, args.minutes, args.sample_windows)
        print("networks on the CPU, scaled to the meeting: " + "  ".join(f"{k} {v:.1f}s" for k, v in net.items()))
        for fast in (False, True):
            python = results[fast][1]["all"]
            whole = python + sum(net.values())
            print(f"{'fast_steps' if fast else 'pyannote':>10}: whole separation ~{whole:.1f}s, of which outside the networks "
                  f"{python:.2f}s ({100 * python / whole:.1f} %)")


if __name__ == "__main__":
    main()
