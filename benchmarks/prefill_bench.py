"""The offline path's phases alone on the full-size random bf16 model: audio pass, decoder steps, agreement.

    python3 benchmarks/prefill_bench.py --segments 256 --segment-s 49 --out prefill.json

Audio pass: `--segments` segments of `--segment-s` seconds through mel, encoder and projector, with the
fused sliding-window kernel (offline_kernels.py) and, on a sample, with SDPA in query chunks; the
kernel is first checked against SDPA on the encoder's shapes. Decoder: the same segments as one batch,
every position stepped as the offline path steps it, with the bytes read per step (weights, and the
cache entries the attention reads) over the time of the step loop, against the card's copy rate measured
in the same run; once with the step's one-pass kernels and once without (the same tokens expected). One
eager step and one encoder pass are profiled (kernel time by kind). Agreement: `--agreement-segments` segments of 30 s through the
prefill path and through the live streaming step, token by token, as reprocess_bench.py counts it.
Random weights: the times are those of real-size models; the tokens are meaningless.
"""
import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import engine_bench as EB  # noqa: E402
from capacity_bench import copy_bandwidth_tb_s  # noqa: E402
from transcription.engine import Engine, EngineOptions, offline, offline_batch, offline_kernels, prefill  # noqa: E402
from transcription.engine import audio as A  # noqa: E402

SR = 16_000


def sync():
    torch.cuda.synchronize()


def timed(fn):
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def kernel_check(window=750, L=2700, b=2, H=32, D=64) -> float:
    """Relative error of the fused kernel against SDPA with the boolean window mask (float32 reference)."""
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(b, H, L, D, device="cuda", generator=g, dtype=torch.bfloat16) for _ in range(3))
    got = offline_kernels.window_attention(q, k, v, window, D ** -0.5).float()
    i = torch.arange(L, device="cuda")
    mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=D ** -0.5)
    return float((got - ref).norm() / ref.norm())


def ring_linear_check(window: int, B=64, Hkv=8, G=4, T=700, D=128) -> float:
    """Largest difference between the ring kernel on a position-ordered cache read up to each query
    (`linear=True`) and read whole with key positions (the live step's mode): 0 when the arithmetic is the same."""
    from transcription.engine import attention

    g = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(B, Hkv, G, D, device="cuda", generator=g, dtype=torch.bfloat16)
    k, v = (torch.randn(B, Hkv, T, D, device="cuda", generator=g, dtype=torch.bfloat16) for _ in range(2))
    qpos = torch.randint(0, T, (B, 1), device="cuda", generator=g)
    keys = torch.arange(T, device="cuda").expand(B, T)
    whole = attention.ring_attention(q, k, v, None, None, keys, qpos, window, D ** -0.5)
    part = attention.ring_attention(q, k, v, None, None, qpos, qpos, window, D ** -0.5, linear=True)
    return float((whole.float() - part.float()).abs().max())


def rope_check(pf, L=700, b=2) -> float:
    """Largest difference between the fused in-place rotary embedding and step.rope (0: the same bits)."""
    from transcription.engine.step import rope

    attn = pf.s.audio.layers[0].self_attn
    x = torch.randn(b, L, attn.q_proj.out_features, device="cuda", dtype=pf.dtype)
    qpos = torch.arange(L, device="cuda")[None].expand(b, -1)
    cos, sin = pf.s.audio.rotary_emb(x, position_ids=qpos)
    ref = rope(x.view(b, L, -1, attn.head_dim).transpose(1, 2), cos, sin)
    got = offline_kernels.rope_(x.view(b, L, -1, attn.head_dim).clone(), cos[0], sin[0]).transpose(1, 2)
    worst = float((got.float() - ref.float()).abs().max())
    # the decoder's case: q as a slice of the fused q/k/v product, one position
    text, Dh = pf.s.text, pf.s.text.layers[0].self_attn.head_dim
    wide = torch.randn(64, 1, 3 * 2048, device="cuda", dtype=pf.dtype) * 4
    qpos = torch.full((64, 1), 613, device="cuda")
    cos, sin = text.rotary_emb(wide, position_ids=qpos)
    ref = rope(wide[..., :4096].reshape(64, 1, -1, Dh).transpose(1, 2), cos, sin)
    got = offline_kernels.rope_(wide[..., :4096].view(64, 1, -1, Dh), cos[0], sin[0]).transpose(1, 2)
    return max(worst, float((got.float() - ref.float()).abs().max()))


