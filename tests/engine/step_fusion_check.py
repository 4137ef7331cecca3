"""Run by test_attention.py with TRITON_INTERPRET=1: the offline decoder step's one-pass kernels (the residual
add inside the norm, gate and up as one product and SiLU times up, rotary embedding and cache write in one pass)
against what they replace, and a recording's tokens with them against the live streaming step's, on the tiny model in float32."""
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from transcription.engine import Engine, EngineOptions, loading, offline, offline_batch, offline_kernels
from transcription.engine.step import fuse_linears

from .conftest import chirp
from .tiny_model import build_tiny_model_dir


def kernels(norm) -> tuple[float, bool]:
    """silu_mul's largest difference from F.silu(gate) * up; whether the norm with `add` wrote the sum and
    normed it exactly as the add followed by the norm."""
    g = torch.Generator().manual_seed(0)
    gate, up = torch.randn(5, 1, 300, generator=g) * 4, torch.randn(5, 1, 300, generator=g)
    silu = float((offline_kernels.silu_mul(gate, up) - F.silu(gate) * up).abs().max())
    D = norm.weight.shape[0]
    x, delta, scale = (torch.randn(4, 1, D, generator=g) for _ in range(3))
    ref_sum = x + delta
    ref = offline_kernels.rms_norm(ref_sum, norm, scale[0, 0])
    got = offline_kernels.rms_norm(x, norm, scale[0, 0], add=delta)
    return silu, bool(torch.equal(x, ref_sum) and torch.equal(got, ref))


def tokens(engine, pcms, fused_step: bool) -> list[list[int]]:
    """The offline path with the GPU's decoder step (one q/k/v product, ring kernel, fused norms)."""
    pf = offline_batch._prefill(engine)
    attns = [layer.self_attn for layer in pf.s.text.layers]
    pf.qkv_weights = [torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]) for a in attns]
    pf.fused_decoder = pf.ring_kernel = pf.fused_norm = True
    pf.s.text_gate_up = [fuse_linears(layer.mlp, ("gate_proj", "up_proj"), "gate_up")[0] for layer in pf.s.text.layers]
    pf.fused_step = fused_step
    got = offline_batch.transcribe_segments(engine, [p.astype(np.float32) / 32768.0 for p in pcms], 960)
    return [[t.token_id for t in x.tokens] for x in got]


if __name__ == "__main__":
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        model, spec = loading.load(build_tiny_model_dir(Path(d), seed=0), torch.device("cpu"), torch.float32)
    silu, add_norm = kernels(model.model.language_model.layers[0].post_attention_layernorm)
    engine = Engine(model, spec, EngineOptions(device="cpu", max_streams=4, offline_segment_s=4, offline_search_s=1))
    pcms = [chirp(s, seed=60 + i) for i, s in enumerate([2.4, 1.1])]
    live = [[t.token_id for t in x.tokens] for x in offline.transcribe_many(engine, pcms, 960, segment_s=3600, search_s=1)]
    before, fused = tokens(engine, pcms, False), tokens(engine, pcms, True)
    engine.shutdown()
    print(silu, add_norm, fused == before, fused == live, len(set(t for x in fused for t in x)))
