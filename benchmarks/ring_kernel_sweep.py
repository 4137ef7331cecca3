"""Tile and launch settings of the ring attention kernel, timed on the decoder's shape at 128 streams.

    python benchmarks/ring_kernel_sweep.py --out sweep.json
    python benchmarks/ring_kernel_sweep.py --kinds fp8 --wide --out sweep.json   # fp8 only, deeper pipelines, fewer warps

One decoder layer's rings (128 rows x 8 KV heads x 8,192 entries x 128, GQA 4 query heads per KV head),
bf16 and fp8 with scales; each setting checked against SDPA on the widened rings, timed with
triton.testing.do_bench (median), and reported as the ring bytes read per second. Prints a table and
writes the fastest correct setting per dtype (the engine's attention.TUNING takes it).
"""
import argparse
import datetime
import itertools
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transcription.engine import attention  # noqa: E402
from transcription.engine.cache import dequantize, quantize  # noqa: E402
from transcription.engine.step import window_mask  # noqa: E402

B, HKV, G, R, D = 128, 8, 4, 8192, 128


def inputs(fp8: bool):
    q = torch.randn(B, HKV, G, D, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(B, HKV, R, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    qpos = torch.full((B, 1), 45_000, device="cuda")
    key_pos = qpos - R + 1 + torch.arange(R, device="cuda")[None]
    ks = vs = None
    if fp8:
        (k, ks), (v, vs) = quantize(k), quantize(v)
    ref = F.scaled_dot_product_attention(q, dequantize(k, ks, q.dtype), dequantize(v, vs, q.dtype),
                                         attn_mask=window_mask(key_pos, qpos, R), scale=D ** -0.5)
    ring_bytes = 2 * k.numel() * k.element_size() + (2 * ks.numel() * 4 if fp8 else 0)
    return (q, k, v, ks, vs, key_pos, qpos, R, D ** -0.5), ref, ring_bytes


def main():
    from triton.testing import do_bench

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="ring-kernel-sweep.json")
    ap.add_argument("--kinds", default="bf16,fp8")
    ap.add_argument("--wide", action="store_true",
                    help="fp8's values widened to f16 only, with 2 warps, 3-5 stages and 256-entry tiles tried too")
    args = ap.parse_args()
    rows, best = [], {}
    for kind in args.kinds.split(","):
        fp8 = kind == "fp8"
        args_, ref, ring_bytes = inputs(fp8)
        sdpa_ms = do_bench(lambda: F.scaled_dot_product_attention(
            args_[0], dequantize(args_[1], args_[3], torch.bfloat16), dequantize(args_[2], args_[4], torch.bfloat16),
            attn_mask=window_mask(args_[5], args_[6], R), scale=args_[8]), return_mode="median")
        rows.append({"kind": kind, "setting": "sdpa", "ms": round(sdpa_ms, 3), "tb_s": round(ring_bytes / sdpa_ms / 1e9, 2)})
        f16s = (False, True) if fp8 else (False,)
        grid = ((64, 128), (4, 8), (2, 3), f16s, (528, 2112))
        if args.wide:
            grid = ((128, 256), (2, 4), (3, 4, 5), (True,) if fp8 else (False,), (528, 1056))
        for block_n, warps, stages, f16, programs in itertools.product(*grid):
            setting = {"block_n": block_n, "warps": warps, "stages": stages, "f16": f16, "programs": programs}
            attention.TUNING[kind] = setting
            try:
                err = float((attention.ring_attention(*args_).float() - ref.float()).norm() / ref.float().norm())
                ms = do_bench(lambda: attention.ring_attention(*args_), return_mode="median")
            except Exception as exc:  # a setting the compiler cannot fit (shared memory, registers)
                rows.append({"kind": kind, "setting": setting, "error": str(exc)[:80]})
                continue
            row = {"kind": kind, "setting": setting, "ms": round(ms, 3), "tb_s": round(ring_bytes / ms / 1e9, 2),
                   "rel_err": round(err, 5)}
            rows.append(row)
            if err < 2e-2 and (kind not in best or ms < best[kind]["ms"]):
                best[kind] = row
    from capacity_bench import copy_bandwidth_tb_s  # the same ceiling as the capacity runs, measured in this run

    copy_tb_s = round(copy_bandwidth_tb_s(), 2)
    for row in [*rows, *best.values()]:
        if "tb_s" in row:
            row["of_copy"] = round(row["tb_s"] / copy_tb_s, 3)
    for r in rows:
        print(r, flush=True)
    print(f"copy {copy_tb_s} TB/s; best:", best, flush=True)
    json.dump({"device": torch.cuda.get_device_name(), "date": datetime.date.today().isoformat(), "shape": [B, HKV, G, R, D],
               "copy_tb_s": copy_tb_s, "rows": rows, "best": best}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
