"""Reprocessing a multi-hour recording on one GPU: seconds per stage, full-size models, random weights.

    python benchmarks/reprocess_bench.py --hours 3 --out reprocess.json

Stages, as the Celery tasks run them (transcription/reprocess/): decode (PyAV, the recording to 16 kHz
PCM16 on disk; without PyAV on the host a streamed WAV copy stands in and the row says so),
transcription (Voxtral Mini 4B Realtime, full-size architecture with random bf16 weights built on the
GPU as in engine_bench.py, offline mode at 960 ms: 60 s segments, as many streams at once as the pool
holds), speaker separation (pyannote.audio SpeakerDiarization with random-weight PyanNet segmentation
and WeSpeaker ResNet34 embedding of the released sizes, 0.1 segmentation step as released, 30-minute
chunks) and alignment (words to speaker turns). The database write is not timed here.
Random weights: the times are those of real-size models; the words and speakers are meaningless.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from transcription.engine import Engine, EngineOptions  # noqa: E402
from transcription.engine.loading import ModelSpec  # noqa: E402
from transcription.reprocess.align import align  # noqa: E402
from transcription.reprocess.transcribe import transcribe_pcm  # noqa: E402

SR = 16_000
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def write_recording(path: Path, seconds: int) -> None:
    """Speech-like audio (sweeps switched on and off like syllables) as a 16 kHz WAV, ten minutes at a time."""
    from engine_bench import chirp

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        for i, start in enumerate(range(0, seconds, 600)):
            w.writeframes(chirp(min(600, seconds - start), seed=i % 7).tobytes())


def decode_stage(wav: Path, out: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        from transcription.reprocess.decode import _pcm16_mono_wav_data, decode_to_pcm

        decode_to_pcm(str(wav), str(out))
        how = "16 kHz mono WAV: copied" if _pcm16_mono_wav_data(str(wav)) else "PyAV decode + resample"
    except ImportError:  # a bare GPU host without PyAV
        with wave.open(str(wav), "rb") as src, open(out, "wb") as dst:
            while data := src.readframes(1 << 20):
                dst.write(data)
        how = "streamed WAV copy (PyAV not installed on this host)"
    return time.perf_counter() - t0, how


def make_spec():
    """The random model's tokens as words: every third token id opens a word, as a space would."""
    from transformers import VoxtralRealtimeFeatureExtractor

    fe = VoxtralRealtimeFeatureExtractor()
    decode = lambda ids: "".join(" w" if i % 3 == 0 else "x" for i in ids)  # noqa: E731
    return ModelSpec(bos_id=1, streaming_pad_id=32, eos_id=2, n_left_pad_steps=32, mel_filters=fe.mel_filters,
                     global_log_mel_max=fe.global_log_mel_max, decode=decode, special_ids=frozenset(range(1000)))


def transcription_stage(pcm, args, log) -> tuple[float, list, dict]:
    from engine_bench import build_model

    t0 = time.perf_counter()
    model = build_model(args.tiny)
    engine = Engine(model, make_spec(), EngineOptions(max_streams=args.max_streams, offline_segment_s=args.segment_s,
                                                      text_window=args.text_window or None))
    log(f"engine ready in {time.perf_counter() - t0:.1f}s, {engine.capacity} streams")
    t0 = time.perf_counter()
    words = transcribe_pcm(engine, pcm, 960, on_progress=lambda f: log(f"  transcription {f:.0%} {time.perf_counter() - t0:.0f}s"))
    sync()
    seconds = time.perf_counter() - t0
    info = {"streams": engine.capacity, "text_window": engine.pool.shape.text_window, "segment_s": args.segment_s, "words": len(words), "health": {k: v for k, v in engine.health().items() if k.startswith("step_ms")}}
    engine.shutdown()
    del engine, model
    torch.cuda.empty_cache() if DEV == "cuda" else None
    return seconds, words, info


