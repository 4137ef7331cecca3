"""Split-KV attention over the ring caches (flash-decoding), reading bf16 or fp8 rings directly.

Why not SDPA: with a boolean mask SDPA takes its plain kernel, which gives each (row, KV head) one
thread block for the whole 8,192-entry ring, and fp8 rings would first have to be widened to bf16 in
a copy as large as the ring. Here each (row, KV head) is split into several programs that each read a
stretch of the ring once, in its stored dtype (fp8 values are multiplied by their scales after the dot
products: a key's scale multiplies its score, a value's its weight), and keep a running softmax; the
stretches are then combined in float32. The G query heads of a KV head (grouped-query attention), and
the L query positions of an encoder step, are the M query rows of one program.

The mask is the engine's: a key is visible when its ring entry holds a position (not EMPTY), not after
the query's position, and within the window. A cache that holds position p at entry p (the offline
decoder's, `linear=True`) needs no positions: each program then reads only the entries from the
window's start to its queries' last position, so a step reads the filled part of the cache, not all of
it, and with one stretch per (row, KV head) (always, from about 66 rows of decoder rings up, and for every encoder
ring) the program writes the normalised output itself, with no float32 partials and no combining pass.
The result equals SDPA's to float32 rounding
(tests/engine/test_attention.py runs the kernel in Triton's interpreter on the CPU).

The encoder's ring wraps every 15 s of audio, and read in ring order its oldest and newest keys share a
block, where a whole segment's keys (prefill.py) come in position order: the running softmax would
visit them in other groups and round otherwise. So the live step reads the encoder's ring by position
(`ordered`: blocks of BLOCK_N positions from the window's start, position p at entry p % ring), as the
offline path reads a segment's keys (`linear`, many query rows per segment with `rows_per_cache`), with
the same settings (TUNING["encoder"]): a segment's attention is then the same bits live and offline.
Blocks past a query's keys are fully masked and leave its running softmax as it was, bit for bit, so a
row of 16 offline queries gives each query what the live step's 4 get.
"""
import math

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs without Triton: the step uses SDPA
    triton = None

# Tile and launch settings per ring dtype, the fastest of benchmarks/ring_kernel_sweep.py on an H200
# (benchmarks/results/ring-kernel-sweep-2026-11-30-h200.json: decoder rings of 128 streams read at
# 4.29 TB/s in bf16, SDPA 3.04; fp8 in 0.75 ms against bf16's 1.00; -2026-12-01-h200.json, fp8 with
# deeper pipelines and fewer warps: 4 stages 0.735 ms, 3.01 TB/s, 71 % of the card's copy rate in the
# same run; 5 stages or 2 warps are 1.4-3x slower). f16: fp8 values widen to float16 in one
# instruction on Hopper, to bfloat16 only by a detour (1.10 ms without it).
TUNING = {
    "bf16": {"block_n": 128, "warps": 4, "stages": 3, "f16": False, "programs": 528},
    "fp8": {"block_n": 128, "warps": 4, "stages": 4, "f16": True, "programs": 528},
    # The offline decoder's position-ordered cache: every (row, KV head) is one program reading a few
    # hundred entries, so many programs must share an SM (benchmarks/prefill_bench.py sweeps these).
    # The same block_n as bf16 rings: the running softmax visits keys in the same blocks as the live step.
    "linear": {"block_n": 128, "warps": 4, "stages": 2, "f16": False, "programs": 528},
    # The encoder's attention, live (rings read by position) and offline (whole segments, prefill.py): one
    # setting for both, so that a segment's keys are visited in the same blocks with the same instructions.
    "encoder": {"block_n": 128, "warps": 4, "stages": 3, "f16": False, "programs": 528},
}


def available(device) -> bool:
    return triton is not None and torch.device(device).type == "cuda"


