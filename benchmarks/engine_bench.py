"""Full-size Voxtral Realtime on one GPU, random bf16 weights (no download): parity, step time, capacity.

    python benchmarks/engine_bench.py --out results.json

Prints a table and writes JSON. Sections: (a) engine tokens vs transformers `generate`, same weights;
(b) stock `generate` ms per step at several batch sizes; (c) engine ms per step vs batch size (CUDA
graph replay, every row active, rings full); (d) live simulation at capacity: every stream gets 80 ms
of audio per 80 ms of wall time, lag measured per token from the arrival of the audio it needed.
The step's cost does not depend on the stream position (static ring caches, full-window attention
from the first step), so (c) times steps both at the start and 60 minutes in.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_audio import chirp  # noqa: E402,F401  (the benchmarks take it from here)
from transcription.engine import Delta, Engine, EngineOptions  # noqa: E402
from transcription.engine.loading import ModelSpec  # noqa: E402

SR, STEP = 16_000, 1280
BOS, PAD, EOS, N_LEFT = 1, 32, 2, 32


DEV = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.bfloat16 if DEV == "cuda" else torch.float32


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def median_step_ms(run, repeats: int, warmup: int = 3) -> float:
    """Median milliseconds of `run()` over `repeats` calls after `warmup` untimed ones, the GPU synchronised
    before and after each."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def build_model(tiny: bool):
    from transformers import VoxtralRealtimeConfig, VoxtralRealtimeForConditionalGeneration

    torch.manual_seed(0)
    config = VoxtralRealtimeConfig()
    if tiny:  # smoke-testing this script on a CPU
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "engine"))
        from tiny_model import tiny_config

        config = tiny_config(text_window=64, encoder_window=100)
    torch.set_default_dtype(DTYPE)
    with torch.device(DEV):
        model = VoxtralRealtimeForConditionalGeneration(config)
    torch.set_default_dtype(torch.float32)
    with torch.no_grad():  # make the output follow the audio (default init repeats one token)
        for lin in (model.model.multi_modal_projector.linear_1, model.model.multi_modal_projector.linear_2):
            lin.weight.normal_(0, 3.0 / lin.weight.shape[1] ** 0.5)
        for p in model.model.audio_tower.parameters():
            if p.dim() >= 2:
                p.normal_(0, 1.0 / p.shape[1] ** 0.5)
    return model.eval()


def make_spec():
    from transformers import VoxtralRealtimeFeatureExtractor

    fe = VoxtralRealtimeFeatureExtractor()
    return fe, ModelSpec(bos_id=BOS, streaming_pad_id=PAD, eos_id=EOS, n_left_pad_steps=N_LEFT,
                         mel_filters=fe.mel_filters, global_log_mel_max=fe.global_log_mel_max,
                         decode=lambda ids: "x" * len(ids), special_ids=frozenset(range(1000)))


def reference_inputs(fe, pcms, delay_steps):
    """What mistral-common + the processor build for an offline request (left pad, audio, right pad)."""
    feats = []
    for pcm in pcms:
        x = pcm.astype(np.float32) / 32768
        x = np.concatenate([np.zeros(N_LEFT * STEP, np.float32), x, np.zeros(-len(x) % STEP + (delay_steps + 11) * STEP, np.float32)])
        feats.append(x)
    f = fe(feats, sampling_rate=SR, return_tensors="pt").input_features
    ids = torch.tensor([[BOS] + [PAD] * (N_LEFT + delay_steps)] * len(pcms))
    return ids.to(DEV), f.to(DEV, DTYPE)


def stock_generate(model, fe, pcms, delay_steps):
    ids, feats = reference_inputs(fe, pcms, delay_steps)
    sync()
    t = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, input_features=feats, num_delay_tokens=delay_steps)
    sync()
    elapsed = time.perf_counter() - t
    new = out[:, ids.shape[1]:]
    return new.tolist(), elapsed * 1000 / new.shape[1]


def parity(model, fe, engine, log):
    pcms = [chirp(10.0, s) for s in range(4)]
    ref, _ = stock_generate(model, fe, pcms, 6)
    futures = []
    for pcm in pcms:
        st = engine.open_stream(480, on_event=lambda e: None, realtime=False)
        st.push(pcm)
        futures.append(st.close_nowait())
    got = [[t.token_id for t in f.result(600).tokens] for f in futures]
    rows = []
    for r, g in zip(ref, got):
        n = min(len(r), len(g))
        first = next((i for i in range(n) if r[i] != g[i]), n)
        rows.append({"tokens": n, "equal": sum(a == b for a, b in zip(r, g)), "first_difference": first if first < n else None,
                     "distinct_tokens": len(set(r))})
    log(f"(a) parity bf16, 4 x 10 s at 480 ms: {rows}")
    return rows


