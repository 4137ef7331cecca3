"""Live capacity of the engine on one GPU, bf16 and fp8 ring caches: what it admits, and what it serves in time.

    python benchmarks/capacity_bench.py --out benchmarks/results/capacity-2026-11-30-h200.json --seconds 60

Full-size Voxtral Realtime with random bf16 weights (no download; engine_bench.py builds it). For each
cache type: the engine's start-up (memory slots, step-time figure per batch bucket, the streams it
admits within its 60 ms step budget), token agreement with transformers `generate` (4 x 10 s, 480 ms)
and between the two cache types, one step timed with every row active and every ring entry holding a
position of minute 60 (the attention reads whole rings, so a step costs the same at any stream age),
and paced live runs: streams sending 80 ms of audio per 80 ms (staggered), lag per caption token from
the arrival of the audio it needed, at 90 % of what the engine admits (with six streams joining one by
one mid-run, the worst reported: time from a stream's opening, with its first 80 ms frame, to its first
token; at 480 ms delay the first token needs 565 ms of audio, so 560 ms of that is audio still to come
in real time), at what it admits, and one bucket (16 streams) past it, opened without the time check.
`bandwidth_tb_s`: bytes a step with all of a run's streams active must read (weights once, every ring
in full) over that step's time (`full_step_ms`, rings at minute 60).
Rows without audio in a step read no ring, so live steps with staggered streams are shorter than that
worst case. Each run lasts `--seconds` (say so when it is under 60).
"""
import argparse
import datetime
import gc
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import engine_bench as EB  # noqa: E402

from transcription.engine import Delta, Engine, EngineOptions  # noqa: E402

DATE = datetime.date.today().isoformat()
DELAY_MS = 480
MINUTE_60 = 45_000  # steps


def log(msg):
    print(msg, flush=True)


