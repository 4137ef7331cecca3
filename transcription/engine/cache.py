"""Per-stream state in one pre-allocated pool: ring KV caches, conv tails, positions.

Slot s of every tensor belongs to one stream. Rings hold the last `window` positions of a sliding
window attention; `*_pos` records which absolute position each ring entry holds (-1: empty), so the
attention mask is exact whether or not the ring has wrapped. Buffers start as zeros, never `empty`:
a masked entry still meets a zero weight in SDPA, and 0 * NaN from stale memory would poison the row.

With `kv_dtype=float8_e4m3fn` the rings hold keys and values in 8 bits, each (head, position) vector
with its own float32 scale (its largest magnitude over 448, e4m3's largest value): half the memory and
half the bytes each step reads, for about 3 % on top for the scales. The decoder's and the encoder's
rings may differ (`audio_kv_dtype`): the decoder's hold four fifths of the bytes, and the encoder's are
where 8 bits cost the most agreement (EngineOptions.kv_cache).
"""
from dataclasses import dataclass

import torch

EMPTY = -1


# The encoder's rings are read by position in blocks of this many positions (attention.py, TUNING["encoder"]);
# in a ring of whole blocks a block of positions is a block of adjacent entries, read in wide loads.
AUDIO_RING_BLOCK = 128