def diarization_stage(pcm, args, log) -> tuple[float, list, dict]:
    from tests.reprocess.pyannote_models import build_pyannote_dir
    from transcription.reprocess.diarize import diarize_pcm, load_pipelines

    folder = build_pyannote_dir(Path(tempfile.mkdtemp()) / "pyannote", segmentation_step=args.segmentation_step)
    pipelines = load_pipelines(str(folder), DEV, batch_size=args.diarization_batch, copies=args.diarization_copies)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    turns = diarize_pcm(pipelines, pcm, chunk_s=args.chunk_s, on_progress=lambda f: log(f"  diarization {f:.0%} {time.perf_counter() - t0:.0f}s"))
    sync()
    seconds = time.perf_counter() - t0
    if profiler:
        profiler.disable()
        write_profile(profiler, Path(args.profile))
    return seconds, turns, {"turns": len(turns), "speakers": len({t.speaker for t in turns})}


def write_profile(profiler, path: Path) -> None:
    """The 40 functions that took longest by their own time and by cumulative time, as text."""
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    path.write_text(out.getvalue())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--out", default="reprocess-bench.json")
    ap.add_argument("--stages", default="decode,transcribe,diarize,align")
    ap.add_argument("--max-streams", type=int, default=128)
    ap.add_argument("--chunk-s", type=int, default=1800)
    ap.add_argument("--segment-s", type=int, default=60, help="offline segment length (SCRIBE_ASR_OFFLINE_SEGMENT_S)")
    ap.add_argument("--text-window", type=int, default=0, help="decoder ring in steps (SCRIBE_ASR_TEXT_WINDOW); 0: the model's")
    ap.add_argument("--segmentation-step", type=float, default=0.1)
    ap.add_argument("--diarization-batch", type=int, default=0, help="windows per GPU call (SCRIBE_DIARIZATION_BATCH_SIZE); 0: config.yaml's")
    ap.add_argument("--diarization-copies", type=int, default=1, help="chunks separated at once (SCRIBE_DIARIZATION_PARALLEL_CHUNKS)")
    ap.add_argument("--profile", default="", help="write a cProfile summary of speaker separation to this file")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--tiny", action="store_true", help="smoke-test on a CPU with the tiny Voxtral")
    args = ap.parse_args()
    stages = args.stages.split(",")
    started = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)

    seconds = int(args.hours * 3600)
    work = Path(args.workdir)
    wav, raw = work / f"bench-{seconds}s.wav", work / f"bench-{seconds}s.pcm"
    if not wav.exists():
        write_recording(wav, seconds)
    log(f"recording: {seconds} s, {wav.stat().st_size / 1e6:.0f} MB")
    result = {"audio_seconds": seconds, "device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu",
              "torch": torch.__version__, "stages": {}}
    if "decode" in stages or not raw.exists():
        t, how = decode_stage(wav, raw)
        result["stages"]["decode"] = {"seconds": round(t, 2), "how": how}
        log(f"decode {t:.1f}s ({how})")
    pcm = np.memmap(raw, dtype=np.int16, mode="r")
    words, turns = [], []
    if "transcribe" in stages:
        t, words, info = transcription_stage(pcm, args, log)
        result["stages"]["transcription"] = {"seconds": round(t, 2), **info}
        log(f"transcription {t:.1f}s {info}")
    if "diarize" in stages:
        t, turns, info = diarization_stage(pcm, args, log)
        result["stages"]["diarization"] = {"seconds": round(t, 2), "chunk_s": args.chunk_s, "copies": args.diarization_copies, "batch": args.diarization_batch, "segmentation_step": args.segmentation_step, **info}
        log(f"diarization {t:.1f}s {info}")
    if "align" in stages and words:
        t0 = time.perf_counter()
        segments = align(words, turns)
        result["stages"]["alignment"] = {"seconds": round(time.perf_counter() - t0, 2), "segments": len(segments)}
    result["total_seconds"] = round(sum(s["seconds"] for s in result["stages"].values()), 2)
    if DEV == "cuda":
        result["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print("| stage | seconds |\n|---|---:|")
    for name, stage in result["stages"].items():
        print(f"| {name} | {stage['seconds']:.1f} |")
    print(f"| total | {result['total_seconds']:.1f} |")


if __name__ == "__main__":
    main()
