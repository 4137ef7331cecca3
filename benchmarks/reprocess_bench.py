"""Reprocessing recordings end to end on one GPU: seconds per stage, full-size models, random weights.

    python benchmarks/reprocess_bench.py --hours 3,1 --out benchmarks/results/reprocess-2026-11-30-h200.json
    python benchmarks/reprocess_bench.py --tiny --hours 0.01 --out /tmp/smoke.json   # CPU smoke test

Stages as the Celery tasks run them (transcription/reprocess/), with the models already loaded as in a
running worker: decode (the recording to 16 kHz PCM16 on disk; a 16 kHz WAV is copied), then
transcription and speaker separation side by side (as the job's group runs them on two GPU workers:
here speaker separation runs in a second process on the same GPU), then alignment and store (the
stage hand-over files are written; the database write runs where a database is configured, see
the GPU host has no database). `total_s` is wall time from the WAV to the stored result; `x_realtime` is audio seconds
over it. Transcription: Voxtral Mini 4B Realtime, full-size architecture with random bf16 weights built
on the GPU as in engine_bench.py, offline prefill plus decode at 960 ms, segments sized to the
recording. Speaker separation: pyannote.audio with random-weight PyanNet segmentation and WeSpeaker
ResNet34 embedding of the released sizes. `token_agreement`: the offline prefill path's tokens against
the live streaming step's on the same segments (same weights), position by position. Per run,
`detail.transcription` splits transcription into the audio pass, the decoder and the text (GPU-
synchronised per batch) and gives the decoder's steps, ms a step, GB read a step (weights and the
cache entries its attention reads) and GB/s.
Random weights: the times are those of real-size models; the words and speakers are meaningless.
"""
import argparse
import datetime
import json
import os
import subprocess
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
from transcription.engine import offline, offline_batch  # noqa: E402
from transcription.engine.prefill import DecoderStats  # noqa: E402
from transcription.reprocess.align import Turn, align, write_rttm  # noqa: E402
from transcription.reprocess.diarize import chunk_seconds  # noqa: E402
from transcription.reprocess.transcribe import segment_plan, transcribe_pcm  # noqa: E402

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


def load_engine(args, log) -> Engine:
    """The engine as a GPU worker holds it: model loaded, step captured, offline kernels warmed up."""
    import engine_bench
    from engine_bench import build_model

    t0 = time.perf_counter()
    if args.float32:  # the same random weights without bf16 rounding: what is left between the paths is the arithmetic's order
        engine_bench.DTYPE = torch.float32
    options = EngineOptions(max_streams=args.max_streams, offline_segment_s=args.segment_s, offline_batch=args.batch,
                            text_window=args.text_window or None, dtype="float32" if args.float32 else None)
    engine = Engine(build_model(args.tiny), make_spec(), options)
    offline_batch.transcribe_segments(engine, [np.zeros(SR * 5, np.float32)] * 2, 960)
    sync()
    log(f"engine ready in {time.perf_counter() - t0:.1f}s ({engine.capacity} live slots, offline batch {args.batch})")
    return engine


