"""The offline path's fused kernels (prefill.py, on a GPU): causal sliding-window attention over whole
sequences, rotary embedding in place, and RMS norm.

Why not SDPA: its fused kernels take no window, and with a boolean mask PyTorch picks a kernel that
reads the mask and computes every query against every key of the chunk, or materialises the scores.
Here each program holds BLOCK_M queries and reads only the key blocks their window reaches (about
window + BLOCK_M keys, never the whole sequence), with a running softmax in float32 (flash attention
with a band mask). Nothing of size L x L exists, so one call covers a whole batch of segments.

The mask is the live encoder's: query i sees keys j with i - window < j <= i. The result equals SDPA's
on that mask to the rounding of a running softmax (benchmarks/prefill_bench.py checks it on a GPU).

Rotary embedding: the model's `x * cos + rotate_half(x) * sin` on a (b, L, H, D) projection is ten
elementwise passes over strided, broadcast tensors in PyTorch, more time than the encoder's attention;
`rope_` is one pass, rounding each product and the sum to the tensor's dtype as PyTorch does, so its
values are those of step.rope to the bit.

RMS norm: the model's norm is eight elementwise passes and a reduction (float32 copies of the whole
activation among them), ~2 ms of each decoder step in ~450 small kernels and a fifth of the encoder
pass. `rms_norm` is one pass with the module's arithmetic and roundings (float32 variance as the mean
of squares, times rsqrt, rounded to the dtype, times the weight, rounded; optionally times a scale,
rounded); only the order in which the squares are summed differs, so values differ from the module's
in a few last bits.
"""
import math

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the encoder pass uses SDPA in query chunks
    triton = None

# Tiles for head_dim 64 on an H200 (benchmarks/reprocess_bench.py --encoder-sweep picks among these).
TUNING = {"block_m": 128, "block_n": 64, "warps": 4, "stages": 3}


def available(device) -> bool:
    return triton is not None and torch.device(device).type == "cuda"