def stock_steps(model, fe, log):
    rows = {}
    for b in (1, 8, 32, 64):
        pcms = [chirp(6.0, s % 7) for s in range(b)]
        if b == 1:
            stock_generate(model, fe, pcms, 6)  # warm-up
        _, ms = stock_generate(model, fe, pcms, 6)
        rows[b] = round(ms, 2)
        log(f"(b) stock generate batch {b}: {ms:.1f} ms per step")
        if DEV == "cuda":
            torch.cuda.empty_cache()
    return rows


def engine_steps(engine, log):
    r, step, pool = engine.runner, engine.runner.step, engine.pool
    bufs = step.bufs
    rows = {}
    for late in (False, True):
        with torch.no_grad():
            base = 45_000 if late else 100  # 45,000 steps = 60 minutes
            bufs.pos.copy_(torch.arange(engine.capacity, device=DEV) + base)
            bufs.delay.fill_(6)
            bufs.token.fill_(1000)
            bufs.mel.normal_()
            if late:  # every ring entry valid, as an hour in
                pool.text_pos.copy_(torch.arange(pool.shape.text_window, device=DEV)[None] + base - pool.shape.text_window)
                pool.audio_pos.copy_(torch.arange(pool.shape.audio_ring, device=DEV)[None] + 4 * base - pool.shape.audio_ring)
        for b in (1, 8, 32, 64, 128):
            if b > engine.capacity:
                continue
            bufs.active.zero_()
            bufs.active[:b] = True
            ms = median_step_ms(lambda: r.run(b), 30)
            rows[f"{b}{'@60min' if late else ''}"] = round(ms, 2)
            log(f"(c) engine batch {b} {'at 60 min' if late else 'at start'}: {ms:.2f} ms per step")
    bufs.active.zero_()
    return rows


def live_simulation(engine, n_streams, seconds, log):
    """Pace n_streams real-time clients (80 ms chunks, staggered) and measure per-token lag."""
    lags = [[] for _ in range(n_streams)]
    streams = [engine.open_stream(480, realtime=False, on_event=(lambda i: lambda e: lags[i].append(e.lag_ms) if isinstance(e, Delta) else None)(i))
               for i in range(n_streams)]
    pcm = chirp(seconds + 1, 3)
    t0 = time.monotonic()
    phase = [i * 0.08 / n_streams for i in range(n_streams)]
    sent = [0] * n_streams
    health = []
    while True:
        now = time.monotonic() - t0
        if now > seconds:
            break
        for i, st in enumerate(streams):
            due = int(max(0.0, now - phase[i]) / 0.08) * STEP
            if due > sent[i]:
                st.push(pcm[sent[i]:due])
                sent[i] = due
        if int(now) != int(now - 0.005):
            health.append(engine.health())
        time.sleep(0.005)
    h = engine.health()
    for st in streams:
        st.abort()
    time.sleep(1.0)
    # Skip each stream's first 3 s: the 38-step prompt (left pad + delay) is a deliberate burst.
    steady = [x for per in lags for x in per[40:]]
    out = {"streams": n_streams, "seconds": seconds, "tokens": len(steady),
           "lag_ms_p50": round(float(np.percentile(steady, 50)), 1), "lag_ms_p95": round(float(np.percentile(steady, 95)), 1),
           "lag_ms_max": round(float(np.max(steady)), 1), "step_ms_p50": h["step_ms_p50"], "step_ms_p95": h["step_ms_p95"],
           "batch_mean": h["batch_mean"]}
    log(f"(d) live {n_streams} streams x {seconds} s: {out}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="engine-bench.json")
    ap.add_argument("--sim-seconds", type=int, default=40)
    ap.add_argument("--skip-stock", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--max-streams", type=int, default=128)
    args = ap.parse_args()
    log = lambda s: print(s, flush=True)  # noqa: E731
    result = {"device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu", "torch": torch.__version__, "date": "2026-11-24"}
    import transformers

    result["transformers"] = transformers.__version__
    t = time.time()
    model = build_model(args.tiny)
    fe, spec = make_spec()
    log(f"model built in {time.time() - t:.0f} s, {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params")
    if not args.skip_stock:
        result["stock_ms_per_step"] = stock_steps(model, fe, log)
    if DEV == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = time.time()
    engine = Engine(model, spec, EngineOptions(device=DEV, max_streams=args.max_streams, memory_fraction=0.98, activation_reserve_gib=2.5))
    result["engine_start_s"] = round(time.time() - t, 1)
    result["capacity"] = engine.capacity
    result["bytes_per_stream"] = engine.pool.shape.bytes_per_slot(DTYPE)
    log(f"engine ready in {result['engine_start_s']} s, capacity {engine.capacity} streams")
    result["parity"] = parity(model, fe, engine, log)
    result["engine_ms_per_step"] = engine_steps(engine, log)
    # The step sweep scribbled on the rings; live streams reset their slots on open.
    result["live"] = [live_simulation(engine, n, args.sim_seconds, log) for n in (engine.capacity,)]
    if DEV == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result["total_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 2)
    engine.shutdown()
    json.dump(result, open(args.out, "w"), indent=1)
    log(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
