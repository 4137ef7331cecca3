"""Run by test_attention.py in a child process with TRITON_INTERPRET=1: the live step with its fused kernels
(ring attention, ring_store, offline_kernels' norm and rotary embedding, one q/k/v product) against the
model's own modules and SDPA, on the tiny model in float32, over enough steps to wrap both rings."""
import torch

from transcription.engine.cache import CachePool, PoolShape
from transcription.engine.step import ModelStep, StepBuffers

from .tiny_model import make_audio_dependent, tiny_config


def run(fused: bool, model, steps: int, B: int, seed: int):
    """Hidden states of the active rows at every step, and the pool after the last."""
    pool = CachePool(PoolShape.for_model(model.config, B), torch.device("cpu"), torch.float32)
    bufs = StepBuffers.allocate(B, model.config.audio_config.num_mel_bins, torch.device("cpu"), torch.float32)
    step = ModelStep(model, pool, bufs, ring_kernel=fused, fused=fused)
    g = torch.Generator().manual_seed(seed)
    pos = torch.zeros(B, dtype=torch.long)
    hidden = []
    for _ in range(steps):
        active = torch.rand(B, generator=g) > 0.25
        bufs.mel.copy_(torch.randn(bufs.mel.shape, generator=g))
        bufs.token.copy_(torch.randint(0, 1000, (B,), generator=g))
        bufs.delay.copy_(torch.randint(1, 8, (B,), generator=g))
        bufs.pos.copy_(pos)
        bufs.active.copy_(active)
        with torch.no_grad():
            h = step.fill_caches(B)
        hidden.append(h[active].clone())
        pos += active.long()
    return hidden, pool


if __name__ == "__main__":
    torch.manual_seed(0)
    from transformers import VoxtralRealtimeForConditionalGeneration

    model = VoxtralRealtimeForConditionalGeneration(tiny_config(text_window=6, encoder_window=10)).eval()
    make_audio_dependent(model, 0)
    plain, plain_pool = run(False, model, 12, 3, 1)
    fused, fused_pool = run(True, model, 12, 3, 1)
    worst = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(fused, plain))
    rings = max(float((getattr(fused_pool, n)[i] - getattr(plain_pool, n)[i]).abs().max())
                for n in ("text_k", "text_v", "audio_k", "audio_v") for i in range(2))
    print(worst, rings, bool(torch.equal(fused_pool.text_pos, plain_pool.text_pos)))
