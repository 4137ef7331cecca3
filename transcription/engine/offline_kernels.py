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
in a few last bits. With `add` it also does the residual connection before it (x += add, rounded as
PyTorch's add), so a decoder layer's add and the next norm are one pass, not two kernels.

SiLU times up projection: the MLP's `act(gate) * up` is two elementwise kernels in PyTorch; `silu_mul` is
one, with PyTorch's arithmetic (x / (1 + exp(-x)) in float32 with the same correctly rounded exp and
division, rounded to the dtype, times `up`, rounded), so its values are the module's to the bit.
"""
import math
import os

import torch

try:
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice
except ImportError:  # CPU-only installs: the encoder pass uses SDPA in query chunks
    triton = None

# Triton's CPU interpreter (tests) has no CUDA library functions: there silu_mul takes numpy's exp.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
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
    def _rotate(x1, x2, c1, c2, s1, s2, BF16: tl.constexpr):
        """The rotary embedding of a head's halves: x * cos + cat(-x2, x1) * sin, each product and the sum
        rounded to the dtype as PyTorch's kernels do (float32 in, float32 out)."""
        o1 = _round(_round(x1 * c1, BF16) + _round(-x2 * s1, BF16), BF16)
        o2 = _round(_round(x2 * c2, BF16) + _round(x1 * s2, BF16), BF16)
        return o1, o2

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
        o1, o2 = _rotate(x1, x2, c1, c2, s1, s2, BF16)
        tl.store(X + lo, o1.to(X.dtype.element_ty), mask=ok[:, None])
        tl.store(X + lo + D // 2, o2.to(X.dtype.element_ty), mask=ok[:, None])


if triton is not None:

    @triton.jit
    def _rope_store_kernel(QKV, COS, SIN, KC, VC, POS, stride_row, stride_cb, stride_ch, stride_cr, H: tl.constexpr,
                           HKV: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_V: tl.constexpr, D: tl.constexpr,
                           BF16: tl.constexpr):
        b = tl.program_id(0).to(tl.int64)
        base = QKV + b * stride_row
        pos = tl.load(POS)
        heads = tl.arange(0, BLOCK_H)  # q heads, then k heads
        is_q, is_k = heads < H, (heads >= H) & (heads < H + HKV)
        half = tl.arange(0, D // 2)
        lo = heads[:, None] * D + half[None, :]
        x1 = tl.load(base + lo, mask=(is_q | is_k)[:, None], other=0.0).to(tl.float32)
        x2 = tl.load(base + lo + D // 2, mask=(is_q | is_k)[:, None], other=0.0).to(tl.float32)
        c1, c2 = tl.load(COS + half).to(tl.float32)[None, :], tl.load(COS + D // 2 + half).to(tl.float32)[None, :]
        s1, s2 = tl.load(SIN + half).to(tl.float32)[None, :], tl.load(SIN + D // 2 + half).to(tl.float32)[None, :]
        o1, o2 = _rotate(x1, x2, c1, c2, s1, s2, BF16)
        o1, o2 = o1.to(QKV.dtype.element_ty), o2.to(QKV.dtype.element_ty)
        tl.store(base + lo, o1, mask=is_q[:, None])
        tl.store(base + lo + D // 2, o2, mask=is_q[:, None])
        k_off = b * stride_cb + (heads - H)[:, None] * stride_ch + pos * stride_cr + half[None, :]
        tl.store(KC + k_off, o1, mask=is_k[:, None])
        tl.store(KC + k_off + D // 2, o2, mask=is_k[:, None])
        vh = tl.arange(0, BLOCK_V)
        d = tl.arange(0, D)
        v = tl.load(base + (H + HKV) * D + vh[:, None] * D + d[None, :], mask=(vh < HKV)[:, None])
        tl.store(VC + b * stride_cb + vh[:, None] * stride_ch + pos * stride_cr + d[None, :], v, mask=(vh < HKV)[:, None])


def rope_store_(qkv, cos, sin, k_cache, v_cache, pos):
    """The offline decoder step's rotary embedding and cache write in one pass: qkv (B, 1, (H + 2 Hkv) D), one
    q/k/v product's output for one position; q rotated in place, k rotated into k_cache[:, :, pos], v copied into
    v_cache[:, :, pos]; caches (B, Hkv, T, D) dense; cos, sin (1, D); pos (1,) long on the device. The values
    are rope_'s and a copy's."""
    B, Hkv, _, D = k_cache.shape
    H = qkv.shape[-1] // D - 2 * Hkv
    assert qkv.stride(-1) == 1 and qkv.dtype == k_cache.dtype == cos.dtype and cos.is_contiguous() and sin.is_contiguous()
    assert k_cache.is_contiguous() and v_cache.is_contiguous() and k_cache.shape == v_cache.shape
    _rope_store_kernel[(B,)](qkv, cos, sin, k_cache, v_cache, pos, qkv.stride(0), k_cache.stride(0), k_cache.stride(1),
                             k_cache.stride(2), H=H, HKV=Hkv, BLOCK_H=triton.next_power_of_2(H + Hkv),
                             BLOCK_V=triton.next_power_of_2(Hkv), D=D, BF16=qkv.dtype == torch.bfloat16, num_warps=4,
                             enable_fp_fusion=False)
    return qkv


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
    def _rms_norm_kernel(X, A, W, S, O, stride_x, stride_a, stride_o, stride_s, D, inv_d, eps, BLOCK: tl.constexpr,
                         SCALED: tl.constexpr, ADD: tl.constexpr, BF16: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        ok = cols < D
        x = tl.load(X + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
        if ADD:  # the residual connection first, written back: x + a rounded to the dtype, as PyTorch's add
            x = _round(x + tl.load(A + row * stride_a + cols, mask=ok, other=0.0).to(tl.float32), BF16)
            tl.store(X + row * stride_x + cols, x.to(X.dtype.element_ty), mask=ok)
        variance = tl.sum(x * x, axis=0) * inv_d  # PyTorch's mean: the sum times 1/D
        h = _round(x * tl.math.rsqrt(variance + eps), BF16)
        out = _round(tl.load(W + cols, mask=ok, other=0.0).to(tl.float32) * h, BF16)
        if SCALED:
            out = _round(out * tl.load(S + row * stride_s + cols, mask=ok, other=0.0).to(tl.float32), BF16)
        tl.store(O + row * stride_o + cols, out.to(O.dtype.element_ty), mask=ok)


def rms_norm(x, norm, scale=None, add=None):
    """`norm(x)` (the model's RMS norm module), times `scale` if given, in one pass. x (..., D); scale (D,), or
    one (D,) row per row of x (a live step's per-stream delay conditioning). With `add` (x's shape): x += add
    in place first, and the norm is of the sum (a residual connection and the next norm)."""
    D = x.shape[-1]
    assert x.dtype in (torch.bfloat16, torch.float32) and norm.weight.dtype == x.dtype
    rows = x.reshape(-1, D)  # a view for contiguous activations; a copy for the encoder's first, permuted one
    if rows.stride(-1) != 1:
        assert add is None, "the sum is written back: x must be a view of its rows"
        rows = rows.contiguous()
    a = rows if add is None else add.reshape(-1, D)
    assert a.shape == rows.shape and a.stride(-1) == 1, (a.shape, rows.shape)
    out = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    s = scale if scale is not None else norm.weight
    assert s.dtype == x.dtype and s.stride(-1) == 1
    stride_s = 0 if s.dim() == 1 else s.stride(-2)
    assert s.dim() == 1 or s.numel() // D == rows.shape[0], (s.shape, x.shape)
    inv_d = torch.tensor(1.0 / D, dtype=torch.float32).item()  # 1/D rounded to float32, as PyTorch's mean takes it
    _rms_norm_kernel[(rows.shape[0],)](rows, a, norm.weight, s, out, rows.stride(0), a.stride(0), D, stride_s, D, inv_d,
                                       norm.variance_epsilon,
                                       BLOCK=triton.next_power_of_2(D), SCALED=scale is not None, ADD=add is not None,
                                       BF16=x.dtype == torch.bfloat16, num_warps=8 if D > 2048 else 4,
                                       enable_fp_fusion=False)
    return out


if triton is not None:

    @triton.jit
    def _silu_mul_kernel(G, U, O, n, stride_g, stride_u, stride_o, BLOCK: tl.constexpr, BF16: tl.constexpr,
                         CUDA_EXP: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        ok = cols < n
        g = tl.load(G + row * stride_g + cols, mask=ok, other=0.0).to(tl.float32)
        u = tl.load(U + row * stride_u + cols, mask=ok, other=0.0).to(tl.float32)
        # PyTorch's silu: x / (1 + exp(-x)), the CUDA library's exp and an IEEE division, rounded to the dtype
        e = libdevice.exp(-g) if CUDA_EXP else tl.exp(-g)  # tl.exp is an approximation on the GPU
        act = _round(tl.math.div_rn(g, 1.0 + e), BF16)
        tl.store(O + row * stride_o + cols, _round(act * u, BF16).to(O.dtype.element_ty), mask=ok)


def silu_mul(gate, up):
    """`F.silu(gate) * up` in one pass. gate, up (..., n) with the last dimension dense (e.g. the two halves of
    one product's output); returns a new contiguous tensor."""
    n = gate.shape[-1]
    assert gate.shape == up.shape and gate.dtype == up.dtype and gate.dtype in (torch.bfloat16, torch.float32)
    g, u = gate.reshape(-1, n), up.reshape(-1, n)
    assert g.stride(-1) == u.stride(-1) == 1, (gate.stride(), up.stride())
    out = torch.empty(gate.shape, device=gate.device, dtype=gate.dtype)
    block = 1024
    _silu_mul_kernel[(g.shape[0], math.ceil(n / block))](g, u, out, n, g.stride(0), u.stride(0), n, BLOCK=block,
                                                          BF16=gate.dtype == torch.bfloat16, CUDA_EXP=not INTERPRETED,
                                                          num_warps=4, enable_fp_fusion=False)
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
