"""One batched model step: 80 ms of audio and one token in, one token out, for rows 0..B-1 of the pool.

This re-implements only the attention of `VoxtralRealtimeForConditionalGeneration` (ring caches with an
exact sliding-window mask and in-place writes, so shapes never change); norms, MLPs, the projector,
embeddings and the LM head are the model's own modules, called on the model's own weights, and so are the
convolutions' weights (on a GPU computed as products, `conv1d`). On a GPU the encoder's products run on at
least INVARIANT_ROWS rows, so that a recording's segments get the same bits offline (prefill.py).
Rows that have no new audio this tick ride along with `active=False`: their outputs are discarded and
every cache write keeps the old value, so a row's state changes only when it really steps.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import attention, offline_kernels, ring_store
from .audio import MEL_FRAMES_PER_STEP
from .cache import EMPTY, CachePool, dequantize, quantize

MAX_DELAY_STEPS = 30  # 2400 ms
# cuBLAS multiplies fewer rows than this with kernels that split the sum over K (the encoder's 5120-wide
# down projection, the projector): each row's values then depend on how many rows there are. The encoder's
# and projector's products run on at least this many rows, so that a segment's audio embeddings are the same
# bits whether its frames come 4 a step in a live batch or all at once (prefill.py); measured invariant from
# 256 rows on an H200 (benchmarks/prefill_bench.py --invariance).
INVARIANT_ROWS = 256


@dataclass
class StepBuffers:
    """Static inputs and output of the step; a CUDA graph reads and writes exactly these tensors."""

    mel: torch.Tensor  # (S, MELS, 8) model dtype
    token: torch.Tensor  # (S,) long: the input token of this step
    pos: torch.Tensor  # (S,) long: the decoder position of this step
    delay: torch.Tensor  # (S,) long: delay in steps, selects the time conditioning
    active: torch.Tensor  # (S,) bool
    next_token: torch.Tensor  # (S,) long, output

    @classmethod
    def allocate(cls, slots: int, mels: int, device, dtype) -> "StepBuffers":
        return cls(
            mel=torch.zeros(slots, mels, MEL_FRAMES_PER_STEP, device=device, dtype=dtype),
            token=torch.zeros(slots, device=device, dtype=torch.long),
            pos=torch.zeros(slots, device=device, dtype=torch.long),
            delay=torch.ones(slots, device=device, dtype=torch.long),
            active=torch.zeros(slots, device=device, dtype=torch.bool),
            next_token=torch.zeros(slots, device=device, dtype=torch.long),
        )


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope(x, cos, sin):
    """x (B, H, L, D), cos/sin (B, L, D): the model's apply_rotary_pos_emb, one tensor at a time."""
    return (x * cos.unsqueeze(1)) + (rotate_half(x) * sin.unsqueeze(1))


def ring_write(cache, rows, ring_idx, new, active):
    """cache (S, H, R, ...)[rows, :, ring_idx] = new (B, L, H, ...) where active, else unchanged."""
    old = cache[rows, :, ring_idx]  # (B, L, H, ...)
    cache[rows, :, ring_idx] = torch.where(active.view(-1, *[1] * (new.dim() - 1)), new, old)


def kv_write(kv, rows, ring_idx, k, v, active):
    """Write this step's k, v (B, L, Hkv, Dh) into a layer's rings, quantized when the rings are fp8."""
    k_cache, v_cache, k_scale, v_scale = kv
    if k_scale is None:
        ring_write(k_cache, rows, ring_idx, k.to(k_cache.dtype), active)
        ring_write(v_cache, rows, ring_idx, v.to(v_cache.dtype), active)
        return
    for cache, scales, x in ((k_cache, k_scale, k), (v_cache, v_scale, v)):
        values, scale = quantize(x)
        ring_write(cache, rows, ring_idx, values, active)
        ring_write(scales, rows, ring_idx, scale, active)


def fuse_qkv(attn) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attention's q, k and v weights as one (nq + 2 nk, D) matrix, and their biases as one vector (zeros
    where a projection has none) or None; see `fuse_linears`."""
    return fuse_linears(attn, ("q_proj", "k_proj", "v_proj"), "qkv")


def fuse_linears(owner, names: tuple[str, ...], fused: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The linear layers `owner.<name>` as one matrix, their outputs side by side, and one bias or None. The
    layers' weights become views of its rows, so the model holds one copy; done once per module (before any
    CUDA graph reads the weights), later calls return the same tensors (buffers `<fused>_weight`, `_bias`)."""
    if not hasattr(owner, f"{fused}_weight"):
        projs = [getattr(owner, name) for name in names]
        with torch.no_grad():
            weight = torch.cat([p.weight for p in projs])
            bias = None
            if any(p.bias is not None for p in projs):
                bias = torch.cat([p.bias if p.bias is not None else p.weight.new_zeros(p.weight.shape[0]) for p in projs])
            start = 0
            for p in projs:
                rows = p.weight.shape[0]
                p.weight.data = weight[start:start + rows]
                start += rows
        owner.register_buffer(f"{fused}_weight", weight, persistent=False)
        owner.register_buffer(f"{fused}_bias", bias, persistent=False)
    return getattr(owner, f"{fused}_weight"), getattr(owner, f"{fused}_bias")