def norm_check(pf) -> dict:
    """The fused RMS norm against the module (times a delay scale): largest difference, share of values not equal."""
    layer = pf.s.text.layers[3]
    x = torch.randn(256, 1, layer.input_layernorm.weight.shape[0], device="cuda", dtype=pf.dtype) * 3
    scale = pf.s.delay_scales[3][12]
    ref = layer.post_attention_layernorm(x) * scale
    got = offline_kernels.rms_norm(x, layer.post_attention_layernorm, scale)
    enc = pf.s.audio.layers[0].final_layer_norm
    xe = torch.randn(8, 700, enc.weight.shape[0], device="cuda", dtype=pf.dtype)
    ref_e, got_e = enc(xe), offline_kernels.rms_norm(xe, enc)
    return {"max_diff": max(float((got.float() - ref.float()).abs().max()), float((got_e.float() - ref_e.float()).abs().max())),
            "unequal_share": round(float(((got != ref).float().mean() + (got_e != ref_e).float().mean()) / 2), 6)}


def step_fusion_check(pf) -> dict:
    """The decoder step's one-pass kernels against what they replace, on the model's shapes: values that differ
    (0: the same bits). silu_mul against F.silu(gate) * up; the residual add inside the norm against the add
    then the fused norm (the norm's own order of summation is rms_norm's either way)."""
    torch.manual_seed(0)
    layer = pf.s.text.layers[3]
    n = layer.mlp.gate_proj.out_features
    gate, up = (torch.randn(256, 1, n, device="cuda", dtype=pf.dtype) * 3 for _ in range(2))
    silu_differ = int((offline_kernels.silu_mul(gate, up) != F.silu(gate) * up).sum())
    D = layer.input_layernorm.weight.shape[0]
    hidden, delta = torch.randn(256, 1, D, device="cuda", dtype=pf.dtype) * 8, torch.randn(256, 1, D, device="cuda", dtype=pf.dtype)
    scale = pf.s.delay_scales[3][12]
    ref_sum = hidden + delta
    ref = offline_kernels.rms_norm(ref_sum, layer.post_attention_layernorm, scale)
    got = offline_kernels.rms_norm(hidden, layer.post_attention_layernorm, scale, add=delta)  # hidden becomes the sum
    return {"silu_mul_values_differ": silu_differ, "add_norm_sum_differ": int((hidden != ref_sum).sum()),
            "add_norm_values_differ": int((got != ref).sum())}