def copy_bandwidth_tb_s() -> float:
    """Device-to-device copy, bytes read plus written: the card's practical memory ceiling."""
    x = torch.randn(1024**3 // 2, device="cuda")  # 2 GiB
    y = torch.empty_like(x)
    y.copy_(x)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        y.copy_(x)
    end.record()
    torch.cuda.synchronize()
    tb_s = 10 * 2 * x.numel() * 4 / (start.elapsed_time(end) / 1000) / 1e12
    del x, y
    torch.cuda.empty_cache()
    return round(tb_s, 2)


def kernel_check() -> dict:
    """The ring kernel against SDPA on random rings (bf16 and fp8), on this GPU."""
    import torch.nn.functional as F

    from transcription.engine import attention
    from transcription.engine.cache import dequantize, quantize
    from transcription.engine.step import window_mask

    out = {}
    for fp8 in (False, True):
        B, Hkv, G, R, D = 8, 8, 4, 8192, 128
        q = torch.randn(B, Hkv, G, D, device="cuda", dtype=torch.bfloat16)
        k, v = (torch.randn(B, Hkv, R, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        qpos = torch.randint(R, 4 * R, (B, 1), device="cuda")
        key_pos = qpos - R + 1 + torch.arange(R, device="cuda")[None]
        key_pos = torch.where(torch.rand(B, R, device="cuda") < 0.1, -1, key_pos)
        ks = vs = None
        if fp8:
            (k, ks), (v, vs) = quantize(k), quantize(v)
        ref = F.scaled_dot_product_attention(q, dequantize(k, ks, q.dtype), dequantize(v, vs, q.dtype),
                                             attn_mask=window_mask(key_pos, qpos, R), scale=D ** -0.5)
        got = attention.ring_attention(q, k, v, ks, vs, key_pos, qpos, R, D ** -0.5)
        out["fp8" if fp8 else "bf16"] = round(float((got.float() - ref.float()).norm() / ref.float().norm()), 5)
    out["ring_store_exact"] = ring_store_exact()
    log(f"ring kernel vs SDPA, relative error: {out}")
    return out


def ring_store_exact() -> dict:
    """The fused ring write against the PyTorch step's, bf16 and fp8 rings, on this GPU: entries that differ."""
    from transcription.engine import ring_store
    from transcription.engine.cache import FP8
    from transcription.engine.step import kv_write

    same = {}
    for kv_dtype in (torch.bfloat16, FP8):
        B, L, H, R, D = 64, 4, 32, 753, 64
        rings = [torch.randn(B, H, R, D, device="cuda").to(kv_dtype) for _ in range(2)]
        scales = [torch.rand(B, H, R, device="cuda") for _ in range(2)] if kv_dtype == FP8 else [None, None]
        qkv = torch.randn(B, L, 3 * H * D, device="cuda", dtype=torch.bfloat16) * 3
        k, v = qkv[..., H * D:2 * H * D].view(B, L, H, D), qkv[..., 2 * H * D:].view(B, L, H, D)
        idx = (torch.randint(0, 10 * R, (B, 1), device="cuda") + torch.arange(L, device="cuda")) % R
        active = torch.rand(B, device="cuda") > 0.3
        a = [t.clone() if t is not None else None for t in rings + scales]
        b = [t.clone() if t is not None else None for t in rings + scales]
        kv_write(tuple(a), torch.arange(B, device="cuda")[:, None], idx, k, v, active)
        ring_store.store(tuple(b), idx, k, v, active)
        names = ("k", "v", "k_scale", "v_scale")
        differ = {n: int((x.view(torch.uint8) != y.view(torch.uint8)).sum()) if x.dtype == FP8 else int((x != y).sum())
                  for n, x, y in zip(names, a, b) if x is not None}
        same[str(kv_dtype).replace("torch.", "")] = differ or True
        if any(differ.values()):
            i = next(n for n, c in differ.items() if c)
            x, y = a[names.index(i)], b[names.index(i)]
            where = (x.view(torch.uint8) != y.view(torch.uint8)) if x.dtype == FP8 else (x != y)
            log(f"ring_store {kv_dtype} {i}: {int(where.sum())} entries differ, e.g. {x[where][:4].float().tolist()} "
                f"vs {y[where][:4].float().tolist()}")
    return same


def make_engine(model, spec, kv: str, attention: str | None, args_max_streams=512, budget_ms=None) -> Engine:
    t = time.time()
    engine = Engine(model, spec, EngineOptions(device=EB.DEV, max_streams=args_max_streams, step_budget_ms=budget_ms, memory_fraction=0.98,
                                               activation_reserve_gib=2.5, kv_cache=kv, attention=attention))
    log(f"[{kv}] engine ready in {time.time() - t:.0f} s: {engine.capacity} slots by memory, admits "
        f"{engine.realtime_capacity} live; ring kernel {engine.ring_kernel}; step ms by bucket {engine.step_model.figures()}")
    return engine


def engine_tokens(engine, pcms) -> list[list[int]]:
    futures = []
    for pcm in pcms:
        st = engine.open_stream(DELAY_MS, on_event=lambda e: None, realtime=False)
        st.push(pcm)
        futures.append(st.close_nowait())
    return [[t.token_id for t in f.result(600).tokens] for f in futures]


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    equal = total = 0
    for x, y in zip(a, b):
        n = min(len(x), len(y))
        equal += sum(p == q for p, q in zip(x[:n], y[:n]))
        total += n
    return round(100.0 * equal / max(1, total), 2)


def full_ring_step(engine, rows: int, weight_bytes: int) -> tuple[float, float]:
    """ms per step with `rows` rows active and every ring entry at minute 60; and the TB/s that implies."""
    r, pool, bufs = engine.runner, engine.pool, engine.runner.step.bufs
    with torch.no_grad():
        dev = engine.device
        bufs.pos.copy_(torch.arange(engine.capacity, device=dev) + MINUTE_60)
        bufs.delay.fill_(6)
        bufs.token.fill_(1000)
        bufs.mel.normal_()
        pool.text_pos.copy_(torch.arange(pool.shape.text_window, device=dev)[None] + MINUTE_60 - pool.shape.text_window)
        pool.audio_pos.copy_(torch.arange(pool.shape.audio_ring, device=dev)[None] + 4 * MINUTE_60 - pool.shape.audio_ring)
        bufs.active.zero_()
        bufs.active[:rows] = True
    ms = EB.median_step_ms(lambda: r.run(rows), 20)
    bufs.active.zero_()
    pool.reset_all()
    # only the active rows read their rings
    read = weight_bytes + rows * pool.shape.bytes_per_slot(engine.dtype, engine.kv_dtype, engine.audio_kv_dtype)
    return round(ms, 2), round(read / (ms / 1000) / 1e12, 2)


def live_run(engine, n: int, seconds: float, join: bool = False, joins: int = 6) -> dict:
    """n paced streams (the first `admitted` through the time check, the rest without); optionally `joins`
    more join one by one, spread over the run's middle, each timed from its opening to its first token."""
    lags = [[] for _ in range(n + joins)]

    def on_event(i):
        return lambda e: lags[i].append(e.lag_ms) if isinstance(e, Delta) else None

    admitted = engine.realtime_capacity
    streams = [engine.open_stream(DELAY_MS, on_event=on_event(i), realtime=i < admitted) for i in range(n)]
    pcm = EB.chirp(seconds + 2, 3)
    phase = [i * 0.08 / n for i in range(n)]
    sent = [0] * n
    join_at = [seconds * (0.3 + 0.6 * j / max(1, joins - 1)) for j in range(joins)] if join else []
    first_token_ms = {}  # stream index -> ms from its opening to its first token
    t0 = time.monotonic()
    while (now := time.monotonic() - t0) < seconds:
        if join_at and now > join_at[0]:
            join_at.pop(0)
            # A client opens its stream with its first 80 ms frame in hand (a page sends what it has
            # captured): the frame goes with the opening, and the wait is timed from there.
            streams.append(engine.open_stream(DELAY_MS, on_event=on_event(len(streams)), realtime=False))
            phase.append(now - 0.08)
            sent.append(0)
        for i, st in enumerate(streams):
            due = int(max(0.0, now - phase[i]) / 0.08 + 1e-6) * EB.STEP
            if due > sent[i]:
                st.push(pcm[sent[i]:due])
                sent[i] = due
        for i in range(n, len(streams)):
            if i not in first_token_ms and streams[i]._state.tokens:
                first_token_ms[i] = round((time.monotonic() - t0 - phase[i] - 0.08) * 1000, 1)
        time.sleep(0.002)
    h = engine.health()
    for st in streams:
        st.abort()
    time.sleep(1.0)
    steady = [x for per in lags[:n] for x in per[5:]]
    out = {"streams": n, "seconds": seconds, "tokens": len(steady),
           "lag_ms_p50": round(float(np.percentile(steady, 50)), 1) if steady else None,
           "lag_ms_p95": round(float(np.percentile(steady, 95)), 1) if steady else None,
           "step_ms_p50": round(h["step_ms_p50"], 2), "step_ms_p95": round(h["step_ms_p95"], 2),
           "admitted_max": admitted}
    if join:
        waits = [first_token_ms.get(i) for i in range(n, len(streams))]
        out["join_first_token_ms_each"] = waits
        out["join_first_token_ms"] = None if None in waits or not waits else max(waits)  # the worst join
    log(f"  live {out}")
    return out


def bench_dtype(model, spec, kv, attention, pcms, reference, seconds, weight_bytes, tokens_by_kv, args) -> tuple[list, dict]:
    engine = make_engine(model, spec, kv, attention, args.max_streams, args.budget_ms)
    info = {"kv_dtype": kv, "slots_by_memory": engine.capacity, "admitted_max": engine.realtime_capacity,
            "bytes_per_stream": engine.pool.shape.bytes_per_slot(engine.dtype, engine.kv_dtype, engine.audio_kv_dtype),
            "ring_kernel": engine.ring_kernel, "fused_step": engine.runner.step.fused,
            "step_ms_by_bucket_at_start": engine.step_model.figures(),
            "idle_step_ms_by_bucket_at_start": engine.step_model.idle_figures()}
    log(f"[{kv}] fused step {info['fused_step']}; idle step ms by bucket {info['idle_step_ms_by_bucket_at_start']}")
    tokens = engine_tokens(engine, pcms)
    tokens_by_kv[kv] = tokens
    info["agreement_with_generate_pct"] = agreement(tokens, reference)
    log(f"[{kv}] agreement with generate: {info['agreement_with_generate_pct']} %")
    if info["agreement_with_generate_pct"] < 80:  # a broken step: its timings would mean nothing
        raise SystemExit(f"[{kv}] the engine disagrees with generate: {info['agreement_with_generate_pct']} %")
    admitted = engine.realtime_capacity
    ms, tb_s = full_ring_step(engine, admitted, weight_bytes)
    info.update(full_ring_step_ms=ms, full_ring_bandwidth_tb_s=tb_s)
    log(f"[{kv}] step with {admitted} rows, rings full at minute 60: {ms} ms, {tb_s} TB/s")
    runs = []
    counts = [(max(1, min(round(0.9 * admitted), engine.capacity - 1)), True), (admitted, False)]
    if admitted + 16 <= engine.capacity:
        counts.append((admitted + 16, False))
    for n, join in counts:
        run = live_run(engine, n, seconds, join=join)
        step_ms = engine.step_model.predict(n) or run["step_ms_p50"]
        full_ms, full_tb_s = full_ring_step(engine, n, weight_bytes)
        runs.append({"streams": n, "kv_dtype": kv, "delay_ms": DELAY_MS, "lag_ms_p95": run["lag_ms_p95"],
                     "step_ms_p95": run["step_ms_p95"], "admitted_max": admitted,
                     "bandwidth_tb_s": full_tb_s, "full_step_ms": full_ms, "path": "engine", "gpus": 1,
                     "lag_ms_p50": run["lag_ms_p50"], "step_ms_p50": run["step_ms_p50"], "seconds": seconds,
                     "tokens": run["tokens"], "join_first_token_ms": run.get("join_first_token_ms"),
                     "join_first_token_ms_each": run.get("join_first_token_ms_each"),
                     "step_ms_model": round(step_ms, 2)})
    engine.shutdown()
    del engine
    gc.collect()
    if EB.DEV == "cuda":
        torch.cuda.empty_cache()
    return runs, info


def apply_tuning(path: str) -> dict:
    from transcription.engine import attention

    best = json.load(open(path))["best"]
    for kind, row in best.items():
        attention.TUNING[kind] = row["setting"]
    log(f"ring kernel settings: {attention.TUNING}")
    return {k: dict(v["setting"], tb_s=v["tb_s"], ms=v["ms"]) for k, v in best.items()}


def merge(old: dict, new: dict, kinds: list[str]) -> dict:
    """Runs and engine figures of `kinds` from the new measurement, the rest from the earlier one."""
    out = dict(old, **{k: v for k, v in new.items() if k not in ("runs", "engines")})
    out["runs"] = [r for r in old["runs"] if r["kv_dtype"] not in kinds] + new["runs"]
    out["engines"] = [e for e in old["engines"] if e["kv_dtype"] not in kinds] + new["engines"]
    out["earlier"] = {"engines": [e for e in old["engines"] if e["kv_dtype"] in kinds],
                      "runs": [r for r in old["runs"] if r["kv_dtype"] in kinds]}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "results", f"capacity-{DATE}-h200.json"))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--kv", default="float8,float8-all,bfloat16")
    ap.add_argument("--max-streams", type=int, default=512)
    ap.add_argument("--budget-ms", type=float, default=None, help="step budget; default the engine's (60 ms on a GPU)")
    ap.add_argument("--tiny", action="store_true", help="smoke-test this script on a CPU with the tiny model")
    ap.add_argument("--tuning", help="ring_kernel_sweep.py's JSON: use its fastest setting per ring dtype")
    ap.add_argument("--merge-into", help="an earlier results file: keep its runs of the other ring dtypes")
    args = ap.parse_args()
    tuning = apply_tuning(args.tuning) if args.tuning else None
    import transformers

    gpu = EB.DEV == "cuda"
    doc = {"device": torch.cuda.get_device_name() if gpu else "cpu", "date": DATE, "torch": torch.__version__,
           "transformers": transformers.__version__, "delay_ms": DELAY_MS,
           "copy_bandwidth_tb_s": copy_bandwidth_tb_s() if gpu else None,
           "ring_kernel_error": kernel_check() if gpu else {"bf16": 0.0},
           "note": f"each live run lasted {args.seconds:g} s; engine path only (no Daphne), one GPU"}
    t = time.time()
    model = EB.build_model(args.tiny)
    fe, spec = EB.make_spec()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    log(f"model built in {time.time() - t:.0f} s; copy bandwidth {doc['copy_bandwidth_tb_s']} TB/s")
    pcms = [EB.chirp(10.0, s) for s in range(4)]
    reference, _ = EB.stock_generate(model, fe, pcms, DELAY_MS // 80)
    if gpu:
        torch.cuda.empty_cache()
    doc["runs"], doc["engines"], tokens_by_kv = [], [], {}
    kernel_ok = max(v for k, v in doc["ring_kernel_error"].items() if k != "ring_store_exact") < 2e-2
    for kv in args.kv.split(","):
        runs, info = bench_dtype(model, spec, kv, None if kernel_ok else "sdpa", pcms, reference, args.seconds,
                                 weight_bytes, tokens_by_kv, args)
        doc["runs"] += runs
        doc["engines"].append(info)
        json.dump(doc, open(args.out, "w"), indent=1)  # partial results survive a later failure
    if len(tokens_by_kv) == 2:
        a, b = tokens_by_kv.values()
        doc["fp8_vs_bf16_engine_agreement_pct"] = agreement(a, b)
    if tuning:
        doc["ring_kernel_tuning"] = tuning
    if args.merge_into:
        doc = merge(json.load(open(args.merge_into)), doc, args.kv.split(","))
    json.dump(doc, open(args.out, "w"), indent=1)
    log("streams kv        lag_p95  step_p95  admitted  TB/s  join_ms")
    for r in doc["runs"]:
        log(f"{r['streams']:7d} {r['kv_dtype']:9s} {r['lag_ms_p95']!s:>8} {r['step_ms_p95']:9.1f} {r['admitted_max']:9d} "
            f"{r['bandwidth_tb_s']:5.2f} {r['join_first_token_ms']!s:>8}")
    log(json.dumps({k: v for k, v in doc.items() if k != "runs"}))


if __name__ == "__main__":
    main()