def audio_ring(frames: int) -> int:
    """Entries of an encoder ring that must hold `frames` frames: whole blocks."""
    return -(-frames // AUDIO_RING_BLOCK) * AUDIO_RING_BLOCK


@dataclass(frozen=True)
class PoolShape:
    slots: int
    text_layers: int
    text_kv_heads: int
    text_head_dim: int
    text_window: int  # the decoder's sliding window, in steps
    audio_layers: int
    audio_heads: int
    audio_head_dim: int
    audio_window: int  # the encoder's sliding window, in encoder frames
    audio_ring: int  # window + 3 (a 4-frame write must not evict what its first frame still reads), in whole blocks
    mels: int
    audio_hidden: int

    @classmethod
    def for_model(cls, config, slots: int) -> "PoolShape":
        t, a = config.text_config, config.audio_config
        return cls(
            slots=slots,
            text_layers=t.num_hidden_layers, text_kv_heads=t.num_key_value_heads, text_head_dim=t.head_dim,
            text_window=t.sliding_window,
            audio_layers=a.num_hidden_layers, audio_heads=a.num_attention_heads, audio_head_dim=a.head_dim,
            audio_window=a.sliding_window, audio_ring=audio_ring(a.sliding_window + config.downsample_factor - 1),
            mels=a.num_mel_bins, audio_hidden=a.hidden_size,
        )

    def bytes_per_slot(self, dtype: torch.dtype, kv_dtype: torch.dtype | None = None,
                       audio_kv_dtype: torch.dtype | None = None) -> int:
        """`kv_dtype`: the decoder rings' (default the model's); `audio_kv_dtype`: the encoder rings' (default kv_dtype)."""
        size = torch.finfo(dtype).bits // 8
        text_dtype = kv_dtype or dtype
        audio_dtype = audio_kv_dtype or text_dtype
        text_vectors = 2 * self.text_layers * self.text_kv_heads * self.text_window
        audio_vectors = 2 * self.audio_layers * self.audio_heads * self.audio_ring
        kv = (text_vectors * self.text_head_dim * (torch.finfo(text_dtype).bits // 8)
              + audio_vectors * self.audio_head_dim * (torch.finfo(audio_dtype).bits // 8))
        scales = 4 * (text_vectors * is_fp8(text_dtype) + audio_vectors * is_fp8(audio_dtype))
        conv = (self.mels * 2 + self.audio_hidden) * size
        return kv + scales + conv + 8 * (self.text_window + self.audio_ring)


FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
# Times the float32 reciprocal rather than divided by 448: what PyTorch does on a GPU for a division by a
# number, made explicit so that the CPU, the GPU and ring_store's kernel compute the same scales.
INV_FP8_MAX = torch.tensor(1.0 / FP8_MAX, dtype=torch.float32).item()


def is_fp8(kv_dtype) -> bool:
    return kv_dtype == FP8


def quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (..., D) -> (e4m3 values (..., D), float32 scales (...)) with x ~= values * scale."""
    scale = x.abs().amax(dim=-1).float().clamp(min=1e-12) * INV_FP8_MAX
    return (x.float() / scale[..., None]).to(FP8), scale


def dequantize(values: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    if scale is None:
        return values.to(dtype)
    return (values.float() * scale[..., None]).to(dtype)


class CachePool:
    def __init__(self, shape: PoolShape, device, dtype, kv_dtype: torch.dtype | None = None,
                 audio_kv_dtype: torch.dtype | None = None):
        """`kv_dtype`: the decoder rings' dtype (default the model's); `audio_kv_dtype`: the encoder rings'
        (default the same)."""
        self.shape, self.device, self.dtype = shape, device, dtype
        self.kv_dtype = kv_dtype or dtype
        self.audio_kv_dtype = audio_kv_dtype or self.kv_dtype
        s = shape
        z = dict(device=device, dtype=dtype)
        self.text_k = [torch.zeros(s.slots, s.text_kv_heads, s.text_window, s.text_head_dim, device=device,
                                   dtype=self.kv_dtype) for _ in range(s.text_layers)]
        self.text_v = [torch.zeros_like(k) for k in self.text_k]
        self.audio_k = [torch.zeros(s.slots, s.audio_heads, s.audio_ring, s.audio_head_dim, device=device,
                                    dtype=self.audio_kv_dtype) for _ in range(s.audio_layers)]
        self.audio_v = [torch.zeros_like(k) for k in self.audio_k]
        self.fp8 = {"text": is_fp8(self.kv_dtype), "audio": is_fp8(self.audio_kv_dtype)}
        f32 = dict(device=device, dtype=torch.float32)
        for ring in ("text", "audio"):
            if self.fp8[ring]:  # scales start at zero like the values: an unwritten entry dequantizes to 0
                for name in (f"{ring}_k", f"{ring}_v"):
                    setattr(self, f"{name}_scale", [torch.zeros(k.shape[:3], **f32) for k in getattr(self, name)])
        self.text_pos = torch.full((s.slots, s.text_window), EMPTY, device=device, dtype=torch.long)
        self.audio_pos = torch.full((s.slots, s.audio_ring), EMPTY, device=device, dtype=torch.long)
        self.conv1 = torch.zeros(s.slots, s.mels, 2, **z)  # kernel 3, stride 1: two frames of history
        self.conv2 = torch.zeros(s.slots, s.audio_hidden, 1, **z)  # kernel 3, stride 2: one frame

    def ring_tensor_names(self, ring: str) -> list[str]:
        """Names of the per-layer tensor lists of the "text" or "audio" ring, each (S, H, R, ...)."""
        names = [f"{ring}_k", f"{ring}_v"]
        return names + [f"{n}_scale" for n in names] if self.fp8[ring] else names

    def layer(self, ring: str, i: int, rows: int):
        """(k, v, k_scale, v_scale) of layer i for slots 0..rows-1; scales are None unless fp8."""
        k, v = getattr(self, f"{ring}_k")[i][:rows], getattr(self, f"{ring}_v")[i][:rows]
        if not self.fp8[ring]:
            return k, v, None, None
        return k, v, getattr(self, f"{ring}_k_scale")[i][:rows], getattr(self, f"{ring}_v_scale")[i][:rows]

    def _per_slot(self):
        tensors = [self.conv1, self.conv2]
        for ring in ("text", "audio"):
            for name in self.ring_tensor_names(ring):
                tensors += getattr(self, name)
        return tensors

    def reset(self, slot: int) -> None:
        """Make `slot` a fresh stream: nothing in the rings is visible, conv history is silence-free zeros."""
        self.text_pos[slot].fill_(EMPTY)
        self.audio_pos[slot].fill_(EMPTY)
        self.conv1[slot].zero_()
        self.conv2[slot].zero_()

    def reset_all(self) -> None:
        """Every slot fresh (after start-up timing, which steps slots no stream holds)."""
        self.text_pos.fill_(EMPTY)
        self.audio_pos.fill_(EMPTY)
        self.conv1.zero_()
        self.conv2.zero_()

    def move(self, src: int, dst: int) -> None:
        """Copy a stream's whole state to another slot (compaction keeps live streams in a prefix)."""
        for t in (*self._per_slot(), self.text_pos, self.audio_pos):
            t[dst].copy_(t[src])