def splits_for(batch: int, kv_heads: int, ring: int, block_n: int = 64, programs: int = 4 * 132) -> int:
    """How many stretches each (row, KV head) is cut into: enough programs for the GPU, tiles not too short."""
    want = math.ceil(programs / max(1, batch * kv_heads))
    return max(1, min(want, ring // (4 * block_n)))


if triton is not None:

    @triton.jit
    def _split_kernel(
        Q, K, V, KS, VS, KPOS, QPOS, ACTIVE, ACC, MAX, SUM, O,
        stride_qb, stride_qh, stride_qm,
        stride_kb, stride_kh, stride_kr,
        stride_sb, stride_sh,
        stride_pb, stride_qpb,
        stride_ab, stride_ah, stride_as, stride_am,
        stride_mb, stride_mh, stride_ms,
        stride_ob, stride_oh, stride_om,
        ring, chunk, window, sm_scale, rows_per_cache,
        H: tl.constexpr, M: tl.constexpr, L: tl.constexpr, D: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SCALED: tl.constexpr, F16: tl.constexpr,
        LINEAR: tl.constexpr, ORDERED: tl.constexpr, DIRECT: tl.constexpr, SKIP: tl.constexpr,
    ):
        bh = tl.program_id(0)
        split = tl.program_id(1)
        b = bh // H
        h = bh % H
        cb = b // rows_per_cache  # the cache (and key positions) this row of queries reads
        offs_m = tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, D)
        row_ok = offs_m < M
        q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
                    mask=row_ok[:, None], other=0.0)
        if F16:
            q = q.to(tl.float16)
        qpos = tl.load(QPOS + b * stride_qpb + offs_m % L, mask=row_ok, other=0)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, D], tl.float32)
        start = split * chunk
        end = tl.minimum(start + chunk, ring)
        first = start
        if LINEAR or ORDERED:  # keys by position: the blocks of positions from the window's start to the last query
            end = tl.maximum(tl.max(qpos) + 1, 0)
            first = tl.maximum(tl.min(tl.where(row_ok, qpos, 2147483647)) - window + 1, 0) // BLOCK_N * BLOCK_N
            if LINEAR:
                end = tl.minimum(end, tl.minimum(start + chunk, ring))
                first = tl.maximum(first, start)
        if SKIP:  # a row with no audio this step: its output is discarded, so its rings are not read
            end = tl.where(tl.load(ACTIVE + b) != 0, end, first)
        for n0 in range(first, end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)  # positions (LINEAR, ORDERED) or ring entries
            in_ring = offs_n < end
            if ORDERED:  # position p lives at entry p % ring; a block of positions is a block of entries (whole-block rings)
                entry = tl.multiple_of(n0 % ring, BLOCK_N) + tl.arange(0, BLOCK_N)
            else:
                entry = offs_n
            kv_off = cb * stride_kb + h * stride_kh + entry[:, None] * stride_kr + offs_d[None, :]
            k = tl.load(K + kv_off, mask=in_ring[:, None], other=0.0)
            v = tl.load(V + kv_off, mask=in_ring[:, None], other=0.0)
            if LINEAR:
                kpos = tl.where(in_ring, offs_n, -1)
            elif ORDERED:  # an entry holding another position than the one this lane stands for is not this key
                held = tl.load(KPOS + cb * stride_pb + entry, mask=in_ring, other=-1)
                kpos = tl.where(held == offs_n, offs_n, -1)
            else:
                kpos = tl.load(KPOS + cb * stride_pb + offs_n, mask=in_ring, other=-1)
            s = tl.dot(q, tl.trans(k.to(q.dtype)), out_dtype=tl.float32)  # (BLOCK_M, BLOCK_N)
            if SCALED:
                ks = tl.load(KS + cb * stride_sb + h * stride_sh + entry, mask=in_ring, other=0.0)
                s = s * ks[None, :]
            s = s * sm_scale
            visible = (kpos[None, :] != -1) & (kpos[None, :] <= qpos[:, None]) & (kpos[None, :] > qpos[:, None] - window)
            s = tl.where(visible, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.exp(s - m_safe[:, None])
            alpha = tl.exp(m_i - m_safe)
            l_i = l_i * alpha + tl.sum(p, axis=1)
            if SCALED:
                vs = tl.load(VS + cb * stride_sb + h * stride_sh + entry, mask=in_ring, other=0.0)
                p = p * vs[None, :]
            acc = acc * alpha[:, None] + tl.dot(p.to(q.dtype), v.to(q.dtype), out_dtype=tl.float32)
            m_i = m_new
        if DIRECT:  # one stretch: what `combine` would compute from it, written in the output dtype
            out = tl.math.div_rn(acc, tl.maximum(l_i, 1e-30)[:, None])
            o_off = b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :]
            tl.store(O + o_off, out.to(O.dtype.element_ty), mask=row_ok[:, None])
        else:
            a_off = b * stride_ab + h * stride_ah + split * stride_as + offs_m[:, None] * stride_am + offs_d[None, :]
            tl.store(ACC + a_off, acc, mask=row_ok[:, None])
            s_off = b * stride_mb + h * stride_mh + split * stride_ms + offs_m
            tl.store(MAX + s_off, m_i, mask=row_ok)
            tl.store(SUM + s_off, l_i, mask=row_ok)


