"""Run by test_attention.py in a child process with TRITON_INTERPRET=1 (Triton reads it at import)."""
import torch
import torch.nn.functional as F

from transcription.engine import attention
from transcription.engine.cache import dequantize, quantize
from transcription.engine.step import window_mask


def check(seed, B, Hkv, G, L, R, D, window, fp8):
    """Random rings, partly filled, wrapped or not, against SDPA on the same (widened) rings."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hkv, G * L, D, generator=g)
    k, v = torch.randn(B, Hkv, R, D, generator=g), torch.randn(B, Hkv, R, D, generator=g)
    qpos = torch.randint(0, 3 * R, (B, 1), generator=g) + torch.arange(L)  # (B, L)
    key_pos = torch.full((B, R), -1, dtype=torch.long)
    for b in range(B):
        filled = int(torch.randint(1, R + 1, (), generator=g))
        p = torch.arange(int(qpos[b, -1]) - filled + 1, int(qpos[b, -1]) + 1)
        p = p[p >= 0]
        key_pos[b, p % R] = p
    ks = vs = None
    if fp8:
        (k, ks), (v, vs) = quantize(k), quantize(v)
    mask = window_mask(key_pos, qpos, window).repeat(1, 1, G, 1)
    ref = F.scaled_dot_product_attention(q, dequantize(k, ks, q.dtype), dequantize(v, vs, q.dtype), attn_mask=mask,
                                         scale=D ** -0.5)
    active = torch.rand(B, generator=g) > 0.3
    active[0] = True
    got = attention.ring_attention(q, k, v, ks, vs, key_pos, qpos, window, D ** -0.5, active=active)
    assert not got[~active].any(), "a row without audio reads nothing and comes out as zeros"
    return float((got[active] - ref[active]).norm() / ref[active].norm())


if __name__ == "__main__":
    cases = [(0, 3, 2, 4, 1, 600, 16, 500, False), (1, 2, 3, 1, 4, 300, 16, 290, False),
             (2, 3, 2, 4, 1, 600, 16, 500, True), (3, 1, 2, 2, 1, 24, 16, 24, False),
             (4, 3, 2, 4, 1, 2048, 16, 1500, True)]  # the last in four stretches per row, then combined
    for case in cases:
        print(case[-1], check(*case))