def linear_sweep(log, B=256, T=667, positions=(64, 128, 192, 256, 320, 384, 448, 512, 600), Hkv=8, G=4, D=128) -> dict:
    """The decoder attention on a position-ordered cache at early to late positions, per launch setting (the
    same arithmetic: ring_linear_check): every setting run once first, then three rounds in turn, the best
    of each kept (the first setting timed is otherwise slowed by the clocks coming up). What
    attention.TUNING["linear"] rests on; the settings are left as they are."""
    from transcription.engine import attention

    q = torch.randn(B, Hkv, G, D, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(B, Hkv, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    qpos = {pos: torch.full((B, 1), pos, device="cuda") for pos in positions}
    calls = {}
    for warps, stages in ((4, 1), (4, 2), (4, 3), (8, 1), (8, 2), (2, 1)):
        tuning = f"w{warps}s{stages}"
        attention.TUNING[tuning] = dict(attention.TUNING["linear"], warps=warps, stages=stages)
        calls[tuning] = {pos: (lambda t=tuning, p=qpos[pos]: attention.ring_attention(
            q, k, v, None, None, p, p, 1056, D ** -0.5, linear=True, tuning=t)) for pos in positions}
        for call in calls[tuning].values():
            call()
    ms = {name: {pos: float("inf") for pos in positions} for name in calls}
    for _ in range(3):
        for name, by_pos in calls.items():
            for pos, call in by_pos.items():
                _, t = timed(lambda: [call() for _ in range(30)])
                ms[name][pos] = min(ms[name][pos], t / 30 * 1000)
    for name in calls:
        del attention.TUNING[name]
    best = {pos: min(ms, key=lambda name: ms[name][pos]) for pos in positions}
    kept = attention.TUNING["linear"]
    log(f"decoder attention, one layer of {B} rows, ms by position: "
        + "; ".join(f"{name} " + " ".join(f"{pos}:{t:.4f}" for pos, t in row.items()) for name, row in ms.items())
        + f"; fastest by position {best}; the code's setting: w{kept['warps']}s{kept['stages']}")
    return {"sweep": {name: {str(pos): {"ms": round(t, 4), "gb_s": round(2 * B * Hkv * (pos + 1) * D * 2 / (t / 1000) / 1e9)}
                             for pos, t in row.items()} for name, row in ms.items()},
            "fastest": {str(pos): name for pos, name in best.items()}, "kept": f"w{kept['warps']}s{kept['stages']}"}


def top_kernels(fn, n=14) -> list[str]:
    """CUDA kernel time of one call of `fn`, by kernel name, largest first."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        sync()
    rows = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)
    total = sum(e.device_time_total for e in rows)
    lines = [f"total {total / 1000:.2f} ms in {sum(e.count for e in rows)} kernels"]
    lines += [f"{e.device_time_total / 1000:8.2f} ms {e.count:5d}x {e.key[:90]}" for e in rows[:n]]
    return lines


# Products of the full-size model (K, N, bias, rows of the large call), as the live step and prefill.py make them.
PRODUCTS = {"enc_qkv": (1280, 6144, True, 78336), "enc_o": (2048, 1280, True, 78336), "enc_fc1": (1280, 5120, True, 78336),
            "enc_fc2": (5120, 1280, True, 78336), "proj1": (5120, 3072, False, 19584), "proj2": (3072, 3072, False, 19584),
            "dec_qkv": (3072, 6144, False, 854), "dec_gate": (3072, 9216, False, 854), "dec_down": (9216, 3072, False, 854),
            "lm_head": (3072, 131072, False, 256)}


def invariance_check() -> dict:
    """Whether a row of a bf16 product (cuBLAS) or convolution (cuDNN) has the same bits whatever the number of
    rows (or frames) computed with it: values that differ between each large call and slices of it of
    4 to 4,096 rows, with and without reduced-precision reductions; the encoder's convolutions over a whole
    sequence against step by step (10 frames, the history prepended), at batch 16. What step.INVARIANT_ROWS and
    step.conv1d rest on."""
    torch.manual_seed(0)
    out = {}
    for reduced in (True, False):
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = reduced
        for name, (k, n, bias, big_m) in PRODUCTS.items():
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
            b = torch.randn(n, device="cuda", dtype=torch.bfloat16) if bias else None
            x = torch.randn(big_m, k, device="cuda", dtype=torch.bfloat16)
            ref = F.linear(x, w, b)
            row = {f"{m}@{off}": int((F.linear(x[off:off + m], w, b) != ref[off:off + m]).sum())
                   for m in (4, 8, 16, 32, 64, 128, 256, 600, 1024, 4096) for off in (0, 96) if off + m <= big_m}
            row["3d16x4"] = int((F.linear(x[:64].view(16, 4, k), w, b).view(64, n) != ref[:64]).sum())
            out[f"{name}/reduced={reduced}"] = row
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    for name, (cin, cout, stride, frames) in {"conv1": (128, 1280, 1, 8), "conv2": (1280, 1280, 2, 8)}.items():
        w = torch.randn(cout, cin, 3, device="cuda", dtype=torch.bfloat16) / (3 * cin) ** 0.5
        b = torch.randn(cout, device="cuda", dtype=torch.bfloat16)
        B, T, hist = 16, 64, 3 - stride
        x = torch.randn(B, cin, frames * T, device="cuda", dtype=torch.bfloat16)
        whole = F.conv1d(F.pad(x, (hist, 0)), w, b, stride)
        steps, h = [], torch.zeros(B, cin, hist, device="cuda", dtype=torch.bfloat16)
        for t in range(T):
            full = torch.cat([h, x[:, :, frames * t:frames * (t + 1)]], -1)
            h = full[:, :, -hist:]
            steps.append(F.conv1d(full, w, b, stride))
        out[name] = {"whole_vs_steps": int((torch.cat(steps, -1) != whole).sum()), "of": whole.numel()}
    return out


def product_options(rows=(256, 295)) -> dict:
    """The decoder's products at the offline batch's rows, computed several ways: microseconds, TFLOP/s, and
    values that differ from F.linear's (the live step's). Ways: F.linear; the transposed problem
    (W @ x.T, then a copy back to rows); F.linear through cuBLASLt."""
    torch.manual_seed(0)
    shapes = {"dec_qkv": (3072, 6144), "dec_o": (4096, 3072), "dec_gate_up": (3072, 18432), "dec_gate": (3072, 9216),
              "dec_down": (9216, 3072), "lm_head": (3072, 131072)}
    ways = {"linear": lambda x, w: F.linear(x, w), "transposed": lambda x, w: torch.mm(w, x.t()).t().contiguous()}
    out = {}
    for name, (k, n) in shapes.items():
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        for m in rows:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            ref = F.linear(x, w)
            row = {}
            for way, fn in list(ways.items()) + [("cublaslt", ways["linear"])]:
                if way == "cublaslt":
                    torch.backends.cuda.preferred_blas_library("cublaslt")
                got = fn(x, w)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(100):
                    fn(x, w)
                end.record()
                sync()
                torch.backends.cuda.preferred_blas_library("default")
                us = start.elapsed_time(end) * 10
                row[way] = {"us": round(us, 1), "tflop_s": round(2 * m * k * n / us / 1e6, 0), "differ": int((got != ref).sum())}
            out[f"{name}@{m}"] = row
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=256)
    ap.add_argument("--segment-s", type=float, default=49)
    ap.add_argument("--text-window", type=int, default=1056)
    ap.add_argument("--agreement-segments", type=int, default=32)
    ap.add_argument("--sdpa-segments", type=int, default=32, help="segments of the audio pass timed with SDPA too (0: none)")
    ap.add_argument("--all-variants", action="store_true", help="agreement also without the prompt prefix, with SDPA attention, with mel on the CPU")
    ap.add_argument("--out", default="prefill-bench.json")
    ap.add_argument("--invariance", action="store_true", help="only the row-invariance check of products and convolutions")
    ap.add_argument("--products", action="store_true", help="only the decoder's products, computed several ways")
    args = ap.parse_args()
    for only, check in (("products", product_options), ("invariance", invariance_check)):
        if getattr(args, only):
            result = {"device": torch.cuda.get_device_name(), "date": datetime.date.today().isoformat(), "torch": torch.__version__,
                      only: check()}
            print(json.dumps(result, indent=1))
            Path(args.out).write_text(json.dumps(result, indent=1))
            return
    torch.set_grad_enabled(False)  # the profiled calls run the model's modules directly
    started = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", flush=True)

    _, spec = EB.make_spec()
    engine = Engine(EB.build_model(False), spec, EngineOptions(max_streams=16, text_window=args.text_window,
                                                               offline_batch=args.segments))
    pf = offline_batch._prefill(engine)
    log(f"engine ready; fused encoder {pf.fused_encoder}, ring kernel {pf.ring_kernel}, prefix {pf.prefix is not None}")
    result = {"device": torch.cuda.get_device_name(), "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "settings": vars(args)}
    result["window_kernel_rel_err"] = kernel_check()
    log(f"fused window kernel against SDPA (float32): relative error {result['window_kernel_rel_err']:.2e}")
    result["ring_linear_max_diff"] = [ring_linear_check(w) for w in (1056, 300)]
    log(f"ring kernel read up to the query against whole (windows 1056, 300): largest difference {result['ring_linear_max_diff']}")

    result["rope_max_diff"] = rope_check(pf)
    log(f"fused rotary embedding against step.rope: largest difference {result['rope_max_diff']}")
    result["rms_norm"] = norm_check(pf)
    log(f"fused RMS norm against the module: {result['rms_norm']}")
    result["step_fusion"] = step_fusion_check(pf)
    log(f"decoder step's one-pass kernels against PyTorch's: {result['step_fusion']}")
    result["decoder_attention"] = linear_sweep(log)

    chirps = [EB.chirp(args.segment_s, seed=i).astype(np.float32) / 32768.0 for i in range(7)]
    pcms = [chirps[i % 7] for i in range(args.segments)]
    delay = A.delay_steps(960)
    n_pos = [prefill.positions(spec, len(p), delay) for p in pcms]
    pf.embed_audio(spec, pcms[:prefill.ENCODE_BATCH], n_pos[:prefill.ENCODE_BATCH])  # warm-up: kernels built
    embeds, t_audio = timed(lambda: pf.embed_audio(spec, pcms, n_pos))
    audio_s = len(pcms) * args.segment_s
    result["audio_pass"] = {"segments": len(pcms), "audio_h": round(audio_s / 3600, 2), "seconds": round(t_audio, 3),
                            "per_audio_hour_s": round(t_audio / (audio_s / 3600), 3)}
    log(f"audio pass, fused: {len(pcms)} x {args.segment_s} s in {t_audio:.2f} s ({result['audio_pass']['per_audio_hour_s']:.2f} s per audio hour)")
    if args.sdpa_segments:
        m = args.sdpa_segments
        pf.fused_encoder = False
        _, t_sdpa = timed(lambda: pf.embed_audio(spec, pcms[:m], n_pos[:m]))
        pf.fused_encoder = True
        per_h = t_sdpa / (m * args.segment_s / 3600)
        result["audio_pass"]["sdpa_per_audio_hour_s"] = round(per_h, 3)
        log(f"audio pass, SDPA in query chunks: {m} segments in {t_sdpa:.2f} s ({per_h:.2f} s per audio hour)")
    steps = -(-max(n_pos) // prefill.BY_POSITION_STEPS) * prefill.BY_POSITION_STEPS  # as embed_audio rounds them
    mel = pf.logmel.frames(torch.from_numpy(prefill.padded_signals(spec, pcms[:32], steps)).cuda()).to(pf.dtype)
    result["encoder_profile"] = top_kernels(lambda: pf._encode(mel))
    del mel
    log("encoder pass of 32 segments, kernels:\n  " + "\n  ".join(result["encoder_profile"]))

    prompt = spec.prompt(delay)
    batch = prefill.Batch(pcms, n_pos, embeds)
    decoded = {}
    for name, fused in (("before fusing the step", False), ("as built", True)):  # a ratio from one run
        pf.fused_step = fused
        pf.decoder = prefill.DecoderStats()
        decoded[name], t_dec = timed(lambda: pf.decode(prompt, delay, batch))
        st = pf.decoder
        row = {"batch": len(pcms), "positions": max(n_pos), "steps": st.steps, "seconds": round(t_dec, 3),
               "step_loop_s": round(st.seconds, 3), "step_ms": round(1000 * st.seconds / st.steps, 3),
               "gb_per_step": round(st.bytes_read / st.steps / 1e9, 3), "gb_s": round(st.bytes_read / st.seconds / 1e9, 1)}
        row["tokens_equal_to_before"] = decoded[name] == decoded["before fusing the step"]
        result["decoder" if fused else "decoder_before_fusing"] = row
        log(f"decoder, {name}: {row}")
    pf.fused_step = True
    result["decoder"]["copy_tb_s"] = copy_bandwidth_tb_s()  # the same ceiling as capacity_bench's
    result["decoder"]["share_of_copy_rate"] = round(result["decoder"]["gb_s"] * 1e9 / (result["decoder"]["copy_tb_s"] * 1e12), 4)
    log(f"decoder tokens the same as before fusing: {result['decoder']['tokens_equal_to_before']}; device copy rate "
        f"{result['decoder']['copy_tb_s']} TB/s, decoder at {result['decoder']['share_of_copy_rate']:.1%} of it")
    B, T = len(pcms), max(n_pos)
    cache = pf._cache(B, T)
    state = prefill._DecodeState.allocate(B, T, pf.device)
    scales = [sc[delay] for sc in pf.s.delay_scales]
    state.pos.fill_(T - 60)
    result["decoder_profile"] = top_kernels(lambda: pf._step(state, embeds, cache, scales))
    del cache, state, embeds, batch
    log(f"one eager decoder step at position {T - 60}, kernels:\n  " + "\n  ".join(result["decoder_profile"]))

    if args.agreement_segments:
        n = 30 * SR
        long = np.concatenate([EB.chirp(600, seed=i) for i in range(2)]).astype(np.float32) / 32768.0
        segments = [long[i * n:(i + 1) * n] for i in range(args.agreement_segments)]
        live, t_live = timed(lambda: offline.transcribe_many(engine, segments, 960, segment_s=3600, search_s=1))
        live_ids = [[t.token_id for t in x.tokens] for x in live]
        variants = {"as built": {}, "RMS norms by PyTorch": {"fused_norm": False},
                    "decoder q/k/v products and rotary embedding by PyTorch": {"fused_decoder": False}}
        if args.all_variants:
            variants.update({"no prompt prefix": {"prefix": None}, "encoder attention by SDPA": {"fused_encoder": False},
                             "decoder attention by SDPA": {"ring_kernel": False, "fused_decoder": False},
                             "mel on the CPU": {"mel_on_host": True}})
        result["agreement"] = {"segments": len(segments), "streaming_s": round(t_live, 2)}
        for name, change in variants.items():
            saved = {key: getattr(pf, key) for key in change}
            for key, value in change.items():
                setattr(pf, key, value)
            fast, t_fast = timed(lambda: offline_batch.transcribe_segments(engine, segments, 960))
            for key, value in saved.items():
                setattr(pf, key, value)
            same = [sum(x == y for x, y in zip([t.token_id for t in a.tokens], b)) for a, b in zip(fast, live_ids)]
            sizes = [len(b) for b in live_ids]
            half = len(segments) // 2
            row = {"agreement": round(sum(same) / sum(sizes), 4), "tokens": sum(sizes),
                   "first_half": round(sum(same[:half]) / sum(sizes[:half]), 4), "prefill_s": round(t_fast, 2)}
            result["agreement"][name] = row
            log(f"token agreement, {name}: {row}")
    engine.shutdown()
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
