"""Per-stream state in one pre-allocated pool: ring KV caches, conv tails, positions.

Slot s of every tensor belongs to one stream. Rings hold the last `window` positions of a sliding
window attention; `*_pos` records which absolute position each ring entry holds (-1: empty), so the
attention mask is exact whether or not the ring has wrapped. Buffers start as zeros, never `empty`:
a masked entry still meets a zero weight in SDPA, and 0 * NaN from stale memory would poison the row.
"""
from dataclasses import dataclass

import torch

EMPTY = -1


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
    audio_ring: int  # window + 3: a 4-frame write must not evict what its first frame still reads
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
            audio_window=a.sliding_window, audio_ring=a.sliding_window + config.downsample_factor - 1,
            mels=a.num_mel_bins, audio_hidden=a.hidden_size,
        )

    def bytes_per_slot(self, dtype: torch.dtype) -> int:
        size = torch.finfo(dtype).bits // 8
        text = 2 * self.text_layers * self.text_kv_heads * self.text_window * self.text_head_dim
        audio = 2 * self.audio_layers * self.audio_heads * self.audio_ring * self.audio_head_dim
        conv = self.mels * 2 + self.audio_hidden
        return (text + audio + conv) * size + 8 * (self.text_window + self.audio_ring)


class CachePool:
    def __init__(self, shape: PoolShape, device, dtype):
        self.shape = shape
        s = shape
        z = dict(device=device, dtype=dtype)
        self.text_k = [torch.zeros(s.slots, s.text_kv_heads, s.text_window, s.text_head_dim, **z) for _ in range(s.text_layers)]
        self.text_v = [torch.zeros_like(k) for k in self.text_k]
        self.audio_k = [torch.zeros(s.slots, s.audio_heads, s.audio_ring, s.audio_head_dim, **z) for _ in range(s.audio_layers)]
        self.audio_v = [torch.zeros_like(k) for k in self.audio_k]
        self.text_pos = torch.full((s.slots, s.text_window), EMPTY, device=device, dtype=torch.long)
        self.audio_pos = torch.full((s.slots, s.audio_ring), EMPTY, device=device, dtype=torch.long)
        self.conv1 = torch.zeros(s.slots, s.mels, 2, **z)  # kernel 3, stride 1: two frames of history
        self.conv2 = torch.zeros(s.slots, s.audio_hidden, 1, **z)  # kernel 3, stride 2: one frame

    def _per_slot(self):
        return [*self.text_k, *self.text_v, *self.audio_k, *self.audio_v, self.conv1, self.conv2]

    def reset(self, slot: int) -> None:
        """Make `slot` a fresh stream: nothing in the rings is visible, conv history is silence-free zeros."""
        self.text_pos[slot].fill_(EMPTY)
        self.audio_pos[slot].fill_(EMPTY)
        self.conv1[slot].zero_()
        self.conv2[slot].zero_()

    def move(self, src: int, dst: int) -> None:
        """Copy a stream's whole state to another slot (compaction keeps live streams in a prefix)."""
        for t in (*self._per_slot(), self.text_pos, self.audio_pos):
            t[dst].copy_(t[src])