if triton is not None:

    @triton.jit
    def _window_kernel(
        Q, K, V, O,
        stride_qb, stride_qh, stride_ql,
        stride_kb, stride_kh, stride_kl,
        stride_vb, stride_vh, stride_vl,
        stride_ob, stride_oh, stride_ol,
        length, window, sm_scale,
        H: tl.constexpr, GROUP: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        m0 = tl.program_id(0) * BLOCK_M
        bh = tl.program_id(1)
        b = bh // H
        h = bh % H
        hk = h // GROUP  # grouped-query heads: h reads KV head h // GROUP
        offs_m = m0 + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, D)
        row_ok = offs_m < length
        q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_ql + offs_d[None, :],
                    mask=row_ok[:, None], other=0.0)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, D], tl.float32)
        lo = tl.maximum(m0 - window + 1, 0) // BLOCK_N * BLOCK_N
        hi = tl.minimum(m0 + BLOCK_M, length)
        for n0 in range(lo, hi, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            col_ok = offs_n < length
            k = tl.load(K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kl + offs_d[None, :],
                        mask=col_ok[:, None], other=0.0)
            v = tl.load(V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vl + offs_d[None, :],
                        mask=col_ok[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k), out_dtype=tl.float32) * sm_scale
            visible = (offs_n[None, :] <= offs_m[:, None]) & (offs_n[None, :] > offs_m[:, None] - window) & col_ok[None, :]
            s = tl.where(visible, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.exp(s - m_safe[:, None])
            alpha = tl.exp(m_i - m_safe)
            l_i = l_i * alpha + tl.sum(p, axis=1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, out_dtype=tl.float32)
            m_i = m_new
        out = acc / tl.maximum(l_i, 1e-30)[:, None]
        tl.store(O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ol + offs_d[None, :],
                 out.to(O.dtype.element_ty), mask=row_ok[:, None])


if triton is not None:

    @triton.jit
    def _round(x, BF16: tl.constexpr):
        """float32 -> the nearest bfloat16 (ties to even), still as float32; identity for float32 tensors.
        Integer arithmetic, so no compiler pass can fold it into a fused multiply-add."""
        if BF16:
            bits = x.to(tl.uint32, bitcast=True)
            bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
            x = bits.to(tl.float32, bitcast=True)
        return x

    @triton.jit
    def _rope_kernel(X, COS, SIN, rows, heads, length, stride_tok, D: tl.constexpr, BLOCK_R: tl.constexpr,
                     BF16: tl.constexpr):
        r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        ok = r < rows
        tok = r // heads
        pos = tok % length
        half = tl.arange(0, D // 2)
        lo = tok[:, None] * stride_tok + (r % heads)[:, None] * D + half[None, :]
        clo = pos[:, None] * D + half[None, :]
        x1 = tl.load(X + lo, mask=ok[:, None], other=0.0).to(tl.float32)
        x2 = tl.load(X + lo + D // 2, mask=ok[:, None], other=0.0).to(tl.float32)
        c1 = tl.load(COS + clo, mask=ok[:, None], other=0.0).to(tl.float32)
        c2 = tl.load(COS + clo + D // 2, mask=ok[:, None], other=0.0).to(tl.float32)
        s1 = tl.load(SIN + clo, mask=ok[:, None], other=0.0).to(tl.float32)
        s2 = tl.load(SIN + clo + D // 2, mask=ok[:, None], other=0.0).to(tl.float32)
        # x * cos + cat(-x2, x1) * sin, each product and the sum rounded to the dtype as PyTorch's kernels do
        o1 = _round(_round(x1 * c1, BF16) + _round(-x2 * s1, BF16), BF16)
        o2 = _round(_round(x2 * c2, BF16) + _round(x1 * s2, BF16), BF16)
        tl.store(X + lo, o1.to(X.dtype.element_ty), mask=ok[:, None])
        tl.store(X + lo + D // 2, o2.to(X.dtype.element_ty), mask=ok[:, None])


def rope_(x, cos, sin):
    """x (n, L, H, D) (the last two dimensions dense, e.g. one slice of a fused projection), rotated in
    place at positions 0..L-1; cos, sin (L, D) contiguous in x's dtype (bfloat16 or float32)."""
    n, L, H, D = x.shape
    assert x.dtype in (torch.bfloat16, torch.float32) and cos.dtype == sin.dtype == x.dtype, (x.dtype, cos.dtype)
    stride_tok = x.stride(0) if L == 1 else x.stride(1)  # the stride of a size-1 dimension means nothing
    assert x.stride(3) == 1 and x.stride(2) == D and (L == 1 or x.stride(0) == L * x.stride(1)), x.stride()
    assert cos.is_contiguous() and sin.is_contiguous()
    rows = n * L * H
    block = 64
    _rope_kernel[(math.ceil(rows / block),)](x, cos, sin, rows, H, L, stride_tok, D=D, BLOCK_R=block,
                                             BF16=x.dtype == torch.bfloat16, num_warps=4, enable_fp_fusion=False)
    return x


if triton is not None:

    @triton.jit
    def _rms_norm_kernel(X, W, S, O, stride_x, stride_o, stride_s, D, inv_d, eps, BLOCK: tl.constexpr,
                         SCALED: tl.constexpr, BF16: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        ok = cols < D
        x = tl.load(X + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
        variance = tl.sum(x * x, axis=0) * inv_d  # PyTorch's mean: the sum times 1/D
        h = _round(x * tl.math.rsqrt(variance + eps), BF16)
        out = _round(tl.load(W + cols, mask=ok, other=0.0).to(tl.float32) * h, BF16)
        if SCALED:
            out = _round(out * tl.load(S + row * stride_s + cols, mask=ok, other=0.0).to(tl.float32), BF16)
        tl.store(O + row * stride_o + cols, out.to(O.dtype.element_ty), mask=ok)


def rms_norm(x, norm, scale=None):
    """`norm(x)` (the model's RMS norm module), times `scale` if given, in one pass. x (..., D); scale (D,), or
    one (D,) row per row of x (a live step's per-stream delay conditioning)."""
    D = x.shape[-1]
    assert x.dtype in (torch.bfloat16, torch.float32) and norm.weight.dtype == x.dtype
    rows = x.reshape(-1, D)  # a view for contiguous activations; a copy for the encoder's first, permuted one
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    out = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    s = scale if scale is not None else norm.weight
    assert s.dtype == x.dtype and s.stride(-1) == 1
    stride_s = 0 if s.dim() == 1 else s.stride(-2)
    assert s.dim() == 1 or s.numel() // D == rows.shape[0], (s.shape, x.shape)
    inv_d = torch.tensor(1.0 / D, dtype=torch.float32).item()  # 1/D rounded to float32, as PyTorch's mean takes it
    _rms_norm_kernel[(rows.shape[0],)](rows, norm.weight, s, out, rows.stride(0), D, stride_s, D, inv_d,
                                       norm.variance_epsilon,
                                       BLOCK=triton.next_power_of_2(D), SCALED=scale is not None,
                                       BF16=x.dtype == torch.bfloat16, num_warps=8 if D > 2048 else 4,
                                       enable_fp_fusion=False)
    return out


def window_attention(q, k, v, window: int, sm_scale: float, out=None, tuning=None):
    """q (b, H, L, D), k/v (b, Hkv, L, D), any strides with the last dimension dense -> (b, H, L, D).

    `out` may be a (b, H, L, D) view of a (b, L, H, D) buffer, so the output projection reads it as is."""
    b, H, L, D = q.shape
    Hkv = k.shape[1]
    assert q.stride(-1) == k.stride(-1) == v.stride(-1) == 1, (q.stride(), k.stride(), v.stride())
    t = tuning or TUNING
    if out is None:
        out = torch.empty(b, L, H, D, device=q.device, dtype=q.dtype).transpose(1, 2)
    grid = (math.ceil(L / t["block_m"]), b * H)
    _window_kernel[grid](
        q, k, v, out,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        L, window, sm_scale,
        H=H, GROUP=H // Hkv, D=D, BLOCK_M=t["block_m"], BLOCK_N=t["block_n"],
        num_warps=t["warps"], num_stages=t["stages"],
    )
    return out