def ring_attention(q, k, v, k_scale, v_scale, key_pos, query_pos, window: int, sm_scale: float, linear: bool = False,
                   active=None, ordered: bool = False, rows_per_cache: int = 1, tuning: str | None = None):
    """q (B, Hkv, M, D) with M = G * L rows (row r at position query_pos[:, r % L]); k, v (B, Hkv, R, D)
    rings in bf16/fp32 or fp8 with scales (B, Hkv, R); key_pos (B, R); query_pos (B, L). -> (B, Hkv, M, D).
    `linear`: entry p of k, v holds position p, entries past the last query are never read; key_pos is unused.
    `ordered`: a ring read by position (position p at entry p % R, key_pos says which position an entry
    holds), in blocks of BLOCK_N positions from the window's start, in one stretch: the same blocks, in the
    same order, as `linear` reads a position-ordered copy of the same keys, so both give the same bits.
    `rows_per_cache`: query rows b read cache b // rows_per_cache (many query rows of one sequence).
    `tuning`: a TUNING key to use instead of the dtype's (the same settings give the same arithmetic).
    `active` (B,) bool: rows where it is False read nothing and come out as zeros, so a step costs what its
    rows with audio read, not its whole bucket."""
    B, Hkv, M, D = q.shape
    R = k.shape[2]
    L = query_pos.shape[1]
    assert k.stride(-1) == 1 and q.stride(-1) == 1 and k.stride() == v.stride(), (k.stride(), v.stride())
    scaled = k_scale is not None
    t = TUNING["fp8" if scaled else tuning or ("linear" if linear else "bf16")]
    BLOCK_N = t["block_n"]
    assert not ordered or R % BLOCK_N == 0, (R, BLOCK_N)  # cache.audio_ring: rings of whole blocks
    splits = 1 if ordered or rows_per_cache > 1 else splits_for(B, Hkv, R, BLOCK_N, t["programs"])
    chunk = math.ceil(R / splits / BLOCK_N) * BLOCK_N
    splits = math.ceil(R / chunk)
    acc = torch.empty(B, Hkv, splits, M, D, device=q.device, dtype=torch.float32)
    mx = torch.empty(B, Hkv, splits, M, device=q.device, dtype=torch.float32)
    sm = torch.empty_like(mx)
    ks, vs = (k_scale, v_scale) if scaled else (mx, mx)  # unused when not scaled
    direct = splits == 1  # one stretch: the program normalises and writes the output itself
    out = torch.empty_like(q) if direct else q  # q: a placeholder the kernel does not touch
    if direct:
        acc = mx = sm = torch.empty(1, 1, 1, 1, 1, device=q.device, dtype=torch.float32)
    _split_kernel[(B * Hkv, splits)](
        q, k, v, ks, vs, key_pos, query_pos, active if active is not None else query_pos, acc, mx, sm, out,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        ks.stride(0), ks.stride(1),
        key_pos.stride(0), query_pos.stride(0),
        acc.stride(0), acc.stride(1), acc.stride(2), acc.stride(3),
        mx.stride(0), mx.stride(1), mx.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        R, chunk, window, sm_scale, rows_per_cache,
        H=Hkv, M=M, L=L, D=D, BLOCK_M=max(16, triton.next_power_of_2(M)), BLOCK_N=BLOCK_N, SCALED=scaled,
        F16=scaled and t["f16"], LINEAR=linear, ORDERED=ordered and not linear, DIRECT=direct, SKIP=active is not None,
        num_warps=t["warps"], num_stages=t["stages"],
    )
    return out if direct else combine(acc, mx, sm).to(q.dtype)


def combine(acc, mx, sm):
    """Merge the stretches' running softmaxes: acc (B, H, S, M, D), max and sum (B, H, S, M) -> (B, H, M, D)."""
    top = mx.amax(dim=2, keepdim=True)
    top = torch.where(torch.isinf(top), torch.zeros_like(top), top)  # a row that saw no key (inactive padding)
    w = torch.exp(mx - top)  # (B, H, S, M)
    total = (sm * w).sum(dim=2).clamp(min=1e-30)
    return (acc * w[..., None]).sum(dim=2) / total[..., None]