def rows_invariant(module, x):
    """module(x) for x (..., K), computed over at least INVARIANT_ROWS rows (zeros below) on a GPU."""
    rows = x.numel() // x.shape[-1]
    if rows >= INVARIANT_ROWS or x.device.type != "cuda":
        return module(x)
    flat = F.pad(x.reshape(rows, x.shape[-1]), (0, 0, 0, INVARIANT_ROWS - rows))
    out = module(flat)[:rows]
    return out.reshape(*x.shape[:-1], out.shape[-1])


def conv1d(conv, x):
    """The convolution `conv` (no padding of its own) over x (B, C, T) that already holds its history. On a GPU
    as one product over the frames' windows, on at least INVARIANT_ROWS rows: cuDNN picks its algorithm by
    batch and length, and its sums round differently for a 10-frame step than for a whole segment, where a
    segment's frames must be the same bits live and offline."""
    if x.device.type != "cuda":
        return F.conv1d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)
    assert conv.dilation[0] == 1 and conv.groups == 1, (conv.dilation, conv.groups)
    (k,), (stride,) = conv.kernel_size, conv.stride
    B, C, _ = x.shape
    windows = x.unfold(-1, k, stride).permute(0, 2, 1, 3)  # (B, T, C, k): a frame's inputs, as the weight lays them out
    T = windows.shape[1]
    weight = conv.weight.reshape(conv.out_channels, C * k)
    out = rows_invariant(lambda rows: F.linear(rows, weight, conv.bias), windows.reshape(B * T, C * k))
    return out.view(B, T, -1).transpose(1, 2)


def window_mask(key_pos, query_pos, window):
    """key_pos (B, R), query_pos (B, L) -> (B, 1, L, R) bool: causal sliding window, empties hidden."""
    k = key_pos[:, None, None, :]
    q = query_pos[:, None, :, None]
    return (k != EMPTY) & (k <= q) & (k > q - window)


def _read(ring: str) -> dict:
    """How the ring kernel reads a ring: the encoder's by position (it wraps every ~15 s), as prefill.py reads
    a whole segment's keys, so that both visit the same keys in the same blocks; the decoder's in ring order."""
    return {"ordered": True, "tuning": "encoder"} if ring == "audio" else {}


