"""Run by test_attention.py in a child process with TRITON_INTERPRET=1 (Triton reads it at import)."""
import torch

from transcription.engine import ring_store
from transcription.engine.cache import FP8
from transcription.engine.step import kv_write


def check(seed, B, L, H, R, D, dtype, kv_dtype):
    """ring_store.store against step.kv_write on the same rings: bit-equal, inactive rows untouched."""
    g = torch.Generator().manual_seed(seed)
    fp8 = kv_dtype == FP8
    rings = [torch.randn(B, H, R, D, generator=g).to(kv_dtype) for _ in range(2)]
    scales = [torch.rand(B, H, R, generator=g) for _ in range(2)] if fp8 else [None, None]
    # k and v as slices of one fused projection, as the step makes them: strided, last dimension dense
    qkv = (torch.randn(B, L, 3 * H * D, generator=g) * 3).to(dtype)
    k = qkv[..., H * D:2 * H * D].view(B, L, H, D)
    v = qkv[..., 2 * H * D:].view(B, L, H, D)
    ring_idx = (torch.randint(0, 10 * R, (B, 1), generator=g) + torch.arange(L)) % R
    active = torch.rand(B, generator=g) > 0.3
    expected = [t.clone() for t in rings] + [s.clone() if s is not None else None for s in scales]
    kv_write(tuple(expected), torch.arange(B)[:, None], ring_idx, k, v, active)
    got = [t.clone() for t in rings] + [s.clone() if s is not None else None for s in scales]
    ring_store.store(tuple(got), ring_idx, k, v, active)
    same = all(_equal(a, b) for a, b in zip(got, expected) if a is not None)
    untouched = all(torch.equal(got[i][~active].float(), rings[i][~active].float()) for i in range(2))
    return same and untouched


def _equal(got, expected) -> bool:
    if got.dtype != FP8:
        return torch.equal(got, expected)
    # Triton's interpreter (not the GPU) drops the carry when a value rounds up to the next power of two
    # (-31.7 -> -16, not -32); every other entry must be the same byte.
    a, b = got.float(), expected.float()
    carry = (b.abs() == 2 ** torch.log2(b.abs().clamp(min=1e-30)).round()) & (a == b / 2)
    return bool(((a == b) | carry).all()) and (~carry).float().mean() > 0.98


if __name__ == "__main__":
    cases = [(0, 5, 1, 2, 40, 16, torch.float32, torch.float32), (1, 4, 4, 3, 23, 16, torch.bfloat16, torch.bfloat16),
             (2, 5, 1, 2, 40, 16, torch.bfloat16, FP8), (3, 3, 4, 4, 23, 16, torch.float32, FP8)]
    for case in cases:
        print(check(*case))