class DiarizationProcess:
    """Speaker separation in its own process (as on its own Celery worker), pipelines loaded and warm."""

    def __init__(self, args):
        cmd = [sys.executable, __file__, "--diarization-worker", "--diarization-batch", str(args.diarization_batch),
               "--diarization-copies", str(args.diarization_copies), "--segmentation-step", str(args.segmentation_step)]
        env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.reply()

    def start(self, pcm_path: Path, chunk_s: int, rttm_path: Path) -> None:
        self.proc.stdin.write(json.dumps({"pcm": str(pcm_path), "chunk_s": chunk_s, "out": str(rttm_path)}) + "\n")
        self.proc.stdin.flush()

    def reply(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise RuntimeError(f"the speaker separation process ended (exit {self.proc.wait()})")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def diarization_worker(args) -> None:
    """Child side of DiarizationProcess: one JSON request per stdin line, one '@@' JSON reply per stdout line."""
    from tests.reprocess.pyannote_models import build_pyannote_dir
    from transcription.reprocess.diarize import diarize_pcm, load_pipelines

    folder = build_pyannote_dir(Path(tempfile.mkdtemp()) / "pyannote", segmentation_step=args.segmentation_step)
    pipelines = load_pipelines(str(folder), DEV, batch_size=args.diarization_batch, copies=args.diarization_copies)
    noise = (np.random.default_rng(0).standard_normal(SR * 40) * 3000).astype(np.int16)
    diarize_pcm(pipelines, noise, chunk_s=20)  # warm-up: kernels chosen, as in a worker after its first job
    print("@@" + json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pcm = np.memmap(request["pcm"], dtype=np.int16, mode="r")
        t0 = time.perf_counter()
        turns = diarize_pcm(pipelines, pcm, chunk_s=request["chunk_s"])
        sync()
        Path(request["out"]).write_text(write_rttm(turns))  # the stage's hand-over file
        print("@@" + json.dumps({"seconds": time.perf_counter() - t0, "turns": len(turns),
                                 "speakers": len({t.speaker for t in turns})}), flush=True)


def end_to_end(engine, diarization, hours: float, args, log) -> dict:
    """One recording from its WAV to the stored result, transcription and speaker separation side by side."""
    from transcription.reprocess.align import read_rttm

    seconds = int(hours * 3600)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    wav, raw, rttm, words_file = (work / f"bench-{seconds}s.{ext}" for ext in ("wav", "pcm", "rttm", "words.json"))
    if not wav.exists():
        write_recording(wav, seconds)
    log(f"recording: {seconds} s, {wav.stat().st_size / 1e6:.0f} MB")
    stages, detail = {}, {}
    started = time.perf_counter()
    stages["decode"], detail["decode"] = decode_stage(wav, raw)
    pcm = np.memmap(raw, dtype=np.int16, mode="r")
    chunk_s = chunk_seconds(seconds, args.chunk_s, args.diarization_copies)
    if diarization:
        diarization.start(raw, chunk_s, rttm)
    t0 = time.perf_counter()
    engine._prefill.timings.clear()
    engine._prefill.decoder = DecoderStats()
    words = transcribe_pcm(engine, pcm, 960)
    sync()
    words_file.write_text(json.dumps([[w.text, w.start_ms, w.end_ms] for w in words]))  # the stage's hand-over file
    stages["transcription"] = time.perf_counter() - t0
    segment_s, _ = segment_plan(engine.options, seconds)
    detail["transcription"] = {"words": len(words), "segment_s": segment_s, "ended_at_s": time.perf_counter() - started,
                               **{k: round(v, 2) for k, v in engine._prefill.timings.items()},
                               **decoder_figures(engine._prefill.decoder)}
    log(f"transcription {stages['transcription']:.1f}s, {len(words)} words, {segment_s} s segments {detail['transcription']}")
    turns = []
    if diarization:
        reply = diarization.reply()
        stages["diarization"] = reply.pop("seconds")
        detail["diarization"] = {**reply, "chunk_s": chunk_s, "copies": args.diarization_copies, "batch": args.diarization_batch,
                                 "ended_at_s": time.perf_counter() - started}
        turns = read_rttm(rttm.read_text())
        log(f"diarization {stages['diarization']:.1f}s {reply}")
    t0 = time.perf_counter()
    hand_over = [tuple(w) for w in json.loads(words_file.read_text())]
    segments = align([type(words[0])(*w) for w in hand_over] if words else [], turns)
    stages["alignment"] = time.perf_counter() - t0
    stages["store"], detail["store"] = store_stage(segments, args)
    total = time.perf_counter() - started
    return {"hours": hours, "stages": {k: round(v, 2) for k, v in stages.items()}, "total_s": round(total, 2),
            "x_realtime": round(seconds / total, 1), "segments": len(segments), "detail": detail}


def decoder_figures(stats) -> dict:
    """The decoder's step loops: steps, ms a step, and bytes read (weights and the cache entries the
    attention reads) over their time, against the H200's ~4.8 TB/s peak (~4.3 TB/s reachable)."""
    if not stats.steps:
        return {}
    return {"decoder_steps": stats.steps, "decoder_step_ms": round(1000 * stats.seconds / stats.steps, 2),
            "decoder_gb_per_step": round(stats.bytes_read / stats.steps / 1e9, 2),
            "decoder_gb_s": round(stats.bytes_read / max(stats.seconds, 1e-9) / 1e9, 0)}


def store_stage(segments, args) -> tuple[float, str]:
    """What the store stage hands the database, serialised: the GPU host has no PostgreSQL."""
    t0 = time.perf_counter()
    rows = [{"start_ms": s.start_ms, "end_ms": s.end_ms, "speaker": s.speaker, "text": s.text,
             "words": [[w.text, w.start_ms, w.end_ms] for w in s.words]} for s in segments]
    Path(args.workdir, "bench-segments.json").write_text(json.dumps(rows))
    return time.perf_counter() - t0, "segments serialised to JSON; no database on this host (tests/reprocess time the real write)"


def token_agreement(engine, args, log) -> dict:
    """Offline prefill path against the live streaming step on the same segments, token by token."""
    pcm = np.memmap(Path(args.workdir) / f"bench-{int(float(args.hours.split(',')[-1]) * 3600)}s.pcm", dtype=np.int16, mode="r")
    n = args.agreement_s * SR
    segments = [np.asarray(pcm[i * n:(i + 1) * n], dtype=np.float32) / 32768.0 for i in range(args.agreement_segments)]
    segments = [s for s in segments if len(s)]
    t0 = time.perf_counter()
    fast = offline_batch.transcribe_segments(engine, segments, 960)
    sync()
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    live = offline.transcribe_many(engine, segments, 960, segment_s=3600, search_s=1)
    t_live = time.perf_counter() - t0
    same, total = _same_tokens(fast, live)
    log(f"token agreement {same}/{total} = {same / max(total, 1):.4f} (prefill {t_fast:.1f}s, streaming {t_live:.1f}s)")
    result = {"agreement": round(same / max(total, 1), 4), "tokens": total, "segments": len(segments),
              "segment_s": args.agreement_s, "prefill_s": round(t_fast, 2), "streaming_s": round(t_live, 2)}
    if args.streaming_floor:
        # The streaming path against itself, the same segments four at a time: other batch sizes, other
        # matrix shapes, so other bf16 roundings. What no offline path can be expected to beat.
        few = [r for i in range(0, len(segments), 4)
               for r in offline.transcribe_many(engine, segments[i:i + 4], 960, segment_s=3600, search_s=1)]
        same, total = _same_tokens(few, live)
        log(f"streaming, 4 at a time against {len(segments)} at once: {same}/{total} = {same / max(total, 1):.4f}")
        result["streaming_vs_itself"] = round(same / max(total, 1), 4)
    return result


def _same_tokens(a_runs, b_runs) -> tuple[int, int]:
    same = total = 0
    for a, b in zip(a_runs, b_runs):
        ids_a, ids_b = [t.token_id for t in a.tokens], [t.token_id for t in b.tokens]
        assert len(ids_a) == len(ids_b), (len(ids_a), len(ids_b))
        same += sum(x == y for x, y in zip(ids_a, ids_b))
        total += len(ids_b)
    return same, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", default="3", help="comma-separated recording lengths, each run end to end; the first is the headline")
    ap.add_argument("--out", default="reprocess-bench.json")
    ap.add_argument("--max-streams", type=int, default=16, help="live slots of the engine (the streaming side of the agreement check)")
    ap.add_argument("--batch", type=int, default=256, help="offline segments decoded at once (SCRIBE_ASR_OFFLINE_BATCH)")
    ap.add_argument("--chunk-s", type=int, default=1800)
    ap.add_argument("--segment-s", type=int, default=60, help="longest offline segment (SCRIBE_ASR_OFFLINE_SEGMENT_S)")
    ap.add_argument("--text-window", type=int, default=0, help="decoder window in steps (SCRIBE_ASR_TEXT_WINDOW); 0: the model's")
    ap.add_argument("--segmentation-step", type=float, default=0.1)
    ap.add_argument("--diarization-batch", type=int, default=0, help="windows per GPU call (SCRIBE_DIARIZATION_BATCH_SIZE); 0: config.yaml's")
    ap.add_argument("--diarization-copies", type=int, default=1, help="chunks separated at once (SCRIBE_DIARIZATION_PARALLEL_CHUNKS)")
    ap.add_argument("--no-diarization", action="store_true")
    ap.add_argument("--agreement-segments", type=int, default=16)
    ap.add_argument("--agreement-s", type=int, default=30)
    ap.add_argument("--streaming-floor", action="store_true", help="also compare the streaming path with itself at another batch size")
    ap.add_argument("--float32", action="store_true", help="the model in float32 (on a GPU too), for agreement without bf16 rounding")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--tiny", action="store_true", help="smoke-test on a CPU with the tiny Voxtral")
    ap.add_argument("--diarization-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.diarization_worker:
        return diarization_worker(args)
    started = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)

    diarization = None if args.no_diarization else DiarizationProcess(args)
    log("speaker separation process ready" if diarization else "speaker separation left out")
    engine = load_engine(args, log)
    runs = [end_to_end(engine, diarization, float(h), args, log) for h in args.hours.split(",")]
    if diarization:
        diarization.close()
    agreement = token_agreement(engine, args, log)
    engine.shutdown()
    device = torch.cuda.get_device_name() if DEV == "cuda" else "cpu"
    head = runs[0]
    result = {"date": datetime.date.today().isoformat(), "hours": head["hours"], "device": device, "stages": head["stages"],
              "total_s": head["total_s"], "x_realtime": head["x_realtime"], "token_agreement": agreement["agreement"],
              "runs": runs, "agreement": agreement, "torch": torch.__version__,
              "settings": {k: getattr(args, k) for k in ("batch", "segment_s", "text_window", "chunk_s", "segmentation_step",
                                                        "diarization_batch", "diarization_copies", "tiny", "float32")}}
    if DEV == "cuda":
        result["peak_gpu_gib_transcription_process"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print("| hours | decode | transcription | diarization | alignment | store | total | x real time |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        st = r["stages"]
        cells = " | ".join(f"{st.get(k, float('nan')):.2f}" for k in ("decode", "transcription", "diarization", "alignment", "store"))
        print(f"| {r['hours']} | {cells} | {r['total_s']:.2f} | {r['x_realtime']:.0f} |")
    print(f"token agreement (prefill vs streaming): {agreement['agreement']:.4f} over {agreement['tokens']} tokens")


if __name__ == "__main__":
    main()