class ModelStep:
    """Holds references to the model's modules and the pool; `__call__(B)` runs rows 0..B-1."""

    def __init__(self, model, pool: CachePool, bufs: StepBuffers, ring_kernel: bool = False, fused: bool | None = None):
        """`ring_kernel`: attend with attention.ring_attention (Triton) instead of SDPA. `fused` (default: with
        the ring kernel on a GPU): the one-pass kernels below in place of the model's many small ones."""
        self.pool, self.bufs = pool, bufs
        self.ring_kernel = ring_kernel
        cfg = model.config
        inner = model.model
        self.audio = inner.audio_tower
        self.text = inner.language_model
        self.projector = inner.multi_modal_projector
        self.lm_head = model.lm_head
        self.downsample = cfg.downsample_factor
        self.audio_hidden = cfg.audio_config.hidden_size
        self.text_window = cfg.text_config.sliding_window
        self.audio_window = cfg.audio_config.sliding_window
        self.delay_scales = self._delay_scales(inner, cfg)  # (layers, MAX_DELAY_STEPS + 1, D)
        # A step of ~3,000 small kernels (norms, rotary embedding, ring writes, three q/k/v products per
        # layer) costs more to run than the bytes it reads; fused, each layer is about fifteen kernels:
        # offline_kernels' RMS norm (the delay conditioning folded in) and rotary embedding, one q/k/v
        # product, ring_store. The arithmetic is the module's up to the order of the norm's sum.
        p = next(model.parameters())
        if fused is None:
            fused = ring_kernel and ring_store.available(p.device) and p.dtype in (torch.bfloat16, torch.float32)
        self.fused = fused
        self.audio_qkv = [fuse_qkv(layer.self_attn) for layer in self.audio.layers] if fused else None
        self.text_qkv = [fuse_qkv(layer.self_attn) for layer in self.text.layers] if fused else None
        # The decoder MLP's gate and up as one product and its SiLU times up as one pass (`mlp`); the offline
        # decoder (prefill.py) calls the same, so that its products are split over K as the live step's are.
        self.text_gate_up = [fuse_linears(layer.mlp, ("gate_proj", "up_proj"), "gate_up")[0] for layer in self.text.layers] \
            if fused and self.text.config.hidden_act == "silu" else None

    @torch.no_grad()
    def _delay_scales(self, inner, cfg):
        """`1 + ada_rms_norm(t_cond)` for every delay, computed as the model does it on every forward."""
        p = next(self.text.parameters())
        rows = []
        for layer in self.text.layers:
            per_delay = []
            for d in range(MAX_DELAY_STEPS + 1):
                t_cond = inner.time_embedding(torch.full((1,), d, device=p.device, dtype=p.dtype))[None, ...]
                per_delay.append((1 + layer.ada_rms_norm(t_cond))[0])
            rows.append(torch.stack(per_delay))
        return torch.stack(rows)

    @torch.no_grad()
    def __call__(self, B: int) -> torch.Tensor:
        b = self.bufs
        hidden = self.fill_caches(B)
        logits = self.lm_head(hidden[:, -1, :])  # (B, V)
        b.next_token[:B].copy_(logits.float().argmax(dim=-1))
        return b.next_token[:B]

    @torch.no_grad()
    def fill_caches(self, B: int) -> torch.Tensor:
        """The step without the LM head: writes the caches, returns the last hidden state (B, 1, D)."""
        b = self.bufs
        active, pos = b.active[:B], b.pos[:B]
        rows = torch.arange(B, device=pos.device)
        audio_embeds = self._encode(B, rows, b.mel[:B], pos, active)  # (B, 1, D)
        hidden = self.text.embed_tokens(b.token[:B])[:, None, :]  # (B, 1, D)
        hidden = hidden + audio_embeds
        return self._decode(B, rows, hidden, pos, b.delay[:B], active)

    def _conv(self, conv, history, x, active):
        """Causal conv with the pool's history in place of the padding cache. x (B, C, T)."""
        full = torch.cat([history, x], dim=-1)
        keep = history.shape[-1]
        history.copy_(torch.where(active[:, None, None], full[:, :, -keep:], history))
        return conv1d(conv, full)

    def _encode(self, B, rows, mel, pos, active):
        p, emb = self.pool, self.audio.embedder
        h = F.gelu(self._conv(emb.conv1, p.conv1[:B], mel, active))  # (B, C, 8)
        h = F.gelu(self._conv(emb.conv2, p.conv2[:B], h, active))  # (B, C, 4)
        h = h.permute(0, 2, 1)  # (B, 4, C)
        frames = h.shape[1]
        qpos = pos[:, None] * frames + torch.arange(frames, device=pos.device)  # (B, 4)
        ring_idx = qpos % p.shape.audio_ring
        p.audio_pos[rows[:, None], ring_idx] = torch.where(active[:, None], qpos, p.audio_pos[rows[:, None], ring_idx])
        mask = self._mask(p.audio_pos[:B], qpos, self.audio_window)
        cos, sin = self.audio.rotary_emb(h, position_ids=qpos)
        for i, layer in enumerate(self.audio.layers):
            x = self._norm(layer.self_attn_layer_norm, h)
            h = h + self._self_attention("audio", i, layer.self_attn, x, cos, sin, rows, ring_idx, mask, active)
            h = h + rows_invariant(layer.mlp, self._norm(layer.final_layer_norm, h))
        h = self._norm(self.audio.norm, h)
        h = h.reshape(B, -1, self.audio_hidden * self.downsample)  # (B, 1, 4C)
        return rows_invariant(self.projector, h)

    def _decode(self, B, rows, hidden, pos, delay, active):
        p = self.pool
        qpos = pos[:, None]  # (B, 1)
        ring_idx = qpos % p.shape.text_window
        p.text_pos[rows[:, None], ring_idx] = torch.where(active[:, None], qpos, p.text_pos[rows[:, None], ring_idx])
        mask = self._mask(p.text_pos[:B], qpos, self.text_window)
        cos, sin = self.text.rotary_emb(hidden, position_ids=qpos)
        scales = self.delay_scales[:, delay]  # (layers, B, D): each row's time conditioning, one gather a step
        for i, layer in enumerate(self.text.layers):
            x = self._norm(layer.input_layernorm, hidden)
            hidden = hidden + self._self_attention("text", i, layer.self_attn, x, cos, sin, rows, ring_idx, mask, active)
            x = self._norm(layer.post_attention_layernorm, hidden, scales[i])
            hidden = hidden + self.mlp(i, layer.mlp, x)
        return self._norm(self.text.norm, hidden)

    def mlp(self, i, mlp, x):
        """Decoder layer i's MLP module on x, down(silu(gate(x)) * up(x)): fused, gate and up as one product and
        the elementwise part in one pass (offline_kernels.silu_mul, the module's values to the bit)."""
        if self.text_gate_up is None:
            return mlp(x)
        both = F.linear(x, self.text_gate_up[i])
        n = both.shape[-1] // 2
        return mlp.down_proj(offline_kernels.silu_mul(both[..., :n], both[..., n:]))

    def _norm(self, norm, x, scale=None):
        """The model's RMS norm on x (B, L, D), times a per-row `scale` (B, D) if given."""
        if self.fused:
            return offline_kernels.rms_norm(x, norm, scale)
        return norm(x) if scale is None else norm(x) * scale[:, None, :]

    def _mask(self, key_pos, query_pos, window):
        """What the ring kernel builds its mask from, and for SDPA the mask itself, (B, 1, L, R), once per step."""
        return key_pos, query_pos, window, None if self.ring_kernel else window_mask(key_pos, query_pos, window)

    def _self_attention(self, ring, i, attn, x, cos, sin, rows, ring_idx, mask, active):
        """Layer i of the "audio" or "text" stack: attention over its rings, fused on a GPU."""
        kv = self.pool.layer(ring, i, x.shape[0])
        if self.fused:
            qkv = (self.audio_qkv if ring == "audio" else self.text_qkv)[i]
            return self._attend_fused(attn, qkv, x, cos, sin, kv, ring_idx, mask, active, ring)
        return self._attend(attn, x, cos, sin, kv, rows, ring_idx, mask, active, ring)

    def _attend(self, attn, x, cos, sin, kv, rows, ring_idx, mask, active, ring="text"):
        """x (B, L, D) -> (B, L, D); kv: the layer's (k, v, k_scale, v_scale) views of the pool, written in
        place; mask: see `_mask`."""
        B, L, _ = x.shape
        Dh = attn.head_dim
        q = attn.q_proj(x).view(B, L, -1, Dh).transpose(1, 2)  # (B, H, L, Dh)
        k = attn.k_proj(x).view(B, L, -1, Dh).transpose(1, 2)  # (B, Hkv, L, Dh)
        v = attn.v_proj(x).view(B, L, -1, Dh)  # (B, L, Hkv, Dh)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        kv_write(kv, rows[:, None], ring_idx, k.transpose(1, 2), v, active)
        H, Hkv = q.shape[1], kv[0].shape[1]
        # Grouped-query attention without repeating the cache: the G query heads that share a KV head
        # become G query rows of that head (heads h = kv * G + g, as repeat_kv lays them out).
        q = q.reshape(B, Hkv, (H // Hkv) * L, Dh)
        if self.ring_kernel:
            out = attention.ring_attention(q.contiguous(), *kv, *mask[:3], attn.scaling, active=active, **_read(ring))
        else:
            out = self._sdpa(q, kv, mask, H // Hkv, attn.scaling)
        out = out.reshape(B, H, L, Dh).transpose(1, 2).reshape(B, L, H * Dh)
        return attn.o_proj(out)

    def _attend_fused(self, attn, qkv, x, cos, sin, kv, ring_idx, mask, active, ring="text"):
        """_attend as one q/k/v product, rotary embedding of q and k in one pass, one ring write."""
        B, L, _ = x.shape
        Dh = attn.head_dim
        Hkv = kv[0].shape[1]
        nk = Hkv * Dh
        proj = F.linear(x, *qkv)  # (B, L, nq + 2 nk)
        nq = proj.shape[-1] - 2 * nk
        H = nq // Dh
        # q and k heads side by side, each token with its own position: one table row per token
        offline_kernels.rope_(proj[..., :nq + nk].view(1, B * L, H + Hkv, Dh), cos.reshape(B * L, Dh),
                              sin.reshape(B * L, Dh))
        ring_store.store(kv, ring_idx, proj[..., nq:nq + nk].view(B, L, Hkv, Dh), proj[..., nq + nk:].view(B, L, Hkv, Dh),
                         active)
        q = proj[..., :nq].view(B, L, H, Dh).transpose(1, 2).reshape(B, Hkv, (H // Hkv) * L, Dh)
        out = attention.ring_attention(q, *kv, *mask[:3], attn.scaling, active=active, **_read(ring))
        return attn.o_proj(out.reshape(B, H, L, Dh).transpose(1, 2).reshape(B, L, H * Dh))

    @staticmethod
    def _sdpa(q, kv, mask, groups, scale):
        k_cache, v_cache = dequantize(kv[0], kv[2], q.dtype), dequantize(kv[1], kv[3], q.dtype)
        m = mask[3]  # (B, 1, L, R)
        m = m if m.shape[2] == 1 else m.repeat(1, 1, groups, 1)
        return F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=m, scale=scale)
