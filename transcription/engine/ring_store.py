"""A step's keys and values written into a layer's rings in one pass (GPU), quantized where the rings are fp8.

In PyTorch the write is, per tensor, a gather of the old entries, a `where` on the row's active flag and
a scatter; fp8 rings add the per-vector largest magnitude, the division and the cast, and their scales
are written the same way: about twenty small kernels per layer, over a thousand per step, which on a
GPU cost more than the bytes they move. Here one program per (row, position) writes all heads of k and
v, and nothing for a row without audio this step. The values are step.kv_write's to the bit: the same
scale (largest magnitude times float32 1/448, cache.quantize), the same correctly rounded division, the
same round-to-nearest-even cast (tests/engine/ring_store_check.py runs it in Triton's interpreter on the
CPU; benchmarks/capacity_bench.py compares it on the GPU).
"""
import torch

from .cache import INV_FP8_MAX

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: step.kv_write does the work
    triton = None


if triton is not None:

    @triton.jit
    def _store_one(X, C, S, x_off, cache_off, scale_off, ok, inv_fp8_max, FP8: tl.constexpr):
        x = tl.load(X + x_off, mask=ok[:, None], other=0.0)
        if FP8:
            x = x.to(tl.float32)
            scale = tl.maximum(tl.max(tl.abs(x), axis=1), 1e-12) * inv_fp8_max
            tl.store(C + cache_off, tl.math.div_rn(x, scale[:, None]).to(C.dtype.element_ty, fp_downcast_rounding="rtne"),
                     mask=ok[:, None])
            tl.store(S + scale_off, scale, mask=ok)
        else:
            tl.store(C + cache_off, x.to(C.dtype.element_ty), mask=ok[:, None])

    @triton.jit
    def _store_kernel(
        K, V, KC, VC, KS, VS, IDX, ACTIVE,
        stride_kb, stride_kl, stride_kh,
        stride_vb, stride_vl, stride_vh,
        stride_cb, stride_ch, stride_cr,
        stride_sb, stride_sh,
        stride_ib,
        heads, inv_fp8_max,
        L: tl.constexpr, D: tl.constexpr, BLOCK_H: tl.constexpr, FP8: tl.constexpr,
    ):
        b = tl.program_id(0) // L
        pos = tl.program_id(0) % L
        h = tl.arange(0, BLOCK_H)
        d = tl.arange(0, D)
        ok = (h < heads) & (tl.load(ACTIVE + b) != 0)
        entry = tl.load(IDX + b * stride_ib + pos)
        cache_off = b * stride_cb + h[:, None] * stride_ch + entry * stride_cr + d[None, :]
        scale_off = b * stride_sb + h * stride_sh + entry
        _store_one(K, KC, KS, b * stride_kb + pos * stride_kl + h[:, None] * stride_kh + d[None, :], cache_off, scale_off,
                   ok, inv_fp8_max, FP8)
        _store_one(V, VC, VS, b * stride_vb + pos * stride_vl + h[:, None] * stride_vh + d[None, :], cache_off, scale_off,
                   ok, inv_fp8_max, FP8)


def available(device) -> bool:
    return triton is not None and torch.device(device).type == "cuda"


def store(kv, ring_idx, k, v, active) -> None:
    """kv: a layer's (k, v, k_scale, v_scale) rings (B, H, R, D), scales (B, H, R) or None; ring_idx (B, L)
    long; k, v (B, L, H, D), any strides with the last dimension dense; active (B,) bool. Row b's entry
    ring_idx[b, l] of every head takes k[b, l], v[b, l] where active[b]; other entries keep their values."""
    k_cache, v_cache, k_scale, v_scale = kv
    B, L, H, D = k.shape
    assert k.stride(-1) == v.stride(-1) == 1 and k_cache.stride() == v_cache.stride(), (k.stride(), v.stride())
    assert ring_idx.stride(-1) == 1 and k_cache.stride(-1) == 1
    fp8 = k_scale is not None
    ks, vs = (k_scale, v_scale) if fp8 else (ring_idx, ring_idx)  # unused without scales
    _store_kernel[(B * L,)](
        k, v, k_cache, v_cache, ks, vs, ring_idx, active,
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        ks.stride(0), ks.stride(1) if fp8 else 0,
        ring_idx.stride(0),
        H, INV_FP8_MAX,
        L=L, D=D, BLOCK_H=triton.next_power_of_2(H), FP8=fp8, num_warps=4,
    )
